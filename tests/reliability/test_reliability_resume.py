"""Resume after a crash: a member or head retraining interrupted anywhere ends bit-identical to an uninterrupted run.

In-process tests crash a run at chosen points (after a step, between a state's weights and its sidecar);
the slow tests kill a real `ltsoups train-member` process with SIGKILL at random moments, and with SIGINT.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny_run import CrashAtStep, SimulatedCrash, clone_run

import ltsoups.checkpoint
from ltsoups.config import load_config
from ltsoups.stages.context import RunContext
from ltsoups.stages.member import member_job, train_member
from ltsoups.stages.retrain_head import retrain_head
from ltsoups.training.loop import TrainingObserver
from ltsoups.training.resume import ResumeState
from ltsoups.workspace import Workspace

pytestmark = pytest.mark.slow  # every test here trains (tiny) models, several in processes of their own

MEMBER = "f4-r0"  # 80 samples: 5 steps of 16 in the tiny config, resume states after steps 2 and 4


def _train_member(root: Path, overrides: list[str], observer: TrainingObserver | None = None) -> Path:
    config = load_config(root / "params.yaml", [*overrides, f"workdir={root / 'outputs'}"])
    context, workspace = RunContext(config), Workspace(root / "outputs")
    return train_member(context, workspace, member_job(context, workspace, MEMBER), observer).checkpoint.path


def _retrain_head(root: Path, overrides: list[str], observer: TrainingObserver | None = None) -> Path:
    config = load_config(root / "params.yaml", [*overrides, f"workdir={root / 'outputs'}"])
    return retrain_head(RunContext(config), Workspace(root / "outputs"), observer).checkpoint.path


def _leftovers(folder: Path) -> list[str]:
    """Resume states and temporaries: what a finished training must not leave behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("resume") or p.name.endswith(".tmp"))


def _fresh_member(finished_run: Path, dest: Path) -> Path:
    """A clone of the finished run without the member's outputs."""
    root = clone_run(finished_run, dest)
    for path in (root / "outputs" / "members" / MEMBER).iterdir():
        path.unlink()
    return root


MEMBER_VARIANTS = {
    "paper defaults": [],
    "best-val selection": ["train.selection.mode=best-val", "train.selection.snapshots=3"],
    "first-step EMA, micro-batches, resume every step": [
        "train.ema.init=first-step",
        "train.optim.micro_batch_size=8",
        "train.resume_every=1",
    ],
    "LIFT's SGD with momentum, no EMA, class-balanced batches": [
        "train.optim={name: sgd, lr: 0.01, weight_decay: 5.0e-4, nesterov: true}",
        "train.ema.decay=0",
        "train.sampling.mode=class-balanced",
    ],
}


@pytest.mark.parametrize("overrides", MEMBER_VARIANTS.values(), ids=MEMBER_VARIANTS.keys())
def test_a_member_crashed_twice_ends_bit_identical(finished_run: Path, tmp_path: Path, overrides: list[str]) -> None:
    expected = _train_member(_fresh_member(finished_run, tmp_path / "straight"), overrides).read_bytes()
    root = _fresh_member(finished_run, tmp_path / "crashed")
    folder = root / "outputs" / "members" / MEMBER
    for step in (3, 5):
        with pytest.raises(SimulatedCrash):
            _train_member(root, overrides, CrashAtStep(step))
        assert ResumeState(folder / "resume.safetensors").exists()
    weights = _train_member(root, overrides)
    assert weights.read_bytes() == expected
    assert _leftovers(folder) == []


def test_the_paper_defaults_variant_matches_the_finished_run(finished_run: Path, tmp_path: Path) -> None:
    root = _fresh_member(finished_run, tmp_path / "crashed")
    with pytest.raises(SimulatedCrash):
        _train_member(root, [], CrashAtStep(3))
    weights = _train_member(root, [])
    assert weights.read_bytes() == (finished_run / "outputs" / "members" / MEMBER / "weights.safetensors").read_bytes()


def test_a_kill_between_a_state_and_its_sidecar_resumes_from_the_state_before(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sidecar commits a state: a state file without one (the kill came first) is never used."""
    overrides = ["train.resume_every=1"]
    expected = _train_member(_fresh_member(finished_run, tmp_path / "straight"), overrides).read_bytes()
    root = _fresh_member(finished_run, tmp_path / "crashed")
    folder = root / "outputs" / "members" / MEMBER
    real_write = ltsoups.checkpoint.write_text_atomic

    def killed_before_the_third_sidecar(target: Path, text: str) -> None:
        if target.name == "resume-step3.safetensors.json":
            raise SimulatedCrash("killed after the weights of step 3, before their sidecar")
        real_write(target, text)

    with monkeypatch.context() as patched:
        patched.setattr(ltsoups.checkpoint, "write_text_atomic", killed_before_the_third_sidecar)
        with pytest.raises(SimulatedCrash):
            _train_member(root, overrides)
    assert (folder / "resume-step3.safetensors").is_file()
    assert ResumeState(folder / "resume.safetensors").latest() == folder / "resume-step2.safetensors"
    # what a SIGKILL in the middle of a write leaves behind
    (folder / ".resume-step4.safetensors.k1ll3d.tmp").write_bytes(b"half a state")
    (folder / ".weights.safetensors.k1ll3d.tmp").write_bytes(b"half the weights")
    weights = _train_member(root, overrides)
    assert weights.read_bytes() == expected
    assert _leftovers(folder) == []


def test_an_altered_resume_state_is_refused_not_skipped(finished_run: Path, tmp_path: Path) -> None:
    root = _fresh_member(finished_run, tmp_path / "crashed")
    with pytest.raises(SimulatedCrash):
        _train_member(root, [], CrashAtStep(3))
    state = root / "outputs" / "members" / MEMBER / "resume-step2.safetensors"
    data = bytearray(state.read_bytes())
    data[-3] ^= 0x01
    state.write_bytes(bytes(data))
    with pytest.raises(ltsoups.checkpoint.CheckpointError, match=f"{re.escape(str(state))}: sha256 .* does not match"):
        _train_member(root, [])


def test_a_diverged_member_leaves_no_resume_state(finished_run: Path, tmp_path: Path) -> None:
    """Resuming would replay the same divergence, so the state written before it is dropped."""
    from ltsoups.training.errors import TrainingDiverged

    root = _fresh_member(finished_run, tmp_path / "diverged")
    with pytest.raises(TrainingDiverged, match=f"member {MEMBER}: loss is nan at step 2 of 5"):
        _train_member(root, ["train.optim.lr=1e30", "train.resume_every=1"])
    assert _leftovers(root / "outputs" / "members" / MEMBER) == []


HEAD_VARIANTS = {
    "cached features": ["retrain_head.resume_every=2"],
    "augmented images": ["retrain_head.resume_every=2", "retrain_head.augment.enabled=true"],
    "Kang's cRT: fresh head, class-balanced, SGD": [
        "retrain_head.resume_every=2",
        "retrain_head.head_init=random",
        "retrain_head.sampling.mode=class-balanced",
        "retrain_head.optim={name: sgd, lr: 0.2}",
        "retrain_head.selection.mode=best-val",
    ],
}


@pytest.mark.parametrize("overrides", HEAD_VARIANTS.values(), ids=HEAD_VARIANTS.keys())
def test_head_retraining_crashed_twice_ends_bit_identical(
    finished_run: Path, tmp_path: Path, overrides: list[str]
) -> None:
    expected = _retrain_head(clone_run(finished_run, tmp_path / "straight"), overrides).read_bytes()
    root = clone_run(finished_run, tmp_path / "crashed")
    for step in (3, 6):
        with pytest.raises(SimulatedCrash):
            _retrain_head(root, overrides, CrashAtStep(step))
        assert ResumeState(root / "outputs" / "final" / "resume.safetensors").exists()
    assert _retrain_head(root, overrides).read_bytes() == expected
    assert _leftovers(root / "outputs" / "final") == []


# --------------------------------------------------------------------------- real processes, real signals

FAULT_PARAMS = ["train.optim.batch_size=8", "train.schedule.epochs=1.2", "train.resume_every=2"]
"""f4-r0 then takes 12 steps of 8 samples, with a resume state every 2 steps."""
FAULT_STEPS = 12


def _fault_run_folder(finished_run: Path, dest: Path) -> Path:
    root = _fresh_member(finished_run, dest)
    params = yaml.safe_load((root / "params.yaml").read_text())
    (root / "params.yaml").unlink()
    for override in FAULT_PARAMS:
        key, value = override.split("=")
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def _start_member(root: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "ltsoups", "train-member", MEMBER],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _committed_step(folder: Path) -> int:
    """The step of the newest resume state whose sidecar is written (0 if none)."""
    latest = ResumeState(folder / "resume.safetensors").latest()
    return 0 if latest is None else int(re.fullmatch(r"resume-step(\d+)\.safetensors", latest.name).group(1))


def _wait_for_step(process: subprocess.Popen[str], folder: Path, step: int, timeout: float = 120) -> bool:
    """True once a state at ``step`` or later is committed; False if the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _committed_step(folder) >= step:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"no resume state at step {step} after {timeout}s")


@pytest.fixture(scope="module")
def uninterrupted_member(finished_run: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The weights `ltsoups train-member` writes when nothing stops it (in a process of its own)."""
    root = _fault_run_folder(finished_run, tmp_path_factory.mktemp("uninterrupted") / "run")
    process = _start_member(root)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert f"({FAULT_STEPS} steps)" in output
    return (root / "outputs" / "members" / MEMBER / "weights.safetensors").read_bytes()


def test_sigkill_at_random_moments_then_restart_ends_bit_identical(
    finished_run: Path, tmp_path: Path, uninterrupted_member: bytes
) -> None:
    seed = int(os.environ.get("LTSOUPS_FAULT_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    root = _fault_run_folder(finished_run, tmp_path / "run")
    folder = root / "outputs" / "members" / MEMBER
    kills: list[str] = []
    for target in sorted(rng.sample(range(1, FAULT_STEPS - 1), 3)):
        process = _start_member(root)
        if _wait_for_step(process, folder, target):
            time.sleep(rng.uniform(0.0, 0.15))  # anywhere: mid-step, mid-save, between weights and sidecar
            process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        kills.append(f"after step >= {target}: exit {process.returncode}, resumable from {_committed_step(folder)}")
    context = f"LTSOUPS_FAULT_SEED={seed}; kills: {kills}"
    assert sum("exit -9" in kill for kill in kills) >= 2, context
    process = _start_member(root)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, f"{context}\n{output}"
    assert (folder / "weights.safetensors").read_bytes() == uninterrupted_member, context
    assert _leftovers(folder) == [], context


class _StopAtStep:
    """Sends this process Ctrl-C's signal as step ``stop_at`` ends; notes where each training starts."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.stop_at, self.first_steps = stop_at, []

    def on_start(self, total_steps: int, first_step: int) -> None:
        self.first_steps.append(first_step)

    def on_step(self, step: int, loss: float, lr: float) -> None:
        if step == self.stop_at:
            os.kill(os.getpid(), signal.SIGINT)

    def on_validation(self, step: int, score: float) -> None:
        pass


def test_ctrl_c_in_the_last_step_keeps_the_whole_training(finished_run: Path, tmp_path: Path) -> None:
    expected = _train_member(_fresh_member(finished_run, tmp_path / "straight"), []).read_bytes()
    root = _fresh_member(finished_run, tmp_path / "stopped")
    with pytest.raises(KeyboardInterrupt, match="interrupted after step 5"):
        _train_member(root, [], _StopAtStep(5))  # the member's last step
    rerun = _StopAtStep()
    assert _train_member(root, [], rerun).read_bytes() == expected
    assert rerun.first_steps == [5]  # nothing trained again
    assert _leftovers(root / "outputs" / "members" / MEMBER) == []


def test_ctrl_c_and_sigterm_leave_a_resumable_state_and_the_rerun_ends_bit_identical(
    finished_run: Path, tmp_path: Path, uninterrupted_member: bytes
) -> None:
    """Ctrl-C, and the SIGTERM a scheduler sends before its kill, stop at the next step boundary and save."""
    root = _fault_run_folder(finished_run, tmp_path / "run")
    folder = root / "outputs" / "members" / MEMBER
    stopped_at = 0
    for stop in (signal.SIGINT, signal.SIGTERM):
        process = _start_member(root)
        assert _wait_for_step(process, folder, stopped_at + 2)
        process.send_signal(stop)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 130, output
        stopped = re.search(rf"interrupted: member {MEMBER}: interrupted after step (\d+); run again to resume", output)
        assert stopped is not None, output
        stopped_at = int(stopped.group(1))
        assert _committed_step(folder) == stopped_at, f"{stop.name}: no state saved at step {stopped_at}"
        assert not (folder / "weights.safetensors").exists()
    process = _start_member(root)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert (folder / "weights.safetensors").read_bytes() == uninterrupted_member
    assert _leftovers(folder) == []
