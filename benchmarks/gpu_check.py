"""Every method on its ring and Stacked-MNIST configs, on whatever accelerator is here.

For each config: ``mgan fit`` for ``--steps`` generator steps (bf16-mixed precision where the
device supports it, ``torch.compile`` with ``--compile``), a resume that extends the run by
``--extend`` steps, ``mgan test`` from the checkpoint alone and ``mgan predict`` of 64
samples, all through the library's CLI. Records generator steps per second (after a
warm-up), peak memory and the test metrics per method; a failing step is recorded with its
error and the others go on.

    python benchmarks/gpu_check.py                        # a GPU: 300 steps, bf16-mixed
    python benchmarks/gpu_check.py --steps 4 --data ring  # what CI runs on the CPU

Stacked MNIST reads the t10k files from ``--mnist-root`` (default: ``$MGAN_MNIST_ROOT``) and
is skipped without them. Writes ``benchmarks/results/gpu_check.json`` and ``.md`` (or
``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

import lightning
import torch
import yaml

from mgan_lightning.callbacks import GeneratorStepRate
from mgan_lightning.cli import build_cli
from mgan_lightning.cli_resume import with_stored_config

ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """HEAD, ``-dirty`` when tracked files differ from it (this script runs by its path, as
    CI runs it, so it asks git itself rather than importing the harness)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return (git("rev-parse", "HEAD").strip() or "unknown") + ("-dirty" if dirty else "")


METHODS = ("gan", "mgan", "mimgan", "bourgan", "mwu", "pmgan")
# The Stacked-MNIST MWU config of the papers' budget is mwu.yaml; mwu_cpu.yaml is the short one.
CONFIG_NAMES = {("stacked_mnist", "mwu"): "mwu_cpu"}


def device_name() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def default_precision() -> str:
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def round_overrides(config: dict, steps: int) -> list[str]:
    """A method trained in rounds (MWU) gets 2 rounds of half the steps (its schedules follow
    the round)."""
    init = config["model"].get("init_args") or {}
    if "steps_per_round" not in init:
        return []
    return ["--model.init_args.num_rounds=2", f"--model.init_args.steps_per_round={steps // 2}"]


def cli(args: list[str]):
    """``mgan <args>`` in this process (``--ckpt_path`` alone brings its own config)."""
    args, problem = with_stored_config(args)
    if problem:
        raise RuntimeError(problem)
    return build_cli(args)


def check(config_path: Path, run: Path, args: argparse.Namespace, extra: list[str]) -> dict:
    """Fit, resume longer, test and predict one config; what happened at each stage."""
    config = yaml.safe_load(config_path.read_text())
    steps = args.steps + (args.steps % 2 if "steps_per_round" in str(config) else 0)
    common = [
        f"--trainer.default_root_dir={run}",
        "--trainer.enable_progress_bar=false",
        f"--trainer.precision={args.precision}",
        *round_overrides(config, steps),
        *extra,
    ]
    if args.compile:
        common.append("--trainer.callbacks+=mgan_lightning.callbacks.CompileNetworks")
    record: dict = {"config": str(config_path.relative_to(ROOT)), "stages": {}}
    fit_args = ["fit", "--config", str(config_path), *common]
    warmup = min(10, steps // 4)  # steps before the clock starts (compilation, allocation)
    rate = (
        '--trainer.callbacks+={"class_path": "mgan_lightning.callbacks.GeneratorStepRate", '
        f'"init_args": {{"warmup": {warmup}}}}}'
    )
    start = time.perf_counter()
    fitted = cli([*fit_args, f"--model.init_args.max_generator_steps={steps}", rate])
    timer = next(c for c in fitted.trainer.callbacks if isinstance(c, GeneratorStepRate))
    record.update(timer.result, fit_seconds=time.perf_counter() - start)
    record["stages"]["fit"] = f"ok: generator step {fitted.model.generator_steps_done}"
    last = run / "checkpoints" / "last.ckpt"
    longer = steps + (args.extend if "steps_per_round" not in str(config) else 0)
    resumed = cli([*fit_args, f"--model.init_args.max_generator_steps={longer}",
                   f"--ckpt_path={last}"])  # fmt: skip
    done = resumed.model.generator_steps_done
    if done != longer:
        raise RuntimeError(f"resume to {longer} stopped at generator step {done}")
    record["stages"]["resume"] = f"ok: generator step {done}"
    tested = cli(["test", "--ckpt_path", str(last)])
    results = tested.trainer.callback_metrics
    record["test"] = {k: float(v) for k, v in results.items() if k.startswith("test/")}
    record["stages"]["test"] = "ok"
    out = run / "samples"
    cli(["predict", "--ckpt_path", str(last), "--num_samples", "64", f"--output_dir={out}"])
    if not (out / "samples.pt").is_file():
        raise RuntimeError(f"predict wrote no {out / 'samples.pt'}")
    record["stages"]["predict"] = "ok: 64 samples"
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="generator steps of the first fit")
    p.add_argument("--extend", type=int, default=20, help="steps the resume adds")
    p.add_argument("--precision", default=default_precision())
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--data", nargs="+", default=["ring", "stacked_mnist"])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--mnist-root", default=os.environ.get("MGAN_MNIST_ROOT"))
    p.add_argument("--work", default="runs/gpu_check", help="folder for the runs")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args()

    rows = []
    for data in args.data:
        extra = []
        if data == "stacked_mnist":
            mnist = Path(args.mnist_root) if args.mnist_root else None
            if mnist is None or not (mnist / "t10k-images-idx3-ubyte.gz").is_file():
                rows.append({"data": data, "method": "*", "status": "skipped: no MNIST files"})
                continue
            extra = [f"--data.init_args.data_root={mnist}"]
        for method in args.methods:
            name = CONFIG_NAMES.get((data, method), method)
            config = ROOT / "configs" / data / f"{name}.yaml"
            if not config.is_file():
                continue
            row = {"data": data, "method": method}
            try:
                row.update(check(config, Path(args.work) / f"{data}_{method}", args, extra))
                row["status"] = "ok"
            except (Exception, SystemExit) as error:  # record it; the other methods go on
                lines = traceback.format_exception_only(type(error), error)
                row["status"] = f"failed: {lines[-1].strip()[:300]}"
            print(f"{data}/{method}: {row['status']}", flush=True)
            rows.append(row)

    result = {
        "device": device_name(),
        "precision": args.precision,
        "compile": args.compile,
        "steps": args.steps,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "git_commit": git_commit(),
        "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(result))
    failed = [r for r in rows if r["status"].startswith("failed")]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(rows)} checks failed")


def markdown(result: dict) -> str:
    lines = [
        "# GPU check",
        "",
        f"Device: {result['device']}; precision {result['precision']}; "
        f"torch.compile {'on' if result['compile'] else 'off'}; {result['steps']} generator "
        f"steps, then a resume and `mgan test` / `mgan predict` from the checkpoint alone.",
        f"torch {result['torch']}, lightning {result['lightning']}, commit "
        f"{result['git_commit']}. Reproduce: `{result['command']}`.",
        "",
        "| data | method | status | generator steps/s | peak memory (MB) | test metrics |",
        "| --- | --- | --- | ---: | ---: | --- |",
    ]
    for row in result["rows"]:
        rate = row.get("generator_steps_per_second")
        memory = row.get("peak_memory_mb")
        tests = ", ".join(
            f"{k.split('/', 1)[1].removeprefix('stacked_mnist/')} {v:.4g}"
            for k, v in row.get("test", {}).items()
            if not k.endswith("counted")
        )
        lines.append(
            f"| {row['data']} | {row['method']} | {row['status']} | "
            f"{'' if rate is None else f'{rate:.4g}'} | "
            f"{'' if memory is None else f'{memory:.0f}'} | {tests} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
