"""MLflow tracking of the pipeline: one parent run per execution, a child run per member, soup, CR and evaluation.

Only this package (and the CLI) imports MLflow, and only once tracking is enabled: the library core
knows nothing of it.
"""

from ltsoups.tracking.tracker import PipelineTracker, pipeline_tracking

__all__ = ["PipelineTracker", "pipeline_tracking"]
