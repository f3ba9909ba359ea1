"""Time to coverage: generator steps and seconds until a method first holds every mode.

For each method config ``configs/<data>/<method>.yaml`` and seed S the script trains exactly
what ``benchmarks/coverage.py`` trains,

    mgan fit --config CONFIG --seed_everything=S --trainer.default_root_dir=RUN/seedS

built in-process the same way (``build_cli(args, run=False)``, then ``trainer.fit``), in a
subprocess per seed with one thread, and scores mode coverage every ``--every`` generator
steps by the PacGAN protocol (2,500 samples; high quality within 3 std of the nearest mode; a
mode is covered if one high-quality sample has it as nearest mode), with the config's own
``ModeCoverageEvaluation`` settings (samples, evaluation seed), scatter plots off. The run
stops at the first evaluation where **all modes are covered and >= 90% of the samples are
high quality**; a run that never gets there trains to the config's ``max_generator_steps``
(then "not reached"). The config's own ``ModeCoverageEvaluation`` (every 5,000 steps and at
the end) is replaced by this schedule; everything else (checkpoints, logger, progress bar)
is the config's. Evaluation draws from its own random stream, so it does not change what is
trained.

Per seed: the generator step of the first hit, the seconds from ``trainer.fit`` to it with the
evaluations' time subtracted (set-up such as BourGAN's embedding included; the train-loop
part alone is recorded too), and the curve (modes, high quality, reverse KL at every
evaluation). Per method and data: median steps and seconds over seeds, a seed that never
reaches counting as +infinity (so the median is "not reached" when at least half never
reach), and each median's ratio to the baseline GAN's on the same data.

    OMP_NUM_THREADS=1 python benchmarks/time_to_coverage.py
    python benchmarks/time_to_coverage.py --methods gan mgan mwu --data ring --seeds 3

Writes ``benchmarks/results/time_to_coverage.{json,md,png}`` (after every finished seed the
JSON). Seeds already finished with the same config text, ``--every``, ``--max-steps`` and
overrides are reused from ``runs/benchmarks/ttc_<data>_<method>/seedS/ttc.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "benchmarks"
DEFAULT_METHODS = ("gan", "mgan", "mimgan", "bourgan")
DEFAULT_DATA = ("ring", "grid")
HQ_TARGET = 0.90
BASELINE = "gan"


def _load_coverage():
    """benchmarks/coverage.py as a module (by path: ``coverage`` is also a PyPI package)."""
    spec = importlib.util.spec_from_file_location(
        "mgan_benchmarks_coverage", Path(__file__).with_name("coverage.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cov = _load_coverage()


def reached(result: dict[str, float], total_modes: int, hq_target: float = HQ_TARGET) -> bool:
    """The criterion: every mode covered and at least ``hq_target`` of the samples high
    quality."""
    return int(round(result["modes"])) >= total_modes and result["high_quality"] >= hq_target


# ---------------------------------------------------------------- the stop rule
class TimeToCoverage(Callback):
    """Evaluate every ``every`` generator steps; stop training at the first evaluation that
    meets :func:`reached` (or at generator step ``cap``).

    ``evaluate(trainer, pl_module)`` returns ``{"modes", "high_quality", "reverse_kl"}``
    (in the benchmark: :meth:`ModeCoverageEvaluation.evaluate`); its time is measured and
    subtracted from the training seconds. ``t0`` is the clock reading the seconds count from
    (set it just before ``trainer.fit``; default: ``on_fit_start``)."""

    def __init__(
        self,
        evaluate: Callable[[Trainer, LightningModule], dict[str, float]],
        total_modes: Callable[[], int] | int,
        every: int = 500,
        hq_target: float = HQ_TARGET,
        cap: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.evaluate_fn = evaluate
        self._total_modes = total_modes
        self.every = every
        self.hq_target = hq_target
        self.cap = cap
        self.clock = clock
        self.t0: float | None = None
        self.train_start: float | None = None
        self.eval_seconds = 0.0
        self.curve: list[dict[str, Any]] = []
        self.hit: dict[str, Any] | None = None
        self.last_step: int | None = None

    @property
    def total_modes(self) -> int:
        return self._total_modes() if callable(self._total_modes) else int(self._total_modes)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.t0 is None:
            self.t0 = self.clock()

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.train_start = self.clock()

    def check(self, trainer: Trainer, pl_module: LightningModule, step: int) -> dict[str, Any]:
        """Evaluate at ``step``, record it, and stop training if the criterion holds."""
        now = self.clock()
        t0 = self.t0 if self.t0 is not None else now
        start = self.train_start if self.train_start is not None else t0
        result = self.evaluate_fn(trainer, pl_module)
        spent = self.clock() - now
        total = self.total_modes
        point = {
            "generator_step": step,
            "modes": float(result["modes"]),
            "total_modes": total,
            "high_quality": float(result["high_quality"]),
            "reverse_kl": float(result.get("reverse_kl", math.nan)),
            # seconds up to this evaluation, earlier evaluations' time subtracted
            "train_seconds": now - t0 - self.eval_seconds,
            "train_loop_seconds": now - start - self.eval_seconds,
            "eval_seconds": spent,
            "reached": reached(result, total, self.hq_target),
        }
        self.eval_seconds += spent
        self.curve.append(point)
        self.last_step = step
        if point["reached"] and self.hit is None:
            self.hit = point
            trainer.should_stop = True
        if self.cap is not None and step >= self.cap:
            trainer.should_stop = True
        return point

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = cov_generator_step(trainer, pl_module)
        if step <= 0 or step == self.last_step or self.hit is not None:
            return
        if step % self.every == 0 or (self.cap is not None and step >= self.cap):
            self.check(trainer, pl_module, step)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        step = cov_generator_step(trainer, pl_module)
        if self.hit is None and step > 0 and step != self.last_step:  # the final model
            self.check(trainer, pl_module, step)


def cov_generator_step(trainer: Trainer, pl_module: LightningModule) -> int:
    from mgan_lightning.callbacks.evaluation import generator_step

    return generator_step(trainer, pl_module)


# ------------------------------------------------------------- one seed, in-process
def run_one(
    config: str, seed: int, run_dir: str, every: int, cap: int | None, overrides: list[str]
) -> dict[str, Any]:
    """Train ``config`` with ``seed`` as ``mgan fit`` would, with :class:`TimeToCoverage`
    instead of the config's ``ModeCoverageEvaluation``. Runs in its own process."""
    import torch

    from mgan_lightning.callbacks import ModeCoverageEvaluation
    from mgan_lightning.cli import build_cli

    torch.set_num_threads(1)
    load_start = os.getloadavg()
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
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    configured = [c for c in trainer.callbacks if isinstance(c, ModeCoverageEvaluation)]
    trainer.callbacks = [c for c in trainer.callbacks if c not in configured]
    base = configured[0] if configured else None
    evaluation = ModeCoverageEvaluation(
        every_n_steps=0,
        num_samples=base.num_samples if base else 2500,
        plot=False,
        batch_size=base.batch_size if base else 10_000,
        seed=base.seed if base else 1234,
    )

    def total_modes() -> int:
        modes = getattr(data, "modes", None)
        if modes is None:
            raise SystemExit(f"{type(data).__name__} has no known modes")
        return len(modes)

    stopper = TimeToCoverage(evaluation.evaluate, total_modes, every=every, cap=cap)
    trainer.callbacks.insert(0, stopper)
    stopper.t0 = time.perf_counter()
    trainer.fit(model, datamodule=data)
    fit_seconds = time.perf_counter() - stopper.t0
    final_step = cov_generator_step(trainer, model)
    hit = stopper.hit
    return {
        "reached": hit is not None,
        "steps": hit["generator_step"] if hit else None,
        "seconds": hit["train_seconds"] if hit else None,
        "train_loop_seconds": hit["train_loop_seconds"] if hit else None,
        "setup_seconds": (stopper.train_start or stopper.t0) - stopper.t0,
        "stopped_at_step": final_step,
        "max_generator_steps": model.max_generator_steps,
        "cap": cap,
        "evaluations": stopper.curve,
        "eval_seconds_total": stopper.eval_seconds,
        "fit_wall_seconds": fit_seconds,
        "num_samples": evaluation.num_samples,
        "evaluation_seed": evaluation.seed,
        "total_modes": total_modes(),
        "method_class": f"{type(model).__module__}.{type(model).__name__}",
        "torch_threads": torch.get_num_threads(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
    }


# ------------------------------------------------------------------ the benchmark
def median_or_none(values: list[float | None]) -> float | None:
    """Median with ``None`` (not reached) as +infinity; ``None`` if the median is infinite."""
    if not values:
        return None
    m = statistics.median([math.inf if v is None else v for v in values])
    return None if math.isinf(m) else m


class TimeToCoverageBenchmark:
    def __init__(self, args: argparse.Namespace, overrides: list[str]) -> None:
        self.args = args
        self.overrides = overrides
        self.out_dir = Path(args.out_dir).resolve()
        self.run_root = Path(args.run_dir).resolve()
        self.seeds = list(range(args.seeds))
        per_data = dict(item.split("=", 1) for item in args.seeds_per_data)
        self.jobs: list[tuple[str, str, int]] = []
        for data in args.data:
            seeds = self.seeds[: int(per_data[data])] if data in per_data else self.seeds
            self.jobs += [(data, method, s) for method in args.methods for s in seeds]
        # seed-major: an interrupted benchmark has every method on the first seeds
        self.jobs.sort(key=lambda j: (j[2], args.data.index(j[0]), args.methods.index(j[1])))
        self.records: dict[tuple[str, str, int], dict] = {}
        self.failures: dict[str, str] = {}
        self.lock = threading.Lock()
        self.started = time.time()
        self.load_start = os.getloadavg()
        self.git = cov.git_state()

    def config(self, data: str, method: str) -> Path:
        return Path("configs") / data / f"{method}.yaml"

    def config_hash(self, data: str, method: str) -> str:
        text = (ROOT / self.config(data, method)).read_text()
        key = "\0".join(
            [text, f"every={self.args.every}", f"cap={self.args.max_steps}", *self.overrides]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def run_dir(self, data: str, method: str, seed: int) -> Path:
        return self.run_root / f"ttc_{data}_{method}" / f"seed{seed}"

    def fit_command(self, data: str, method: str, seed: int) -> str:
        """The ``mgan fit`` command the seed's training equals (evaluation cadence aside)."""
        run_dir = self.run_dir(data, method, seed)
        shown = run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir
        return shlex.join(
            ["mgan", "fit", "--config", str(self.config(data, method)),
             f"--seed_everything={seed}", f"--trainer.default_root_dir={shown}",
             *self.overrides]
        )  # fmt: skip

    def run_seed(self, data: str, method: str, seed: int) -> dict:
        run_dir = self.run_dir(data, method, seed)
        record_path = run_dir / "ttc.json"
        digest = self.config_hash(data, method)
        if record_path.exists() and not self.args.force:
            record = json.loads(record_path.read_text())
            if record.get("config_hash") == digest:
                record["reused"] = True
                return record
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        command = [
            sys.executable, str(Path(__file__).resolve()), "_run",
            "--config", str(self.config(data, method)), "--seed", str(seed),
            "--run-dir", str(run_dir), "--every", str(self.args.every),
            "--result", str(run_dir / "result.json"),
        ]  # fmt: skip
        if self.args.max_steps:
            command += ["--max-steps", str(self.args.max_steps)]
        command += ["--", *self.overrides]
        start = time.perf_counter()
        with open(run_dir / "train.log", "w") as log:
            proc = subprocess.run(
                command, cwd=ROOT, env=cov.thread_env(1), stdout=log, stderr=subprocess.STDOUT
            )
        wall = time.perf_counter() - start
        if proc.returncode != 0 or not (run_dir / "result.json").exists():
            tail = "\n".join((run_dir / "train.log").read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"{data} {method} seed {seed}: exited {proc.returncode}:\n{tail}")
        result = json.loads((run_dir / "result.json").read_text())
        record = {
            "data": data,
            "method": method,
            "seed": seed,
            "config": str(self.config(data, method)),
            **result,
            "process_wall_seconds": wall,
            "fit_command": self.fit_command(data, method, seed),
            "executed": shlex.join(command),
            "config_hash": digest,
            "git_commit": self.git["commit"],
            "git_dirty": bool(self.git["dirty_files"]),
        }
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        return record

    # ------------------------------------------------------------ summaries
    def summaries(self) -> list[dict]:
        rows = []
        for data in self.args.data:
            for method in self.args.methods:
                recs = [
                    r for (d, m, _), r in sorted(self.records.items()) if (d, m) == (data, method)
                ]
                if not recs:
                    continue
                rows.append(
                    {
                        "data": data,
                        "method": method,
                        "config": str(self.config(data, method)),
                        "seeds": [r["seed"] for r in recs],
                        "seeds_reached": sum(r["reached"] for r in recs),
                        "seeds_not_reached": sum(not r["reached"] for r in recs),
                        "median_steps": median_or_none([r["steps"] for r in recs]),
                        "median_seconds": median_or_none([r["seconds"] for r in recs]),
                        "max_generator_steps": recs[0]["max_generator_steps"],
                        "total_modes": recs[0]["total_modes"],
                    }
                )
        for row in rows:
            base = next(
                (b for b in rows if b["data"] == row["data"] and b["method"] == BASELINE), None
            )
            for key in ("steps", "seconds"):
                mine, theirs = row[f"median_{key}"], base and base[f"median_{key}"]
                row[f"ratio_{key}_to_gan"] = mine / theirs if mine and theirs else None
        return rows

    def result(self) -> dict:
        import lightning
        import torch

        script = Path(sys.argv[0]).resolve()
        shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else sys.argv[0]
        return {
            "command": "OMP_NUM_THREADS=1 python " + shlex.join([str(shown), *sys.argv[1:]]),
            "git_commit": self.git["commit"],
            "git_dirty_files": self.git["dirty_files"],
            "git_commits_of_seeds": sorted({r["git_commit"] for r in self.records.values()}),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, torch {torch.__version__}, lightning "
            f"{lightning.__version__}; shared with other jobs",
            "threads_per_run": 1,
            "parallel_jobs": self.args.jobs,
            "load_average_start": self.load_start,
            "load_average_end": os.getloadavg(),
            "criterion": {
                "modes": "all modes covered",
                "high_quality_min": HQ_TARGET,
                "every_generator_steps": self.args.every,
                "num_samples": 2500,
                "high_quality": "distance to nearest mode < 3 std",
                "mode_covered": ">= 1 high-quality sample nearest to it",
                "seconds": "from trainer.fit to the evaluation that meets the criterion, "
                "evaluation time subtracted (set-up included; train_loop_seconds without it)",
                "not_reached": "counts as +infinity in the median",
            },
            "max_steps_cap": self.args.max_steps,
            "overrides": self.overrides,
            "methods": list(self.args.methods),
            "data": list(self.args.data),
            "seeds_requested": self.seeds,
            "seeds_per_data": self.args.seeds_per_data,
            "complete": len(self.records) == len(self.jobs),
            "failed": self.failures,
            "summaries": self.summaries(),
            "per_seed": [
                self.records[k]
                for k in sorted(
                    self.records,
                    key=lambda k: (
                        self.args.data.index(k[0]),
                        self.args.methods.index(k[1]),
                        k[2],
                    ),
                )
            ],
            "benchmark_wall_seconds": time.time() - self.started,
        }

    def write(self) -> dict:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        result = self.result()
        path = self.out_dir / "time_to_coverage.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(path)
        return result

    def run(self) -> int:
        print(f"time to coverage: {len(self.jobs)} runs, {self.args.jobs} at once", flush=True)
        with ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            futures = {pool.submit(self.run_seed, *job): job for job in self.jobs}
            for future in as_completed(futures):
                data, method, seed = futures[future]
                with self.lock:
                    try:
                        r = future.result()
                    except Exception as error:
                        self.failures[f"{data}/{method}/seed{seed}"] = str(error)
                        print(f"  {data} {method} seed {seed}: FAILED: {error}", flush=True)
                    else:
                        self.records[(data, method, seed)] = r
                        what = (
                            f"reached at step {r['steps']}, {r['seconds']:.1f} s"
                            if r["reached"]
                            else f"not reached by step {r['stopped_at_step']}"
                        )
                        print(
                            f"  {data} {method} seed {seed}: {what}"
                            + (" (reused)" if r.get("reused") else ""),
                            flush=True,
                        )
                    if self.records:
                        self.write()
        if not self.records:
            return 1
        result = self.write()
        write_markdown(result, self.out_dir / "time_to_coverage.md")
        write_plot(result, self.out_dir / "time_to_coverage.png")
        print(f"wrote {self.out_dir / 'time_to_coverage'}.{{json,md,png}}", flush=True)
        return 1 if self.failures else 0


# --------------------------------------------------------------------- reports
def _fmt(value: float | None, digits: int = 0, none: str = "not reached") -> str:
    return none if value is None else f"{value:,.{digits}f}"


def mwu_note() -> list[str]:
    """Why MWU is not in the default set, from the coverage benchmark's MWU results."""
    lines = []
    for data in ("ring", "grid"):
        path = RESULTS / f"{data}_mwu.json"
        if not path.exists():
            continue
        d = json.loads(path.read_text())
        hq = [(r["seed"], 100 * r["high_quality"]) for r in d["per_seed"]]
        best = max(hq, key=lambda x: x[1])
        above = [s for s, v in hq if v >= 100 * HQ_TARGET]
        lines.append(
            f"- {data} (`benchmarks/results/{data}_mwu.json`, `{d['config']}`, final mixture, "
            f"{len(hq)} seeds): high quality per seed "
            + ", ".join(f"{v:.1f}" for _, v in hq)
            + f" %; max {best[1]:.1f}% (seed {best[0]}); "
            + (
                f"{len(above)} of {len(hq)} seeds at >= {100 * HQ_TARGET:.0f}% at the end"
                if above
                else f"no seed reaches {100 * HQ_TARGET:.0f}%"
            )
        )
    return lines


def write_markdown(result: dict, path: Path) -> None:
    c = result["criterion"]
    lines = [
        "# Time to coverage",
        "",
        "Generator steps and seconds until a method **first** holds every mode with >= "
        f"{100 * c['high_quality_min']:.0f}% high-quality samples (PacGAN protocol, "
        f"{c['num_samples']:,} samples: high quality within 3 std of the nearest mode; a mode "
        "is covered if one high-quality sample has it as nearest mode), evaluated every "
        f"{c['every_generator_steps']:,} generator steps; training stops at that evaluation. "
        "Each run trains exactly its config (`configs/<data>/<method>.yaml`, the runs of "
        "`benchmarks/coverage.py`; the config's own every-5,000-step `ModeCoverageEvaluation` is "
        "replaced by this schedule, which samples from its own random stream and so does not "
        "change the training) up to its `max_generator_steps` (20,000); a seed that never "
        "meets the criterion is *not reached* and counts as +infinity in the median, so a "
        "median is *not reached* when at least half the seeds never reach. Ratios are to the "
        "baseline GAN's median on the same data (below 1: faster than the GAN). The criterion "
        "is met the first time one evaluation passes it (high quality moves by several points "
        "between evaluations, so a later evaluation can fall below 90% again); from generator "
        "step 10,000 the configs sample from the EMA generators and the learning rates decay.",
        "",
        "Seconds: from `trainer.fit` to the evaluation that meets the criterion, the "
        "evaluations' own time subtracted (set-up such as BourGAN's embedding included). "
        "They were measured on a **shared 2-core CPU with one thread per run** while other "
        "training jobs ran (load average "
        f"{result['load_average_start'][0]:.1f} at the start, "
        f"{result['load_average_end'][0]:.1f} at the end), so they are noisier than steps. "
        "The seconds ratio also differs from the steps ratio because a generator step costs "
        "more for some methods (steps/s per seed below).",
        "",
        "| data | method | seeds reaching | median steps | ratio to GAN | median seconds "
        "| ratio to GAN |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in result["summaries"]:
        n = len(s["seeds"])
        lines.append(
            f"| {s['data']} ({s['total_modes']} modes) | {s['method']} "
            f"| {s['seeds_reached']}/{n} | {_fmt(s['median_steps'])} "
            f"| {_fmt(s['ratio_steps_to_gan'], 2, 'n/a')} | {_fmt(s['median_seconds'], 1)} "
            f"| {_fmt(s['ratio_seconds_to_gan'], 2, 'n/a')} |"
        )
    lines += ["", "## Per seed", "", "| data | method | seed | steps | seconds | "
              "steps/s | set-up s | last evaluation: modes / HQ % | run |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in result["per_seed"]:
        last = r["evaluations"][-1] if r["evaluations"] else None
        final = (
            f"{last['modes']:.0f}/{last['total_modes']} / {100 * last['high_quality']:.1f}"
            if last
            else "-"
        )
        steps = _fmt(r["steps"], 0, f"not reached ({r['stopped_at_step']:,})")
        # training speed over the whole run (evaluations excluded)
        last_point = r["evaluations"][-1] if r["evaluations"] else None
        rate = (
            last_point["generator_step"] / last_point["train_loop_seconds"]
            if last_point and last_point["train_loop_seconds"] > 0
            else math.nan
        )
        lines.append(
            f"| {r['data']} | {r['method']} | {r['seed']} | {steps} | {_fmt(r['seconds'], 1, '-')} "
            f"| {rate:.0f} | {r['setup_seconds']:.1f} | {final} | `{r['fit_command']}` |"
        )
    seeds_note = result.get("seeds_per_data") or []
    if seeds_note:
        lines += [
            "",
            f"Fewer seeds for some data sets ({', '.join(seeds_note)}: the first "
            "seeds, 0..N-1): the full set would not have fitted the session's time.",
        ]
    if result.get("max_steps_cap"):
        lines += ["", f"Capped at {result['max_steps_cap']:,} generator steps (a test run)."]
    lines += [
        "",
        "## Why MWU is not in the default set",
        "",
        "MWU (`configs/<data>/mwu.yaml`) can be run with `--methods ... mwu`, but it is left out "
        "of the default set: its sampler is the uniform mixture of all generators trained so "
        "far, and that mixture's high-quality share at the end of training (the final models "
        "of `benchmarks/coverage.py`) is far below 90% on the grid and mostly below it on the "
        "ring (per seed below), so it would mostly train its whole budget and its median "
        "would read *not reached*:",
        "",
        *mwu_note(),
        "",
        "The plot (`time_to_coverage.png`): modes covered and high-quality % against generator "
        "steps, median over the seeds still training at each evaluation with a min/max band "
        "(a seed leaves the curve when it meets the criterion; dotted lines mark the median "
        "steps to coverage).",
        "",
        f"Command: `{result['command']}`  ",
        f"Commit: `{result['git_commit']}`"
        + (" (with uncommitted changes)" if result["git_dirty_files"] else "")
        + "  ",
        f"Machine: {result['machine']}, {result['threads_per_run']} thread per run, "
        f"{result['parallel_jobs']} run at a time.",
        "",
    ]
    path.write_text("\n".join(lines))


def write_plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data_sets = result["data"]
    fig, axes = plt.subplots(2, len(data_sets), figsize=(6 * len(data_sets), 7), squeeze=False)
    colours = {m: f"C{i}" for i, m in enumerate(result["methods"])}
    for col, data in enumerate(data_sets):
        summaries = {s["method"]: s for s in result["summaries"] if s["data"] == data}
        for method in result["methods"]:
            recs = [r for r in result["per_seed"] if r["data"] == data and r["method"] == method]
            if not recs:
                continue
            steps = sorted({e["generator_step"] for r in recs for e in r["evaluations"]})
            for row, (key, scale) in enumerate((("modes", 1), ("high_quality", 100))):
                med, lo, hi = [], [], []
                for step in steps:
                    vals = [
                        scale * e[key] for r in recs for e in r["evaluations"]
                        if e["generator_step"] == step
                    ]  # fmt: skip
                    med.append(statistics.median(vals))
                    lo.append(min(vals))
                    hi.append(max(vals))
                ax = axes[row][col]
                ax.plot(steps, med, color=colours[method], label=f"{method} ({len(recs)} seeds)")
                ax.fill_between(steps, lo, hi, color=colours[method], alpha=0.15)
                s = summaries.get(method)
                if s and s["median_steps"]:
                    ax.axvline(s["median_steps"], color=colours[method], ls=":", lw=1)
        total = next((s["total_modes"] for s in summaries.values()), None)
        axes[0][col].set_title(f"{data} ({total} modes)")
        axes[0][col].set_ylabel("modes covered")
        if total:
            axes[0][col].axhline(total, color="grey", lw=0.8)
        axes[1][col].set_ylabel("high-quality samples (%)")
        axes[1][col].axhline(100 * HQ_TARGET, color="grey", lw=0.8, ls="--")
        axes[1][col].set_xlabel("generator steps")
        axes[0][col].legend(fontsize=8)
    fig.suptitle(
        "Time to coverage: median over seeds still training (min/max band); dotted: median "
        "steps to all modes with >= 90% high quality",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    argv, overrides = cov.split_overrides(sys.argv[1:] if argv is None else argv)

    if argv and argv[0] == "_run":  # internal: one seed in its own process
        p = argparse.ArgumentParser(prog="time_to_coverage.py _run")
        p.add_argument("--config", required=True)
        p.add_argument("--seed", type=int, required=True)
        p.add_argument("--run-dir", required=True)
        p.add_argument("--every", type=int, required=True)
        p.add_argument("--max-steps", type=int)
        p.add_argument("--result", required=True)
        a = p.parse_args(argv[1:])
        result = run_one(a.config, a.seed, a.run_dir, a.every, a.max_steps, overrides)
        Path(a.result).write_text(json.dumps(result, indent=2) + "\n")
        return 0

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after -- go to every run's `mgan fit` arguments unchanged.",
    )
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help="config stems under configs/<data>/ (default: gan mgan mimgan bourgan; "
                   "mwu is available)")  # fmt: skip
    p.add_argument("--data", nargs="+", default=list(DEFAULT_DATA), help="default: ring grid")
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    p.add_argument("--seeds-per-data", nargs="*", default=[], metavar="DATA=N",
                   help="fewer seeds for a data set, e.g. grid=3")  # fmt: skip
    p.add_argument("--every", type=int, default=500, help="generator steps between evaluations")
    p.add_argument("--max-steps", type=int, help="stop every run at this generator step (tests)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--out-dir", default=str(RESULTS), help="where the results go")
    p.add_argument("--run-dir", default=str(RUNS), help="run folders: RUN_DIR/ttc_<data>_<method>")
    p.add_argument("--force", action="store_true", help="retrain seeds that have results")
    args = p.parse_args(argv)
    if args.jobs < 1 or args.every < 1 or args.seeds < 1:
        p.error("--jobs, --every and --seeds must be >= 1")
    for data in args.data:
        for method in args.methods:
            if not (ROOT / "configs" / data / f"{method}.yaml").exists():
                p.error(f"no config configs/{data}/{method}.yaml")
    for item in args.seeds_per_data:
        name, _, n = item.partition("=")
        if name not in args.data or not n.isdigit():
            p.error(f"--seeds-per-data wants DATA=N with DATA in --data, got {item!r}")
    return TimeToCoverageBenchmark(args, overrides).run()


if __name__ == "__main__":
    sys.exit(main())
