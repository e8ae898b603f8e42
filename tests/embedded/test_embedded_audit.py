import math
from pathlib import Path

import numpy as np
import pytest
from tiny_config import tiny_params, validate_config

from ltsoups.config import LtSoupsConfig
from ltsoups.data.stats import ShotGroup
from ltsoups.embedded.audit import TaskAudit, audit_task, images_per_class_for_standard_error, world_config


@pytest.fixture(scope="module")
def config(random_mini_clip: Path) -> LtSoupsConfig:
    return validate_config(tiny_params(random_mini_clip))


@pytest.fixture(scope="module")
def audit(config: LtSoupsConfig) -> TaskAudit:
    return audit_task(config, [0, 1, 2])


def test_every_number_follows_from_the_per_class_counts(audit: TaskAudit) -> None:
    for world in audit.worlds:
        accuracy = np.array([c.correct / c.test_images for c in world.classes])
        n = np.array([c.test_images for c in world.classes])
        groups = np.array([c.group.value for c in world.classes])
        assert world.balanced_accuracy == pytest.approx(100 * accuracy.mean())
        expected = {g: 100 * accuracy[groups == g.value].mean() for g in ShotGroup if (groups == g.value).any()}
        assert world.group_accuracy == pytest.approx(expected)
        assert world.group_gap == pytest.approx(max(expected.values()) - min(expected.values()))
        se = 100 * math.sqrt(np.sum(accuracy * (1 - accuracy) / n)) / len(n)
        assert world.standard_error == pytest.approx(se)
        p = accuracy.mean()
        assert world.rule_of_thumb_standard_error == pytest.approx(100 * math.sqrt(p * (1 - p) / (len(n) * n.mean())))
    means = {g: np.mean([w.group_accuracy[g] for w in audit.worlds]) for g in audit.worlds[0].group_accuracy}
    assert audit.mean_group_accuracy == pytest.approx(means)
    assert audit.gap_of_mean_groups == pytest.approx(max(means.values()) - min(means.values()))
    assert audit.mean_group_gap == pytest.approx(np.mean([w.group_gap for w in audit.worlds]))
    assert audit.mean_standard_error == pytest.approx(np.mean([w.standard_error for w in audit.worlds]))


def test_worlds_share_classes_and_counts_but_not_which_classes_are_large(audit: TaskAudit) -> None:
    assert [w.world_seed for w in audit.worlds] == [0, 1, 2]
    names = [tuple(c.name for c in w.classes) for w in audit.worlds]
    counts = [[c.train_count for c in w.classes] for w in audit.worlds]
    assert len({frozenset(n) for n in names}) == 1 and len(set(names)) == 3
    assert counts[0] == counts[1] == counts[2] == sorted(counts[0], reverse=True)
    assert {c.test_images for w in audit.worlds for c in w.classes} == {5}
    assert {c.group for c in audit.worlds[0].classes} == {ShotGroup.MEDIUM, ShotGroup.FEW}


def test_the_audit_scores_the_theta0_the_pipeline_builds(config: LtSoupsConfig, audit: TaskAudit) -> None:
    from ltsoups.evaluation import evaluate
    from ltsoups.stages.context import RunContext

    context = RunContext(world_config(config, 1))
    model = context.zero_shot_classifier()
    scores = evaluate(model, context.evaluation_inputs("test"), context.train_counts, config.data.thresholds)
    assert audit.worlds[1].balanced_accuracy == pytest.approx(scores.balanced)


def test_test_images_needed_for_a_standard_error() -> None:
    assert images_per_class_for_standard_error(40, 0.7) == 128  # p = 0.5: any accuracy
    assert images_per_class_for_standard_error(40, 0.7, accuracy=0.6) == 123
    se = 100 * math.sqrt(0.25 / (40 * 128))
    assert se <= 0.7 < 100 * math.sqrt(0.25 / (40 * 127))


def test_the_audit_needs_the_embedded_task(config: LtSoupsConfig) -> None:
    other = config.model_copy(
        update={
            "data": config.data.model_copy(
                update={"dataset": config.data.dataset.model_copy(update={"name": "cifar100-lt"})}
            )
        }
    )
    with pytest.raises(ValueError, match=r"needs data\.dataset\.name 'embedded'"):
        world_config(other, 0)
