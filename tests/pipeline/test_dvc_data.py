"""The dataset is a dependency: the real `dvc` on an image-folder dataset reruns the pipeline from `prepare`
when images are added, removed or modified, and nothing when they are unchanged (or only touched).

The tests share one repository and run in file order; each leaves the images as the first `dvc repro` saw
them, but the last, which reruns the pipeline on changed images.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import init_repo, shrunk_repo_params
from dataset_formats import write_image, write_image_tree
from dvc_repo import DvcRepo

pytestmark = pytest.mark.slow

MEMBERS = ["f1-r0", "f2-r0"]
MEMBER_STAGES = [f"train-member@{m}" for m in MEMBERS]
STAGES_READING_DATA = ["prepare", "theta0", *MEMBER_STAGES, "merge", "retrain-head", "evaluate"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, random_mini_clip: Path) -> DvcRepo:
    """The tiny pipeline on write_image_tree's images (3 classes of 4, 2, 1 training images), N = 1, M = 1."""
    images = tmp_path_factory.mktemp("images")
    write_image_tree(images)
    params = shrunk_repo_params(random_mini_clip)
    params["data"]["dataset"] = {"name": "image-folder", "params": {"root": str(images)}}
    params["plan"]["sampler"]["params"].update(rounds=1, replicas=1)
    params["members"] = MEMBERS
    params["tracking"]["enabled"] = False
    return init_repo(tmp_path_factory.mktemp("repo"), params)


def images_root(repo: DvcRepo) -> Path:
    return Path(repo.params()["data"]["dataset"]["params"]["root"])


def stages_to_rerun(repo: DvcRepo) -> list[str]:
    """After the data check alone (`dvc repro data`), the stages `dvc status` says a `dvc repro` would run."""
    assert repo.repro("repro", "data") == ["data"]
    return sorted(stage for stage in json.loads(repo.dvc("status", "--json").stdout) if stage != "data")


def test_first_repro_fingerprints_the_images(repo: DvcRepo) -> None:
    assert sorted(repo.repro("repro")) == sorted(["data", *STAGES_READING_DATA])
    fingerprint = json.loads((repo.root / "outputs" / "data" / "fingerprint.json").read_text())
    assert fingerprint["files"] == 7 + 3 + 3 and fingerprint["dataset"]["name"] == "image-folder"


def test_unchanged_or_touched_images_rerun_nothing(repo: DvcRepo) -> None:
    assert json.loads(repo.dvc("status", "--json").stdout) == {"data": ["always changed"]}
    assert repo.repro("repro") == ["data"]
    for image in (images_root(repo) / "train" / "cat").iterdir():
        os.utime(image)  # new mtimes, same bytes: read again, same fingerprint
    assert repo.repro("repro") == ["data"]


def test_added_images_rerun_from_prepare(repo: DvcRepo) -> None:
    added = [images_root(repo) / "train" / "dog" / f"new-{i}.png" for i in range(3)]
    for image in added:
        write_image(image, 1)
    assert stages_to_rerun(repo) == sorted(STAGES_READING_DATA)
    for image in added:
        image.unlink()
    assert stages_to_rerun(repo) == []


def test_removed_test_images_rerun_from_prepare(repo: DvcRepo, tmp_path: Path) -> None:
    fox = images_root(repo) / "test" / "fox"
    shutil.move(fox, tmp_path / "fox")
    fox.mkdir()
    assert stages_to_rerun(repo) == sorted(STAGES_READING_DATA)
    fox.rmdir()
    shutil.move(tmp_path / "fox", fox)
    assert stages_to_rerun(repo) == []


def test_a_modified_image_reruns_from_prepare(repo: DvcRepo) -> None:
    image = images_root(repo) / "val" / "cat" / "0.png"
    original = image.read_bytes()
    write_image(image, 2)  # cat's validation image now in fox's colour
    assert stages_to_rerun(repo) == sorted(STAGES_READING_DATA)
    image.write_bytes(original)
    assert stages_to_rerun(repo) == []


def test_repro_on_changed_images_reruns_every_stage_that_reads_them(repo: DvcRepo) -> None:
    write_image(images_root(repo) / "train" / "fox" / "new.png", 2)
    assert sorted(repo.repro("repro")) == sorted(["data", *STAGES_READING_DATA])
    counts = json.loads((repo.root / "outputs" / "data" / "counts.json").read_text())
    assert counts == [4, 2, 2]
    assert repo.repro("repro") == ["data"]
