"""Tiny datasets in the real on-disk formats: CIFAR-100 pickles, Tiny ImageNet, image trees, list files, CSV tables."""

from __future__ import annotations

import csv
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR_TRAIN_PER_CLASS = 102
CIFAR_TEST_PER_CLASS = 12


def write_cifar100(root: Path, train_per_class: int, test_per_class: int) -> None:
    """``root/cifar-100-python/{train,test,meta}`` as torchvision reads them, with fewer images.

    The real files are Python 2 pickles whose keys (b"data", b"fine_labels", ...) torchvision decodes
    as latin1 str; a Python 3 pickle with str keys is what it sees after that decoding. Labels are
    interleaved (not grouped by class) like the real files, and every image encodes its own index in
    its first two red pixels so tests can tell which images were kept.
    """
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = np.tile(np.arange(100), per_class)
        data = np.random.default_rng(len(name)).integers(0, 256, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        data[:, 0] = np.arange(len(labels)) % 256
        data[:, 1] = np.arange(len(labels)) // 256
        entry = {
            "filenames": [f"{name}_{i}.png" for i in range(len(labels))],
            "batch_label": f"{name} batch 1 of 1",
            "fine_labels": labels.tolist(),
            "coarse_labels": (labels // 5).tolist(),
            "data": data,
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    meta = {
        "fine_label_names": [f"fine_{i:02d}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i:02d}" for i in range(20)],
    }
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))


def image_index(image: Image.Image) -> int:
    """The index ``write_cifar100`` wrote into an image."""
    pixels = np.asarray(image)
    return int(pixels[0, 0, 0]) + 256 * int(pixels[0, 1, 0])


def authors_selection(labels: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """Transcription of the authors' gen_imbalanced_data (datasets/cifar100.py, imbalance_image_folder.py)."""
    rng = np.random.default_rng(seed)
    kept = []
    for the_class, the_img_num in zip(np.unique(labels), counts, strict=True):
        idx = np.where(labels == the_class)[0]
        rng.shuffle(idx)
        kept.append(idx[:the_img_num])
    return np.concatenate(kept)


CLASS_NAMES = ("cat", "dog", "fox")
TRAIN_COUNTS = (4, 2, 1)
COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))


@dataclass(frozen=True)
class ImageTree:
    """Images at ``root/<split>/<class>/<i>.png|jpg``, and each split's (relative path, label) list."""

    root: Path
    samples: dict[str, list[tuple[str, int]]]

    def write_lists(self, folder: Path) -> dict[str, Path]:
        """One list file per split, lines 'relative/path label'."""
        return {
            split: _write(folder / f"{split}.txt", [f"{p} {y}" for p, y in rows])
            for split, rows in self.samples.items()
        }

    def write_csv(self, folder: Path, one_hot: bool = False) -> dict[str, Path]:
        """One CSV per split: columns path,label or path plus one 0/1 column per class."""
        tables = {}
        for split, rows in self.samples.items():
            header = ["path", *CLASS_NAMES] if one_hot else ["path", "label"]
            body = [[p, *(int(y == c) for c in range(len(CLASS_NAMES)))] if one_hot else [p, y] for p, y in rows]
            tables[split] = folder / f"{split}.csv"
            with tables[split].open("w", newline="") as handle:
                csv.writer(handle).writerows([header, *body])
        return tables


def write_image(path: Path, label: int) -> None:
    """An 8x8 image in the colour of ``label``; the suffix picks the format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), COLOURS[label]).save(path)


def write_image_tree(root: Path) -> ImageTree:
    """TRAIN_COUNTS training images per class and one val and one test image per class; PNG and JPEG mixed."""
    per_split = {"train": TRAIN_COUNTS, "val": (1, 1, 1), "test": (1, 1, 1)}
    samples: dict[str, list[tuple[str, int]]] = {}
    for split, counts in per_split.items():
        samples[split] = []
        for label, count in enumerate(counts):
            for i in range(count):
                relative = f"{split}/{CLASS_NAMES[label]}/{i}.{'png' if i % 2 == 0 else 'jpg'}"
                write_image(root / relative, label)
                samples[split].append((relative, label))
    return ImageTree(root, samples)


TINY_TRAIN_PER_CLASS = 12
TINY_VAL_PER_CLASS = 5
TINY_WNIDS = ("n09193705", "n01443537", "n02124075")
"""In wnids.txt order, which (as in the real file) is not sorted."""
TINY_WORDS = {"n01443537": "goldfish, Carassius auratus", "n02124075": "Egyptian cat", "n09193705": "alp"}


def write_tiny_imagenet(root: Path, train_per_class: int, val_per_class: int) -> Path:
    """``root/tiny-imagenet-200/`` in the standard layout, with fewer classes and images; returns that folder.

    Real JPEGs (one of them greyscale, as some real ones are), file names numbered past 10 so that
    name order differs from number order, val images interleaving the classes as the real ones do,
    a words.txt naming more ids than the task has, and an unlabelled test folder.
    """
    folder = root / "tiny-imagenet-200"
    _write(folder / "wnids.txt", list(TINY_WNIDS))
    _write(folder / "words.txt", ["n00001740\tentity", *(f"{w}\t{n}" for w, n in sorted(TINY_WORDS.items()))])
    for label, wnid in enumerate(sorted(TINY_WNIDS)):
        _write(folder / "train" / wnid / f"{wnid}_boxes.txt", [f"{wnid}_{i}.JPEG\t0\t0\t7\t7" for i in range(2)])
        for i in range(train_per_class):
            write_jpeg(folder / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", label, grey=(label, i) == (0, 1))
    annotations = []
    for j in range(val_per_class * len(TINY_WNIDS)):
        label = j % len(TINY_WNIDS)
        write_jpeg(folder / "val" / "images" / f"val_{j}.JPEG", label)
        annotations.append(f"val_{j}.JPEG\t{sorted(TINY_WNIDS)[label]}\t0\t0\t7\t7")
    _write(folder / "val" / "val_annotations.txt", annotations)
    write_jpeg(folder / "test" / "images" / "test_0.JPEG", 0)
    return folder


def write_jpeg(path: Path, label: int, grey: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L" if grey else "RGB", (8, 8), 128 if grey else COLOURS[label]).save(path, format="JPEG")


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path
