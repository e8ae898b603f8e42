import pytest
import torch
from torch import nn

from ltsoups.settings import ScheduleSettings
from ltsoups.training.batches import StepBatches
from ltsoups.training.ema import ParameterEma
from ltsoups.training.schedule import lr_multiplier, steps_for, warmup_steps


def test_warmup_is_max_of_100_steps_and_one_percent() -> None:
    assert warmup_steps(5_000, 100, 0.01) == 100
    assert warmup_steps(50_000, 100, 0.01) == 500
    assert warmup_steps(40, 100, 0.01) == 40  # never longer than the run


def test_cosine_decays_to_a_tenth_of_the_peak() -> None:
    total, warmup = 1_000, 100
    values = [lr_multiplier(s, total, warmup, 0.1) for s in range(total)]
    assert values[0] == pytest.approx(0.01)
    assert values[warmup - 1] == pytest.approx(1.0)
    assert values[warmup] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(0.1, abs=1e-4)
    assert all(a >= b for a, b in zip(values[warmup:], values[warmup + 1 :], strict=False))


def test_steps_are_epochs_over_the_subset_with_a_minimum() -> None:
    # 7296 = 57 * 128: 57 batches per epoch (the authors' n // 128 + 1 counts 58 when n divides evenly)
    schedule = ScheduleSettings(epochs=10, min_steps=100)
    assert steps_for(size=7296, batch_size=128, schedule=schedule) == 570
    assert steps_for(size=9959, batch_size=128, schedule=schedule) == 780
    assert steps_for(size=500, batch_size=128, schedule=schedule) == 100


def test_batches_cover_each_epoch_once_and_replay_from_any_step() -> None:
    batches = list(StepBatches(size=10, batch_size=4, total_steps=6, seed=3))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    first_epoch = sorted(i for batch in batches[:3] for i, _ in batch)
    assert first_epoch == list(range(10))
    assert list(StepBatches(size=10, batch_size=4, total_steps=6, seed=3, start=4)) == batches[4:]
    assert batches != list(StepBatches(size=10, batch_size=4, total_steps=6, seed=4))


def test_ema_from_theta0_versus_first_step() -> None:
    layer = nn.Linear(1, 1, bias=False)
    nn.init.constant_(layer.weight, 0.0)
    paper = ParameterEma(layer, decay=0.99, start_from_model=True)
    code = ParameterEma(layer, decay=0.99, start_from_model=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    paper.update(layer)
    code.update(layer)
    assert paper.shadow["weight"].item() == pytest.approx(0.01)  # 0.99 * theta0 + 0.01 * theta1
    assert code.shadow["weight"].item() == pytest.approx(1.0)  # copies theta1 (torch AveragedModel)
    with torch.no_grad():
        layer.weight.fill_(2.0)
    code.update(layer)
    assert code.shadow["weight"].item() == pytest.approx(0.99 * 1.0 + 0.01 * 2.0)


def test_the_ema_averages_only_what_trains() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model[0].requires_grad_(False)  # a frozen encoder: CR, or a PEFT member's base weights
    ema = ParameterEma(model, decay=0.99, start_from_model=True)
    assert set(ema.shadow) == {"1.weight", "1.bias"}  # no second copy of the frozen weights
    with torch.no_grad():
        model[1].weight.add_(1.0)
    ema.update(model)
    state = ema.state_dict(model)
    assert torch.equal(state["0.weight"], model[0].weight) and not torch.equal(state["1.weight"], model[1].weight)
