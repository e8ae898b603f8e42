"""LIFT's PEFT baselines on a real (tiny, random) open_clip ViT: placement, init, width rule, LoRA folding."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ltsoups.peft import PeftMethod, lift_width
from ltsoups.peft.adapters import fold_lora, residual_blocks
from ltsoups.plugins.backbones import OpenClipBackbone, OpenClipParams

NUM_CLASSES = 6
WIDTH = 96  # ltsoups-mini's vision width (tests/tiny_config.py); 3 residual blocks
ADAPTED = [PeftMethod.LORA, PeftMethod.LORA_MLP, PeftMethod.LORA_ALL, PeftMethod.ADAPTFORMER]


def encoder(
    checkpoint: Path, peft: PeftMethod = PeftMethod.NONE, rank: int | None = None, classes: int = NUM_CLASSES
) -> nn.Module:
    params = OpenClipParams(pretrained=str(checkpoint), peft=peft, peft_rank=rank)
    return OpenClipBackbone(params).load(num_classes=classes).image_encoder


def images() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def randomise(module: nn.Module, names: tuple[str, ...], seed: int = 1) -> None:
    """Give the zero-initialised adapter tensors random values, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith(names):
                parameter.copy_(torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("method", ADAPTED)
def test_adapters_start_as_the_identity_bit_for_bit_and_alone_are_trainable(
    random_mini_clip: Path, method: PeftMethod
) -> None:
    full = encoder(random_mini_clip).eval()
    adapted = encoder(random_mini_clip, method, rank=4).eval()
    with torch.no_grad():
        assert torch.equal(adapted(images()), full(images()))
    trainable = [name for name, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all(("lora_" in name) or (".adaptformer." in name) for name in trainable)
    assert sum(p.numel() for p in adapted.parameters() if p.requires_grad) < 0.2 * sum(
        p.numel() for p in full.parameters()
    )


@pytest.mark.parametrize("method", ADAPTED)
def test_adapter_initialisation_is_seeded(random_mini_clip: Path, method: PeftMethod) -> None:
    first = encoder(random_mini_clip, method, rank=4).state_dict()
    torch.randn(100)  # the global RNG plays no part
    second = encoder(random_mini_clip, method, rank=4).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_lora_is_lifts_query_and_value_update_with_its_init(random_mini_clip: Path) -> None:
    pretrained = encoder(random_mini_clip).state_dict()
    adapted = encoder(random_mini_clip, PeftMethod.LORA, rank=2)
    for index, block in enumerate(residual_blocks(adapted)):
        update = block.attn.parametrizations.in_proj_weight[0]
        assert set(update.keys()) == {"q", "v"}
        for lora in update.values():
            # (in, r) Kaiming-uniform with a = sqrt(5): torch takes fan_in = r, so the bound is 1/sqrt(r).
            assert lora.lora_a.shape == (WIDTH, 2) and lora.lora_b.shape == (2, WIDTH)
            assert 0.5 / math.sqrt(2) < lora.lora_a.abs().max() <= 1 / math.sqrt(2)
            assert torch.equal(lora.lora_b, torch.zeros(2, WIDTH))
        w = pretrained[f"transformer.resblocks.{index}.attn.in_proj_weight"]
        assert torch.equal(block.attn.in_proj_weight, w)
    randomise(adapted, ("lora_b",))
    block = residual_blocks(adapted)[0]
    q, v = block.attn.parametrizations.in_proj_weight[0]["q"], block.attn.parametrizations.in_proj_weight[0]["v"]
    w = pretrained["transformer.resblocks.0.attn.in_proj_weight"]
    x = torch.randn(5, WIDTH, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        qkv = x @ block.attn.in_proj_weight.t()
        # LIFT: q = x W_q^T + (x A_q B_q) / r, v likewise, k = x W_k^T.
        torch.testing.assert_close(qkv[:, :WIDTH], x @ w[:WIDTH].t() + x @ q.lora_a @ q.lora_b / 2)
        assert torch.equal(qkv[:, WIDTH : 2 * WIDTH], x @ w[WIDTH : 2 * WIDTH].t())
        torch.testing.assert_close(qkv[:, 2 * WIDTH :], x @ w[2 * WIDTH :].t() + x @ v.lora_a @ v.lora_b / 2)


@pytest.mark.parametrize(
    ("method", "adapted_matrices"),
    [
        (PeftMethod.LORA, {"q", "v"}),
        (PeftMethod.LORA_MLP, {"q", "v", "mlp.c_fc.weight", "mlp.c_proj.weight"}),
        (PeftMethod.LORA_ALL, {"q", "k", "v", "attn.out_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"}),
    ],
)
def test_training_lora_changes_exactly_the_matrices_it_adapts(
    random_mini_clip: Path, method: PeftMethod, adapted_matrices: set[str]
) -> None:
    pretrained = encoder(random_mini_clip).state_dict()
    adapted = encoder(random_mini_clip, method, rank=2)
    optimizer = torch.optim.SGD([p for p in adapted.parameters() if p.requires_grad], lr=1.0)
    adapted(images()).square().sum().backward()
    optimizer.step()
    effective = fold_lora(adapted.state_dict())
    assert effective.keys() == pretrained.keys()
    changed = []
    for name, before in pretrained.items():
        matrix = name.split(".", 3)[-1] if name.startswith("transformer.resblocks.") else name
        if matrix == "attn.in_proj_weight":  # its q, k and v row blocks count apart
            pieces = zip("qkv", before.chunk(3), effective[name].chunk(3), strict=True)
        else:
            pieces = [(matrix, before, effective[name])]
        changed += [piece for piece, old, new in pieces if not torch.equal(old, new)]
    assert set(changed) == adapted_matrices
    assert len(changed) == 3 * len(adapted_matrices)  # in each of the 3 blocks


def test_adaptformer_reads_the_residual_before_ln_2(random_mini_clip: Path) -> None:
    full, adapted = encoder(random_mini_clip), encoder(random_mini_clip, PeftMethod.ADAPTFORMER, rank=4)
    before_ln_2: list[torch.Tensor] = []
    for block in residual_blocks(full):
        block.ln_2.register_forward_pre_hook(lambda _, args: before_ln_2.append(args[0]))
    seen: list[torch.Tensor] = []
    outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for block in residual_blocks(adapted):
        block.mlp.adaptformer.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
        block.register_forward_hook(lambda _, args, out: outputs.append((args[0], out)))
    with torch.no_grad():
        full(images())
        adapted(images())
    assert len(seen) == len(before_ln_2) == 3
    assert all(torch.equal(a, b) for a, b in zip(seen, before_ln_2, strict=True))

    randomise(adapted, ("up.weight", "up.bias", "ln.weight", "ln.bias", "scale"))
    seen.clear()
    outputs.clear()
    with torch.no_grad():
        adapted(images())
        block = residual_blocks(adapted)[1]
        branch = block.mlp  # ln_2 and the MLP moved in beside the adapter; the block's ln_2 is the identity
        assert isinstance(block.ln_2, nn.Identity)
        residual, adapter = seen[1], branch.adaptformer
        by_hand = adapter.up(torch.relu(adapter.down(adapter.ln(residual)))) * adapter.scale
        expected = residual + branch.mlp(branch.ln_2(residual)) + by_hand
        torch.testing.assert_close(outputs[1][1], expected, rtol=0, atol=1e-5)


def test_adaptformer_init_is_lifts(random_mini_clip: Path) -> None:
    adapted = encoder(random_mini_clip, PeftMethod.ADAPTFORMER, rank=4)
    for block in residual_blocks(adapted):
        adapter = block.mlp.adaptformer
        assert adapter.ln is not block.mlp.ln_2 and torch.equal(adapter.ln.weight, torch.ones(WIDTH))
        assert adapter.scale.requires_grad and torch.equal(adapter.scale.detach(), torch.ones(1))
        assert torch.equal(adapter.up.weight, torch.zeros(WIDTH, 4)) and not adapter.up.bias.any()
        assert not adapter.down.bias.any()
        # Kaiming-normal with a = sqrt(5), fan_in = 96: std = sqrt(2 / 6) / sqrt(96) = 0.0589.
        assert adapter.down.weight.std().item() == pytest.approx(math.sqrt(1 / 3) / math.sqrt(WIDTH), rel=0.1)


@pytest.mark.parametrize(("classes", "layers", "width"), [(100, 12, 4), (1000, 12, 32), (365, 12, 8), (8142, 12, 256)])
def test_lifts_width_rule(classes: int, layers: int, width: int) -> None:
    assert lift_width(classes, layers) == width


def test_the_backbone_applies_the_width_rule_when_no_rank_is_given(random_mini_clip: Path) -> None:
    # 100 classes over 3 blocks: 2^int(log2(100 / 6)) = 16; 6 classes: 2^max(0, int(log2(1))) = 1.
    lora = residual_blocks(encoder(random_mini_clip, PeftMethod.LORA, classes=100))[0]
    assert lora.attn.parametrizations.in_proj_weight[0]["q"].lora_a.shape == (WIDTH, 16)
    adaptformer = residual_blocks(encoder(random_mini_clip, PeftMethod.ADAPTFORMER, classes=6))[0]
    assert adaptformer.mlp.adaptformer.down.out_features == 1


def test_a_rank_without_peft_is_refused() -> None:
    with pytest.raises(ValidationError, match="peft_rank 8 has no effect with peft: none"):
        OpenClipParams(peft_rank=8)


# --------------------------------------------------------------------------------------- folding


def test_fold_adds_each_update_to_its_weight_by_hand() -> None:
    prefix = "encoder.attn.parametrizations.in_proj_weight"
    w = torch.arange(12.0).reshape(6, 2)  # fused (q; k; v) rows of a width-2 attention
    mlp = torch.ones(3, 2)
    state = {
        "encoder.head": torch.tensor([7.0]),
        f"{prefix}.original": w,
        f"{prefix}.0.q.lora_a": torch.tensor([[1.0], [2.0]]),  # (in, r = 1)
        f"{prefix}.0.q.lora_b": torch.tensor([[3.0, 4.0]]),  # (r, out)
        f"{prefix}.0.v.lora_a": torch.tensor([[1.0], [0.0]]),
        f"{prefix}.0.v.lora_b": torch.tensor([[0.0, 2.0]]),
        "mlp.parametrizations.weight.original": mlp,
        "mlp.parametrizations.weight.0.lora_a": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),  # (in 2, r = 2)
        "mlp.parametrizations.weight.0.lora_b": torch.tensor([[2.0, 4.0, 6.0], [0.0, 0.0, 2.0]]),  # (r, out 3)
    }
    folded = fold_lora(state)
    assert list(folded) == ["encoder.head", "encoder.attn.in_proj_weight", "mlp.weight"]
    # q: (A B)^T / 1 = [[1*3, 2*3], [1*4, 2*4]]; v: [[1*0, 0*0], [1*2, 0*2]]; k untouched.
    expected_w = w + torch.tensor([[3.0, 6.0], [4.0, 8.0], [0, 0], [0, 0], [0.0, 0.0], [2.0, 0.0]])
    assert torch.equal(folded["encoder.attn.in_proj_weight"], expected_w)
    # whole weight, r = 2: (A B)^T / 2 = [[2, 0], [4, 0], [6, 2]] / 2
    assert torch.equal(folded["mlp.weight"], mlp + torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 1.0]]))
    assert torch.equal(folded["encoder.head"], state["encoder.head"])


@pytest.mark.parametrize("method", [PeftMethod.LORA, PeftMethod.LORA_MLP, PeftMethod.LORA_ALL])
def test_a_folded_lora_encoder_is_the_plain_encoder_computing_the_same(
    random_mini_clip: Path, method: PeftMethod
) -> None:
    adapted = encoder(random_mini_clip, method, rank=2).eval()
    randomise(adapted, ("lora_b",))
    plain = encoder(random_mini_clip).eval()
    plain.load_state_dict(fold_lora(adapted.state_dict()), strict=True)
    with torch.no_grad():
        assert torch.equal(plain(images()), adapted(images()))


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"w.parametrizations.weight.0.lora_a": torch.ones(2, 1)}, "without the weight they adapt"),
        (
            {
                "w.parametrizations.weight.original": torch.ones(3, 2),
                "w.parametrizations.weight.0.lora_a": torch.ones(2, 1),
            },
            "without lora_b",
        ),
        (
            {
                "w.parametrizations.weight.original": torch.ones(3, 2),
                "w.parametrizations.weight.0.lora_a": torch.ones(2, 1),
                "w.parametrizations.weight.0.lora_b": torch.ones(1, 2),
            },
            r"shapes \(2, 1\) and \(1, 2\) do not fit a weight of shape \(3, 2\)",
        ),
        ({"w.parametrizations.weight.original0": torch.ones(3, 2)}, "not a LoRA factor"),
    ],
)
def test_fold_refuses_what_it_cannot_fold(state: dict[str, torch.Tensor], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fold_lora(state)
