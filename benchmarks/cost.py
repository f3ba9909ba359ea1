"""What training costs: seconds per 1,000 generator steps and peak memory of configs, each
trained by ``mgan fit`` through the harness, repetitions interleaved.

A case is a config, its overrides and a label, given as one quoted argument, ``--case "[LABEL]
CONFIG [OVERRIDE ...]"`` (the label defaults to the config's name). Each repetition trains every
case once, in turn, the order reversed every other repetition, so that load from other jobs hits
each case alike. Every run is ``mgan fit`` of ``--warmup`` + ``--steps`` generator steps
(:func:`benchmarks.harness.fit`, always trained afresh) whose only callback is the library's
``GeneratorStepRate``: the config's evaluations, sample pictures and checkpoints and the
progress bar are off, and an evaluation ``mgan`` adds by default runs at the end of the fit
only, after the clock, drawing no picture. Its figures are what that callback kept (the
harness's subprocess writes them to the run folder): steps per second from the end of the
warm-up to the last step, which covers the whole training step (D and G steps, data, logging,
EMA, schedulers) and not what happens once before it (BourGAN's embedding), and the peak memory
of the fit: the process's peak resident set on a CPU (Python and the libraries included), the
CUDA allocator's peak on a GPU. Medians over repetitions; ratios to the first case of the same
setting (the config's folder).

    python -m benchmarks.cost --name cost \\
        --case configs/ring/gan.yaml --case configs/ring/mgan.yaml --case configs/ring/mwu.yaml
    python -m benchmarks.cost --name k_scaling --target K=10=1.05 \\
        --case "gan configs/ring/gan.yaml --model.init_args.fake_per_generator=200" \\
        --case "K=10 configs/ring/mgan.yaml --model.init_args.num_generators=10 \\
                --model.init_args.fake_per_generator=20"
    python -m benchmarks.cost --name mixture_norm --case "BN configs/stacked_mnist/gan.yaml" \\
        --case "MN configs/stacked_mnist/gan.yaml \\
                --model.init_args.architecture.init_args.g_norm=mixture"

Arguments after ``--`` go to every run (``-- --trainer.accelerator=gpu``). Writes
``<out>/<name>.json`` and ``.md`` (``python -m benchmarks.report`` renders the same table).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks import harness, measured

RATE = "mgan_lightning.callbacks.GeneratorStepRate"


def parse_case(text: str) -> dict[str, Any]:
    words = shlex.split(text)
    label = words.pop(0) if words and not words[0].endswith((".yaml", ".yml")) else None
    if not words:
        raise SystemExit(f"--case {text!r}: no config")
    config, overrides = words[0], words[1:]
    return {
        "label": label or Path(config).stem,
        "setting": Path(config).parent.name,
        "config": config,
        "overrides": overrides,
    }


def run_overrides(case: dict, args: argparse.Namespace, common: list[str]) -> list[str]:
    """The case's overrides, then the run's length and its one callback; an evaluation the
    command adds by default (it fires every quarter of a run) moves to the end of the fit."""
    callbacks: list[dict[str, Any]] = [{"class_path": RATE, "init_args": {"warmup": args.warmup}}]
    fixed = [
        *case["overrides"],
        *common,
        f"--model.init_args.max_generator_steps={args.warmup + args.steps}",
        "--trainer.enable_checkpointing=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    listed = f"--trainer.callbacks={json.dumps(callbacks)}"
    _, cli = harness.effective_config(case["config"], 0, [*fixed, listed])
    for c in cli.trainer.callbacks:  # only what the command added: the config's are replaced
        if getattr(c, "every_n_steps", 0) and hasattr(c, "num_samples"):
            kind = f"{type(c).__module__}.{type(c).__qualname__}"
            end_only = {"every_n_steps": 0, "num_samples": c.num_samples}
            end_only |= {"plot": False} if hasattr(c, "plot") else {}  # no pictures to draw
            callbacks.append({"class_path": kind, "init_args": end_only})
    return [*fixed, f"--trainer.callbacks={json.dumps(callbacks)}"]


def describe(model: Any, datamodule: Any) -> dict[str, Any]:
    """What the case trains: generators, fakes each makes per step, parameters."""
    generators = getattr(model, "generators", None)
    critic = getattr(model, "critic", None)
    return {
        "num_generators": getattr(model, "num_generators", None),
        "fake_per_generator": getattr(model, "fake_per_generator", None),
        "real_batch": getattr(datamodule, "batch_size", None),
        "generator_params": sum(p.numel() for p in generators.parameters()) if generators else None,
        "critic_params": sum(p.numel() for p in critic.parameters()) if critic else None,
    }


def summarise(cases: list[dict], targets: dict[str, float]) -> dict[str, Any]:
    summary: dict[str, dict[str, Any]] = {}
    for case in cases:
        reps = case["reps"]
        row = {"config": case["config"], "overrides": case["overrides"], **case["about"]}
        for key in ("seconds_per_1k", "peak_mb"):
            row[f"{key}_reps"] = [r[key] for r in reps]
            row[key] = statistics.median(row[f"{key}_reps"])
        row["measured_steps"] = reps[0]["measured_steps"]
        summary.setdefault(case["setting"], {})[case["label"]] = row
    for rows in summary.values():
        base = next(iter(rows.values()))
        for row in rows.values():
            for key in ("seconds_per_1k", "peak_mb"):
                row[f"{key}_ratio"] = row[key] / base[key]
    checked = {}
    for setting, rows in summary.items():
        for label, row in rows.items():
            if label in targets:
                ratio = row["seconds_per_1k_ratio"]
                checked[f"{setting} {label}"] = {
                    "target": targets[label],
                    "ratio": ratio,
                    "met": ratio <= targets[label],
                }
    return {"summary": summary, "targets": checked}


def main(argv: list[str] | None = None) -> None:
    from mgan_lightning import console

    console.quiet()  # the configurations built here print what mgan fit prints
    own, common = harness.split_overrides(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="After --: mgan fit")
    p.add_argument("--case", action="append", required=True, help='"[LABEL] CONFIG [OVERRIDE ...]"')
    p.add_argument("--name", default="cost", help="result name: <out>/<name>.json and .md")
    p.add_argument("--steps", type=int, default=1000, help="generator steps timed (1000)")
    p.add_argument("--warmup", type=int, default=50, help="generator steps before the clock (50)")
    p.add_argument("--reps", type=int, default=3, help="repetitions of every case (3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (1)")
    p.add_argument("--target", action="append", default=[], help="LABEL=RATIO, s / 1k at most")
    p.add_argument("--runs", type=Path, default=harness.RUNS, help="where runs go")
    p.add_argument("--out", type=Path, default=harness.RESULTS, help="folder of the results")
    args = p.parse_args(own)
    targets = {t.rsplit("=", 1)[0]: float(t.rsplit("=", 1)[1]) for t in args.target}
    cases = [parse_case(c) for c in args.case]
    labels = [(c["setting"], c["label"]) for c in cases]
    if len(set(labels)) < len(labels):
        raise SystemExit("two cases of one setting share a label: give each its own")
    for case in cases:
        case["run_overrides"], case["reps"] = run_overrides(case, args, common), []
    for rep in range(args.reps):
        for case in cases if rep % 2 == 0 else cases[::-1]:
            folder = re.sub(r"[^\w.=-]+", "_", f"{case['setting']}_{case['label']}")
            run = harness.fit(
                f"{args.name}/{folder}/rep{rep}",
                case["config"],
                args.seed,
                case["run_overrides"],
                threads=args.threads,
                force=True,
                runs=args.runs,
                keep_results=True,
            )
            kept = json.loads((run.folder / harness.KEPT).read_text())["GeneratorStepRate"]
            case["about"] = describe(run.setup.model, run.setup.datamodule)
            case["reps"].append(
                {
                    "seconds_per_1k": 1000 / kept["generator_steps_per_second"],
                    "peak_mb": kept["peak_memory_mb"],
                    "measured_steps": int(kept["measured_steps"]),
                    "train_command": run.command,
                    "config_hash": run.config_hash,
                    "wall_seconds": run.wall_seconds,
                }
            )
            done = case["reps"][-1]
            print(f"rep {rep} {case['setting']} {case['label']}: {done['seconds_per_1k']:.2f} s "
                  f"per 1k G steps, peak {done['peak_mb']:.0f} MB", flush=True)  # fmt: skip
    result = {
        "layout": "training_cost",
        "provenance": harness.provenance(args.threads),
        "protocol": {k: getattr(args, k) for k in ("steps", "warmup", "reps", "seed")}
        | {"common_overrides": common},
        **summarise(cases, targets),
        "runs": {f"{c['setting']} {c['label']}": c["reps"] for c in cases},
    }
    harness.write_json(args.out / f"{args.name}.json", result)
    (args.out / f"{args.name}.md").write_text(measured.markdown(args.name, result))
    print(f"wrote {args.out / args.name}.json and .md")


if __name__ == "__main__":
    main()
