"""The optimiser choice (AdamW, LIFT's SGD), its resumable state, and training without EMA."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_config import validate_config
from torch import nn

from ltsoups.config import ConfigError
from ltsoups.settings import OptimizerSettings
from ltsoups.training.ema import ParameterEma
from ltsoups.training.loop import build_optimizer
from ltsoups.training.resume import ResumeState


def _layer() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(4, 3)


def _step(layer: nn.Linear, optimizer: torch.optim.Optimizer, seed: int) -> None:
    inputs = torch.randn(8, 4, generator=torch.Generator().manual_seed(seed))
    optimizer.zero_grad()
    layer(inputs).square().mean().backward()
    optimizer.step()


def test_sgd_is_lifts_momentum_sgd_with_l2_weight_decay() -> None:
    settings = OptimizerSettings(name="sgd", lr=0.01, weight_decay=5e-4)
    optimizer = build_optimizer(_layer().parameters(), settings)
    assert isinstance(optimizer, torch.optim.SGD)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.01, 0.9, False, 5e-4)
    adamw = build_optimizer(_layer().parameters(), OptimizerSettings()).param_groups[0]
    assert (adamw["betas"], adamw["weight_decay"]) == ((0.9, 0.999), 0.01)


def test_sgd_takes_the_momentum_update_by_hand() -> None:
    layer = nn.Linear(1, 1, bias=False)
    nn.init.constant_(layer.weight, 1.0)
    optimizer = build_optimizer(layer.parameters(), OptimizerSettings(name="sgd", lr=0.1, weight_decay=0.0))
    for _ in range(2):
        optimizer.zero_grad()
        layer(torch.ones(1, 1)).sum().backward()  # gradient 1 each step
        optimizer.step()
    # buffer: 1, then 0.9 * 1 + 1 = 1.9; weight: 1 - 0.1 * 1 - 0.1 * 1.9
    assert layer.weight.item() == pytest.approx(1 - 0.1 - 0.19)


@pytest.mark.parametrize(
    ("optim", "message"),
    [
        ({"momentum": 0.8}, "momentum 0.8 has no effect with name adamw"),
        ({"nesterov": True}, "nesterov True has no effect with name adamw"),
        ({"name": "sgd", "betas": [0.9, 0.95]}, "betas (0.9, 0.95) has no effect with name sgd"),
        ({"name": "sgd", "momentum": 0.0, "nesterov": True}, "nesterov needs momentum > 0"),
        ({"name": "adam"}, "Input should be 'adamw' or 'sgd'"),
    ],
)
def test_a_setting_of_the_other_optimizer_is_an_error_naming_it(optim: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=r"train\.optim") as caught:
        validate_config({"train": {"optim": optim}})
    assert message in str(caught.value)


def test_switching_to_sgd_keeps_no_adamw_setting_of_the_defaults() -> None:
    config = validate_config({"train": {"optim": {"name": "sgd"}}})
    assert (config.train.optim.sgd_momentum, config.train.optim.betas) == (0.9, None)


def test_sgd_momentum_buffers_round_trip_through_a_resume_state(tmp_path: Path) -> None:
    settings = OptimizerSettings(name="sgd", lr=0.05, weight_decay=5e-4, nesterov=True)
    straight = _layer()
    optimizer = build_optimizer(straight.parameters(), settings)
    for seed in range(3):
        _step(straight, optimizer, seed)
    ema = ParameterEma(straight, decay=0.0, start_from_model=True)
    scaler = torch.amp.GradScaler("cuda", enabled=False)  # fp32 and bf16: no loss scale
    ResumeState(tmp_path / "resume.safetensors").save(3, straight, optimizer, scaler, ema, None)

    resumed = _layer()
    resumed_optimizer = build_optimizer(resumed.parameters(), settings)
    step, best = ResumeState(tmp_path / "resume.safetensors").restore(
        resumed, resumed_optimizer, scaler, ParameterEma(resumed, 0.0, True), total=10
    )
    assert (step, best) == (3, None)
    for param, twin in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(optimizer.state[param]["momentum_buffer"], resumed_optimizer.state[twin]["momentum_buffer"])
    for seed in range(3, 6):
        _step(straight, optimizer, seed)
        _step(resumed, resumed_optimizer, seed)
    for param, twin in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(param, twin)  # bit for bit: the momentum came back, not a fresh zero buffer


def test_ema_decay_zero_is_no_ema_the_raw_weights_and_no_copy() -> None:
    layer = _layer()
    ema = ParameterEma(layer, decay=0.0, start_from_model=True)
    assert ema.shadow == {}
    optimizer = build_optimizer(layer.parameters(), OptimizerSettings(lr=0.1))
    for seed in range(3):
        _step(layer, optimizer, seed)
        ema.update(layer)
    state = ema.state_dict(layer)
    assert all(torch.equal(state[name], param) for name, param in layer.named_parameters())


def test_the_fp16_loss_scale_round_trips_through_a_resume_state(tmp_path: Path) -> None:
    """The scale decides which later steps an fp16 run skips: a resume that reset it would not end the same."""
    layer = _layer()
    optimizer = build_optimizer(layer.parameters(), OptimizerSettings())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)  # the CUDA scaler's logic, runnable here
    for overflow in (False, True, False):  # the inf step halves the scale and is skipped
        loss = layer(torch.ones(1, 4)).sum() * (float("inf") if overflow else 1.0)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad()
    assert scaler.get_scale() == 2.0**15
    ema = ParameterEma(layer, decay=0.0, start_from_model=True)
    ResumeState(tmp_path / "resume.safetensors").save(3, layer, optimizer, scaler, ema, None)
    fresh = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    ResumeState(tmp_path / "resume.safetensors").restore(_layer(), optimizer, fresh, ema, total=10)
    assert fresh.state_dict() == scaler.state_dict()
