"""Can the embedded task tell head from tail? Zero-shot accuracy per shot group over world seeds, and test noise.

Two numbers decide whether a comparison on the task means anything: how far apart the shot groups
already are before any training (zero-shot theta_0), which should be small when which classes are
large is independent of what makes a class hard, and the standard error of a model's balanced test
accuracy, which should be below the differences being compared.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, computed_field

from ltsoups.config import LtSoupsConfig
from ltsoups.data.stats import ClassStats, ShotGroup
from ltsoups.evaluation import predict
from ltsoups.stages.context import RunContext


class ClassResult(BaseModel):
    """Zero-shot test result of one class in one world."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: int = Field(description="Label of the class (0 is the largest).")
    name: str = Field(description="Class name, e.g. 'blue striped triangle'.")
    train_count: int = Field(description="Training images of the class.")
    group: ShotGroup = Field(description="Shot group from the training count and the configured thresholds.")
    test_images: int = Field(description="Test images of the class.")
    correct: int = Field(description="Test images of the class that theta_0 classifies correctly.")

    @property
    def accuracy(self) -> float:
        return self.correct / self.test_images


class WorldAudit(BaseModel):
    """Zero-shot theta_0 on the test split of one world seed; accuracies in percent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    world_seed: int = Field(description="data.dataset.params.seed of this world.")
    classes: tuple[ClassResult, ...] = Field(description="One row per class, in label order.")

    @computed_field(description="Mean of the per-class accuracies.")
    @property
    def balanced_accuracy(self) -> float:
        return 100.0 * float(np.mean([c.accuracy for c in self.classes]))

    @computed_field(description="Balanced accuracy within each non-empty shot group.")
    @property
    def group_accuracy(self) -> dict[ShotGroup, float]:
        return {
            group: 100.0 * float(np.mean([c.accuracy for c in members]))
            for group in ShotGroup
            if (members := [c for c in self.classes if c.group is group])
        }

    @computed_field(description="Best minus worst shot-group accuracy.")
    @property
    def group_gap(self) -> float:
        return _spread(self.group_accuracy.values())

    @computed_field(description="Standard error of the balanced accuracy: sqrt(sum_c p_c (1 - p_c) / n_c) / K.")
    @property
    def standard_error(self) -> float:
        variance = sum(c.accuracy * (1 - c.accuracy) / c.test_images for c in self.classes)
        return 100.0 * math.sqrt(variance) / len(self.classes)

    @computed_field(
        description="The same from the balanced accuracy p alone: sqrt(p (1 - p) / (K n)), n the mean test images."
    )
    @property
    def rule_of_thumb_standard_error(self) -> float:
        p = self.balanced_accuracy / 100.0
        n = float(np.mean([c.test_images for c in self.classes]))
        return 100.0 * math.sqrt(p * (1 - p) / (len(self.classes) * n))


class TaskAudit(BaseModel):
    """The audit over several world seeds; accuracies in percent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    worlds: tuple[WorldAudit, ...] = Field(min_length=1, description="One audit per world seed.")

    @computed_field(description="Per shot group, its accuracy averaged over the world seeds.")
    @property
    def mean_group_accuracy(self) -> dict[ShotGroup, float]:
        return {
            group: float(np.mean([world.group_accuracy[group] for world in self.worlds]))
            for group in self.worlds[0].group_accuracy
        }

    @computed_field(description="Best minus worst of the seed-averaged shot-group accuracies.")
    @property
    def gap_of_mean_groups(self) -> float:
        return _spread(self.mean_group_accuracy.values())

    @computed_field(description="The per-seed group gaps, averaged.")
    @property
    def mean_group_gap(self) -> float:
        return float(np.mean([world.group_gap for world in self.worlds]))

    @computed_field(description="Balanced accuracy averaged over the world seeds.")
    @property
    def mean_balanced_accuracy(self) -> float:
        return float(np.mean([world.balanced_accuracy for world in self.worlds]))

    @computed_field(description="Standard error of one model's balanced accuracy, averaged over seeds.")
    @property
    def mean_standard_error(self) -> float:
        return float(np.mean([world.standard_error for world in self.worlds]))


def images_per_class_for_standard_error(num_classes: int, standard_error: float, accuracy: float = 0.5) -> int:
    """Test images per class that bring the balanced accuracy's standard error to ``standard_error`` points.

    From SE = sqrt(p (1 - p) / (K n)); p = 0.5, the default, is the worst case, so the result then
    holds at any accuracy (per-class accuracies that differ only lower the error).
    """
    fraction = standard_error / 100.0
    return math.ceil(accuracy * (1 - accuracy) / (num_classes * fraction * fraction))


def world_config(config: LtSoupsConfig, world_seed: int) -> LtSoupsConfig:
    """``config`` with the embedded world seed (data.dataset.params.seed) replaced."""
    dataset = config.data.dataset
    if dataset.name != "embedded":
        raise ValueError(f"the audit needs data.dataset.name 'embedded' (world seeds), got {dataset.name!r}")
    dataset = dataset.model_copy(update={"params": dataset.params.model_copy(update={"seed": world_seed})})
    return config.model_copy(update={"data": config.data.model_copy(update={"dataset": dataset})})


def audit_world(config: LtSoupsConfig) -> WorldAudit:
    """Score the configured theta_0 (backbone + prompt head, as the theta0 stage builds it) on the test split."""
    context = RunContext(config)
    model = context.zero_shot_classifier()
    test = context.splits.test
    predictions = predict(model, context.evaluation_inputs("test")).argmax(axis=-1)
    num_classes = test.num_classes
    images = np.bincount(test.labels, minlength=num_classes)
    correct = np.bincount(test.labels[predictions == test.labels], minlength=num_classes)
    counts = context.train_counts
    groups = ClassStats(counts, config.data.thresholds).groups()
    return WorldAudit(
        world_seed=config.data.dataset.params.seed,
        classes=tuple(
            ClassResult(
                label=c,
                name=test.class_names[c],
                train_count=int(counts[c]),
                group=groups[c],
                test_images=int(images[c]),
                correct=int(correct[c]),
            )
            for c in range(num_classes)
        ),
    )


def audit_task(config: LtSoupsConfig, world_seeds: Sequence[int]) -> TaskAudit:
    """The zero-shot audit of the embedded task of ``config`` in each of ``world_seeds``."""
    return TaskAudit(worlds=tuple(audit_world(world_config(config, seed)) for seed in world_seeds))


def _spread(values: Iterable[float]) -> float:
    numbers = list(values)
    return float(max(numbers) - min(numbers))
