"""Generated images kept on disk between stage processes: each DVC stage would otherwise draw the world again.

An entry is a checkpoint (safetensors ``pixels`` and a JSON sidecar) named by the hash of the images'
recipe, whose sidecar holds that recipe: it is read only after the checks every checkpoint gets (its
sha256, its header) and a comparison of the recipe; one that fails them is drawn again and replaced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ltsoups.checkpoint import open_checkpoint, save_checkpoint
from ltsoups.data.dataset import DatasetSplits, GeneratedImages, LabelledImages
from ltsoups.io.safetensors import CheckpointError
from ltsoups.provenance import hash_json

KIND = "generated-images"
log = logging.getLogger("ltsoups.stages")


@dataclass(frozen=True)
class ImageStore:
    """A folder of generated images, one entry per recipe. Images it generated are written by ``keep``, which
    the stage calls once it has succeeded: a stage that fails writes nothing."""

    folder: Path
    _pending: dict[Path, tuple[np.ndarray, str, dict[str, object]]] = field(default_factory=dict, compare=False)

    def serving(self, splits: DatasetSplits) -> DatasetSplits:
        """``splits`` with every split of generated images read through this store (the others as they are)."""
        return replace(
            splits, train=self._split(splits.train), val=self._split(splits.val), test=self._split(splits.test)
        )

    def _split(self, split: LabelledImages) -> LabelledImages:
        if not isinstance(split.source, GeneratedImages):
            return split
        return replace(split, source=StoredImages(split.source, self))

    def entry(self, recipe_sha256: str) -> Path:
        return self.folder / f"{recipe_sha256}.safetensors"

    def pixels(self, images: GeneratedImages) -> np.ndarray:
        """The images of ``images``: read from their entry when it holds them, else generated and stored."""
        recipe = images.recipe()
        key = hash_json(recipe)
        path = self.entry(key)
        if path.is_file():
            try:
                return self._read(path, key, recipe, len(images))
            except CheckpointError as err:
                log.warning("generating the images again: %s", err)
        pixels = images.generate()
        self._pending[path] = (pixels, key, recipe)
        return pixels

    def keep(self) -> None:
        """Write the images generated since the last call, for the next stage process."""
        for path, (pixels, key, recipe) in self._pending.items():
            try:
                save_checkpoint(path, {"pixels": torch.from_numpy(pixels)}, kind=KIND, fingerprint=key, config=recipe)
            except OSError as err:  # the images were at hand: a store that cannot keep them costs the next process
                log.warning("cannot keep the generated images in %s: %s", path, err)
        self._pending.clear()

    @staticmethod
    def _read(path: Path, key: str, recipe: dict[str, object], count: int) -> np.ndarray:
        checkpoint = open_checkpoint(path, expect_kind=KIND)
        if checkpoint.sidecar.fingerprint != key or checkpoint.sidecar.config != recipe:
            raise CheckpointError(f"{path}: its sidecar records other images than the recipe it is named after")
        tensors = checkpoint.load()
        pixels = tensors.get("pixels")
        if set(tensors) != {"pixels"} or pixels is None or pixels.dtype != torch.uint8 or pixels.dim() != 4:
            raise CheckpointError(f"{path}: expected one uint8 tensor 'pixels' of shape (N, H, W, 3)")
        if pixels.shape[0] != count or pixels.shape[-1] != 3:
            raise CheckpointError(f"{path}: holds {tuple(pixels.shape)} images, expected ({count}, H, W, 3)")
        return pixels.numpy()


@dataclass(frozen=True, eq=False)
class StoredImages:
    """Generated images read through a store on first access: a split a stage never reads costs nothing."""

    generated: GeneratedImages
    store: ImageStore

    def __len__(self) -> int:
        return len(self.generated)

    @cached_property
    def pixels(self) -> np.ndarray:
        return self.store.pixels(self.generated)

    def image(self, index: int) -> Image.Image:
        return Image.fromarray(self.pixels[index])
