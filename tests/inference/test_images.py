"""Which files `ltsoups predict` reads: files, folders (recursively) and list files, missing ones named."""

from __future__ import annotations

from pathlib import Path

import pytest

from ltsoups.inference.images import image_paths


def test_files_folders_and_list_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/2.png", "a/deep/1.JPG", "a/notes.txt", "b.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# the list\nb.png\n\na/2.png\n")
    found = image_paths([tmp_path / "b.png", tmp_path / "a", tmp_path / "list.txt"])
    relative = [p.relative_to(tmp_path).as_posix() for p in found]
    assert relative == ["b.png", "a/2.png", "a/deep/1.JPG", "b.png", "a/2.png"]


def test_missing_inputs_and_listed_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"gone\.png"):
        image_paths([tmp_path / "gone.png"])
    (tmp_path / "list.txt").write_text("absent.png\n")
    with pytest.raises(FileNotFoundError, match=r"absent\.png"):
        image_paths([tmp_path / "list.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        image_paths([tmp_path / "empty"])
