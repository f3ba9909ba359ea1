"""What the crash tests add to a real ``mgan fit``: a callback that reports progress and
process ids to files, a checkpoint writer slow enough to be killed in the middle of a write,
and the kill / resume trial itself.

Inside the training process (by class path, ``PYTHONPATH`` = the repository):

- :class:`ProgressRecorder` appends ``start <gstep>`` when training starts (after a restore)
  and ``<gstep> <unix time>`` after every generator step to
  ``$MGAN_CRASH_DIR/progress-rank<r>.txt``, and writes its process id to ``pid-rank<r>``;
- :class:`SlowCheckpointIO` is :class:`~mgan_lightning.checkpoint_io.AtomicCheckpointIO`
  that writes the first half of each file, syncs it, sleeps ``delay`` seconds, then writes
  the rest: a kill while its ``*.tmp-<pid>`` file exists lands in the middle of a write,
  with a partial file on disk.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
import yaml
from lightning.pytorch import Callback

from mgan_lightning.checkpoint_io import AtomicCheckpointIO

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------ inside the training run
class ProgressRecorder(Callback):
    """Progress lines and the process id, one file per rank, under ``$MGAN_CRASH_DIR``."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def _write(self, trainer, line: str) -> None:
        if self._fd is None:
            folder = Path(os.environ["MGAN_CRASH_DIR"])
            rank = trainer.global_rank
            (folder / f"pid-rank{rank}").write_text(str(os.getpid()))
            path = folder / f"progress-rank{rank}.txt"
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, f"{line}\n".encode())  # one unbuffered write: survives a kill

    def on_train_start(self, trainer, pl_module) -> None:
        self._write(trainer, f"start {pl_module.generator_steps_done}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._write(trainer, f"{pl_module.generator_steps_done} {time.time():.6f}")


class SlowCheckpointIO(AtomicCheckpointIO):
    """Atomic writer that pauses ``delay`` seconds half-way through every file."""

    def __init__(self, delay: float = 0.5) -> None:
        super().__init__()
        self.delay = delay

    def write(self, checkpoint: dict[str, Any], file: IO[bytes]) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        data = buffer.getvalue()
        half = len(data) // 2
        file.write(data[:half])
        file.flush()
        os.fsync(file.fileno())
        time.sleep(self.delay)
        file.write(data[half:])


# ------------------------------------------------------------------- the trial
def mgan_command() -> list[str]:
    """The installed ``mgan`` console script of this interpreter's environment."""
    exe = Path(sys.executable).with_name("mgan")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "mgan_lightning.cli"]


def child_env(crash_dir: Path) -> dict[str, str]:
    crash_dir.mkdir(parents=True, exist_ok=True)
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {
        **os.environ,
        "MGAN_CRASH_DIR": str(crash_dir),
        "PYTHONPATH": pythonpath,
        "OMP_NUM_THREADS": "1",
        "PL_DISABLE_FORK": "1",
    }


def write_config(
    path: Path,
    run_dir: Path,
    *,
    total: int,
    every: int,
    write_delay: float | None,
    num_train: int = 2000,
    hidden: int = 32,
) -> Path:
    """``configs/ring/gan.yaml`` made small: ``total`` generator steps, a checkpoint every
    ``every`` (``save_last: true``), the schedules and the moving average active in the second
    half (their state must resume too), no logger or evaluation; the progress recorder, and
    the slow writer when ``write_delay`` is given."""
    config = yaml.safe_load((ROOT / "configs" / "ring" / "gan.yaml").read_text())
    trainer = config["trainer"]
    trainer.update(
        default_root_dir=str(run_dir),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer["callbacks"] = [
        {
            "class_path": "mgan_lightning.callbacks.GeneratorStepCheckpoint",
            "init_args": {
                "dirpath": str(run_dir / "checkpoints"),
                "save_last": True,
                "every_n_generator_steps": every,
            },
        },
        {"class_path": "tests.crash_probe.ProgressRecorder"},
    ]
    if write_delay is not None:
        trainer["plugins"] = [
            {
                "class_path": "tests.crash_probe.SlowCheckpointIO",
                "init_args": {"delay": write_delay},
            }
        ]
    model = config["model"]["init_args"]
    model["max_generator_steps"] = total
    arch = model["architecture"]["init_args"]
    arch.update(g_hidden=hidden, d_hidden=hidden)
    half = total // 2
    for name in ("scheduler_g", "scheduler_d"):
        model[name]["init_args"] = {"start": half, "end": total}
    model["ema_start"] = half
    config["data"]["init_args"]["num_train"] = num_train
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def read_progress(crash_dir: Path, rank: int = 0) -> tuple[int | None, int | None]:
    """(generator step training started from, last generator step completed) of an attempt."""
    path = crash_dir / f"progress-rank{rank}.txt"
    if not path.exists():
        return None, None
    start = last = None
    for line in path.read_text().splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "start":
            start = last = int(words[1])
        elif len(words) == 2 and words[0].isdigit():
            last = int(words[0])
    return start, last


def seconds_per_step(crash_dir: Path, rank: int = 0) -> float:
    """Median wall time of a generator step in an attempt's progress file."""
    path = crash_dir / f"progress-rank{rank}.txt"
    times = [
        float(w[1])
        for w in (line.split() for line in path.read_text().splitlines())
        if len(w) == 2 and w[0].isdigit()
    ]
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    return gaps[len(gaps) // 2] if gaps else 0.01


def checkpoint_step(path: Path) -> int | None:
    """The generator step a checkpoint holds, loaded as ``mgan fit --ckpt_path`` would check
    it (``weights_only=True``); ``None`` if it cannot be loaded."""
    from mgan_lightning.cli import checkpoint_problem

    if checkpoint_problem(str(path)) is not None:
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state["state_dict"]["generator_step"])


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.tmp-*")) if folder.exists() else []


def training_state(path: Path) -> dict[str, Any]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: state[k] for k in ("state_dict", "optimizer_states", "lr_schedulers", "loops")}


def bitwise_equal(a: Any, b: Any) -> bool:
    """Tensors compared with ``torch.equal`` (bit for bit, dtype and shape included)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(bitwise_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(bitwise_equal(x, y) for x, y in zip(a, b))
    return a == b


@dataclass
class Kill:
    """One SIGKILL and what it cost."""

    attempt: int
    kind: str  # "random", "during gstep write", "during last.ckpt write", "during startup"
    started_from: int  # generator step the killed attempt started training from
    step_at_kill: int | None  # last generator step completed before the kill (None: not started)
    seconds_after_start: float
    temp_files_left: list[str]
    checkpoints: dict[str, int | None]  # every *.ckpt file -> its generator step (None: unloadable)
    resumed_from: int  # generator step of last.ckpt, the next attempt's --ckpt_path
    steps_lost: int
    steps_since_checkpoint: int  # steps since the newest checkpoint file that was complete
    all_loadable: bool  # every *.ckpt file loads, and last.ckpt exists once one was saved
    # last.ckpt holds the newest checkpoint step, or the one before when the kill fell in the
    # step whose checkpoint was being saved (gstep=N.ckpt is written first, then last.ckpt)
    within_bound: bool


@dataclass
class Trial:
    total: int
    every: int
    seed: int
    write_delay: float
    kills: list[Kill] = field(default_factory=list)
    uninterrupted_seconds: float = 0.0
    interrupted_seconds: float = 0.0
    final_step: int | None = None
    bitwise_identical: bool = False
    differing: list[str] = field(default_factory=list)
    temp_files_at_end: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _wait_for(condition, proc: subprocess.Popen, timeout: float, poll: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def run_fit(config: Path, crash_dir: Path, ckpt: Path | None = None) -> subprocess.Popen:
    command = [*mgan_command(), "fit", "--config", str(config)]
    if ckpt is not None:
        command.append(f"--ckpt_path={ckpt}")
    return subprocess.Popen(
        command,
        cwd=crash_dir,
        env=child_env(crash_dir),
        stdout=open(crash_dir / "stdout.txt", "w"),
        stderr=open(crash_dir / "stderr.txt", "w"),
    )


def kill_resume_trial(
    workdir: Path,
    kinds: list[str],
    *,
    total: int = 60,
    every: int = 10,
    seed: int = 0,
    write_delay: float = 0.4,
    timeout: float = 120.0,
    log=print,
) -> Trial:
    """An uninterrupted ``mgan fit`` and the same run killed with SIGKILL once per entry of
    ``kinds`` and resumed from ``last.ckpt`` each time. Kinds: ``random`` (a seeded random
    generator step in the next two checkpoint intervals, then a seeded random fraction of a
    step), ``during gstep write`` /
    ``during last.ckpt write`` (half-way through writing a ``gstep=N.ckpt`` / ``last.ckpt``
    file: :class:`SlowCheckpointIO` pauses there), ``during startup`` (a seeded random moment
    in the first seconds: imports, restoring the checkpoint). Returns what each kill cost and
    whether the two runs end bitwise identical."""
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    trial = Trial(total=total, every=every, seed=seed, write_delay=write_delay)
    ref_dir, run_dir = workdir / "uninterrupted", workdir / "killed"

    # the uninterrupted run
    config = write_config(
        workdir / "reference.yaml", ref_dir, total=total, every=every, write_delay=None
    )
    began = time.monotonic()
    crash_dir = _attempt_dir(workdir, "reference")
    proc = run_fit(config, crash_dir)
    if proc.wait(timeout=timeout) != 0:
        raise RuntimeError(_failure(crash_dir, "uninterrupted run failed"))
    trial.uninterrupted_seconds = round(time.monotonic() - began, 2)
    step_seconds = seconds_per_step(crash_dir)
    ms = step_seconds * 1e3
    log(f"uninterrupted run: {trial.uninterrupted_seconds:.1f} s, {ms:.1f} ms a step")

    config = write_config(
        workdir / "killed.yaml", run_dir, total=total, every=every, write_delay=write_delay
    )
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    resumed_from = 0
    began = time.monotonic()
    for attempt, kind in enumerate(kinds):
        crash_dir = _attempt_dir(workdir, f"attempt{attempt}")
        spawned = time.monotonic()
        proc = run_fit(config, crash_dir, last if last.exists() else None)
        mine = f".tmp-{proc.pid}"  # this attempt's temp files, not a killed one's leftovers
        if kind == "during startup":
            delay = rng.uniform(1.0, 4.0)
            condition = lambda t0=spawned, d=delay: time.monotonic() - t0 >= d  # noqa: E731
        elif kind == "random":
            # within the next two checkpoint intervals, so that kills spread over the run
            high = min(resumed_from + 2 * every, total - every // 2)
            target = rng.randint(resumed_from + 1, max(resumed_from + 1, high))
            pause = rng.random() * step_seconds
            condition = lambda c=crash_dir, n=target: (read_progress(c)[1] or -1) >= n  # noqa: E731
        elif kind in ("during gstep write", "during last.ckpt write"):
            prefix = "gstep=" if kind == "during gstep write" else "last.ckpt"
            pause = write_delay / 2
            condition = lambda p=prefix, m=mine: any(  # noqa: E731
                n.startswith(p) and n.endswith(m) for n in temp_files(ckpt_dir)
            )
        else:
            raise ValueError(f"unknown kind of kill {kind!r}")
        if not _wait_for(condition, proc, timeout):
            proc.kill()
            raise RuntimeError(
                _failure(crash_dir, f"attempt {attempt} ({kind}) ended before its kill")
            )
        if kind != "during startup":
            time.sleep(pause)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed_at = time.monotonic() - spawned

        start, step = read_progress(crash_dir)
        start = resumed_from if start is None else start
        done = start if step is None else step
        left = temp_files(ckpt_dir)
        checkpoints = {p.name: checkpoint_step(p) for p in sorted(ckpt_dir.glob("*.ckpt"))}
        all_loadable = all(v is not None for v in checkpoints.values())
        new_resume = checkpoints.get("last.ckpt") or 0
        newest = max((v for v in checkpoints.values() if v is not None and v <= done), default=0)
        # last.ckpt holds the newest checkpoint step, or the one before when the kill fell in
        # the step whose checkpoint was being saved (gstep=N.ckpt is written, then last.ckpt)
        boundary = every * (done // every)
        within = new_resume == boundary or (
            done == boundary > start and new_resume == boundary - every
        )
        kill = Kill(
            attempt=attempt,
            kind=kind,
            started_from=start,
            step_at_kill=step,
            seconds_after_start=round(killed_at, 2),
            temp_files_left=left,
            checkpoints=checkpoints,
            resumed_from=new_resume,
            steps_lost=done - new_resume,
            steps_since_checkpoint=done - newest,
            all_loadable=all_loadable and (last.exists() or new_resume == 0),
            within_bound=within,
        )
        trial.kills.append(kill)
        log(
            f"kill {attempt} ({kind}) {killed_at:.1f} s after start: step {step} (from {start}), "
            f"temp files {left}, resume from {new_resume}, lost {kill.steps_lost}"
        )
        resumed_from = new_resume

    # the last attempt runs to the end
    crash_dir = _attempt_dir(workdir, "final")
    proc = run_fit(config, crash_dir, last if last.exists() else None)
    if proc.wait(timeout=timeout) != 0:
        raise RuntimeError(_failure(crash_dir, "the final resumed run failed"))
    trial.interrupted_seconds = round(time.monotonic() - began, 2)
    trial.temp_files_at_end = temp_files(ckpt_dir)
    trial.final_step = checkpoint_step(last)
    a, b = training_state(ref_dir / "checkpoints" / "last.ckpt"), training_state(last)
    trial.differing = [k for k in a if not bitwise_equal(a[k], b[k])]
    trial.bitwise_identical = not trial.differing
    log(f"final step {trial.final_step}, bitwise identical: {trial.bitwise_identical}")
    return trial


def _attempt_dir(workdir: Path, name: str) -> Path:
    folder = workdir / "attempts" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _failure(crash_dir: Path, message: str) -> str:
    err = (crash_dir / "stderr.txt").read_text() if (crash_dir / "stderr.txt").exists() else ""
    return f"{message}\n{err[-3000:]}"


def plan(kills: int, seed: int = 0) -> list[str]:
    """``kills`` kinds of kill: one during a ``gstep=N.ckpt`` write, one during a
    ``last.ckpt`` write (the window between the two files), one during start-up when there
    are five or more, the rest at seeded random moments; shuffled by ``seed``."""
    kinds = ["during gstep write", "during last.ckpt write"]
    if kills >= 5:
        kinds.append("during startup")
    kinds += ["random"] * max(0, kills - len(kinds))
    kinds = kinds[:kills]
    random.Random(seed).shuffle(kinds)
    return kinds


# ---------------------------------------------------------- DDP: one process dies
def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux ``/proc``)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(name))
    return found


def runs_python(pid: int) -> bool:
    """Whether process ``pid`` is a Python interpreter (the ``mgan`` script included)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
    except OSError:
        return False
    return b"python" in command or b"mgan" in command


def launched_as_rank(pid: int, rank: int) -> bool:
    """Whether process ``pid`` runs with ``LOCAL_RANK=<rank>`` in its environment, as
    Lightning's launcher starts each worker: a helper that rank 0 forks (a shell, ``uname``)
    carries rank 0's environment instead, and so does rank 1 itself before its ``exec``."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environment = f.read().split(b"\0")
    except OSError:
        return False
    return f"LOCAL_RANK={rank}".encode() in environment


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@dataclass
class PeerDeath:
    """One DDP run in which one process was killed, and how the other one ended."""

    victim: int  # rank killed with SIGKILL
    moment: str  # "training" (both past generator step 20) or "startup" (rank 1 importing)
    step_at_kill: int | None  # the survivor's last completed generator step
    seconds_to_exit: float | None  # from the kill to the survivor's exit (None: still running)
    exit_code: int | None  # the survivor's (known when it is rank 0, our child)
    message: str  # the survivor's one-line error, if it printed one


def ddp_death_trial(
    workdir: Path, victim: int, moment: str = "training", limit: float = 90.0, every: int = 10
) -> PeerDeath:
    """Start ``mgan fit --trainer.devices=2`` on CPU (gloo; Lightning launches rank 1 as a
    child of rank 0), SIGKILL rank ``victim`` at ``moment``, and time how long the survivor
    takes to exit (at most ``limit`` seconds, then it is killed and counted as hung)."""
    workdir.mkdir(parents=True, exist_ok=True)
    run_dir = workdir / "run"
    config = write_config(
        workdir / "ddp.yaml", run_dir, total=100_000, every=every, write_delay=None
    )
    data = yaml.safe_load(config.read_text())
    data["trainer"]["devices"] = 2
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    crash_dir = _attempt_dir(workdir, f"ddp-kill-rank{victim}-{moment}")
    proc = run_fit(config, crash_dir)
    pids: dict[int, int] = {}
    try:
        if moment == "startup":  # rank 1 exists, still importing; rank 0 then waits for it
            # rank 1 is the child running Python with LOCAL_RANK=1; short-lived helper
            # children (a shell, uname, ...) come and go during start-up, and a forked helper
            # looks like rank 0 until it execs, so read the list once per poll
            rank1: list[int] = []

            def rank1_started() -> bool:
                rank1[:] = [
                    c for c in children_of(proc.pid) if runs_python(c) and launched_as_rank(c, 1)
                ]
                return bool(rank1)

            if not _wait_for(rank1_started, proc, limit):
                raise RuntimeError(_failure(crash_dir, "rank 1 was never started"))
            pids = {0: proc.pid, 1: rank1[0]}
            time.sleep(0.5)
        elif moment == "training":
            both = lambda: all((read_progress(crash_dir, r)[1] or 0) >= 20 for r in (0, 1))  # noqa: E731
            if not _wait_for(both, proc, limit * 2):
                raise RuntimeError(_failure(crash_dir, "DDP training did not reach step 20"))
            pids = {r: int((crash_dir / f"pid-rank{r}").read_text()) for r in (0, 1)}
        else:
            raise ValueError(f"unknown moment {moment!r}")
        survivor = 1 - victim
        os.kill(pids[victim], signal.SIGKILL)
        killed = time.monotonic()
        step = read_progress(crash_dir, survivor)[1]
        if victim == 0:
            proc.wait()  # reap it; rank 1 is now an orphan
        exit_code = None
        if survivor == 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                exit_code = proc.wait(timeout=limit)
            ended = proc.poll() is not None
        else:
            ended = _wait_until(lambda: not running(pids[1]), limit)
        seconds = round(time.monotonic() - killed, 2) if ended else None
    finally:
        for pid in [*pids.values(), proc.pid, *children_of(proc.pid)]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.2)
    err = (crash_dir / "stderr.txt").read_text()
    lines = [line for line in err.splitlines() if "another training process died" in line]
    return PeerDeath(victim, moment, step, seconds, exit_code, lines[-1] if lines else "")


def _wait_until(condition, timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(poll)
    return condition()


__all__ = [
    "Kill",
    "PeerDeath",
    "ddp_death_trial",
    "ProgressRecorder",
    "SlowCheckpointIO",
    "Trial",
    "bitwise_equal",
    "kill_resume_trial",
    "plan",
]
