"""Mode coverage of one config over N seeds, by the PacGAN protocol, through the public CLI.

For every seed S the script runs exactly what a user runs,

    mgan fit --config CONFIG --seed_everything=S --trainer.default_root_dir=RUN/seedS [OVERRIDES]

(the data seed follows ``seed_everything`` through the config's interpolation), as a
subprocess with one thread, at most ``--jobs`` at once. When a run ends, its final model
(``last.ckpt``, else the newest checkpoint) is rebuilt from the same config and scored by the
PacGAN protocol with :class:`mgan_lightning.metrics.ModeCoverage`: 2,500 samples; a sample is
high quality within 3 std of its nearest mode; a mode is covered if one high-quality sample
has it as nearest mode; reverse KL of the high-quality histogram against the mode weights.

Writes ``benchmarks/results/<data>_<method>.json`` (after every finished seed, so an
interrupted benchmark keeps what finished): the exact command, git commit, seeds, per-seed
modes / high-quality % / reverse KL / wall time, and mean +- standard error over seeds.

    python benchmarks/coverage.py --config configs/ring/gan.yaml --seeds 10 --jobs 2
    python benchmarks/coverage.py --config configs/grid/mgan.yaml --seeds 10 \\
        -- --model.init_args.beta=0.05

Arguments after ``--`` are passed to ``mgan fit`` unchanged (and recorded). Seeds whose
result is already in the run directory (same config text and overrides) are reused;
``--force`` retrains them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METRICS = ("modes", "high_quality", "reverse_kl")
# The ModeCoverageEvaluation callback's summary line at the end of fit (a cross-check).
CALLBACK_LINE = re.compile(
    r"Mode coverage at generator step (\d+) \((\d+) samples\): modes covered (\d+)/(\d+), "
    r"high-quality samples ([\d.]+)%, reverse KL ([-\w.]+)"
)


# ------------------------------------------------------------------ helpers
def mean_se(values: list[float]) -> dict[str, float | int | None]:
    """Mean and standard error (sample std / sqrt(n)) of the finite values."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return {"mean": None, "se": None, "n": 0}
    mean = sum(finite) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1) / n) if n > 1 else 0.0
    return {"mean": mean, "se": se, "n": n}


def kl_text(kl: float) -> str:
    """A reverse KL as printed: 3 decimals, or words when it is undefined (NaN)."""
    return "undefined (no high-quality samples)" if math.isnan(kl) else f"{kl:.3f}"


def thread_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def mgan_command() -> list[str]:
    """The ``mgan`` console script of this interpreter's environment (or ``python -m``)."""
    script = Path(sys.executable).with_name("mgan")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mgan_lightning.cli"]


def find_checkpoint(run_dir: Path) -> Path | None:
    last = sorted(run_dir.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    if last:
        return last[-1]
    every = sorted(run_dir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return every[-1] if every else None


def parse_callback_line(log_text: str) -> dict[str, float] | None:
    """The last train-end summary the ModeCoverageEvaluation callback printed, if any."""
    matches = CALLBACK_LINE.findall(log_text)
    if not matches:
        return None
    step, samples, modes, total, hq, kl = matches[-1]
    return {
        "generator_step": int(step),
        "num_samples": int(samples),
        "modes": float(modes),
        "total_modes": int(total),
        "high_quality": float(hq) / 100,
        "reverse_kl": math.nan if kl == "undefined" else float(kl),  # no high-quality sample
    }


# ------------------------------------------------------------- evaluation
def load_trained(
    config: str, seed: int, run_dir: str, checkpoint: str, overrides: list[str]
) -> tuple:
    """``(model, datamodule, checkpoint_state, cli)``: the config's model and data rebuilt as
    ``mgan fit`` built them for this seed, with the checkpoint's weights loaded."""
    import torch

    from mgan_lightning.cli import build_cli

    cli = build_cli(
        [
            "--config",
            config,
            f"--seed_everything={seed}",
            f"--trainer.default_root_dir={run_dir}",
            *overrides,
        ],
        run=False,
    )
    model, data = cli.model, cli.datamodule
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model.on_load_checkpoint(state)  # as Lightning does: e.g. BourGAN's data-sized latent
    model.load_state_dict(state["state_dict"])
    if getattr(data, "modes", None) is None:
        data.setup("fit")
    return model, data, state, cli


def evaluate(
    config: str, seed: int, run_dir: str, checkpoint: str, num_samples: int, overrides: list[str]
) -> dict[str, object]:
    """Rebuild model and data from the config, load ``checkpoint``, score ``num_samples``.

    Runs in its own process (``coverage.py _evaluate ...``) with one thread."""
    import torch

    from mgan_lightning.metrics import ModeCoverage
    from mgan_lightning.metrics.mode_coverage import assign_modes

    torch.set_num_threads(1)
    model, data, state, cli = load_trained(config, seed, run_dir, checkpoint, overrides)
    if getattr(data, "modes", None) is None or getattr(data, "mode_std", None) is None:
        raise SystemExit(
            f"{type(data).__name__} has no known modes: mode coverage needs e.g. GaussianMixture2D"
        )
    metric = ModeCoverage(data.modes, data.mode_std, getattr(data, "mode_weights", None))
    torch.manual_seed(10_000 + seed)  # evaluation noise: fixed per seed, apart from training's
    model.eval()
    with torch.no_grad():
        samples, index = model.sample(num_samples)
    samples = samples.reshape(len(samples), -1).float()
    metric.update(samples)
    result: dict[str, object] = {k: float(v) for k, v in metric.compute().items()}
    # Which modes each generator covers (multi-generator methods): a diagnostic, not a figure
    # of the protocol.
    nearest, good = assign_modes(samples, metric.modes, metric.std, metric.threshold)
    result["modes_per_generator"] = [
        int(torch.unique(nearest[good & (index == k)]).numel())
        for k in range(int(index.max()) + 1 if len(index) else 0)
    ]
    result["total_modes"] = len(metric.modes)
    result["checkpoint_global_step"] = int(state.get("global_step", -1))
    gstep = state["state_dict"].get("generator_step")
    result["checkpoint_generator_step"] = int(gstep) if gstep is not None else None
    result["method_class"] = f"{type(model).__module__}.{type(model).__name__}"
    result["data_class"] = f"{type(data).__module__}.{type(data).__name__}"
    result["data_preset"] = (cli.config.get("data") or {}).get("init_args", {}).get("preset")
    return result


# ------------------------------------------------------------------- runs
class Benchmark:
    def __init__(self, args: argparse.Namespace, overrides: list[str]) -> None:
        self.args = args
        self.overrides = overrides
        config = Path(args.config).resolve()
        # run from the repository root, with the config named relative to it when inside it
        self.config = config.relative_to(ROOT) if config.is_relative_to(ROOT) else config
        self.config_text = config.read_text()
        self.config_hash = hashlib.sha256(
            (self.config_text + "\0" + "\0".join(overrides)).encode()
        ).hexdigest()[:16]
        data = self.config.parent.name
        method = self.config.stem
        self.name = args.name or f"{data}_{method}"
        self.data, self.method = data, method
        self.run_root = Path(args.run_dir or ROOT / "runs" / "benchmarks" / self.name).resolve()
        self.out = Path(args.out or RESULTS / f"{self.name}.json").resolve()
        self.seeds = (
            list(args.seed_list)
            if args.seed_list
            else list(range(args.first_seed, args.first_seed + args.seeds))
        )
        self.records: dict[int, dict] = {}
        self.failures: dict[int, str] = {}
        self.lock = threading.Lock()
        self.started = time.time()
        self.git = git_state()

    def train_command(self, seed: int, display: bool = False) -> list[str]:
        """The ``mgan fit`` command of one seed (run from the repository root); ``display``
        names the console script ``mgan`` and a run folder inside the repo relatively."""
        run_dir = self.run_root / f"seed{seed}"
        if display:
            if run_dir.is_relative_to(ROOT):
                run_dir = run_dir.relative_to(ROOT)
            prefix = ["mgan"]
        else:
            prefix = mgan_command()
        return [
            *prefix,
            "fit",
            "--config",
            str(self.config),
            f"--seed_everything={seed}",
            f"--trainer.default_root_dir={run_dir}",
            *self.overrides,
        ]

    def run_seed(self, seed: int) -> dict:
        run_dir = self.run_root / f"seed{seed}"
        record_path = run_dir / "coverage.json"
        if record_path.exists() and not self.args.force:
            record = json.loads(record_path.read_text())
            if record.get("config_hash") == self.config_hash:
                record["reused"] = True
                return record
        if run_dir.exists():  # a stale or partial run: start clean, as a user's fresh run would
            import shutil

            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        command = self.train_command(seed)
        env = thread_env(self.args.threads)
        log_path = run_dir / "train.log"
        start = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wall = time.perf_counter() - start
        log_text = log_path.read_text(errors="replace")
        if proc.returncode != 0:
            tail = "\n".join(log_text.splitlines()[-15:])
            raise RuntimeError(
                f"seed {seed}: mgan fit exited {proc.returncode}; log {log_path}:\n{tail}"
            )
        checkpoint = find_checkpoint(run_dir)
        if checkpoint is None:
            raise RuntimeError(
                f"seed {seed}: no checkpoint under {run_dir}; the config needs a "
                "ModelCheckpoint (save_last: true) or enable_checkpointing"
            )
        eval_cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_evaluate",
            "--config",
            str(self.config),
            "--seed",
            str(seed),
            "--run-dir",
            str(run_dir),
            "--checkpoint",
            str(checkpoint),
            "--num-samples",
            str(self.args.num_samples),
            "--",
            *self.overrides,
        ]
        ev = subprocess.run(eval_cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if ev.returncode != 0:
            raise RuntimeError(f"seed {seed}: evaluation failed:\n{ev.stderr[-3000:]}")
        result = json.loads(ev.stdout.strip().splitlines()[-1])
        record = {
            "seed": seed,
            **{k: result[k] for k in METRICS},
            "total_modes": result["total_modes"],
            "all_modes": result["modes"] == result["total_modes"],
            "wall_seconds": wall,
            "generator_steps": result["checkpoint_generator_step"],
            "global_steps": result["checkpoint_global_step"],
            "modes_per_generator": result["modes_per_generator"],
            "callback_train_end": parse_callback_line(log_text),
            "train_command": shlex.join(self.train_command(seed, display=True)),
            "executed": shlex.join(command),
            "checkpoint": str(
                checkpoint.relative_to(ROOT) if checkpoint.is_relative_to(ROOT) else checkpoint
            ),
            "method_class": result["method_class"],
            "data_class": result["data_class"],
            "data_preset": result["data_preset"],
            "config_hash": self.config_hash,
            "git_commit": self.git["commit"],
            "git_dirty": bool(self.git["dirty_files"]),
        }
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        return record

    def summary(self) -> dict:
        records = [self.records[s] for s in sorted(self.records)]
        import lightning
        import torch

        first = records[0] if records else {}
        return {
            "name": self.name,
            "data": self.data,  # the config's folder: ring, grid, grid_bourgan_paper
            "method": self.method,
            "method_class": first.get("method_class"),
            "config": str(self.config),
            "config_sha256_16": self.config_hash,
            "overrides": self.overrides,
            "command": "python "
            + shlex.join(
                [
                    str(Path(sys.argv[0]).resolve().relative_to(ROOT))
                    if Path(sys.argv[0]).resolve().is_relative_to(ROOT)
                    else sys.argv[0],
                    *sys.argv[1:],
                ]
            ),
            "train_command": (
                shlex.join(self.train_command(0, display=True))
                .replace("--seed_everything=0", "--seed_everything=SEED")
                .replace("seed0", "seedSEED")
            ),
            "git_commit": self.git["commit"],
            "git_dirty_files": self.git["dirty_files"],
            # seeds reused from earlier runs keep the commit they were trained at
            "git_commits_of_seeds": sorted(
                {r["git_commit"] for r in records if r.get("git_commit")}
            ),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, lightning "
            f"{lightning.__version__}",
            "threads_per_run": self.args.threads,
            "parallel_jobs": self.args.jobs,
            "protocol": {
                "num_samples": self.args.num_samples,
                "high_quality": "distance to nearest mode < 3 std",
                "mode_covered": ">= 1 high-quality sample nearest to it",
                "reverse_kl": "KL(histogram of high-quality samples over modes || mode weights)",
                "evaluated": "final model (last checkpoint), rebuilt from the config",
            },
            "seeds_requested": self.seeds,
            "seeds": [r["seed"] for r in records],
            "complete": len(records) == len(self.seeds),
            "failed": {str(k): v for k, v in self.failures.items()},
            "per_seed": records,
            "summary": {
                "modes": mean_se([r["modes"] for r in records]),
                "high_quality_percent": mean_se([100 * r["high_quality"] for r in records]),
                "reverse_kl": mean_se([r["reverse_kl"] for r in records]),
                "wall_seconds": mean_se([r["wall_seconds"] for r in records]),
            },
            "total_modes": first.get("total_modes"),
            "seeds_all_modes": sum(bool(r["all_modes"]) for r in records),
            "benchmark_wall_seconds": time.time() - self.started,
        }

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.summary(), indent=2) + "\n")
        tmp.replace(self.out)

    def run(self) -> int:
        print(
            f"{self.name}: {len(self.seeds)} seeds, {self.args.jobs} at once, runs under "
            f"{self.run_root}",
            flush=True,
        )
        print("  each: " + shlex.join(self.train_command(self.seeds[0])), flush=True)
        with ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            futures = {pool.submit(self.run_seed, s): s for s in self.seeds}
            for future in as_completed(futures):
                seed = futures[future]
                with self.lock:
                    try:
                        r = future.result()
                    except Exception as error:  # keep the other seeds going
                        self.failures[seed] = str(error)
                        print(f"  seed {seed}: FAILED: {error}", flush=True)
                    else:
                        self.records[seed] = r
                        print(
                            f"  seed {seed}: modes {r['modes']:.0f}/{r['total_modes']}, "
                            f"high quality {100 * r['high_quality']:.1f}%, reverse KL "
                            f"{kl_text(r['reverse_kl'])}, {r['wall_seconds']:.0f} s"
                            + (" (reused)" if r.get("reused") else ""),
                            flush=True,
                        )
                    if self.records:
                        self.write()
        if self.records:
            s = self.summary()["summary"]

            def fmt(m: dict, digits: int) -> str:
                if m["mean"] is None:
                    return "n/a"
                return f"{m['mean']:.{digits}f} +- {m['se']:.{digits}f}"

            print(
                f"{self.name}: modes {fmt(s['modes'], 1)}, high quality "
                f"{fmt(s['high_quality_percent'], 1)}%, reverse KL {fmt(s['reverse_kl'], 2)}, "
                f"{self.summary()['seeds_all_modes']}/{len(self.records)} seeds all modes; "
                f"wrote {self.out}",
                flush=True,
            )
        return 1 if self.failures else 0


# -------------------------------------------------------------------- CLI
def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(own arguments, arguments after --)``: what follows ``--`` goes to ``mgan fit``."""
    argv = list(argv)
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def main(argv: list[str] | None = None) -> int:
    argv, overrides = split_overrides(sys.argv[1:] if argv is None else argv)

    if argv and argv[0] == "_evaluate":  # internal: one evaluation in its own process
        p = argparse.ArgumentParser(prog="coverage.py _evaluate")
        p.add_argument("--config", required=True)
        p.add_argument("--seed", type=int, required=True)
        p.add_argument("--run-dir", required=True)
        p.add_argument("--checkpoint", required=True)
        p.add_argument("--num-samples", type=int, default=2500)
        a = p.parse_args(argv[1:])
        print(
            json.dumps(
                evaluate(a.config, a.seed, a.run_dir, a.checkpoint, a.num_samples, overrides)
            )
        )
        return 0

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- go to `mgan fit` unchanged.",
    )
    p.add_argument("--config", required=True, help="e.g. configs/ring/gan.yaml")
    p.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first..first+N-1")
    p.add_argument("--seed-list", type=int, nargs="+", help="explicit seeds instead")
    p.add_argument("--jobs", type=int, default=2, help="training runs at once (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--num-samples", type=int, default=2500, help="PacGAN protocol: 2,500")
    p.add_argument("--name", help="result name (default <config dir>_<config stem>)")
    p.add_argument("--run-dir", help="where runs go (default runs/benchmarks/<name>)")
    p.add_argument("--out", help="result JSON (default benchmarks/results/<name>.json)")
    p.add_argument("--force", action="store_true", help="retrain seeds that already have results")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.threads < 1:
        p.error("--jobs and --threads must be >= 1")
    if not Path(args.config).exists():
        p.error(f"no such config: {args.config}")
    return Benchmark(args, overrides).run()


if __name__ == "__main__":
    sys.exit(main())
