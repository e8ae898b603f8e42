"""Generated images kept between stage processes: read back as drawn, checked like every input on the way."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_config import TINY_DATA, tiny_params, validate_config

from ltsoups.checkpoint import save_checkpoint, sidecar_path
from ltsoups.cli.common import stage_context
from ltsoups.config import LtSoupsConfig
from ltsoups.data.dataset import ArrayImages, DatasetSplits, GeneratedImages, LabelledImages
from ltsoups.provenance import hash_json
from ltsoups.stages.context import RunContext
from ltsoups.stages.image_store import KIND, ImageStore
from ltsoups.workspace import Workspace

SPLITS = ("train", "val", "test")


@pytest.fixture
def config(random_mini_clip: Path) -> LtSoupsConfig:
    return validate_config(tiny_params(random_mini_clip))


def pixels_of(context: RunContext) -> dict[str, np.ndarray]:
    """Every split's pixels, as a stage reads them through its store."""
    return {name: getattr(context.splits, name).source.pixels for name in SPLITS}


def drawn(config: LtSoupsConfig) -> dict[str, np.ndarray]:
    """Every split's pixels drawn now, as a context without a store draws them."""
    return {name: getattr(RunContext(config).splits, name).source.generate() for name in SPLITS}


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def test_a_stage_keeps_the_images_it_draws_and_the_next_reads_them_back(config: LtSoupsConfig, tmp_path: Path) -> None:
    reference = drawn(config)
    store = ImageStore(tmp_path)
    first = RunContext(config, images=store)
    assert {name: pixels.tobytes() for name, pixels in pixels_of(first).items()} == {
        name: pixels.tobytes() for name, pixels in reference.items()
    }
    assert entries(tmp_path) == []  # kept only once the stage has succeeded
    store.keep()
    assert len(entries(tmp_path)) == 3
    written = {path: path.stat().st_mtime_ns for path in entries(tmp_path)}

    again = pixels_of(RunContext(config, images=ImageStore(tmp_path)))
    for name in SPLITS:
        np.testing.assert_array_equal(again[name], reference[name])
    assert {path: path.stat().st_mtime_ns for path in entries(tmp_path)} == written  # read, not drawn again


def test_the_store_serves_the_entry_named_after_the_recipe(config: LtSoupsConfig, tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    val = RunContext(config).splits.val.source
    assert isinstance(val, GeneratedImages)
    recipe = val.recipe()
    kept = np.full((len(val), 32, 32, 3), 7, dtype=np.uint8)
    save_checkpoint(
        store.entry(hash_json(recipe)),
        {"pixels": torch.from_numpy(kept)},
        kind=KIND,
        fingerprint=hash_json(recipe),
        config=recipe,
    )
    np.testing.assert_array_equal(RunContext(config, images=store).splits.val.source.pixels, kept)


def test_a_damaged_entry_is_drawn_again_and_replaced(
    config: LtSoupsConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ImageStore(tmp_path)
    first = pixels_of(RunContext(config, images=store))
    store.keep()
    for path in entries(tmp_path):
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="ltsoups.stages"):
        replacing = ImageStore(tmp_path)
        again = pixels_of(RunContext(config, images=replacing))
        replacing.keep()
    assert caplog.text.count("generating the images again") == 3
    for name in SPLITS:
        np.testing.assert_array_equal(again[name], first[name])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ltsoups.stages"):
        pixels_of(RunContext(config, images=ImageStore(tmp_path)))
    assert "generating the images again" not in caplog.text  # the entries were replaced by good ones


def test_an_entry_recording_another_recipe_is_not_served(
    config: LtSoupsConfig, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ImageStore(tmp_path)
    test = RunContext(config).splits.test.source
    assert isinstance(test, GeneratedImages)
    other = {**test.recipe(), "seed": test.recipe()["seed"] + 1}
    save_checkpoint(
        store.entry(hash_json(test.recipe())),
        {"pixels": torch.zeros((len(test), 32, 32, 3), dtype=torch.uint8)},
        kind=KIND,
        fingerprint=hash_json(other),
        config=other,
    )
    with caplog.at_level(logging.WARNING, logger="ltsoups.stages"):
        served = RunContext(config, images=store).splits.test.source.pixels
    assert "other images than the recipe" in caplog.text
    np.testing.assert_array_equal(served, test.generate())


def test_recipes_follow_the_world_seed_and_the_split(random_mini_clip: Path) -> None:
    def recipes(seed: int) -> list[str]:
        data = {"dataset": {"name": "embedded", "params": {**TINY_DATA, "seed": seed}}}
        splits = RunContext(validate_config(tiny_params(random_mini_clip, data=data))).splits
        return [hash_json(getattr(splits, name).source.recipe()) for name in SPLITS]

    assert recipes(0) == recipes(0)
    assert len({*recipes(0), *recipes(1)}) == 6


def test_a_stage_keeps_only_the_splits_it_read(config: LtSoupsConfig, tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "outputs")
    with stage_context(config, workspace) as context:
        assert len(context.splits.train.class_names) == TINY_DATA["num_classes"]
        context.splits.val.source.image(0)
        assert not workspace.generated_images.exists()
    (entry,) = entries(workspace.generated_images)  # only the split it read
    assert sidecar_path(entry).is_file()


def test_a_stage_that_fails_keeps_nothing(config: LtSoupsConfig, tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "outputs")
    with pytest.raises(RuntimeError, match="the stage failed"), stage_context(config, workspace) as context:
        context.splits.val.source.image(0)
        raise RuntimeError("the stage failed")
    assert not workspace.generated_images.exists()


def test_images_read_from_files_or_memory_are_served_as_they_are(tmp_path: Path) -> None:
    names = ("a", "b")
    split = LabelledImages(ArrayImages(np.zeros((2, 4, 4, 3), dtype=np.uint8)), np.array([0, 1]), names)
    splits = DatasetSplits("arrays", split, split, split)
    served = ImageStore(tmp_path).serving(splits)
    assert served.train.source is split.source and served.test.source is split.source
