"""PMGAN's parallel generators on this machine's CPUs: generator-step time against K, on one
process and on two (``parallel_generators``, DDP with gloo, generator k on process k mod 2).

Each run is ``mgan fit --config configs/ring/pmgan.yaml`` built through ``build_cli`` with
only K, the network widths, the length, the devices and the threads changed; evaluation,
checkpoint and progress-bar callbacks are removed so that only training steps are timed.
Two generator sizes: ``ring`` is the config's 128-wide MLPs with the config's 256 real samples
a step (so ceil(256 / K) fakes per generator: the generators' total work hardly grows with K),
``wide G`` gives every generator 3 hidden layers of 512 and 128 fakes a step (the generators'
work grows with K and outweighs the critic's). Three layouts, one run each per (setting, K):

- ``1 process x 1 thread``: real batch 256;
- ``1 process x 2 threads``: the same two cores used by intra-op threads instead;
- ``2 processes x 1 thread``: ``--trainer.devices=2 --model.init_args.parallel_generators=true``
  with real batch 128 per process, which is the one-process run with 256, bit for bit: each
  process runs half of the generators; the critic's passes and the optimizer updates are
  replicated on both.

Each process records the wall time from the end of generator step ``--warmup`` to the last
step, and a SHA-256 of its final ``state_dict``: the table says whether the run ended with the
weights of ``1 process x 1 thread``. The machine has 2 cores shared with other work, so 2
processes on 2 cores is the ceiling, and the load average is recorded.

    python benchmarks/pmgan_parallel.py                 # K = 2, 4, 8; about 6 minutes
    python benchmarks/pmgan_parallel.py --ks 2 4 --steps 60

Writes ``benchmarks/results/pmgan_parallel.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "ring" / "pmgan.yaml"
BATCH = 256  # the config's real batch (one process)
SETTINGS = {  # name: (description, extra mgan fit arguments)
    "ring": ("G and D 2 x 128 MLPs, ceil(256/K) fakes per generator", []),
    "wide G": (
        "G 3 x 512 MLPs, D 2 x 128, 128 fakes per generator",
        [
            "--model.init_args.architecture.init_args.g_hidden=512",
            "--model.init_args.architecture.init_args.g_layers=3",
            "--model.init_args.fake_per_generator=128",
        ],
    ),
}
LAYOUTS = {  # name: (processes, threads per process)
    "1 process x 1 thread": (1, 1),
    "1 process x 2 threads": (1, 2),
    "2 processes x 1 thread": (2, 1),
}


# ----------------------------------------------------------- inside the training run
def child(out: Path, steps: int, warmup: int, processes: int, threads: int, extra: list) -> None:
    """One ``mgan fit`` (this script re-executed by Lightning's launcher on rank 1)."""
    import torch
    from lightning.pytorch import Callback
    from lightning.pytorch.callbacks import ModelSummary

    from mgan_lightning.cli import build_cli

    torch.set_num_threads(threads)

    class StepClock(Callback):
        def __init__(self) -> None:
            self.start = self.end = self.cpu_start = self.cpu_end = 0.0

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            now, cpu = time.perf_counter(), time.process_time()
            if pl_module.generator_steps_done == warmup:
                self.start, self.cpu_start = now, cpu
            self.end, self.cpu_end = now, cpu

        def on_train_end(self, trainer, pl_module) -> None:
            digest = hashlib.sha256()
            for name, value in sorted(pl_module.state_dict().items()):
                digest.update(name.encode())
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
            record = {
                "rank": trainer.global_rank,
                "world_size": trainer.world_size,
                "strategy": type(trainer.strategy).__name__,
                "torch_threads": torch.get_num_threads(),
                "own_generators": len(range(pl_module.num_generators)[pl_module.own_slots()]),
                "generator_steps": pl_module.generator_steps_done,
                "seconds": self.end - self.start,
                "cpu_seconds": self.cpu_end - self.cpu_start,  # this process, all threads
                "timed_steps": pl_module.generator_steps_done - warmup,
                "state_sha256": digest.hexdigest(),
            }
            (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))

    args = [
        "--config", str(CONFIG),
        f"--model.init_args.max_generator_steps={steps}",
        f"--trainer.default_root_dir={out / 'run'}",
        "--trainer.logger=false",
        "--trainer.accelerator=cpu",
        f"--trainer.devices={processes}",
        "--trainer.enable_model_summary=false",
        f"--data.init_args.batch_size={BATCH // processes}",
        f"--model.init_args.parallel_generators={'true' if processes > 1 else 'false'}",
        *extra,
    ]  # fmt: skip
    cli = build_cli(args, run=False)
    trainer: Any = cli.trainer
    trainer.callbacks[:] = [c for c in trainer.callbacks if isinstance(c, ModelSummary)]
    trainer.callbacks.append(StepClock())
    trainer.fit(cli.model, datamodule=cli.datamodule)


# --------------------------------------------------------------------------- driver
def run_layout(
    processes: int, threads: int, steps: int, warmup: int, extra: list[str]
) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PL_DISABLE_FORK": "1"}
        command = [
            sys.executable, __file__, "--child", tmp,
            "--steps", str(steps), "--warmup", str(warmup),
            "--processes", str(processes), "--threads", str(threads),
            "--extra", json.dumps(extra),
        ]  # fmt: skip
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{proc.stderr[-3000:]}")
        return [json.loads((Path(tmp) / f"rank{r}.json").read_text()) for r in range(processes)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8], help="values of K")
    parser.add_argument("--steps", type=int, default=100, help="generator steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="steps excluded from timing")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--extra", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        extra = json.loads(args.extra)
        child(args.child, args.steps, args.warmup, args.processes, args.threads, extra)
        return
    if not 0 < args.warmup < args.steps:
        parser.error("need 0 < --warmup < --steps")

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    rows = []
    for setting, (_, setting_args) in SETTINGS.items():
        for k in args.ks:
            extra = [f"--model.init_args.num_generators={k}", *setting_args]
            reference = None
            for layout, (processes, threads) in LAYOUTS.items():
                ranks = run_layout(processes, threads, args.steps, args.warmup, extra)
                # a step ends when the slowest process ends it; the processes exchange every step
                seconds = max(r["seconds"] for r in ranks)
                timed = ranks[0]["timed_steps"]
                digests = {r["state_sha256"] for r in ranks}
                if reference is None:
                    reference = ranks[0]["state_sha256"]
                row = {
                    "setting": setting,
                    "num_generators": k,
                    "layout": layout,
                    "processes": processes,
                    "torch_threads_per_process": sorted({r["torch_threads"] for r in ranks}),
                    "strategy": sorted({r["strategy"] for r in ranks}),
                    "generators_per_process": [r["own_generators"] for r in ranks],
                    "ms_per_step": 1000.0 * seconds / timed,
                    "cpu_ms_per_step_per_process": [
                        1000.0 * r["cpu_seconds"] / timed for r in ranks
                    ],
                    "processes_agree": len(digests) == 1,
                    "same_weights_as_1x1": digests == {reference},
                }
                rows.append(row)
                print(
                    f"{setting}, K={k}, {layout}: {row['ms_per_step']:.2f} ms/step, "
                    f"same weights as 1x1: {row['same_weights_as_1x1']}",
                    flush=True,
                )
    load_after = os.getloadavg()[0]
    for row in rows:
        base = next(
            r["ms_per_step"]
            for r in rows
            if r["setting"] == row["setting"]
            and r["num_generators"] == row["num_generators"]
            and r["layout"] == "1 process x 1 thread"
        )
        row["speedup_vs_1x1"] = base / row["ms_per_step"]

    import torch
    from lightning import __version__ as lightning_version

    result = {
        "config": str(CONFIG.relative_to(ROOT)),
        "settings": {name: description for name, (description, _) in SETTINGS.items()},
        "real_batch": f"{BATCH} a step: {BATCH} on one process, {BATCH // 2} on each of two",
        "steps": args.steps,
        "warmup": args.warmup,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), gloo for 2 "
        "processes",
        "torch": torch.__version__,
        "lightning": lightning_version,
        "git_commit": git_commit(),
        "load_average_before_after": [load_before, load_after],
        "wall_seconds": time.perf_counter() - started,
        "rows": rows,
        "command": "python benchmarks/pmgan_parallel.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pmgan_parallel.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "pmgan_parallel.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    settings = "; ".join(f"`{name}`: {text}" for name, text in result["settings"].items())
    lines = [
        "# PMGAN parallel generators on CPU: step time against K, 1 process vs 2",
        "",
        f"`{result['config']}` with K generators ({settings}); real batch "
        f"{result['real_batch']}. One run per row, {result['steps']} generator steps, steps "
        f"{result['warmup']}..{result['steps']} timed inside training. {result['machine']}; "
        f"torch {result['torch']}, lightning {result['lightning']}; commit "
        f"{result['git_commit']}; load average {result['load_average_before_after'][0]:.1f} "
        f"before, {result['load_average_before_after'][1]:.1f} after.",
        "",
        "2 processes x 1 thread: `--trainer.devices=2 --model.init_args.parallel_generators=true`"
        ", each process runs the generators k = rank, rank + 2, ...; the critic's passes and "
        "the optimizer updates are replicated. With 2 cores, 2 processes on 2 cores is the "
        "ceiling (2.00x), and `1 process x 2 threads` uses the same cores by intra-op threads. "
        "'CPU ms' is each process's CPU time (all its threads, spin-waiting included) per "
        "step: the work a process did, far less sensitive than the wall time to the machine's "
        "other load. Each of the two processes runs the forward and backward passes of its "
        "own generators only, but the whole critic step, the optimizer and EMA updates over "
        "all K generators' weights, and the exchange (real batches, samples, gradients); the "
        "CPU column shows how much of a step that leaves each process. "
        "'same weights' compares a SHA-256 of the final state_dict with `1 process x 1 thread`'s.",
        "",
        "| setting | K | layout | generators / process | ms / G step | speed-up vs 1x1 | "
        "CPU ms / G step, each process | same weights as 1x1 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        same = "yes" if row["same_weights_as_1x1"] else "no"
        if not row["processes_agree"]:
            same += " (processes differ)"
        lines.append(
            f"| {row['setting']} | {row['num_generators']} | {row['layout']} | "
            f"{', '.join(map(str, row['generators_per_process']))} | "
            f"{row['ms_per_step']:.2f} | {row['speedup_vs_1x1']:.2f}x | "
            f"{', '.join(f'{c:.2f}' for c in row['cpu_ms_per_step_per_process'])} | {same} |"
        )
    lines += ["", f"Reproduce: `{result['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
