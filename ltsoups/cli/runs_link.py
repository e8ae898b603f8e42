"""The line that tells a person where MLflow's UI shows the runs just logged."""

from __future__ import annotations


def print_runs_url(url: str | None) -> None:
    """Print ``url`` whole (a wrapped link cannot be clicked or copied); nothing when nothing was logged."""
    if url is None:
        return
    from ltsoups.cli.render import console

    console.print(f"MLflow runs (`mlflow ui`, or the tracking server): {url}", soft_wrap=True, highlight=False)
