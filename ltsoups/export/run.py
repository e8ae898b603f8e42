"""Export a saved classifier and prove it: the files are read back by the target library before they are kept."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ltsoups.contracts import Backbone
from ltsoups.export.choices import ExportFormat
from ltsoups.export.formats import Exporter, ExportError
from ltsoups.export.onnx_format import OnnxExporter
from ltsoups.export.open_clip_format import OpenClipExporter
from ltsoups.export.timm_format import TimmExporter
from ltsoups.inference.classifier import LoadedClassifier
from ltsoups.registry import PluginKind, PluginRegistry, installed_registry

EXPORTERS: dict[ExportFormat, type[Exporter]] = {
    exporter.format: exporter for exporter in (OpenClipExporter, TimmExporter, OnnxExporter)
}
TOLERANCE = 1e-4


@dataclass(frozen=True)
class ExportReport:
    """A verified export: where its files are, how closely they reproduce ltsoups' logits, how to use them."""

    format: ExportFormat
    files: tuple[Path, ...]
    images: int
    max_abs_diff: float
    usage: str


def exporter_for(
    loaded: LoadedClassifier, export_format: ExportFormat, registry: PluginRegistry | None = None
) -> Exporter:
    """The exporter of ``export_format`` for this classifier, or an error saying which formats its backbone allows."""
    registry = registry or installed_registry()
    spec = loaded.spec.backbone
    backbone: Backbone = registry.create(PluginKind.BACKBONE, spec.name, spec.params)
    exporter = EXPORTERS[export_format]
    if not _takes(exporter, backbone):
        allowed = [f.value for f, e in EXPORTERS.items() if _takes(e, backbone)]
        raise ExportError(
            f"format {export_format.value!r} cannot export a {spec.name!r} backbone; "
            f"for this model choose one of: {', '.join(allowed)}"
        )
    return exporter(loaded, backbone)


def _takes(exporter: type[Exporter], backbone: Backbone) -> bool:
    return exporter.backbone_kind is None or isinstance(backbone, exporter.backbone_kind)


def export_classifier(
    loaded: LoadedClassifier,
    export_format: ExportFormat,
    folder: Path,
    images: torch.Tensor,
    registry: PluginRegistry | None = None,
) -> ExportReport:
    """Write ``loaded`` to ``folder`` in ``export_format``, once its files reproduce ltsoups' logits on ``images``.

    ``images`` are preprocessed (N, C, H, W) inputs (validation images). The files are written beside
    ``folder`` first and moved in, each in one rename, only when the target library, reading them back,
    gives logits within ``TOLERANCE`` of ltsoups' own and the same top class on every image; otherwise
    nothing is kept and the error names the difference.
    """
    exporter = exporter_for(loaded, export_format, registry)
    images = images.float().contiguous()
    with torch.no_grad():
        expected = loaded.model(images)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{folder.name}.", dir=folder.parent) as staging:
        written = exporter.write(Path(staging))
        try:
            actual = exporter.logits(Path(staging), images)
        except (RuntimeError, ValueError, OSError) as err:
            raise ExportError(f"the {export_format.value} export does not load back: {err}") from err
        _check(export_format, expected, actual)
        folder.mkdir(parents=True, exist_ok=True)
        files = tuple(folder / path.name for path in written)
        for path, target in zip(written, files, strict=True):
            os.replace(path, target)
    return ExportReport(
        export_format, files, len(images), float((actual - expected).abs().max()), exporter.usage(folder)
    )


def _check(export_format: ExportFormat, expected: torch.Tensor, actual: torch.Tensor) -> None:
    if actual.shape != expected.shape:
        raise ExportError(
            f"the {export_format.value} export gives logits of shape {tuple(actual.shape)}, "
            f"ltsoups {tuple(expected.shape)}"
        )
    diff = float((actual - expected).abs().max())
    flipped = int((actual.argmax(dim=1) != expected.argmax(dim=1)).sum())
    if diff > TOLERANCE or flipped:
        raise ExportError(
            f"the {export_format.value} export does not reproduce ltsoups' logits: max abs difference {diff:.3g} "
            f"(allowed {TOLERANCE:g}), top class different on {flipped} of {len(expected)} images; nothing written"
        )
