"""The cosine head: its logits by hand, and the per-class factor LWS adds only where it trained one."""

from __future__ import annotations

import pytest
import torch

from ltsoups.model import CosineHead

FEATURES = torch.tensor([[3.0, 4.0], [0.0, -2.0]])
VECTORS = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])


def test_logits_are_the_scaled_cosine_and_lws_multiplies_each_class_by_its_factor() -> None:
    head = CosineHead(VECTORS, scale=10.0)
    # cos: (3, 4)/5 against e1, e2, -e1 -> 0.6, 0.8, -0.6; (0, -1) -> 0, -1, 0
    cosines = torch.tensor([[0.6, 0.8, -0.6], [0.0, -1.0, 0.0]])
    torch.testing.assert_close(head(FEATURES), 10.0 * cosines)
    head.learn_class_scale()
    assert head.class_scale is not None
    torch.testing.assert_close(head(FEATURES), 10.0 * cosines)  # f starts at 1
    with torch.no_grad():
        head.class_scale.copy_(torch.tensor([2.0, 0.5, -1.0]))
    expected = torch.tensor([[2.0 * 10 * 0.6, 0.5 * 10 * 0.8, -1.0 * 10 * -0.6], [0.0, 0.5 * 10 * -1.0, 0.0]])
    torch.testing.assert_close(head(FEATURES), expected)


def test_only_the_factor_trains_and_it_is_in_the_state_only_then() -> None:
    head = CosineHead(VECTORS, scale=10.0)
    assert list(head.state_dict()) == ["weight"] and [name for name, _ in head.named_parameters()] == ["weight"]
    head.learn_class_scale()
    assert list(head.state_dict()) == ["weight", "class_scale"]
    assert [name for name, p in head.named_parameters() if p.requires_grad] == ["class_scale"]
    torch.nn.functional.cross_entropy(head(FEATURES), torch.tensor([0, 2])).backward()
    assert head.weight.grad is None and head.class_scale is not None and head.class_scale.grad is not None


def test_loading_a_state_adds_or_drops_the_factor_as_the_state_holds_it() -> None:
    trained = CosineHead(VECTORS, scale=10.0)
    trained.learn_class_scale()
    with torch.no_grad():
        trained.class_scale.copy_(torch.tensor([2.0, 0.5, 3.0]))  # type: ignore[union-attr]
    head = CosineHead(torch.zeros_like(VECTORS), scale=10.0)
    head.load_state_dict(trained.state_dict(), strict=True)
    torch.testing.assert_close(head(FEATURES), trained(FEATURES))
    head.load_state_dict({"weight": VECTORS}, strict=True)
    assert head.class_scale is None and list(head.state_dict()) == ["weight"]
    torch.testing.assert_close(head(FEATURES), CosineHead(VECTORS, scale=10.0)(FEATURES))
    with pytest.raises(RuntimeError, match="Missing key"):
        head.load_state_dict({"class_scale": torch.ones(3)}, strict=True)  # the vectors are never optional
