"""`ltsoups export`: a saved classifier for open_clip, timm or ONNX Runtime, verified before it is kept."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ltsoups.cli.common import ParamsOption, SetOption, cli_config, reports_errors, workspace_of
from ltsoups.export.choices import ExportFormat

if TYPE_CHECKING:
    import torch

    from ltsoups.config import LtSoupsConfig
    from ltsoups.inference.classifier import LoadedClassifier

ModelOption = Annotated[
    str | None,
    typer.Option("--model", "-m", help="a checkpoint (.safetensors with its sidecar); default: the run's final model"),
]


@reports_errors
def export(
    export_format: Annotated[ExportFormat, typer.Argument(metavar="FORMAT", help="open-clip, timm or onnx")],
    model: ModelOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="folder for the files; default: WORKDIR/export/FORMAT")
    ] = None,
    check_images: Annotated[
        int, typer.Option("--check-images", min=1, help="validation images the reloaded export is checked on")
    ] = 256,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Export the final model (or any soup or member) and check it: the target library reads the files back and
    must reproduce ltsoups' logits on validation images (max abs difference 1e-4, same top class) before they
    are kept. Prints the Python that classifies an image with them."""
    from ltsoups.cli.render import console
    from ltsoups.export.run import TOLERANCE, export_classifier
    from ltsoups.inference.classifier import load_classifier
    from ltsoups.inference.sources import resolve_model

    config = cli_config(params, set_)
    workspace = workspace_of(config)
    loaded = load_classifier(resolve_model(model, workspace.final, None))
    folder = out or workspace.root / "export" / export_format.value
    report = export_classifier(loaded, export_format, folder, _validation_images(config, loaded, check_images))
    console.print(
        f"verified with {export_format.value}: {report.images} validation images, max abs logit difference "
        f"{report.max_abs_diff:.2g} (allowed {TOLERANCE:g}), the same top class on every one",
        highlight=False,
    )
    for path in report.files:
        console.print(f"wrote {path}", markup=False, highlight=False)
    console.print("\nclassify an image with it:\n", markup=False)
    typer.echo(report.usage)


def _validation_images(config: LtSoupsConfig, loaded: LoadedClassifier, count: int) -> torch.Tensor:
    """Up to ``count`` validation images spread over the split (its classes may come in order), preprocessed."""
    import numpy as np
    import torch

    from ltsoups.registry import installed_registry

    val = installed_registry().instantiate(config.data.dataset).load().val
    if len(val) == 0:
        raise ValueError(f"dataset {config.data.dataset.name!r} has no validation images to check the export on")
    chosen = np.unique(np.linspace(0, len(val) - 1, min(count, len(val))).round().astype(int))
    return torch.stack([loaded.preprocess(val.source.image(int(i))) for i in chosen])
