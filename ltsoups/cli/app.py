"""`ltsoups`: the Typer application. Commands parse options, then call the library."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.markup import escape

from ltsoups.checkpoint import CheckpointError
from ltsoups.cli.embedded_audit import audit_embedded
from ltsoups.cli.pretrain_embedded import pretrain_embedded
from ltsoups.cli.progress import ProgressObserver, make_progress
from ltsoups.cli.render import console, error_console, plan_table, plugins_table, results_table
from ltsoups.config import ConfigError, LtSoupsConfig, load_config, sampler_shortcut
from ltsoups.data.counts_export import export_class_counts
from ltsoups.data.profiles import read_counts
from ltsoups.data.stats import ClassStats, ShotGroup
from ltsoups.member_list import check_member_list, planned_members
from ltsoups.plan import summarise
from ltsoups.registry import PluginError, PluginKind, installed_registry
from ltsoups.stages.context import RunContext
from ltsoups.stages.evaluate import evaluate_all, read_results
from ltsoups.stages.member import train_member
from ltsoups.stages.merge import merge_members
from ltsoups.stages.pipeline import run_pipeline
from ltsoups.stages.prepare import prepare as prepare_stage
from ltsoups.stages.retrain_head import retrain_head
from ltsoups.stages.theta0 import build_theta0
from ltsoups.tracking import pipeline_tracking
from ltsoups.training.loop import ObserverGroup, TrainingDiverged
from ltsoups.workspace import Workspace

app = typer.Typer(
    help="LT-Soups: subsampled model soups for long-tailed fine-tuning of CLIP.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.command("pretrain-embedded")(pretrain_embedded)

ParamsOption = Annotated[
    Path | None,
    typer.Option("--params", "-p", help="params file (default: ./params.yaml if present, else built-in defaults)"),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a param, e.g. --set merge.merger.params.lambda=0.5 (repeatable)"),
]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn expected failures into a red message and a non-zero exit (2: bad config, 130: Ctrl-C, 1: other)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as err:
            error_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
            raise typer.Exit(2) from err
        except (PluginError, CheckpointError, TrainingDiverged, ValueError, FileNotFoundError, OSError) as err:
            error_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
            raise typer.Exit(1) from err
        except KeyboardInterrupt as err:
            message = escape(str(err) or "stopped by Ctrl-C")
            error_console.print(f"[yellow]interrupted:[/yellow] {message}", highlight=False)
            raise typer.Exit(130) from err

    return wrapper  # type: ignore[return-value]


def _config(params: Path | None, overrides: list[str] | None) -> LtSoupsConfig:
    if params is None and Path("params.yaml").is_file():
        params = Path("params.yaml")
    return load_config(params, overrides or [])


def _workspace(config: LtSoupsConfig) -> Workspace:
    return Workspace(Path(config.workdir))


app.command("audit-embedded")(reports_errors(audit_embedded))


@app.command()
@reports_errors
def plan(
    counts: Annotated[Path | None, typer.Option(help="JSON list of training counts per class")] = None,
    dataset: Annotated[str | None, typer.Option(help="a dataset plugin name; its counts are used (no images)")] = None,
    rounds: Annotated[int | None, typer.Option(help="N: factors 2^0..2^N")] = None,
    replicas: Annotated[int | None, typer.Option(help="M: members per factor")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Show the subsample plan: per factor its cap, subset size, share of the data and imbalance ratio."""
    overrides = [*(set_ or []), *sampler_shortcut(rounds, replicas)]
    if dataset is not None:
        overrides.append(f"data.dataset={json.dumps({'name': dataset})}")
    config = _config(params, overrides)
    registry = installed_registry()
    if counts is not None:
        class_counts = read_counts(counts)
    else:
        spec = config.data.dataset
        class_counts = registry.create(PluginKind.DATASET, spec.name, spec.params).class_counts()
    spec = config.plan.sampler
    sampler = registry.create(PluginKind.SAMPLER, spec.name, spec.params)
    rows = summarise(sampler.draws(np.asarray(class_counts), config.seed), np.asarray(class_counts))
    if as_json:
        typer.echo(json.dumps([row.as_dict() for row in rows], indent=2))
    else:
        console.print(plan_table(rows, int(np.sum(class_counts))))


@app.command()
@reports_errors
def validate(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Check a params file (and overrides); report every problem at once."""
    config = _config(params, set_)
    source = params or ("params.yaml" if Path("params.yaml").is_file() else "the built-in defaults")
    check_member_list(config, str(source))
    console.print(f"[green]ok[/green]: {source} is valid (seed {config.seed}, workdir {config.workdir})")
    members = planned_members(config, installed_registry())
    console.print(f"members (one dvc.yaml train-member stage each): [{', '.join(members)}]", markup=False)


@plugins_app.command("list")
def plugins_list() -> None:
    """Every plugin per entry-point group, with the distribution that provides it."""
    console.print(plugins_table(installed_registry()))


@app.command()
@reports_errors
def counts(
    out: Annotated[Path, typer.Argument(help="where to write the JSON list of training counts per class")],
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Export the configured dataset's training class counts (the input of `plan --counts`)."""
    config = _config(params, set_)
    spec = config.data.dataset
    dataset = installed_registry().create(PluginKind.DATASET, spec.name, spec.params)
    exported = export_class_counts(dataset, out)
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
    config = _config(params, set_)
    check_member_list(config, str(params or "params.yaml"))
    workspace = _workspace(config)
    with pipeline_tracking(config, workspace) as tracking:
        files = prepare_stage(RunContext(config), workspace)
        tracking.plan_written(files)
    console.print(f"wrote {len(files.manifests)} manifests and {files.plan}")


@app.command()
@reports_errors
def theta0(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Build the zero-shot weights theta_0: pretrained encoder + head from class-name prompts."""
    config = _config(params, set_)
    workspace = _workspace(config)
    with pipeline_tracking(config, workspace) as tracking:
        checkpoint = build_theta0(RunContext(config), workspace)
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
    config = _config(params, set_)
    workspace = _workspace(config)
    with pipeline_tracking(config, workspace) as tracking, make_progress() as progress:
        observer = ObserverGroup(ProgressObserver(progress, member), tracking.start_member(member))
        output = train_member(RunContext(config), workspace, member, observer)
        tracking.member_trained(output)
    console.print(f"wrote {output.checkpoint.path} ({output.result.steps} steps)")


@app.command()
@reports_errors
def merge(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Merge members: uniform within a factor, then Theta_k = lambda*Theta_(k-1) + (1-lambda)*mean_k.

    Convention: lambda weights the PREVIOUS merge (the paper's Eq. 5), starting from Theta_0 = theta_0 and
    folding factors in ascending order. Code that puts lambda on the new model (the authors' trainer.py)
    corresponds to lambda' = 1 - lambda here, or to `merge.merger.params.weights=new`.
    Streams tensor by tensor: memory stays about one model whatever the number of members.
    """
    config = _config(params, set_)
    workspace = _workspace(config)
    with pipeline_tracking(config, workspace) as tracking:
        running = merge_members(RunContext(config), workspace)
        tracking.soups_merged(running)
    console.print(results_table([(f"soup up to factor {r.factor}", r.val) for r in running], "Running soups (val)"))


@app.command("retrain-head")
@reports_errors
def retrain_head_command(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Stage 2 (CR): freeze the merged encoder; retrain only the head on the full data (LA loss)."""
    config = _config(params, set_)
    workspace = _workspace(config)
    with pipeline_tracking(config, workspace) as tracking, make_progress() as progress:
        observer = ObserverGroup(ProgressObserver(progress, "retrain-head"), tracking.start_head())
        output = retrain_head(RunContext(config), workspace, observer)
        tracking.head_retrained(output)
    console.print(f"wrote {output.checkpoint.path}")


@app.command("evaluate")
@reports_errors
def evaluate_command(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Test accuracy (overall, balanced, many/medium/few) of theta_0, running soups, stage 1 and final."""
    config = _config(params, set_)
    workspace = _workspace(config)
    with pipeline_tracking(config, workspace) as tracking:
        rows = evaluate_all(RunContext(config), workspace)
        tracking.evaluated(rows)
    console.print(results_table([(r.name, r.scores) for r in rows], "LT-Soups results (test split)"))


@app.command()
@reports_errors
def report(
    plot: Annotated[Path | None, typer.Option(help="also draw per-class and shot-group accuracy to this PNG")] = None,
    params: ParamsOption = None,
    set_: SetOption = None,
) -> None:
    """Print the results table of the last evaluate stage (no computation); optionally plot it."""
    config = _config(params, set_)
    workspace = _workspace(config)
    console.print(results_table(read_results(workspace), "LT-Soups results (test split)"))
    if plot is not None:
        from ltsoups.plots import plot_results  # matplotlib is slow to import; only this option needs it

        console.print(f"wrote {plot_results(workspace, plot)}")


@app.command()
@reports_errors
def run(params: ParamsOption = None, set_: SetOption = None) -> None:
    """Run the whole method: prepare, theta_0, every member, merge, retrain-head, evaluate."""
    config = _config(params, set_)
    workspace = _workspace(config)
    with pipeline_tracking(config, workspace) as tracking, make_progress() as progress:
        observer_for = functools.partial(ProgressObserver, progress)
        rows = run_pipeline(RunContext(config), workspace, observer_for, tracking)
    console.print(results_table([(r.name, r.scores) for r in rows], "LT-Soups results (test split)"))


def main() -> None:
    app()
