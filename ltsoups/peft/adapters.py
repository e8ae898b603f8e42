"""The adapters of each PEFT method placed into a CLIP ViT, and the LoRA fold before merges.

What each method adapts, and why each starts as the identity, is in the package's docstring (``ltsoups.peft``)."""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from ltsoups.peft import PeftMethod, lift_width

_log = logging.getLogger(__name__)

# Adapter initialisation is part of theta_0, so it is seeded: the same config gives the same weights.
_INIT_SEED = 0x10A
# The row blocks of a fused in-projection (nn.MultiheadAttention.in_proj_weight), in order.
_FUSED_SLICES = ("q", "k", "v")
_LIFT_LORA_SLICES = ("q", "v")
_MLP_TARGETS = ("mlp.c_fc.weight", "mlp.c_proj.weight")
_WHOLE = None
"""Key of a LoRA update over its whole weight (``lora-all``; the MLP of ``lora-mlp``); ``q``/``v`` name slices."""


def low_rank_delta(lora_a: torch.Tensor, lora_b: torch.Tensor) -> torch.Tensor:
    """The weight-layout (out, in) form of LIFT's ``(x @ A @ B) / r``: ``(A @ B)^T / r``, r = A's columns."""
    return (lora_a @ lora_b).t() * (1.0 / lora_a.shape[1])


def adapted_weight(weight: torch.Tensor, deltas: Mapping[str | None, torch.Tensor]) -> torch.Tensor:
    """``weight`` plus its LoRA deltas: one for the whole weight, or one per named q/k/v row block."""
    if _WHOLE in deltas:
        return weight + deltas[_WHOLE].to(weight.dtype)
    rows = weight.shape[0] // len(_FUSED_SLICES)
    template = next(iter(deltas.values()))
    blocks = [deltas[s] if s in deltas else template.new_zeros(rows, weight.shape[1]) for s in _FUSED_SLICES]
    return weight + torch.cat(blocks).to(weight.dtype)


class LowRankUpdate(nn.Module):
    """LIFT's LoRA factors (its layout): lora_a (in, rank) Kaiming-uniform, lora_b (rank, out) zero."""

    def __init__(self, in_features: int, out_features: int, rank: int, generator: torch.Generator) -> None:
        super().__init__()
        self.lora_a = nn.Parameter(
            nn.init.kaiming_uniform_(torch.empty(in_features, rank), a=math.sqrt(5), generator=generator)
        )
        self.lora_b = nn.Parameter(torch.zeros(rank, out_features))

    def delta(self) -> torch.Tensor:
        return low_rank_delta(self.lora_a, self.lora_b)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """As a parametrisation of a whole weight: W -> W + (A B)^T / r."""
        return adapted_weight(weight, {_WHOLE: self.delta()})


class FusedSliceUpdate(nn.ModuleDict):
    """Parametrisation of a fused (q; k; v) in-projection: LoRA on some row blocks, the others untouched."""

    def __init__(self, width: int, slices: tuple[str, ...], rank: int, generator: torch.Generator) -> None:
        super().__init__({s: LowRankUpdate(width, width, rank, generator) for s in slices})

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return adapted_weight(weight, {s: update.delta() for s, update in self.items()})


class AdaptFormer(nn.Module):
    """LIFT's AdaptFormer branch: scale * up(relu(down(LayerNorm(x)))), zero at the start (up = 0)."""

    def __init__(self, width: int, bottleneck: int, generator: torch.Generator) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(width)
        # skip_init: the initialisation below is the only one, and the global RNG is left alone.
        self.down = nn.utils.skip_init(nn.Linear, width, bottleneck)
        self.up = nn.utils.skip_init(nn.Linear, bottleneck, width)
        self.scale = nn.Parameter(torch.ones(1))
        with torch.no_grad():
            nn.init.kaiming_normal_(self.down.weight, a=math.sqrt(5), generator=generator)
            self.down.bias.zero_()
            self.up.weight.zero_()
            self.up.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(torch.relu(self.down(self.ln(x)))) * self.scale


class MlpWithAdaptFormer(nn.Module):
    """A block's MLP branch that takes the residual stream itself: mlp(ln_2(x)) + adaptformer(x).

    open_clip's block computes ``x + ls_2(mlp(ln_2(x)))``; ``ln_2`` moves in here (the block's own
    becomes the identity) so that the adapter reads x before the norm, as LIFT's does.
    """

    def __init__(self, ln_2: nn.Module, mlp: nn.Module, adaptformer: AdaptFormer) -> None:
        super().__init__()
        self.ln_2, self.mlp, self.adaptformer = ln_2, mlp, adaptformer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.ln_2(x)) + self.adaptformer(x)


def residual_blocks(encoder: nn.Module) -> list[nn.Module]:
    """The transformer's residual blocks (modules with ``attn`` and ``mlp``), in order."""
    blocks = [m for m in encoder.modules() if hasattr(m, "attn") and hasattr(m, "mlp")]
    if not blocks:
        raise ValueError("PEFT needs a transformer encoder with attention/MLP residual blocks (attn, mlp)")
    return blocks


@dataclass(frozen=True)
class LoraPlacement:
    """Which matrices of each residual block LoRA adapts."""

    query_value: bool
    """Add updates to the q and v row blocks of the fused in-projection (LIFT's ``lora``)."""
    whole: tuple[str, ...] = ()
    """Block-relative names of matrices that get one update each, over the whole matrix."""


_LORA_PLACEMENTS = {
    PeftMethod.LORA: LoraPlacement(query_value=True),
    PeftMethod.LORA_MLP: LoraPlacement(query_value=True, whole=_MLP_TARGETS),
    PeftMethod.LORA_ALL: LoraPlacement(
        query_value=False, whole=("attn.in_proj_weight", "attn.out_proj.weight", *_MLP_TARGETS)
    ),
}


def add_lora(encoder: nn.Module, rank: int, placement: LoraPlacement) -> None:
    """Freeze ``encoder`` and parametrise the matrices ``placement`` names as W + (A B)^T / r."""
    encoder.requires_grad_(False)
    generator = torch.Generator().manual_seed(_INIT_SEED)
    for block in residual_blocks(encoder):
        if placement.query_value:
            weight = getattr(block.attn, "in_proj_weight", None)
            if weight is None:
                raise ValueError("LoRA on q and v needs the fused in-projection of nn.MultiheadAttention")
            update = FusedSliceUpdate(weight.shape[1], _LIFT_LORA_SLICES, rank, generator)
            parametrize.register_parametrization(block.attn, "in_proj_weight", update)
        for target in placement.whole:
            owner_path, name = target.rsplit(".", 1)
            owner = block.get_submodule(owner_path)
            out_features, in_features = getattr(owner, name).shape
            parametrize.register_parametrization(owner, name, LowRankUpdate(in_features, out_features, rank, generator))


def add_adaptformer(encoder: nn.Module, bottleneck: int) -> None:
    """LIFT's AdaptFormer: freeze ``encoder``, add a bottleneck beside each MLP reading the pre-ln_2 residual."""
    encoder.requires_grad_(False)
    generator = torch.Generator().manual_seed(_INIT_SEED)
    for block in residual_blocks(encoder):
        if not isinstance(getattr(block, "ls_2", nn.Identity()), nn.Identity):
            # The adapter would pass through the MLP's layer scale, which LIFT's blocks do not have.
            raise ValueError("AdaptFormer as LIFT defines it needs blocks without layer scale (ls_2)")
        width = block.mlp.c_fc.in_features
        block.mlp = MlpWithAdaptFormer(block.ln_2, block.mlp, AdaptFormer(width, bottleneck, generator))
        block.ln_2 = nn.Identity()


def apply_peft(encoder: nn.Module, method: PeftMethod, num_classes: int, width: int | None = None) -> None:
    """Turn a fully fine-tunable encoder into a parameter-efficient one (no-op for ``none``).

    ``width`` is LoRA's rank or AdaptFormer's bottleneck; None applies LIFT's rule to ``num_classes``
    and the encoder's number of residual blocks.
    """
    if method is PeftMethod.NONE:
        return
    layers = len(residual_blocks(encoder))
    resolved = lift_width(num_classes, layers) if width is None else width
    _log.info(
        "PEFT %s, width %d (%s)",
        method.value,
        resolved,
        "given" if width is not None else f"LIFT's rule: {num_classes} classes, {layers} blocks",
    )
    if method is PeftMethod.ADAPTFORMER:
        add_adaptformer(encoder, resolved)
    else:
        add_lora(encoder, resolved, _LORA_PLACEMENTS[method])


# ----------------------------------------------------------------------------------- LoRA folding

_PARAMETRISED = re.compile(r"(?P<owner>.+)\.parametrizations\.(?P<name>[^.]+)\.(?P<part>.+)")
_LORA_FACTOR = re.compile(r"0\.(?:(?P<slice>[qkv])\.)?lora_(?P<factor>[ab])")


def fold_lora(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with each LoRA update added to the weight it adapts and the LoRA factors removed.

    The authors fold LoRA members this way before merging (``merge_lora_weights_with_sd``), so soups
    average the effective weights W + (A B)^T / r rather than A and B separately. The folded keys are
    those of the encoder without PEFT (``...attn.in_proj_weight``); each folded weight is computed with
    the same arithmetic as the LoRA model's forward pass, so it equals the weight that model used.
    Tensors that are not LoRA-parametrised pass through unchanged, in their order.
    """
    folded: dict[str, torch.Tensor] = {}
    factors: dict[str, dict[str | None, dict[str, torch.Tensor]]] = defaultdict(lambda: defaultdict(dict))
    for key, tensor in state.items():
        match = _PARAMETRISED.fullmatch(key)
        if match is None:
            folded[key] = tensor
            continue
        target = f"{match['owner']}.{match['name']}"
        if match["part"] == "original":
            folded[target] = tensor
            continue
        factor = _LORA_FACTOR.fullmatch(match["part"])
        if factor is None:
            raise ValueError(f"{key}: a parametrised tensor that is not a LoRA factor; cannot fold it")
        factors[target][factor["slice"]][factor["factor"]] = tensor
    for target, updates in factors.items():
        weight = folded.get(target)
        if weight is None:
            raise ValueError(f"{target}: LoRA factors without the weight they adapt (its 'original')")
        if _WHOLE in updates and len(updates) > 1:
            raise ValueError(f"{target}: LoRA factors for the whole weight and for its slices at once")
        deltas = {part: _checked_delta(target, part, pair, weight.shape) for part, pair in updates.items()}
        folded[target] = adapted_weight(weight, deltas)
    return folded


def _checked_delta(
    target: str, part: str | None, pair: Mapping[str, torch.Tensor], weight_shape: torch.Size
) -> torch.Tensor:
    where = f"{target} ({'whole weight' if part is _WHOLE else part + ' slice'})"
    missing = sorted({"a", "b"} - pair.keys())
    if missing:
        raise ValueError(f"{where}: LoRA update without lora_{missing[0]}")
    a, b = pair["a"], pair["b"]
    rows, cols = weight_shape
    expected = (cols, rows if part is _WHOLE else rows // len(_FUSED_SLICES))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or (a.shape[0], b.shape[1]) != expected:
        raise ValueError(
            f"{where}: LoRA factors of shapes {tuple(a.shape)} and {tuple(b.shape)} do not fit a weight "
            f"of shape {tuple(weight_shape)}"
        )
    return low_rank_delta(a, b)


def is_lora_state(names: Iterable[str]) -> bool:
    """Whether a state dict with these keys holds parametrised (LoRA) weights, which `fold_lora` folds."""
    return any(_PARAMETRISED.fullmatch(name) for name in names)


def fold_inputs(names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """For each tensor of the folded state, the tensors of the unfolded one it is computed from.

    A weight LoRA adapts comes from its ``original`` and its LoRA factors (``fold_lora`` of those gives
    it), any other tensor from itself; so a merge can fold one weight at a time.
    """
    inputs: dict[str, list[str]] = defaultdict(list)
    for name in names:
        match = _PARAMETRISED.fullmatch(name)
        inputs[name if match is None else f"{match['owner']}.{match['name']}"].append(name)
    return {target: tuple(sources) for target, sources in inputs.items()}


def unfold_lora(folded: Mapping[str, torch.Tensor], template: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A folded state in the layout of a LoRA model (``template``: its state dict).

    Each folded weight becomes its parametrisation's ``original`` and every LoRA factor is zero, so the
    model's adapted weight W + (A B)^T / r is the folded weight, value for value (a -0.0 reads as +0.0).
    This is how a soup of folded LoRA members is evaluated and retrained in the run's LoRA classifier.
    """
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for key, like in template.items():
        match = _PARAMETRISED.fullmatch(key)
        if match is not None and match["part"] != "original":
            state[key] = torch.zeros_like(like)
            continue
        source = key if match is None else f"{match['owner']}.{match['name']}"
        if source not in folded:
            raise ValueError(f"the folded state has no {source!r}, which the LoRA model needs (as {key})")
        state[key] = folded[source]
        used.add(source)
    extra = sorted(set(folded) - used)
    if extra:
        raise ValueError(f"the folded state has tensors the LoRA model does not: {', '.join(extra[:5])}")
    return state
