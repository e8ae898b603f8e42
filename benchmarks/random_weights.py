"""Random open_clip weights written as safetensors, for the GPU benchmarks (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path


def write_random_weights(folder: Path, model: str, seed: int = 0) -> Path:
    """open_clip ``model`` with the initial weights drawn from ``seed``, saved in ``folder``; the file's path."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    weights = folder / f"{model.lower()}-random-seed{seed}.safetensors"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = open_clip.create_model(model, pretrained=None)
    save_file({name: tensor.contiguous() for name, tensor in network.state_dict().items()}, str(weights))
    return weights
