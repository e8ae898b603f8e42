"""Validation scores of training snapshots, for best-val selection (the authors' best of 5 EMA snapshots)."""

from __future__ import annotations

import copy

import torch

from ltsoups.evaluation import evaluate, mean_over_views, score_predictions
from ltsoups.model import CosineHead, LongTailClassifier
from ltsoups.stages.context import RunContext


class ClassifierScorer:
    """Balanced val accuracy of a classifier state dict, scored on a copy of the model on the run's device."""

    def __init__(self, context: RunContext, model: LongTailClassifier) -> None:
        self.context, self.model = context, model
        self._scratch: LongTailClassifier | None = None

    def __call__(self, state: dict[str, torch.Tensor]) -> float:
        if self._scratch is None:  # copied at the first snapshot only: most trainings never validate
            self._scratch = self.context.runtime.place(copy.deepcopy(self.model))
        self._scratch.load_state_dict(state)
        context = self.context
        inputs, thresholds = context.evaluation_inputs("val"), context.config.data.thresholds
        return evaluate(self._scratch, inputs, context.train_counts, thresholds).balanced


class HeadScorer:
    """Balanced val accuracy of a head state dict on the frozen encoder's cached val features, on the run's device.

    ``val_features`` are (images, views, dim), the views ``evaluation`` asks for: the head's logits are
    averaged over the views, as ``predict`` does with the whole model.
    """

    def __init__(self, context: RunContext, head: CosineHead, val_features: torch.Tensor) -> None:
        runtime = context.runtime
        self.context, self.features = context, runtime.place(val_features)
        self._scratch = runtime.place(copy.deepcopy(head))

    def __call__(self, state: dict[str, torch.Tensor]) -> float:
        self._scratch.load_state_dict(state)
        with self.context.runtime.inference():
            predictions = mean_over_views(self._scratch, self.features, self.context.runtime).argmax(dim=-1).numpy()
        context = self.context
        labels = context.splits.val.labels
        return score_predictions(predictions, labels, context.train_counts, context.config.data.thresholds).balanced
