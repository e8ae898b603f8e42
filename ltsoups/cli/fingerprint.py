"""`ltsoups fingerprint`: the DVC pipeline's `data` stage."""

from __future__ import annotations

from ltsoups.cli.common import ParamsOption, SetOption, cli_config, reports_errors, workspace_of


@reports_errors
def fingerprint(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Fingerprint the configured dataset's files (sizes and mtimes first, content hashes of what changed):
    the `data` stage, on which every stage that reads the data depends."""
    from ltsoups.cli.render import console
    from ltsoups.registry import installed_registry
    from ltsoups.stages.data_fingerprint import fingerprint_data

    config = cli_config(params, set_)
    workspace = workspace_of(config)
    found = fingerprint_data(config, workspace, installed_registry())
    if found.files == 0:
        change = "it reads no file: its params are its fingerprint"
    elif found.changed:
        change = f"{found.added:,} added, {found.removed:,} removed, {found.modified:,} modified since the last one"
    else:
        change = "no file changed since the last fingerprint"
    console.print(
        f"wrote {workspace.data_fingerprint}: dataset {config.data.dataset.name}, {found.files:,} files "
        f"({found.bytes:,} bytes, {found.read:,} read); {change}",
        highlight=False,
        markup=False,
    )
