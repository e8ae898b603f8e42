"""Built-in datasets: the embedded task, CIFAR-100-LT and the two-axis benchmark, TinyImageNet-LT, files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
from PIL import Image
from pydantic import Field, model_validator

from ltsoups.contracts import Dataset, PluginParams
from ltsoups.data import tiny_imagenet
from ltsoups.data.cifar import (
    HEAD_FLOOR,
    IMAGES_PER_CLASS,
    CifarSource,
    CifarSplitRule,
    TwoAxisRealised,
    ValidationSource,
    cifar100_files,
    cifar100_lt_counts,
    cifar100_two_axis_counts,
    load_cifar100_lt,
    realised_two_axis,
)
from ltsoups.data.csv_table import CsvColumns, csv_counts, csv_files_read, load_csv_tables
from ltsoups.data.dataset import DatasetSplits, LabelledImages
from ltsoups.data.file_splits import ClassNamesFormat, SplitFiles
from ltsoups.data.folder import (
    folder_list_counts,
    folder_list_files,
    load_folder_lists,
    load_split_folders,
    split_folder_counts,
    split_folder_files,
)
from ltsoups.data.listfile import list_file_counts, list_files_read, load_list_files
from ltsoups.data.profiles import DecayCurve, exponential_counts, two_axis_counts
from ltsoups.provenance import source_sha256

if TYPE_CHECKING:
    from ltsoups.embedded.task import RenderedImages

# ------------------------------------------------------------------------------------------ embedded


class EmbeddedParams(PluginParams):
    seed: int = Field(
        0, ge=0, description="the world seed: draws the images and which classes are large; the class set is fixed"
    )
    num_classes: int = Field(40, ge=2, description="number of classes; labels run from the largest to the smallest")
    n_max: int = Field(200, ge=1, description="training images of the largest class")
    rho: float = Field(40.0, ge=1, description="imbalance ratio: largest / smallest class count")
    val_per_class: int = Field(20, ge=1, description="validation images per class (balanced)")
    test_per_class: int = Field(
        128, ge=1, description="test images per class (balanced); 128 keeps the balanced accuracy's SE <= 0.7 points"
    )
    eta: float | None = Field(
        None,
        ge=0.01,
        le=99,
        description="unset: the exponential profile n_max..n_max/rho; set: the two-axis profile of the paper's "
        "Figure 2, H = round(K * eta / (1 + eta)) head classes n_max..101 then the others 100..n_max/rho (the "
        "authors' curve, as cifar100-two-axis); `ltsoups compare --grid` varies it",
    )

    @model_validator(mode="after")
    def _profile_exists(self) -> EmbeddedParams:
        embedded_counts(self)
        return self


def embedded_counts(params: EmbeddedParams) -> np.ndarray:
    """Training images per label, largest first: the exponential profile, or the two-axis one when eta is set."""
    if params.eta is None:
        return exponential_counts(params.num_classes, params.n_max, params.rho)
    tail_min = params.n_max / params.rho
    if params.n_max <= HEAD_FLOOR or tail_min >= HEAD_FLOOR:
        raise ValueError(
            f"the two-axis profile puts head classes above {HEAD_FLOOR - 1} images and tail classes at or below, "
            f"so it needs n_max > {HEAD_FLOOR} and n_max / rho < {HEAD_FLOOR}; got {params.n_max} and {tail_min:g}"
        )
    counts = two_axis_counts(params.num_classes, params.eta, (params.n_max, HEAD_FLOOR), (HEAD_FLOOR - 1, tail_min))
    if counts.min() < 1:
        raise ValueError(f"n_max {params.n_max} with rho {params.rho} leaves the last classes without images")
    return counts


class EmbeddedDataset(Dataset):
    """The task ltsoups generates itself: no download, the default of every run."""

    Params = EmbeddedParams
    description = "generated long-tailed task of (colour, pattern, shape) classes; no download"
    params: EmbeddedParams

    def class_counts(self) -> np.ndarray:
        # The same profile build_embedded_task is given, by label, without rendering any image.
        return embedded_counts(self.params)

    def load(self) -> DatasetSplits:
        from ltsoups.embedded.task import build_embedded_task

        p = self.params
        splits = build_embedded_task(
            seed=p.seed,
            num_classes=p.num_classes,
            n_max=p.n_max,
            rho=p.rho,
            val_per_class=p.val_per_class,
            test_per_class=p.test_per_class,
            counts=None if p.eta is None else self.class_counts(),
        )
        return replace(splits, train=_generated(splits.train), val=_generated(splits.val), test=_generated(splits.test))


def _generated(split: LabelledImages) -> LabelledImages:
    rendered = cast("RenderedImages", split.source)  # build_embedded_task draws every split
    return replace(split, source=EmbeddedImages(rendered))


@dataclass(frozen=True, eq=False)
class EmbeddedImages:
    """One split's images of the embedded task, with what draws them: a stage process may keep them for the next
    (``GeneratedImages``)."""

    rendered: RenderedImages

    def __len__(self) -> int:
        return len(self.rendered)

    def image(self, index: int) -> Image.Image:
        return self.rendered.image(index)

    def recipe(self) -> dict[str, Any]:
        rows = np.ascontiguousarray(self.rendered.triples, dtype=np.int64)
        return {
            "images": "embedded task",
            "seed": self.rendered.seed,
            "rows": len(rows),
            "rows_sha256": hashlib.sha256(rows.tobytes()).hexdigest(),
            "code_sha256": _embedded_code_sha256(),
            "numpy": np.__version__,  # the world draws its images from numpy's random streams
        }

    def generate(self) -> np.ndarray:
        return self.rendered.pixels


@cache
def _embedded_code_sha256() -> str:
    """The code that draws the embedded task's images: the world's and the task's."""
    import ltsoups.embedded.task
    import ltsoups.world

    return source_sha256(Path(ltsoups.world.__file__).parent, Path(ltsoups.embedded.task.__file__))


# ------------------------------------------------------------------------------------------- CIFAR


class CifarParams(PluginParams):
    root: Path = Field(Path("data"), description="folder holding cifar-100-python/ (torchvision's layout)")
    download: bool = Field(False, description="download CIFAR-100 into root if missing (needs internet)")
    verify_checksums: bool = Field(
        True,
        description="check the files' md5 sums as torchvision does; off, torchvision unpickles whatever files "
        "are there (CIFAR's python format is a pickle), so turn it off only for a copy you made yourself",
    )
    seed: int = Field(0, ge=0, description="seeds the shuffle choosing which images each class keeps (0: the paper's)")
    n_max: int = Field(IMAGES_PER_CLASS, ge=2, le=IMAGES_PER_CLASS, description="training images of the largest class")
    validation: ValidationSource = Field(
        ValidationSource.TEST,
        description="test: val = the first val_per_class test images of each class, test = the rest (the published "
        "protocol); train: val from training images the long tail leaves out, test = the whole test set",
    )
    val_per_class: int = Field(10, ge=1, le=99, description="validation images per class")

    @model_validator(mode="after")
    def _room_for_validation(self) -> CifarParams:
        if self.validation is ValidationSource.TRAIN and self.n_max + self.val_per_class > IMAGES_PER_CLASS:
            raise ValueError(
                f"validation from train takes val_per_class images of every class out of its {IMAGES_PER_CLASS}: "
                f"n_max + val_per_class must be <= {IMAGES_PER_CLASS}, got {self.n_max} + {self.val_per_class}"
            )
        return self


class _CifarDataset(Dataset):
    """Shared loading of the CIFAR-100 long-tailed datasets; subclasses give the profile."""

    params: CifarParams
    split_name: ClassVar[str] = "cifar100"

    def load(self) -> DatasetSplits:
        rule = CifarSplitRule(self.class_counts(), self.params.seed, self.params.validation, self.params.val_per_class)
        return load_cifar100_lt(self.split_name, self._source(), rule)

    def files(self) -> tuple[Path, ...]:
        return cifar100_files(self._source())

    def _source(self) -> CifarSource:
        return CifarSource(self.params.root, self.params.download, self.params.verify_checksums)


class Cifar100LTParams(CifarParams):
    rho: float = Field(100.0, ge=1, description="imbalance ratio: n_i = int(n_max * (1/rho)^(i/99))")

    @model_validator(mode="after")
    def _every_class_keeps_images(self) -> Cifar100LTParams:
        if cifar100_lt_counts(self.rho, self.n_max).min() < 1:
            raise ValueError(f"n_max {self.n_max} with rho {self.rho} leaves the last classes without images")
        return self


class Cifar100LT(_CifarDataset):
    """CIFAR-100-LT: the exponential profile; rho 100 keeps 500..5 images per class (10,847 in all)."""

    Params = Cifar100LTParams
    description = "CIFAR-100-LT (exponential profile, rho configurable) via torchvision"
    params: Cifar100LTParams
    split_name: ClassVar[str] = "cifar100-lt"

    def class_counts(self) -> np.ndarray:
        return cifar100_lt_counts(self.params.rho, self.params.n_max)


class Cifar100TwoAxisParams(CifarParams):
    eta: float = Field(
        1.0,
        ge=0.01,
        le=99,
        description="head-to-tail ratio H/T; H = round(100 * eta / (1 + eta)) (the authors' settings: head "
        "percentages 95..5, i.e. eta 19 down to 5/95)",
    )
    rho: float = Field(100.0, ge=5, description="imbalance ratio: tail classes fall from 100 towards n_max / rho")
    curve: DecayCurve = Field(
        DecayCurve.EXP_INTERPOLATE,
        description="exp-interpolate: the authors' curve, int(end + (start - end) * e^(-5 s)) within each group "
        "(head 500 -> 103, tail 100 -> 5); geometric: round(start * (end / start)^s), head 500 -> 101 (ours)",
    )

    @model_validator(mode="after")
    def _profile_exists(self) -> Cifar100TwoAxisParams:
        cifar100_two_axis_counts(self.eta, self.rho, self.n_max, self.curve)
        return self


class Cifar100TwoAxis(_CifarDataset):
    """The (rho, eta) benchmark on CIFAR-100: H head classes fall from n_max, T tail classes from 100 to n_max/rho."""

    Params = Cifar100TwoAxisParams
    description = "CIFAR-100 two-axis benchmark: eta = H/T head-to-tail ratio at fixed rho (the authors' curve)"
    params: Cifar100TwoAxisParams
    split_name: ClassVar[str] = "cifar100-two-axis"

    def class_counts(self) -> np.ndarray:
        return cifar100_two_axis_counts(self.params.eta, self.params.rho, self.params.n_max, self.params.curve)

    def realised(self) -> TwoAxisRealised:
        """The H, T and eta the profile gives (H is rounded to whole classes)."""
        return realised_two_axis(self.class_counts(), self.params.eta)

    def load(self) -> DatasetSplits:
        splits = super().load()
        return DatasetSplits(f"{self.split_name} ({self.realised()})", splits.train, splits.val, splits.test)


# ------------------------------------------------------------------------------------ TinyImageNet


class TinyImageNetLTParams(PluginParams):
    root: Path = Field(
        Path("data"),
        description="folder holding tiny-imagenet-200/ in its standard layout (wnids.txt, words.txt, "
        "train/<wnid>/images/, val/images/ with val/val_annotations.txt)",
    )
    rho: float = Field(100.0, ge=1, description="imbalance ratio: n_i = int(n_max * (1/rho)^(i/(K-1))); 100: 500..5")
    n_max: int = Field(
        tiny_imagenet.IMAGES_PER_CLASS,
        ge=2,
        le=tiny_imagenet.IMAGES_PER_CLASS,
        description="training images of the largest class",
    )
    seed: int = Field(0, ge=0, description="seeds the shuffle choosing which images each class keeps (0: the authors')")
    val_per_class: int = Field(
        20,
        ge=1,
        lt=tiny_imagenet.VAL_IMAGES_PER_CLASS,
        description="val = the first val_per_class of each class's 50 val images (sorted by file name), test = "
        "the others (the standard test/ folder has no labels); the authors' split is 20 / 30",
    )
    class_names: Path | None = Field(
        None,
        description="file of '<wnid> <name>' lines naming the classes (e.g. ImageNet-LT's classnames.txt, which "
        "the authors use); default: the first name words.txt gives each wnid",
    )

    @model_validator(mode="after")
    def _every_class_keeps_images(self) -> TinyImageNetLTParams:
        if int(self.n_max * (1.0 / self.rho)) < 1:
            raise ValueError(f"n_max {self.n_max} with rho {self.rho} leaves the last classes without images")
        return self


class TinyImageNetLT(Dataset):
    """TinyImageNet-LT (the paper's ablation data): 200 classes, 500..5 training images at rho 100."""

    Params = TinyImageNetLTParams
    description = "TinyImageNet-LT from the standard tiny-imagenet-200/ layout (exponential profile, rho 100)"
    params: TinyImageNetLTParams

    def class_counts(self) -> np.ndarray:
        return tiny_imagenet.tiny_imagenet_lt_counts(self.params.root, self.params.rho, self.params.n_max)

    def load(self) -> DatasetSplits:
        p = self.params
        rule = tiny_imagenet.TinyImageNetSplitRule(self.class_counts(), p.seed, p.val_per_class)
        return tiny_imagenet.load_tiny_imagenet_lt("tiny-imagenet-lt", p.root, rule, p.class_names)

    def files(self) -> tuple[Path, ...]:
        return tiny_imagenet.tiny_imagenet_files(self.params.root, self.params.class_names)


# ---------------------------------------------------------------------------------------- file-based


class SplitPaths(PluginParams):
    """One file (or folder) per split."""

    train: Path = Field(description="the training split's file")
    val: Path = Field(description="the validation split's file (may equal test, as iNaturalist 2018 does)")
    test: Path = Field(description="the test split's file")

    def files(self, base: Path = Path()) -> SplitFiles:
        return SplitFiles(base / self.train, base / self.val, base / self.test)


class ClassNameFields(PluginParams):
    class_names: Path | None = Field(
        None, description="class-name file in label order; default: classes named class_0, class_1, ..."
    )
    class_names_format: ClassNamesFormat = Field(
        ClassNamesFormat.NAME,
        description="name: one per line; id-name: '<id> <name>' per line (ImageNet-LT, Places-LT); "
        "json-name: a JSON list of objects with a 'name' (iNaturalist 2018 categories.json)",
    )


class ListFileParams(ClassNameFields):
    root: Path = Field(description="image root: the list files' paths are relative to it")
    lists: SplitPaths = Field(description="list files with lines 'relative/path/to/image.jpg label'")


class ListFileDataset(Dataset):
    """ImageNet-LT, Places-LT, iNaturalist 2018 and any dataset in their list-file format."""

    Params = ListFileParams
    description = "list files ('relative/path label' per line) under an image root"
    params: ListFileParams

    def class_counts(self) -> np.ndarray:
        return list_file_counts(self.params.lists.train, self.params.class_names, self.params.class_names_format)

    def load(self) -> DatasetSplits:
        p = self.params
        return load_list_files("list-file", p.root, p.lists.files(), p.class_names, p.class_names_format)

    def files(self) -> tuple[Path, ...]:
        return list_files_read(self.params.root, self.params.lists.files(), self.params.class_names)


class ImageFolderParams(PluginParams):
    root: Path = Field(description="folder of split folders, or (with lists) of class folders")
    folders: SplitPaths = Field(
        SplitPaths(train=Path("train"), val=Path("val"), test=Path("test")),
        description="split folders under root, each holding one sub-folder per class (ignored with lists)",
    )
    lists: SplitPaths | None = Field(
        None, description="list files of image paths relative to root, each inside its class folder"
    )


class ImageFolderDataset(Dataset):
    """One sub-folder per class (class names = sorted folder names), split by folders or by list files."""

    Params = ImageFolderParams
    description = "image folders, one sub-folder per class; split folders or list files"
    params: ImageFolderParams

    def class_counts(self) -> np.ndarray:
        if self.params.lists is not None:
            return folder_list_counts(self.params.root, self.params.lists.train)
        return split_folder_counts(self.params.folders.files(self.params.root))

    def load(self) -> DatasetSplits:
        if self.params.lists is not None:
            return load_folder_lists("image-folder", self.params.root, self.params.lists.files())
        return load_split_folders("image-folder", self.params.folders.files(self.params.root))

    def files(self) -> tuple[Path, ...]:
        if self.params.lists is not None:
            return folder_list_files(self.params.root, self.params.lists.files())
        return split_folder_files(self.params.folders.files(self.params.root))


class CsvParams(ClassNameFields):
    root: Path = Field(description="image root: the path column is relative to it")
    tables: SplitPaths = Field(description="one CSV file per split")
    path_column: str = Field("path", min_length=1, description="column holding the image path")
    label_column: str = Field("label", min_length=1, description="column holding the integer label")
    class_columns: tuple[str, ...] = Field(
        (),
        description="one 0/1 column per class instead of label_column (NIH-CXR-LT); the class names are "
        "these column names",
    )

    @model_validator(mode="after")
    def _one_naming(self) -> CsvParams:
        if self.class_columns and self.class_names is not None:
            raise ValueError("class_columns already name the classes; drop class_names")
        return self

    def columns(self) -> CsvColumns:
        return CsvColumns(self.path_column, self.label_column, self.class_columns)


class CsvDataset(Dataset):
    """NIH-CXR-LT style tables: an image-path column and an integer label (or one 0/1 column per class)."""

    Params = CsvParams
    description = "CSV tables per split: image path and label columns"
    params: CsvParams

    def class_counts(self) -> np.ndarray:
        p = self.params
        return csv_counts(p.tables.train, p.columns(), p.class_names, p.class_names_format)

    def load(self) -> DatasetSplits:
        p = self.params
        return load_csv_tables("csv", p.root, p.tables.files(), p.columns(), p.class_names, p.class_names_format)

    def files(self) -> tuple[Path, ...]:
        p = self.params
        return csv_files_read(p.root, p.tables.files(), p.columns(), p.class_names)
