"""CPU, memory, disk, network and (with pynvml) GPU use of a training, logged by MLflow's own monitor as the
run's ``system/*`` metrics, when MLflow's system-metrics logging is on (``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true``
or ``mlflow.enable_system_metrics_logging()``)."""

from __future__ import annotations

import logging
from functools import cache
from typing import Protocol

log = logging.getLogger("ltsoups.tracking")


class Monitor(Protocol):
    def finish(self) -> None: ...


def start_monitor(tracking_uri: str, run_id: str, resumed: bool) -> Monitor | None:
    """MLflow's monitor sampling into ``run_id`` on its own thread (a ``resumed`` run continues its steps); None
    when system-metrics logging is off."""
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING

    if not MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING.get():
        return None
    try:
        monitor = _monitor_type()(run_id, resume_logging=resumed, tracking_uri=tracking_uri)
        monitor.start()
    except Exception as err:  # whatever MLflow raises (psutil missing, server away), training and tracking go on
        log.warning("MLflow's system metrics of run %s not logged: %s: %s", run_id, type(err).__name__, err)
        return None
    return monitor


@cache
def _monitor_type() -> type:
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    class SampledAtLeastOnce(SystemMetricsMonitor):
        """MLflow's monitor, which publishes a sample only after a whole sampling interval: a training that
        ends sooner (a short CR on cached features) gets one sample when it finishes."""

        published = 0

        def publish_metrics(self, metrics: dict[str, float]) -> None:
            super().publish_metrics(metrics)
            self.published += 1

        def finish(self) -> None:
            super().finish()
            if not self.published:
                self.collect_metrics()
                self.publish_metrics(self.aggregate_metrics())
                self.mlflow_logger.flush()

    return SampledAtLeastOnce
