"""The image files a prediction reads: files, folders (recursively) and list files, in a stable order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"})


def image_paths(inputs: Sequence[Path]) -> list[Path]:
    """Every image ``inputs`` name, in their order: an image file; a folder's image files (recursive, sorted);
    or a list file (any other file), one image path a line, relative to the list file's folder.

    A missing input, or a path a list file names that does not exist, is an error naming it; an empty
    result too. Whether an image decodes is checked when it is read.
    """
    found: list[Path] = []
    for given in inputs:
        if given.is_dir():
            found += sorted(p for p in given.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif given.suffix.lower() in IMAGE_SUFFIXES:
            if not given.exists():
                raise FileNotFoundError(f"{given}: no such image")
            found.append(given)
        elif given.is_file():
            found += _listed(given)
        else:
            raise FileNotFoundError(f"{given}: no such image, folder or list file")
    if not found:
        raise ValueError(
            f"no image files in {', '.join(map(str, inputs))} (suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return found


def _listed(list_file: Path) -> list[Path]:
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{list_file}: neither an image (by its suffix) nor a text list of image paths") from err
    paths = [list_file.parent / line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{list_file} names {len(missing)} missing file(s), e.g. {missing[0]}")
    return paths
