"""A TrainingObserver that streams a run's loss, learning rate and validation accuracy to MLflow."""

from __future__ import annotations

from ltsoups.tracking.metrics import MetricStream


class MetricsObserver:
    """Follows one training (member or head) and queues its step metrics on a MetricStream."""

    def __init__(self, stream: MetricStream) -> None:
        self.stream = stream

    def on_start(self, total_steps: int, first_step: int) -> None:
        pass

    def on_step(self, step: int, loss: float, lr: float) -> None:
        self.stream.log("loss", loss, step)
        self.stream.log("lr", lr, step)

    def on_validation(self, step: int, score: float) -> None:
        self.stream.log("val/balanced", score, step)
