"""Values exactly as written, training that diverges stops, presets that say what they lost, data checked up front.

Issue 20's cases 4 (non-finite training), 5 (values the user did not write), 6 (a preset that loses
without a word) and 7 (bad images found late): each gives the right result or a clear error naming
the culprit, a non-zero exit, and nothing written.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from dataset_formats import CLASS_NAMES, TRAIN_COUNTS, ImageTree, write_image
from safetensors.torch import save_file
from tiny_config import tiny_params, write_params
from tiny_run import snapshot, tree_changes
from torch import nn
from typer.testing import CliRunner

from ltsoups.checkpoint import CheckpointWriter, save_checkpoint
from ltsoups.cli.app import app
from ltsoups.config import ConfigError, load_config, validate_layers
from ltsoups.data.dataset import FileImages, UnreadableImageError
from ltsoups.data.file_splits import DatasetFormatError, SplitFiles
from ltsoups.data.folder import load_split_folders, split_folder_counts
from ltsoups.data.listfile import read_list_file
from ltsoups.io.safetensors import CheckpointError
from ltsoups.merging import MergeInputs
from ltsoups.runtime import Runtime, RuntimeSettings
from ltsoups.settings import LoopSettings
from ltsoups.training.errors import TrainingDiverged
from ltsoups.training.loop import train

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _files(folder: Path) -> dict[str, str]:
    return {path: kind for path, kind in snapshot(folder).items() if kind != "dir"}


def invoke(folder: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[int, str]:
    """``ltsoups ARGS`` in ``folder``: its exit code and its output on one line; fails if it wrote a file."""
    monkeypatch.chdir(folder)
    before = _files(folder)
    result = runner.invoke(app, list(args), env={"COLUMNS": "400"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if result.exit_code != 0:
        assert tree_changes(before, _files(folder)) == []
    return result.exit_code, " ".join(result.output.split())


@pytest.fixture
def tiny_folder(tmp_path: Path, random_mini_clip: Path) -> Path:
    write_params(tmp_path, tiny_params(random_mini_clip))
    return tmp_path


# ---------------------------------------------------------------------------- case 4: infinities refused


@pytest.mark.parametrize(
    ("location", "written", "shown"),
    [
        ("train.optim.lr", ".inf", "inf"),
        ("train.optim.weight_decay", ".inf", "inf"),
        ("head.scale", ".inf", "inf"),
        ("retrain_head.optim.lr", "-.inf", "-inf"),
        ("data.dataset.params.rho", ".inf", "inf"),  # a plugin's Params
        ("train.loss.params.tau", ".nan", "nan"),
        ("evaluation.crop.fraction", ".nan", "nan"),
    ],
)
def test_infinite_and_nan_values_are_refused_naming_the_field(
    tiny_folder: Path, monkeypatch: pytest.MonkeyPatch, location: str, written: str, shown: str
) -> None:
    code, message = invoke(tiny_folder, monkeypatch, "validate", "--set", f"{location}={written}")
    assert code == 2, message
    assert f"{location}: {shown} is not allowed" in message
    assert "finite number" in message


# ---------------------------------------------------------------------------- case 5: no coercion


@pytest.mark.parametrize(
    ("override", "location", "expected"),
    [
        ("plan.sampler.params.rounds=true", "plan.sampler.params.rounds: True", "valid integer"),
        ("plan.sampler.params.rounds=yes", "plan.sampler.params.rounds: True", "valid integer"),
        ("train.optim.lr=on", "train.optim.lr: True", "valid number"),
        ("train.optim.batch_size='128'", "train.optim.batch_size: '128'", "valid integer"),
        ("head.scale='30'", "head.scale: '30'", "valid number"),
        ("plan.sampler.params.replicas=2.0", "plan.sampler.params.replicas: 2.0", "valid integer"),
        ("tracking.enabled=1", "tracking.enabled: 1", "valid boolean"),
        ("train.augment.crop_scale=[0.5, true]", "train.augment.crop_scale.1: True", "valid number"),
    ],
)
def test_booleans_and_strings_are_not_numbers(
    tiny_folder: Path, monkeypatch: pytest.MonkeyPatch, override: str, location: str, expected: str
) -> None:
    code, message = invoke(tiny_folder, monkeypatch, "validate", "--set", override)
    assert code == 2, message
    assert f"{location} is not allowed" in message and expected in message


def test_a_boolean_for_a_number_in_the_params_file_says_how_yaml_read_it(
    tmp_path: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = write_params(tmp_path, tiny_params(random_mini_clip)).read_text()
    (tmp_path / "params.yaml").write_text(text.replace("rounds: 2", "rounds: yes"))
    code, message = invoke(tmp_path, monkeypatch, "prepare")
    assert code == 2, message
    assert "plan.sampler.params.rounds: True is not allowed: Input should be a valid integer" in message
    assert "YAML reads yes/no, on/off and true/false as booleans" in message


def test_exponents_without_a_dot_are_numbers() -> None:
    """PyYAML (YAML 1.1) reads 3e-4 as a string; ltsoups reads it as YAML 1.2 and DVC do."""
    config = load_config(None, ["train.optim.lr=3e-4", "retrain_head.optim.lr=1E-3", "head.scale=2.5e1"])
    assert (config.train.optim.lr, config.retrain_head.optim.lr, config.head.scale) == (3e-4, 1e-3, 25.0)


def test_an_integer_for_a_float_is_kept() -> None:
    assert load_config(None, ["head.scale=30"]).head.scale == 30.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed: 0\nseed: 1\n", "line 2, column 1: key 'seed' is given twice (first at line 1)"),
        (
            "train:\n  optim:\n    lr: 0.1\n    batch_size: 8\n    lr: 0.2\n",
            "line 5, column 5: key 'lr' is given twice (first at line 3)",
        ),
        ("plan: {sampler: {name: progressive, name: full-data}}\n", "key 'name' is given twice (first at line 1)"),
    ],
)
def test_a_key_given_twice_is_refused_with_its_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    (tmp_path / "params.yaml").write_text(text)
    code, message = invoke(tmp_path, monkeypatch, "validate")
    assert code == 2, message
    assert "params.yaml: malformed YAML" in message and expected in message


def test_a_key_given_twice_in_a_set_value_is_refused(tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, message = invoke(tiny_folder, monkeypatch, "validate", "--set", "train.optim={lr: 0.1, lr: 0.2}")
    assert code == 2, message
    assert "the value is malformed YAML" in message and "key 'lr' is given twice" in message


def test_yaml_merge_keys_still_override_what_they_merge(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  optim: &o {lr: 0.1, batch_size: 8}\nretrain_head:\n  optim: {<<: *o, lr: 0.2}\n")
    config = load_config(path)
    assert (config.retrain_head.optim.lr, config.retrain_head.optim.batch_size) == (0.2, 8)


# ---------------------------------------------------------------------------- case 6: presets


def _repo_params(folder: Path) -> Path:
    """The repository root's params.yaml, as a user who cloned it has it."""
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    return folder


def test_a_preset_named_with_set_wins_over_the_params_file_and_says_what_it_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _repo_params(tmp_path)
    code, message = invoke(folder, monkeypatch, "validate", "--set", "preset=cifar100-lt", "--set", "members=null")
    assert code == 0, message
    assert "warning: preset cifar100-lt replaces 8 values of params.yaml: runtime.precision, data.dataset.name, " in (
        message
    )
    assert "plan.sampler.params.rounds, backbone.params.model" in message
    assert "params.yaml still sets train.augment.crop_scale, retrain_head.augment.enabled" in message
    config = load_config(folder / "params.yaml", ["preset=cifar100-lt"])
    assert config.data.dataset.name == "cifar100-lt" and config.plan.sampler.params.rounds == 5
    assert config.backbone.params.model == "ViT-B-16" and config.merge.merger.params.lam == 0.7
    assert config.runtime.precision.value == "bf16"
    assert config.train.augment.crop_scale == (0.5, 1.0)  # params.yaml's own, which the preset does not set


def test_values_written_over_a_preset_are_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "params.yaml").write_text("preset: cifar100-lt\nplan: {sampler: {params: {rounds: 3}}}\n")
    code, message = invoke(tmp_path, monkeypatch, "validate", "--set", "train.optim.lr=1.0e-4")
    assert code == 0, message
    assert (
        "warning: preset cifar100-lt: 2 of its values are replaced by yours: plan.sampler.params.rounds "
        "(params.yaml), train.optim.lr (--set train.optim.lr=1.0e-4)"
    ) in message


def test_a_preset_alone_warns_of_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "params.yaml").write_text("preset: cifar100-lt\n")
    code, message = invoke(tmp_path, monkeypatch, "validate")
    assert code == 0, message
    assert "warning: preset" not in message


def test_the_readmes_lift_command_runs_the_preset_from_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ltsoups run --method lift-adaptformer --set preset=cifar100-lt`: CIFAR-100-LT under LIFT's recipe.

    From a copy of the repository root (no CIFAR files there), it fails reading CIFAR, not the embedded task.
    """
    assert "`ltsoups run --method lift-adaptformer --set preset=cifar100-lt`" in (ROOT / "README.md").read_text()
    folder = _repo_params(tmp_path)
    overrides = ["preset=cifar100-lt", "tracking.enabled=false"]
    code, message = invoke(
        folder, monkeypatch, "run", "--method", "lift-adaptformer", *(f"--set={o}" for o in overrides)
    )
    assert code == 1, message
    assert "warning: preset cifar100-lt replaces" in message
    assert "data/cifar-100-python" in message and "not found" in message

    from ltsoups.compare.methods import trained_method
    from ltsoups.config import override_layer, user_layers

    layers, _ = user_layers(folder / "params.yaml")
    layers += [*trained_method("lift-adaptformer").layers, *(override_layer(o) for o in overrides)]
    config = validate_layers(layers, "README")
    assert config.data.dataset.name == "cifar100-lt" and config.backbone.params.model == "ViT-B-16"
    assert config.train.optim.name.value == "sgd" and config.plan.sampler.name == "full-data"  # the method's


# ---------------------------------------------------------------------------- case 4: divergence


class _Saturating(nn.Module):
    """Logits tanh(w * x): the loss stays finite however large w grows, so only the weights show divergence."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.w * x)


class _Points(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)).abs() + 0.1

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        return self.x[key[0]], key[0] % 3


def test_weights_that_become_infinite_stop_the_training_naming_step_and_settings() -> None:
    settings = LoopSettings.model_validate(
        {"optim": {"lr": 1e30, "weight_decay": 1e10, "batch_size": 4}, "schedule": {"epochs": 1, "min_steps": 3}}
    )
    with pytest.raises(TrainingDiverged) as raised:
        train(
            _Saturating(),
            _Points(),
            np.arange(8) % 3,
            nn.functional.cross_entropy,
            settings,
            Runtime.of(RuntimeSettings(device="cpu")),
            seed=0,
            label="member f1-r0",
            step_size={"train.optim.lr": 1e30, "head.scale": 30.0},
        )
    message = str(raised.value)
    assert message.startswith("member f1-r0: weight 'w' holds NaN or infinite values at step 3 of 3")
    assert "train.optim.lr = 1e+30, head.scale = 30: lower them" in message


def test_an_optimizer_step_past_floats_range_stops_the_training_naming_it() -> None:
    """AdamW's step lr / (1 - beta1) is 1e39 for lr 1e38: torch refuses it (a RuntimeError traceback before)."""
    settings = LoopSettings.model_validate(
        {"optim": {"lr": 1e38, "batch_size": 4}, "schedule": {"epochs": 1, "min_steps": 3, "warmup_min_steps": 0}}
    )
    runtime = Runtime.of(RuntimeSettings(device="cpu"))
    with pytest.raises(TrainingDiverged, match=r"^retrain-head: the optimizer step overflowed \(.*\) at step 1 of 3"):
        train(
            _Saturating(),
            _Points(),
            np.arange(8) % 3,
            nn.functional.cross_entropy,
            settings,
            runtime,
            0,
            "retrain-head",
        )


@pytest.mark.slow
def test_a_member_whose_loss_diverges_names_member_step_and_settings(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, message = invoke(run_copy, monkeypatch, "train-member", "f1-r0", "--set", "train.optim.lr=1e30")
    assert code == 1, message
    assert "member f1-r0: loss is nan at step 2 of 3" in message
    assert "train.optim.lr = 1e+30, head.scale = 30: lower them" in message


def test_no_checkpoint_with_a_nan_is_written(tmp_path: Path) -> None:
    path = tmp_path / "member.safetensors"
    with pytest.raises(CheckpointError, match=r"member.safetensors: tensor 'w' holds NaN or infinite values"):
        save_checkpoint(path, {"v": torch.ones(2), "w": torch.tensor([1.0, float("nan")])}, kind="member")
    assert list(tmp_path.iterdir()) == []


def test_merge_refuses_a_member_with_an_infinity_naming_its_file(tmp_path: Path) -> None:
    """A member written before this check existed (or by another tool): the merge names it and writes nothing."""
    theta0 = save_checkpoint(tmp_path / "theta0.safetensors", {"w": torch.zeros(4)}, kind="theta0").path
    good = save_checkpoint(tmp_path / "good.safetensors", {"w": torch.ones(4)}, kind="member").path
    bad = tmp_path / "bad.safetensors"
    save_file({"w": torch.tensor([1.0, float("inf"), 0.0, 1.0])}, str(bad))
    out = tmp_path / "soup.safetensors"
    refused = r"bad.safetensors: tensor 'w' holds NaN or infinite values; it cannot be merged"
    with (
        pytest.raises(CheckpointError, match=refused),
        MergeInputs.open([theta0, good, bad]) as inputs,
        CheckpointWriter(out, inputs.layout, "soup") as writer,
    ):
        inputs.weighted_sums([[(good, 0.5), (bad, 0.5)]], [writer])
    assert not out.exists()


@pytest.mark.parametrize(
    ("weights", "where"),
    [
        ([("good", 1.0), ("bad", 0.0)], "at weight 0"),
        ([("good", 1.0)], "in the longer running soup only"),
    ],
)
def test_merge_refuses_a_non_finite_slice_wherever_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: list[tuple[str, float]], where: str
) -> None:
    """Sums are checked, not each input: a NaN past the first slice, read at weight 0 or by one of several
    sums, still names its file and tensor, and nothing is written."""
    from ltsoups import merging

    monkeypatch.setattr(merging, "CHUNK_ELEMENTS", 2)
    paths = {name: tmp_path / f"{name}.safetensors" for name in ("good", "bad")}
    save_checkpoint(paths["good"], {"w": torch.ones(4)}, kind="member")
    save_file({"w": torch.tensor([1.0, 1.0, 1.0, float("nan")])}, str(paths["bad"]))
    sums = [[(paths[name], weight) for name, weight in weights], [(paths["good"], 0.5), (paths["bad"], 0.5)]]
    outs = [tmp_path / f"soup{index}.safetensors" for index in range(len(sums))]
    refused = r"bad.safetensors: tensor 'w' holds NaN or infinite values; it cannot be merged"
    with (
        pytest.raises(CheckpointError, match=refused),
        MergeInputs.open(list(paths.values())) as inputs,
        CheckpointWriter(outs[0], inputs.layout, "soup") as first,
        CheckpointWriter(outs[1], inputs.layout, "soup") as second,
    ):
        inputs.weighted_sums(sums, [first, second])
    assert not any(out.exists() for out in outs), where


def test_merge_refuses_weights_whose_sum_overflows(tmp_path: Path) -> None:
    big = save_checkpoint(tmp_path / "big.safetensors", {"w": torch.full((2,), 3e38)}, kind="member").path
    out = tmp_path / "soup.safetensors"
    with (
        pytest.raises(CheckpointError, match=r"tensor 'w': a weighted sum of finite inputs overflowed"),
        MergeInputs.open([big]) as inputs,
        CheckpointWriter(out, inputs.layout, "soup") as writer,
    ):
        inputs.weighted_sums([[(big, 1e300)]], [writer])
    assert not out.exists()


# ---------------------------------------------------------------------------- case 7: data


def _truncated_png(path: Path) -> None:
    """A 64x64 PNG cut after 60% of its bytes: the header reads, the pixels do not (a download cut short)."""
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])


def test_macos_and_hidden_files_are_not_data(image_tree: ImageTree) -> None:
    train = image_tree.root / "train"
    (train / "__MACOSX" / "cat").mkdir(parents=True)
    write_image(train / "__MACOSX" / "cat" / "._0.png", 0)
    write_image(train / "cat" / "._0.png", 0)
    write_image(train / "cat" / ".hidden.png", 0)
    (train / ".Trash").mkdir()
    write_image(train / ".Trash" / "0.png", 0)
    (train / "dog" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    folders = SplitFiles(train, image_tree.root / "val", image_tree.root / "test")
    splits = load_split_folders("folders", folders)
    assert splits.train.class_names == CLASS_NAMES
    assert list(splits.train.class_counts()) == list(TRAIN_COUNTS) == list(split_folder_counts(folders))


@pytest.mark.parametrize("line", ["__MACOSX/train/cat/0.png 0", "train/cat/._0.png 0"])
def test_a_list_naming_macos_metadata_is_refused_at_its_line(tmp_path: Path, line: str) -> None:
    listing = tmp_path / "train.txt"
    listing.write_text(f"train/cat/0.png 0\n{line}\n")
    with pytest.raises(DatasetFormatError, match=r"train.txt:2: .* is macOS metadata .* not an image; remove the line"):
        read_list_file(listing, tmp_path, "train list")


def test_an_image_that_breaks_while_training_names_its_path(image_tree: ImageTree) -> None:
    path = image_tree.root / "train" / "cat" / "0.png"
    _truncated_png(path)
    with pytest.raises(UnreadableImageError, match=f"cannot read image {path}: OSError: image file is truncated"):
        FileImages((path,)).image(0)


def _folder_dataset(folder: Path, random_mini_clip: Path) -> ImageTree:
    from dataset_formats import write_image_tree

    tree = write_image_tree(folder / "images")
    params: dict[str, Any] = tiny_params(random_mini_clip)
    params["data"] = {"dataset": {"name": "image-folder", "params": {"root": "images"}}}
    write_params(folder, params)
    return tree


@pytest.mark.parametrize("command", [("validate", "--check-data"), ("prepare",)])
def test_every_unreadable_image_is_named_before_any_training(
    tmp_path: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    _folder_dataset(tmp_path, random_mini_clip)
    _truncated_png(tmp_path / "images" / "train" / "cat" / "2.png")  # stopped the first member, naming no file
    (tmp_path / "images" / "test" / "fox" / "0.png").write_bytes(b"not a png at all")  # stopped only `evaluate`
    code, message = invoke(tmp_path, monkeypatch, *command)
    assert code == 1, message
    assert "2 of 13 image files cannot be read; fix or remove them" in message
    assert "train: cannot read image images/train/cat/2.png: OSError: image file is truncated" in message
    assert "test: cannot read image images/test/fox/0.png: UnidentifiedImageError" in message


def test_validate_check_data_reads_every_image_once(
    tmp_path: Path, random_mini_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder_dataset(tmp_path, random_mini_clip)
    code, message = invoke(tmp_path, monkeypatch, "validate", "--check-data")
    assert code == 0, message
    assert "13 image files decoded, none unreadable" in message


def test_validate_check_data_on_images_held_in_memory(tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, message = invoke(tiny_folder, monkeypatch, "validate", "--check-data")
    assert code == 0, message
    assert "0 image files decoded, none unreadable (its images are held in memory: nothing to read)" in message


def test_config_error_type_is_the_projects() -> None:
    with pytest.raises(ConfigError):
        load_config(None, ["plan.sampler.params.rounds=yes"])
