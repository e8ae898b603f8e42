"""Built-in runner `local`: the members one after another in this process (the `ray` runner: ray_runner.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ltsoups.contracts import PluginParams, Runner

if TYPE_CHECKING:
    from ltsoups.runners.task import MemberFollower, MemberTask
    from ltsoups.stages.member import MemberOutput


class LocalRunner(Runner):
    """Trains in the calling process, on the run's device; the first member that fails stops the batch."""

    Params = PluginParams
    description = "one member after another in this process"

    def train(self, tasks: Sequence[MemberTask], follower: MemberFollower) -> list[MemberOutput]:
        from ltsoups.runners.task import MemberFailed, Worker, describe, train_task

        outputs: list[MemberOutput] = []
        for index, task in enumerate(tasks):
            observer = follower.started(task.name, Worker.this_process())
            try:
                output = train_task(task, observer)
            except Exception as err:
                follower.failed(task.name, describe(err))
                finished, rest = [t.name for t in tasks[:index]], [t.name for t in tasks[index + 1 :]]
                raise MemberFailed({task.name: describe(err)}, finished, rest) from err
            follower.finished(task.name, output)
            outputs.append(output)
        return outputs
