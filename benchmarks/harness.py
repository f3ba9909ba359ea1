"""The benchmark harness: seeds fanned out through ``mgan fit``, finished runs reused by
configuration hash, provenance with every result.

A protocol (``benchmarks/coverage.py``, ``benchmarks/stacked_mnist.py``) names a config, the
seeds and any overrides; for each seed S, one run at a time, the harness runs what a user
runs,

    mgan fit --config CONFIG --seed_everything=S --trainer.default_root_dir=RUNS/NAME/seedS ...

as a subprocess with one thread, and the protocol reads what the run's logger wrote (the
CSVLogger's ``metrics.csv``), never the console. A finished run is reused when its folder
holds the same *effective* configuration: the config as the CLI resolves it for that seed
and those overrides (defaults filled in, interpolations resolved, the run folder left out).
A config rewritten to the same effect keeps its runs; anything that reaches the experiment
trains again. A protocol that needs a figure a callback keeps without logging it (the
library's ``GeneratorStepRate``) runs the same command through :func:`fit_and_record`.

Run the protocols as modules from the repository root (``python -m benchmarks.coverage``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "benchmarks"
RECORD = "harness.json"  # what the harness knows of a run, in the run's folder
KEPT = "callback_results.json"  # what the run's callbacks kept and did not log


# ------------------------------------------------------------------ provenance
def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def git_state() -> dict[str, Any]:
    """``{"commit": HEAD, "dirty_files": ["M path", ...]}``: tracked files changed since HEAD
    (untracked files, such as results being written, do not count); ``"unknown"`` outside a
    git checkout."""
    try:
        commit = _git("rev-parse", "HEAD").strip()
        status = _git("status", "--porcelain", "--untracked-files=no").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty_files": []}
    return {"commit": commit, "dirty_files": [line.strip() for line in status]}


def provenance(threads: int = 1) -> dict[str, Any]:
    """Which code, libraries, machine and command produced a result."""
    import lightning
    import torch

    hardware = f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        hardware += ", " + torch.cuda.get_device_name(0)
    return {
        "command": shlex.join(["python", "-m", module_name(), *sys.argv[1:]]),
        "git": git_state(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "lightning": lightning.__version__,
        },
        "hardware": hardware,
        "threads_per_run": threads,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def cpu_model() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``, else what ``platform`` knows): runs
    repeat bit for bit on one machine only, so a result says which CPU made it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def module_name() -> str:
    """The protocol's module as ``python -m`` names it (``benchmarks.coverage``)."""
    main = Path(sys.argv[0]).resolve()
    if main.is_relative_to(ROOT):
        return ".".join(main.relative_to(ROOT).with_suffix("").parts)
    return str(sys.argv[0])


# ------------------------------------------------------------------------ runs
def fit_arguments(config: str, seed: int, overrides: list[str]) -> list[str]:
    return ["--config", config, f"--seed_everything={seed}", *overrides]


def effective_config(config: str, seed: int, overrides: list[str]) -> tuple[str, Any]:
    """The configuration ``mgan fit`` would run for this seed, as YAML text, and the CLI built
    from it (its ``model`` and ``datamodule`` untrained), for protocols that need e.g. the
    known modes.

    The text is the parsed configuration as jsonargparse dumps it (every default filled, the
    command's own changes made, version comment lines dropped) but for the Trainer's
    callbacks and logger, which come under ``trainer_as_built`` as the command builds them,
    each with its plain-valued public attributes: what ``mgan`` adds when the config does not
    say (evaluation, checkpoints, logger) counts the same as what a file says. The run folder is
    the config's own and paths inside the repository are written relative to it."""
    import yaml

    from mgan_lightning.cli import build_cli

    with warnings.catch_warnings():  # Lightning warns that this process has arguments of its own
        warnings.simplefilter("ignore")
        cli = build_cli(fit_arguments(config, seed, overrides), run=False)
    parsed = cli.config.clone()  # callbacks and logger: as built, below
    parsed.trainer.callbacks = parsed.trainer.logger = None
    text = cli.parser.dump(parsed, skip_none=False, skip_check=True)
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    plain = (int, float, str, bool, type(None))
    trainer: Any = cli.trainer
    built: list[dict[str, Any]] = [
        {k: v for k, v in vars(item).items() if not k.startswith("_") and isinstance(v, plain)}
        | {"class_path": f"{type(item).__module__}.{type(item).__qualname__}"}
        for item in [*trainer.callbacks, *trainer.loggers]
    ]
    lines.append(yaml.safe_dump({"trainer_as_built": built}, sort_keys=True).rstrip())
    return "\n".join(lines).replace(str(ROOT) + os.sep, ""), cli


@dataclass
class Run:
    """One finished ``mgan fit``: its folder, the command as a user types it, the hash of
    its effective configuration and whether it was reused."""

    seed: int
    folder: Path
    command: str
    config_hash: str
    wall_seconds: float
    git_commit: str
    reused: bool
    setup: Any = field(default=None, repr=False)  # the CLI built from the effective config

    def record(self) -> dict[str, Any]:
        folder = self.folder.relative_to(ROOT) if self.folder.is_relative_to(ROOT) else self.folder
        return {
            "seed": self.seed,
            "run_dir": str(folder),
            "train_command": self.command,
            "config_hash": self.config_hash,
            "wall_seconds": self.wall_seconds,
            "git_commit": self.git_commit,
            "reused": self.reused,
        }


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def fit(
    name: str,
    config: str,
    seed: int,
    overrides: list[str],
    threads: int = 1,
    force: bool = False,
    runs: Path = RUNS,
    keep_results: bool = False,
) -> Run:
    """Run (or reuse) ``mgan fit`` of one seed under ``runs/<name>/seed<S>``. With
    ``keep_results`` it runs through :func:`fit_and_record`, which also writes what the run's
    callbacks kept and did not log to ``KEPT`` in that folder."""
    text, setup = effective_config(config, seed, overrides)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = (runs / name / f"seed{seed}").resolve()
    shown = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    args = [*fit_arguments(config, seed, overrides), f"--trainer.default_root_dir={shown}"]
    command = shlex.join(["mgan", "fit", *args])
    done = folder / RECORD
    if done.exists() and not force:
        old = json.loads(done.read_text())
        if old.get("config_hash") == digest and old.get("returncode") == 0:
            return Run(
                seed, folder, command, digest, old["wall_seconds"], old["git_commit"], True, setup
            )
    if folder.exists():  # a stale or partial run: start clean, as a user's fresh run would
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "effective_config.yaml").write_text(text + "\n")
    start = time.perf_counter()
    with open(folder / "train.log", "w") as log:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.harness" if keep_results else "mgan_lightning.cli"]
            + ["fit", *args],
            cwd=ROOT,
            env=thread_env(threads),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    wall = time.perf_counter() - start
    commit = git_state()["commit"]
    record = {"config_hash": digest, "command": command, "returncode": proc.returncode}
    done.write_text(json.dumps({**record, "wall_seconds": wall, "git_commit": commit}, indent=2))
    if proc.returncode != 0:
        raise RuntimeError(
            f"seed {seed}: mgan fit exited {proc.returncode}; see {folder}/train.log"
        )
    return Run(seed, folder, command, digest, wall, commit, False, setup)


# ------------------------------------------------------------------ logger files
def logged(folder: Path) -> dict[int, dict[str, float]]:
    """What the run's CSVLogger wrote (the newest ``metrics.csv`` under ``folder``), merged
    by step: ``{step: {key: value}}``, empty cells left out."""
    files = sorted(folder.rglob("metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"no metrics.csv under {folder}: the config needs a CSVLogger")
    steps: dict[int, dict[str, float]] = {}
    with open(files[-1], newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.pop("step")))
            values = {k: float(v) for k, v in row.items() if v not in ("", None)}
            steps.setdefault(step, {}).update(values)
    return steps


def final(folder: Path, key: str) -> tuple[int, dict[str, float]]:
    """``(step, values)`` of the last logged step that has ``key``."""
    steps = logged(folder)
    with_key = [s for s in sorted(steps) if key in steps[s]]
    if not with_key:
        raise KeyError(f"{key} never logged under {folder}")
    return with_key[-1], steps[with_key[-1]]


# --------------------------------------------------------------------- results
def mean_se(values: list[float]) -> dict[str, float | int | None]:
    """Mean and standard error (sample std / sqrt(n)) of the finite values."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return {"mean": None, "se": None, "n": 0}
    mean = sum(finite) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1) / n) if n > 1 else 0.0
    return {"mean": mean, "se": se, "n": n}


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every protocol shares; what follows ``--`` goes to ``mgan fit``."""
    p = argparse.ArgumentParser(description=description, epilog="After --: mgan fit arguments.")
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="default 0-9")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--force", action="store_true", help="retrain runs that could be reused")
    p.add_argument("--runs", type=Path, default=RUNS, help="where runs go (runs/benchmarks)")
    return p


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(own arguments, arguments after --)``."""
    if "--" not in argv:
        return list(argv), []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def fit_and_record() -> None:
    """``python -m benchmarks.harness fit ARGS``: ``mgan fit ARGS`` in this process, then the
    ``result`` dict each of the Trainer's callbacks kept without logging it (the library's
    ``GeneratorStepRate``: steps per second after its warm-up, peak memory) into ``KEPT`` in
    the run folder, keyed by class name."""
    from mgan_lightning import console
    from mgan_lightning.cli import build_cli

    console.quiet()
    cli = build_cli()  # reads sys.argv, as the mgan command does
    trainer: Any = cli.trainer
    results = [(type(c).__name__, getattr(c, "result", None)) for c in trainer.callbacks]
    if trainer.is_global_zero:  # under DDP: process 0's figures
        kept = {k: v for k, v in results if isinstance(v, dict)}
        write_json(Path(trainer.default_root_dir) / KEPT, kept)


if __name__ == "__main__":
    fit_and_record()
