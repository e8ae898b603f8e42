"""`ltsoups audit-embedded`: zero-shot accuracy per shot group over world seeds, and the test split's noise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ltsoups.cli.common import ParamsOption, SetOption, cli_config, reports_errors

if TYPE_CHECKING:
    from rich.table import Table

    from ltsoups.embedded.audit import TaskAudit

TARGET_STANDARD_ERROR = 0.7
"""Points of balanced accuracy: below the differences between methods that the paper reports."""


@reports_errors
def audit_embedded(
    seeds: Annotated[
        int,
        typer.Option(min=1, help="How many world seeds: the configured one (data.dataset.params.seed) and the next."),
    ] = 5,
    out: Annotated[Path | None, typer.Option(help="Also write the audit as JSON, with every class's counts.")] = None,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Score zero-shot theta_0 on the embedded task in several worlds: shot-group gap and standard error."""
    from rich.console import Console

    from ltsoups.embedded.audit import audit_task, images_per_class_for_standard_error
    from ltsoups.io.atomic import write_json_atomic

    config = cli_config(params, set_)
    first = int(getattr(config.data.dataset.params, "seed", 0))
    audit = audit_task(config, range(first, first + seeds))
    if out is not None:
        write_json_atomic(out, audit.model_dump(mode="json"))
    console = Console()
    console.print(audit_table(audit))
    num_classes = len(audit.worlds[0].classes)
    test_images = audit.worlds[0].classes[0].test_images
    needed = images_per_class_for_standard_error(num_classes, TARGET_STANDARD_ERROR)
    console.print(
        f"zero-shot gap between the best and worst shot group, averaged over {seeds} world seeds: "
        f"{audit.gap_of_mean_groups:.1f} points (per seed, on average: {audit.mean_group_gap:.1f})\n"
        f"standard error of a model's balanced test accuracy: {audit.mean_standard_error:.2f} points "
        f"({test_images} test images per class; {needed} give <= {TARGET_STANDARD_ERROR} at any accuracy "
        f"with {num_classes} classes)",
        highlight=False,
    )
    if out is not None:
        console.print(f"wrote {out}", highlight=False)


def audit_table(audit: TaskAudit) -> Table:
    from rich.table import Table

    groups = list(audit.mean_group_accuracy)
    table = Table(title="Zero-shot theta_0 on the test split, per world seed (percent)")
    for column in ("world seed", "balanced", *(group.value for group in groups), "gap", "SE", "SE rule"):
        table.add_column(column, justify="right")
    for world in audit.worlds:
        table.add_row(
            str(world.world_seed),
            f"{world.balanced_accuracy:.1f}",
            *(f"{world.group_accuracy[group]:.1f}" for group in groups),
            f"{world.group_gap:.1f}",
            f"{world.standard_error:.2f}",
            f"{world.rule_of_thumb_standard_error:.2f}",
        )
    table.add_section()
    table.add_row(
        "mean",
        f"{audit.mean_balanced_accuracy:.1f}",
        *(f"{audit.mean_group_accuracy[group]:.1f}" for group in groups),
        f"{audit.gap_of_mean_groups:.1f}",
        f"{audit.mean_standard_error:.2f}",
        "",
    )
    table.caption = _group_sizes(audit)
    return table


def _group_sizes(audit: TaskAudit) -> str:
    from ltsoups.data.stats import ShotGroup

    classes = audit.worlds[0].classes
    sizes = ", ".join(f"{group.value} {sum(c.group is group for c in classes)}" for group in ShotGroup)
    return f"classes per group: {sizes}; mean row's gap: best minus worst of the seed-averaged groups"
