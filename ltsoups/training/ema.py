"""Exponential moving average of a model's parameters."""

from __future__ import annotations

import torch
from torch import nn


class ParameterEma:
    """ema <- decay * ema + (1 - decay) * param after every optimizer step, for the parameters that train;
    frozen parameters and buffers are the model's own (their average would be themselves).

    ``start_from_model`` (the paper's Algorithm 1) seeds the average with the weights at creation
    (theta_0); otherwise the first update copies the weights (torch AveragedModel, the authors' code).
    Decay 0 is no EMA: no average is kept (no second copy of the weights) and the raw weights are
    returned, exactly what an average with decay 0 would hold.
    """

    def __init__(self, model: nn.Module, decay: float, start_from_model: bool) -> None:
        self.decay = decay
        trained = [(name, p) for name, p in model.named_parameters() if p.requires_grad] if decay > 0 else []
        self.shadow = {name: p.detach().clone() for name, p in trained}
        self.updates = 1 if start_from_model else 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, average in self.shadow.items():
            param = model.get_parameter(name)
            if self.updates == 0:
                average.copy_(param)
            else:
                average.lerp_(param.detach(), 1.0 - self.decay)
        self.updates += 1

    def state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's full state dict with the trained parameters replaced by their averages."""
        state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        state.update({name: avg.clone() for name, avg in self.shadow.items()})
        return state
