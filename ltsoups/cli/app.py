"""`ltsoups`: the Typer application. Commands parse options, then call the library.

Each command imports the library modules it uses when it runs: `ltsoups --help`, `plan` and
`validate` never load torch, open_clip or MLflow.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer

from ltsoups.cli.common import (
    ParamsOption,
    RunnerOption,
    SetOption,
    cli_config,
    cli_layers,
    flag,
    reports_errors,
    require_device,
    source_name,
    stage_context,
    validated,
    with_runner,
    workspace_of,
    writing_checkpoint,
)
from ltsoups.cli.compare import compare_app
from ltsoups.cli.embedded_audit import audit_embedded
from ltsoups.cli.export import export
from ltsoups.cli.fingerprint import fingerprint
from ltsoups.cli.plugins_show import plugins_show
from ltsoups.cli.predict import predict
from ltsoups.cli.pretrain_embedded import pretrain_embedded
from ltsoups.cli.runs_link import print_runs_url
from ltsoups.cli.version import global_options
from ltsoups.stages.evaluate_options import SavedLogits

app = typer.Typer(
    help="LT-Soups: subsampled model soups for long-tailed fine-tuning of CLIP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
plugins_app.command("show")(plugins_show)
app.add_typer(compare_app, name="compare")
app.command("pretrain-embedded")(pretrain_embedded)
app.command("audit-embedded")(audit_embedded)
app.command("fingerprint")(fingerprint)
app.callback()(global_options)
app.command("export")(export)
app.command("predict")(predict)


@app.command()
@reports_errors
def plan(
    counts: Annotated[Path | None, typer.Option(help="JSON list of training counts per class")] = None,
    dataset: Annotated[str | None, typer.Option(help="a dataset plugin name; its counts are used (no images)")] = None,
    rounds: Annotated[int | None, typer.Option(help="N: factors 2^0..2^N")] = None,
    replicas: Annotated[int | None, typer.Option(help="M: members per factor")] = None,
    as_json: Annotated[bool, flag("--json", help="print JSON instead of a table")] = False,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Show the subsample plan: per factor its cap, subset size, share of the data, imbalance ratio, and each
    member's steps and warmup share (then CR's); warn where warmup covers more than half of a training."""
    import numpy as np

    from ltsoups.cli.render import budget_warnings, console, error_console, plan_table
    from ltsoups.config import sampler_shortcut
    from ltsoups.data.counts_file import read_counts
    from ltsoups.plan import summarise
    from ltsoups.registry import installed_registry
    from ltsoups.training.budget import pipeline_budgets

    # --dataset: that dataset with its own defaults (the configured dataset's params do not apply), under --set
    chosen = [f"data.dataset={json.dumps({'name': dataset, 'params': {}})}"] if dataset is not None else []
    overrides = [*chosen, *(set_ or []), *sampler_shortcut(rounds, replicas)]
    config = cli_config(params, overrides)
    registry = installed_registry()
    if counts is not None:
        class_counts = read_counts(counts)
    else:
        class_counts = np.asarray(registry.instantiate(config.data.dataset).class_counts())
    sampler = registry.instantiate(config.plan.sampler)
    rows = summarise(sampler.draws(class_counts, config.seed), class_counts)
    total = int(np.sum(class_counts))
    head = config.retrain_head if config.retrain_head.enabled else None
    members, head_budget = pipeline_budgets([(row.factor, row.size) for row in rows], total, config.train, head)
    if as_json:
        listed = [
            {**row.model_dump(mode="json"), "steps": budget.steps, "warmup_steps": budget.warmup}
            for row, budget in zip(rows, members, strict=True)
        ]
        typer.echo(json.dumps(listed, indent=2))
    else:
        console.print(plan_table(rows, total, members, head_budget))
    for warning in budget_warnings(members, head_budget):
        error_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


@app.command()
@reports_errors
def validate(
    params: ParamsOption = None,
    set_: SetOption = None,
    check_data: Annotated[
        bool, flag("--check-data", help="also decode every image file of every split once, naming each bad one")
    ] = False,
) -> None:
    """Check a params file (and overrides); report every problem at once."""
    import numpy as np

    from ltsoups.cli.render import budget_warnings, console, error_console
    from ltsoups.member_list import check_member_list, planned_members
    from ltsoups.plan import summarise
    from ltsoups.registry import installed_registry
    from ltsoups.training.budget import pipeline_budgets

    config = cli_config(params, set_)
    source = source_name(params)
    check_member_list(config, source)
    defaults = params is None and not Path("params.yaml").is_file()
    if defaults:
        console.print(
            "[yellow]no params.yaml here and no --params: validated ltsoups' built-in defaults[/yellow] (the embedded "
            "task); name your file with --params FILE, or run where your params.yaml is"
        )
    verb = "are" if defaults else "is"
    console.print(f"[green]ok[/green]: {source} {verb} valid (seed {config.seed}, workdir {config.workdir})")
    registry = installed_registry()
    members = planned_members(config, registry)
    console.print(f"members (one dvc.yaml train-member stage each): [{', '.join(members)}]", markup=False)
    counts = np.asarray(registry.instantiate(config.data.dataset).class_counts())
    rows = summarise(registry.instantiate(config.plan.sampler).draws(counts, config.seed), counts)
    head = config.retrain_head if config.retrain_head.enabled else None
    budgets, head_budget = pipeline_budgets(
        [(row.factor, row.size) for row in rows], int(counts.sum()), config.train, head
    )
    console.print("steps per training (warmup share):")
    for budget in [*budgets, *filter(None, [head_budget])]:
        console.print(f"  {budget.name}: {budget.steps:,} steps ({budget.warmup_share:.0f}% warmup)", markup=False)
    for warning in budget_warnings(budgets, head_budget):
        error_console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if check_data:
        from ltsoups.cli.progress import ImageCheckBar, make_progress
        from ltsoups.data.image_check import check_images

        splits = registry.instantiate(config.data.dataset).load()
        with make_progress() as progress:
            checked = check_images(splits, ImageCheckBar(progress))
        held = "" if checked else " (its images are held in memory: nothing to read)"
        console.print(f"[green]ok[/green]: {checked:,} image files decoded, none unreadable{held}")


@plugins_app.command("list")
def plugins_list() -> None:
    """Every plugin per entry-point group, with the distribution that provides it."""
    from ltsoups.cli.render import console, plugins_table
    from ltsoups.registry import installed_registry

    console.print(plugins_table(installed_registry()))


@app.command()
@reports_errors
def counts(
    out: Annotated[Path, typer.Argument(help="where to write the JSON list of training counts per class")],
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Export the configured dataset's training class counts (the input of `plan --counts`)."""
    from ltsoups.cli.render import console
    from ltsoups.data.counts_file import write_counts
    from ltsoups.data.stats import ClassStats, ShotGroup
    from ltsoups.registry import installed_registry

    config = cli_config(params, set_)
    exported = write_counts(out, installed_registry().instantiate(config.data.dataset).class_counts())
    stats = ClassStats(exported, config.data.thresholds)
    sizes = stats.group_sizes()
    console.print(
        f"wrote {out}: {len(exported)} classes, {int(exported.sum()):,} samples, rho {stats.rho:g}, "
        f"eta {stats.eta:.3g}, many/medium/few {sizes[ShotGroup.MANY]}/{sizes[ShotGroup.MEDIUM]}/{sizes[ShotGroup.FEW]}"
    )


@app.command()
@reports_errors
def prepare(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Write the class counts, the subsample plan and one manifest per member."""
    from ltsoups.cli.progress import ImageCheckBar, make_progress
    from ltsoups.cli.render import console
    from ltsoups.member_list import check_member_list
    from ltsoups.stages.prepare import prepare as prepare_stage
    from ltsoups.tracking import pipeline_tracking

    config = cli_config(params, set_)
    check_member_list(config, source_name(params))
    workspace = workspace_of(config)
    with pipeline_tracking(config, workspace) as tracking, stage_context(config, workspace) as context:
        with make_progress() as progress:
            files = prepare_stage(context, workspace, ImageCheckBar(progress))
        tracking.plan_written(files)
    console.print(f"wrote {len(files.manifests)} manifests and {files.path}")


@app.command()
@reports_errors
def theta0(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Build the zero-shot weights theta_0: pretrained encoder + head from class-name prompts."""
    from ltsoups.cli.render import console
    from ltsoups.stages.theta0 import build_theta0
    from ltsoups.tracking import pipeline_tracking

    config = cli_config(params, set_)
    require_device(config)
    workspace = workspace_of(config)
    with pipeline_tracking(config, workspace) as tracking, stage_context(config, workspace) as context:
        checkpoint = build_theta0(context, workspace)
        tracking.theta0_built(checkpoint)
    console.print(f"wrote {checkpoint.path}")


@app.command("train-member")
@reports_errors
def train_member_command(
    member: Annotated[str, typer.Argument(help="member id from the plan, e.g. f4-r1")],
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Fine-tune one member (encoder + cosine head) on its manifest's subset; save its EMA weights."""
    from ltsoups.cli.progress import ProgressObserver, make_progress
    from ltsoups.cli.render import console
    from ltsoups.stages.member import member_job, train_member
    from ltsoups.tracking import pipeline_tracking
    from ltsoups.training.loop import ObserverGroup

    config = cli_config(params, set_)
    require_device(config)
    workspace = workspace_of(config)
    with stage_context(config, workspace) as context:
        job = member_job(context, workspace, member)
        with (
            writing_checkpoint(workspace.member(member)),
            pipeline_tracking(config, workspace) as tracking,
            make_progress() as progress,
        ):
            observer = ObserverGroup(ProgressObserver(progress, member), tracking.start_member(job))
            output = train_member(context, workspace, job, observer)
            tracking.member_trained(output)
    console.print(f"wrote {output.checkpoint.path} ({output.result.steps} steps)")


@app.command("train-members")
@reports_errors
def train_members_command(
    members: Annotated[
        list[str] | None, typer.Argument(help="member ids, e.g. f4-r1 (default: every member of the plan)")
    ] = None,
    runner: RunnerOption = None,
    dvc: Annotated[
        bool, flag("--dvc/--no-dvc", help="record the members in dvc.lock, so `dvc repro` keeps them")
    ] = True,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Train every member not yet trained from its current manifest, config and theta_0, in parallel on the
    runner's workers; then record them in dvc.lock (in a DVC project) so that `dvc repro` does not train them."""
    from ltsoups.cli.dvc_lock import record_members
    from ltsoups.cli.progress import MemberBoard, make_progress
    from ltsoups.cli.render import console
    from ltsoups.contracts import BatchInterrupted, MemberFailed
    from ltsoups.runners.batch import train_members
    from ltsoups.tracking import pipeline_tracking

    config = cli_config(params, with_runner(set_, runner))
    workspace = workspace_of(config)
    try:
        with stage_context(config, workspace) as context:
            chosen = context.plugin(config.runner)  # a runner that cannot work here (no Ray) fails before any work
            with pipeline_tracking(config, workspace) as tracking, make_progress() as progress:
                board = MemberBoard(progress)
                done = train_members(context, workspace, members, chosen, board, tracking.member_tracking())
    except (MemberFailed, BatchInterrupted) as stopped:  # the members that finished are kept: record them
        if dvc:
            _report_dvc(record_members(stopped.finished, config))
        raise
    console.print(f"trained {len(done.trained)} member(s); {len(done.up_to_date)} already up to date")
    if dvc:
        _report_dvc(record_members([*(o.job.member for o in done.trained), *done.up_to_date], config))


def _report_dvc(line: str | None) -> None:
    from ltsoups.cli.render import console

    if line is not None:
        console.print(line, markup=False)


@app.command()
@reports_errors
def merge(
    search: Annotated[
        bool,
        flag(
            "--search",
            help="choose lambda and N on the validation split (same as --set merge.search.enabled=true; "
            "--set merge.search.mode=per-factor chooses one lambda per factor; "
            "the later stages need the same setting: put it in params.yaml)",
        ),
    ] = False,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Merge members: by default uniform within a factor, then Theta_k = lambda*Theta_(k-1) + (1-lambda)*mean_k.

    Convention: lambda weights the PREVIOUS merge (the paper's Eq. 5), starting from Theta_0 = theta_0 and
    folding factors in ascending order. Code that puts lambda on the new model (the authors' trainer.py)
    corresponds to lambda' = 1 - lambda here, or to `merge.merger.params.weights=new`. Other mergers:
    `ltsoups plugins list` (task-arithmetic, ties, dare, greedy, ...). Streams tensor by tensor: memory
    stays a few tensors whatever the number of members.
    """
    from ltsoups.cli.render import console, results_table, search_table
    from ltsoups.stages.merge import merge_members
    from ltsoups.tracking import pipeline_tracking

    config = cli_config(params, [*(set_ or []), *(["merge.search.enabled=true"] if search else [])])
    require_device(config)
    workspace = workspace_of(config)
    with (
        writing_checkpoint(workspace.soup),
        pipeline_tracking(config, workspace) as tracking,
        stage_context(config, workspace) as context,
    ):
        merged = merge_members(context, workspace)
        tracking.soups_merged(merged)
    if merged.search is not None:
        search, cost = merged.search, merged.search.cost
        console.print(search_table(search))
        console.print(
            f"chosen on validation: {search.describe()}; {cost.folds} soups folded, {cost.val_passes} validation "
            f"passes; every soup scored in {workspace.soup_search}, figure in {workspace.soup_search_plot}",
            highlight=False,
        )
    rows = [(f"soup up to factor {soup.factor}", soup.val.headline()) for soup in merged.running]
    console.print(results_table(rows, "Running soups (val)"))


@app.command("retrain-head")
@reports_errors
def retrain_head_command(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Stage 2 (CR): freeze the merged encoder; retrain only the head on the full data (LA loss)."""
    from ltsoups.cli.progress import ProgressObserver, make_progress
    from ltsoups.cli.render import console
    from ltsoups.stages.retrain_head import retrain_head
    from ltsoups.tracking import pipeline_tracking
    from ltsoups.training.loop import ObserverGroup

    config = cli_config(params, set_)
    require_device(config)
    workspace = workspace_of(config)
    with (
        writing_checkpoint(workspace.final),
        pipeline_tracking(config, workspace) as tracking,
        make_progress() as progress,
    ):
        observer = ObserverGroup(ProgressObserver(progress, "retrain-head"), tracking.start_head())
        with stage_context(config, workspace) as context:
            output = retrain_head(context, workspace, observer)
        tracking.head_retrained(output)
    console.print(f"wrote {output.checkpoint.path}")


@app.command("evaluate")
@reports_errors
def evaluate_command(
    save_logits: Annotated[
        SavedLogits, typer.Option(help="whose test and validation logits to save under eval/predictions/")
    ] = SavedLogits.FINAL,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Test accuracy, calibration and weight change of theta_0, running soups, stage 1 and final."""
    from ltsoups.cli.render import console, results_table
    from ltsoups.stages.evaluate import evaluate_all
    from ltsoups.stages.evaluate_options import EvaluateOptions
    from ltsoups.tracking import pipeline_tracking

    config = cli_config(params, set_)
    require_device(config)
    workspace = workspace_of(config)
    with pipeline_tracking(config, workspace) as tracking, stage_context(config, workspace) as context:
        evaluation = evaluate_all(context, workspace, EvaluateOptions(save_logits=save_logits))
        tracking.evaluated(evaluation)
    rows = [(row.name, row.scores.headline()) for row in evaluation.rows]
    console.print(results_table(rows, "LT-Soups results (test split)"))
    print_runs_url(tracking.runs_url)


@app.command()
@reports_errors
def report(
    plot: Annotated[Path | None, typer.Option(help="also draw per-class and shot-group accuracy to this PNG")] = None,
    calibration: Annotated[
        bool, flag("--calibration", help="show calibration (after temperature scaling) and weight change")
    ] = False,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Print the results table of the last evaluate stage (no computation); optionally plot it."""
    from ltsoups.cli.render import analyses_tables, console, results_table
    from ltsoups.stages.evaluate import Results

    config = cli_config(params, set_)
    workspace = workspace_of(config)
    entries = Results.read(workspace).rows
    if calibration:
        for table in analyses_tables(entries):
            console.print(table)
    else:
        rows = [(entry.model, entry.scores) for entry in entries]
        console.print(results_table(rows, "LT-Soups results (test split)"))
    if plot is not None:
        from ltsoups.plots import plot_results

        console.print(f"wrote {plot_results(workspace, plot)}")


@app.command()
@reports_errors
def run(
    method: Annotated[
        str | None,
        typer.Option(help="a method of `ltsoups compare methods` (e.g. full-ft), applied over the params file"),
    ] = None,
    methods_file: Annotated[Path | None, typer.Option(help="with --method: a methods file of your own")] = None,
    runner: RunnerOption = None,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Run the whole method: prepare, theta_0, the members (through the runner; those already trained from
    their current inputs are kept), merge, retrain-head, evaluate.

    With --method, a baseline instead: its settings come after the params file and before --set.
    """
    from ltsoups.cli.progress import ImageCheckBar, MemberBoard, ProgressObserver, make_progress
    from ltsoups.cli.render import console, results_table
    from ltsoups.config import override_layer
    from ltsoups.pipeline import run_pipeline
    from ltsoups.stages.context import RunContext
    from ltsoups.tracking import pipeline_tracking

    overrides = with_runner(set_, runner)
    if method is None:
        config = cli_config(params, overrides)
    else:
        from ltsoups.compare.methods import trained_method

        layers, source = cli_layers(params, [])
        layers += [*trained_method(method, methods_file).layers, *(override_layer(text) for text in overrides)]
        config = validated(layers, f"{source} + method {method}" + (" + --set/--runner" if overrides else ""))
    require_device(config)
    workspace = workspace_of(config)
    context = RunContext(config)
    chosen = context.plugin(config.runner)
    with (
        writing_checkpoint(workspace.soup),
        writing_checkpoint(workspace.final),
        pipeline_tracking(config, workspace) as tracking,
        make_progress() as progress,
    ):
        observer_for = functools.partial(ProgressObserver, progress)
        board = MemberBoard(progress)
        evaluation = run_pipeline(context, workspace, observer_for, tracking, chosen, board, ImageCheckBar(progress))
    rows = [(row.name, row.scores.headline()) for row in evaluation.rows]
    console.print(results_table(rows, "LT-Soups results (test split)"))
    print_runs_url(tracking.runs_url)


def main() -> None:
    app()
