"""Built-in runner `local`: the members one after another in this process (the `ray` runner: ray_runner.py)."""

from __future__ import annotations

from collections.abc import Sequence

from ltsoups.contracts import (
    BatchInterrupted,
    MemberFailed,
    MemberFollower,
    MemberTask,
    Output,
    PluginParams,
    Runner,
    Worker,
    describe,
)


class LocalRunner(Runner):
    """Trains in the calling process, on the run's device; the first member that fails stops the batch."""

    Params = PluginParams
    description = "one member after another in this process"

    def train(self, tasks: Sequence[MemberTask[Output]], follower: MemberFollower[Output]) -> list[Output]:
        outputs: list[Output] = []
        for index, task in enumerate(tasks):
            observer = follower.started(task.name, Worker.this_process())
            try:
                output = task.train(observer)
            except KeyboardInterrupt as err:  # the member saved its resume state at the end of its step
                raise BatchInterrupted([t.name for t in tasks[:index]], [t.name for t in tasks[index:]]) from err
            except Exception as err:
                follower.failed(task.name, describe(err))
                finished, rest = [t.name for t in tasks[:index]], [t.name for t in tasks[index + 1 :]]
                raise MemberFailed({task.name: describe(err)}, finished, rest) from err
            follower.finished(task.name, output)
            outputs.append(output)
        return outputs
