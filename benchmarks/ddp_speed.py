"""Data-parallel speed on this machine's CPUs: 2 DDP processes vs 1 process.

The step is the 32 px DCGAN MGAN step of ``configs/stacked_mnist/mgan.yaml`` (K=10 generators,
width 16, real batch 64 per process + 8 fake samples per generator, Adam), trained through
``mgan fit``'s own parser (``build_cli``) with only the run length, the devices and the
threads changed. Evaluation, image and checkpoint callbacks and the progress bar are removed
so that only training steps are timed. Three layouts, interleaved, ``--reps`` times each:

- ``1 process x 1 thread``;
- ``1 process x 2 threads`` (the same two cores, used by intra-op threads instead);
- ``2 processes x 1 thread`` (``--trainer.devices=2 --trainer.accelerator=cpu``: the default
  DDP strategy with gloo, as a user gets it; each process reads its own 64 real images, so
  one generator step consumes 128).

Each process records, from inside training, its thread count (``torch.get_num_threads()``)
and the wall time from the end of generator step ``--warmup`` to the last step. Reported: the
median generator steps per second over the repetitions, real images per second (steps/s x
batch x processes), and the ratio to ``1 process x 1 thread``.

    python benchmarks/ddp_speed.py                  # 3 reps x 60 generator steps
    python benchmarks/ddp_speed.py --reps 5 --steps 100

Writes ``benchmarks/results/ddp_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "stacked_mnist" / "mgan.yaml"
BATCH = 64
LAYOUTS = {  # name: (processes, threads per process)
    "1 process x 1 thread": (1, 1),
    "1 process x 2 threads": (1, 2),
    "2 processes x 1 thread": (2, 1),
}


# ----------------------------------------------------------- inside the training run
def child(out: Path, steps: int, warmup: int, processes: int, threads: int) -> None:
    """One ``mgan fit`` (this script re-executed by Lightning's launcher on rank 1)."""
    import torch
    from lightning.pytorch import Callback
    from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar

    from mgan_lightning.cli import build_cli

    torch.set_num_threads(threads)

    class StepClock(Callback):
        def __init__(self) -> None:
            self.start = self.end = 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            now = time.perf_counter()
            if pl_module.generator_steps_done == warmup:
                self.start = now
            self.end = now

        def on_train_end(self, trainer, pl_module) -> None:
            record = {
                "rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "strategy": type(trainer.strategy).__name__,
                "torch_threads": torch.get_num_threads(),
                "generator_steps": pl_module.generator_steps_done,
                "seconds": self.end - self.start,
                "timed_steps": pl_module.generator_steps_done - warmup,
            }
            (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))

    args = [
        "--config", str(CONFIG),
        f"--model.init_args.max_generator_steps={steps}",
        f"--trainer.default_root_dir={out / 'run'}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--trainer.accelerator=cpu",
        f"--trainer.devices={processes}",
        "--trainer.enable_model_summary=false",
    ]  # fmt: skip
    cli = build_cli(args, run=False)
    trainer = cli.trainer
    keep = (ModelSummary, TQDMProgressBar)
    trainer.callbacks[:] = [c for c in trainer.callbacks if isinstance(c, keep)]
    trainer.callbacks.append(StepClock())
    trainer.fit(cli.model, datamodule=cli.datamodule)


# --------------------------------------------------------------------------- driver
def run_layout(processes: int, threads: int, steps: int, warmup: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PL_DISABLE_FORK": "1"}
        command = [
            sys.executable, __file__, "--child", tmp,
            "--steps", str(steps), "--warmup", str(warmup),
            "--processes", str(processes), "--threads", str(threads),
        ]  # fmt: skip
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
        return [json.loads((Path(tmp) / f"rank{r}.json").read_text()) for r in range(processes)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="generator steps per run")
    parser.add_argument("--warmup", type=int, default=15, help="steps excluded from timing")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child, args.steps, args.warmup, args.processes, args.threads)
        return
    if not 0 < args.warmup < args.steps:
        parser.error("need 0 < --warmup < --steps")

    load_before = os.getloadavg()[0]
    runs: dict[str, list[list[dict]]] = {name: [] for name in LAYOUTS}
    for rep in range(args.reps):
        for name, (processes, threads) in LAYOUTS.items():
            ranks = run_layout(processes, threads, args.steps, args.warmup)
            runs[name].append(ranks)
            rate = ranks[0]["timed_steps"] / ranks[0]["seconds"]
            print(f"rep {rep}: {name}: {rate:.2f} generator steps/s", flush=True)
    load_after = os.getloadavg()[0]

    rows = []
    for name, (processes, _) in LAYOUTS.items():
        # a step ends when the slowest process ends it; DDP keeps them in lockstep
        rates = [min(r["timed_steps"] / r["seconds"] for r in ranks) for ranks in runs[name]]
        threads = sorted({r["torch_threads"] for ranks in runs[name] for r in ranks})
        strategy = sorted({r["strategy"] for ranks in runs[name] for r in ranks})
        median = statistics.median(rates)
        rows.append(
            {
                "layout": name,
                "processes": processes,
                "torch_threads_per_process": threads,
                "strategy": strategy,
                "steps_per_second": rates,
                "median_steps_per_second": median,
                "median_real_images_per_second": median * BATCH * processes,
            }
        )
    base = rows[0]["median_steps_per_second"]
    for row in rows:
        row["steps_ratio_vs_1x1"] = row["median_steps_per_second"] / base
        row["images_ratio_vs_1x1"] = row["median_real_images_per_second"] / (base * BATCH)

    import torch
    from lightning import __version__ as lightning_version

    result = {
        "config": str(CONFIG.relative_to(ROOT)),
        "step": "MGAN K=10, DCGAN width 16, 32 px, real batch 64 per process, 8 fake/generator",
        "steps": args.steps,
        "warmup": args.warmup,
        "reps": args.reps,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "lightning": lightning_version,
        "git_commit": git_commit(),
        "load_average_before_after": [load_before, load_after],
        "rows": rows,
        "command": "python benchmarks/ddp_speed.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ddp_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "ddp_speed.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    lines = [
        "# DDP on CPU: 2 processes vs 1 (32 px DCGAN MGAN step)",
        "",
        f"`{result['config']}`: {result['step']}. {result['reps']} interleaved reps x "
        f"{result['steps']} generator steps, steps {result['warmup']}..{result['steps']} "
        f"timed inside training; {result['machine']}, torch {result['torch']}, lightning "
        f"{result['lightning']}; commit {result['git_commit']}; load average "
        f"{result['load_average_before_after'][0]:.1f} before, "
        f"{result['load_average_before_after'][1]:.1f} after.",
        "",
        "| layout | strategy | torch threads / process | G steps/s (median) | reps | "
        "real images/s | steps ratio | images ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        reps = ", ".join(f"{r:.2f}" for r in row["steps_per_second"])
        lines.append(
            f"| {row['layout']} | {', '.join(row['strategy'])} | "
            f"{', '.join(map(str, row['torch_threads_per_process']))} | "
            f"{row['median_steps_per_second']:.2f} | {reps} | "
            f"{row['median_real_images_per_second']:.0f} | {row['steps_ratio_vs_1x1']:.2f}x | "
            f"{row['images_ratio_vs_1x1']:.2f}x |"
        )
    lines += ["", f"Reproduce: `{result['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
