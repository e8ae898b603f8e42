"""What every command shares: the --params/--set options, reading the config, and turning errors into exits."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from ltsoups.config import ConfigLayer, LtSoupsConfig
    from ltsoups.stages.context import RunContext
    from ltsoups.workspace import Workspace

ParamsOption = Annotated[
    Path | None,
    typer.Option("--params", "-p", help="params file (default: ./params.yaml if present, else built-in defaults)"),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="override a param, e.g. --set merge.merger.params.lambda=0.5 (repeatable)"),
]

RunnerOption = Annotated[
    str | None,
    typer.Option(
        "--runner", help="how the members train: local, ray, ... (`ltsoups plugins list`); default: the config's"
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def flag(*names: str, help: str) -> Any:
    """A boolean option given bare (``--json``, ``--no-dvc``): its help shows no "<bool>" value to type after it."""
    return typer.Option(*names, help=help, metavar="")


def reports_errors(command: F) -> F:
    """Turn expected failures into a red message and a non-zero exit (2: bad config, 130: Ctrl-C, 1: other)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rich.markup import escape

        from ltsoups.cli.render import error_console
        from ltsoups.config import ConfigError
        from ltsoups.contracts import MemberFailed
        from ltsoups.training.errors import TrainingDiverged

        try:
            return command(*args, **kwargs)
        except ConfigError as err:
            error_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
            raise typer.Exit(2) from err
        except (TrainingDiverged, MemberFailed, ValueError, FileNotFoundError, OSError) as err:
            # ValueError covers PluginError, CheckpointError, PlanError and the data loaders' errors.
            error_console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False)
            raise typer.Exit(1) from err
        except KeyboardInterrupt as err:
            message = escape(str(err) or "stopped by Ctrl-C")
            error_console.print(f"[yellow]interrupted:[/yellow] {message}", highlight=False)
            raise typer.Exit(130) from err

    return wrapper  # type: ignore[return-value]


def cli_layers(params: Path | None, overrides: list[str] | None) -> tuple[list[ConfigLayer], str]:
    """The params file (./params.yaml when none is named and it exists) and the --set overrides, as layers."""
    from ltsoups.config import user_layers

    if params is None and Path("params.yaml").is_file():
        params = Path("params.yaml")
    return user_layers(params, overrides or [])


def cli_config(params: Path | None, overrides: list[str] | None) -> LtSoupsConfig:
    """``params`` (else ./params.yaml if present, else the defaults) with the ``--set`` overrides, validated."""
    return validated(*cli_layers(params, overrides))


def validated(layers: list[ConfigLayer], source: str) -> LtSoupsConfig:
    """``layers`` validated; then a warning for each value a preset they name gave up or replaced."""
    from rich.markup import escape

    from ltsoups.cli.preset_warnings import preset_warnings
    from ltsoups.cli.render import error_console
    from ltsoups.config import validate_layers

    config = validate_layers(layers, source)
    for warning in preset_warnings(layers):
        error_console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    return config


def with_runner(overrides: list[str] | None, runner: str | None) -> list[str]:
    """``--runner NAME`` as the override ``runner.name=NAME`` (the params you wrote for the runner stay)."""
    return [*(overrides or []), *([f"runner.name={runner}"] if runner is not None else [])]


def source_name(params: Path | None) -> str:
    return str(params or ("params.yaml" if Path("params.yaml").is_file() else "the built-in defaults"))


def writing_checkpoint(weights: Path) -> AbstractContextManager[None]:
    """One writer per checkpoint: it and its sidecar locked for the block, or an error naming who writes them."""
    from ltsoups.checkpoint import sidecar_path
    from ltsoups.io.locks import writing

    return writing(weights, sidecar_path(weights))


def require_device(config: LtSoupsConfig) -> None:
    """The device ``runtime.device`` names exists here, checked before a command that computes in this process
    writes or logs anything: a GPU this machine lacks is an error naming the field, not a FAILED run."""
    from ltsoups.runtime import Runtime

    Runtime.of(config.runtime)


def workspace_of(config: LtSoupsConfig) -> Workspace:
    from ltsoups.workspace import Workspace

    return Workspace(Path(config.workdir))


@contextmanager
def stage_context(config: LtSoupsConfig, workspace: Workspace) -> Iterator[RunContext]:
    """The context of one stage's process: the images it generates are kept in the workdir for the next stage,
    once the block has succeeded (a stage that fails writes nothing)."""
    from ltsoups.stages.context import RunContext
    from ltsoups.stages.image_store import ImageStore

    images = ImageStore(workspace.generated_images)
    yield RunContext(config, images=images)
    images.keep()
