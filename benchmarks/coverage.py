"""Mode coverage of one config over seeds, by the PacGAN protocol, scored by the library.

Each seed is one ``mgan fit`` through the harness (:mod:`benchmarks.harness`). The figures
are those the config's :class:`~mgan_lightning.callbacks.ModeCoverageEvaluation` logged at
the end of fit (its own random stream, 2,500 samples: a sample is high quality within 3 std
of its nearest mode, a mode is covered if one high-quality sample has it as nearest mode,
reverse KL of the high-quality histogram against the mode weights), read from the run's
``metrics.csv``; with the callback's ``prdc: true`` also precision, recall, density and
coverage on the raw coordinates.

    python -m benchmarks.coverage --config configs/ring/mgan.yaml
    python -m benchmarks.coverage --config configs/grid/mgan.yaml --seeds 0 1 \\
        --out benchmarks/results/reproduce/grid_mgan.json \\
        --compare benchmarks/results/grid_mgan.json
    python -m benchmarks.coverage --config configs/ring/mgan.yaml --name ring_mgan_b005 \\
        -- --model.init_args.beta=0.05

Writes ``benchmarks/results/<config folder>_<config stem>.json`` (or ``--name`` / ``--out``)
after every seed; ``python -m benchmarks.report`` turns the results into ``coverage.md``.
``--compare`` records, seed by seed, the committed result's end-of-fit callback figures
beside the new ones at the precision the callback prints. ``--keep`` finishes a row that
another machine began: the kept result's other seeds enter the new result as they were,
and ``kept`` lists, for them, the provenance of the command that ran each.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from benchmarks import harness
from mgan_lightning.metrics.mode_coverage import rare_modes

PRDC = ("precision", "recall", "density", "coverage")
# Figures ModeCoverage logs beside the PacGAN three: the samples' spread about their modes, and
# where the data has rare modes (weight < half the uniform share) how they fare.
EXTRA = ("spread", "spread_max", "rare_modes", "rare_share_ratio", "rare_share_ratio_min")


def score(run: harness.Run) -> dict[str, Any]:
    """One seed's figures, from the last ``coverage/*`` row the run logged."""
    step, values = harness.final(run.folder, "coverage/modes")
    data, model = run.setup.datamodule, run.setup.model
    total = len(data.modes)
    record: dict[str, Any] = {
        "seed": run.seed,
        "modes": values["coverage/modes"],
        "high_quality": values["coverage/high_quality"],
        "reverse_kl": values.get("coverage/reverse_kl", math.nan),  # NaN: none high quality
        "total_modes": total,
        "all_modes": values["coverage/modes"] == total,
        "generator_steps": step,
        "num_generators": getattr(model, "num_generators", 1),
    }
    record |= {k: values[f"coverage/{k}"] for k in EXTRA if f"coverage/{k}" in values}
    if "rare_modes" in record:
        weights = data.mode_weights / data.mode_weights.sum()
        rare = rare_modes(weights)
        record["rare_modes_total"] = int(rare.sum())
        record["rare_weight"] = float(weights[rare].sum())
    prdc = {k[len("prdc/") :]: v for k, v in values.items() if k.startswith("prdc/")}
    if prdc:
        record["prdc"] = prdc
    return record | harness.Run.record(run)


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    out = {
        "modes": harness.mean_se([r["modes"] for r in records]),
        "high_quality_percent": harness.mean_se([100 * r["high_quality"] for r in records]),
        "reverse_kl": harness.mean_se([r["reverse_kl"] for r in records]),
        "wall_seconds": harness.mean_se([r["wall_seconds"] for r in records]),
    }
    for key in EXTRA:
        if records and all(key in r for r in records):
            out[key] = harness.mean_se([r[key] for r in records])
    if records and all("rare_modes" in r for r in records):
        out["seeds_all_rare_modes"] = sum(r["rare_modes"] == r["rare_modes_total"] for r in records)
    if records and all("prdc" in r for r in records):
        for name in PRDC:
            out[f"prdc_{name}"] = harness.mean_se([r["prdc"][name] for r in records])
    return out


def compare(records: list[dict[str, Any]], committed: dict[str, Any]) -> list[dict[str, Any]]:
    """Each seed's end-of-fit callback figures in ``committed`` beside the new ones, and
    whether they agree at the precision the callback prints (modes, 0.1 % high quality, 4
    decimals of reverse KL)."""
    old = {r["seed"]: r.get("callback_train_end") or r for r in committed["per_seed"]}
    rows = []
    for r in records:
        if r["seed"] not in old:
            continue
        o = old[r["seed"]]
        pairs = {
            "modes": (o["modes"], r["modes"], 0),
            "high_quality_percent": (100 * o["high_quality"], 100 * r["high_quality"], 1),
            "reverse_kl": (o["reverse_kl"], r["reverse_kl"], 4),
        }
        same = all(round(a, d) == round(b, d) for a, b, d in pairs.values())
        rows.append({"seed": r["seed"], "same": same, **{k: v[:2] for k, v in pairs.items()}})
    return rows


def kept_seeds(
    kept: dict[str, Any], path: Path, config: str, seeds: list[int], overrides: list[str]
) -> dict[str, Any]:
    """What ``--keep`` carries into the new result: the kept result's records of the seeds
    not run now and, for each of them, the provenance (commit, libraries, machine) of the
    command that ran it, through earlier ``--keep`` steps too. Refuses another row's."""
    if (kept.get("config"), kept.get("overrides")) != (config, overrides):
        raise SystemExit(
            f"--keep {path}: it ran {kept.get('config')} {kept.get('overrides')}, this command "
            f"{config} {overrides}; keep only seeds of the same row"
        )
    records = [r for r in kept["per_seed"] if r["seed"] not in seeds]
    remaining = {r["seed"] for r in records}
    sources = []
    for source in kept.get("kept", []):  # seeds the kept result itself kept from elsewhere
        still = [s for s in source["seeds"] if s in remaining]
        if still:
            sources.append(source | {"seeds": still})
        remaining -= set(still)
    if remaining:
        sources.append(
            {"file": str(path), "seeds": sorted(remaining), "provenance": kept.get("provenance")}
        )
    return {
        "seeds_requested": sorted({*seeds, *(r["seed"] for r in records)}),
        "per_seed": records,
        "kept": sources,
    }


def read_result(path: Path, option: str) -> dict[str, Any]:
    """A committed result named by ``option``, read once before any seed trains; a missing or
    unreadable file stops the command with one line."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SystemExit(f"{option} {path}: cannot read it as a result JSON ({error})") from None


def main(argv: list[str] | None = None) -> int:
    own, overrides = harness.split_overrides(sys.argv[1:] if argv is None else argv)
    p = harness.parser(__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="e.g. configs/ring/mgan.yaml")
    p.add_argument("--name", help="result name (default <config folder>_<config stem>)")
    p.add_argument("--data", help="the report's table for it (default: the config's folder)")
    p.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/<name>.json)")
    p.add_argument("--compare", type=Path, help="a committed result to compare seed by seed")
    p.add_argument(
        "--keep",
        type=Path,
        help="a result of the same row whose seeds not in --seeds are kept as they are (a row "
        "finished on another machine; the result names where the kept seeds ran)",
    )
    args = p.parse_args(own)
    config = Path(args.config)
    name = args.name or f"{config.parent.name}_{config.stem}"
    data = args.data or config.parent.name
    out = args.out or harness.RESULTS / f"{name}.json"
    result: dict[str, Any] = {
        "name": name,
        "data": data,
        "method": name.removeprefix(f"{data}_"),
        "config": args.config,
        "overrides": overrides,
        "protocol": {
            "evaluated": "ModeCoverageEvaluation at the end of fit, from metrics.csv",
            "num_samples": 2500,
            "high_quality": "distance to nearest mode < 3 std",
            "mode_covered": ">= 1 high-quality sample nearest to it",
            "reverse_kl": "KL(histogram of high-quality samples over modes || mode weights)",
        },
        "provenance": harness.provenance(args.threads),
        "seeds_requested": args.seeds,
        "per_seed": [],
        "failed": {},
    }
    committed = read_result(args.compare, "--compare") if args.compare else None
    if args.keep:
        kept = read_result(args.keep, "--keep")
        result |= kept_seeds(kept, args.keep, args.config, args.seeds, overrides)
    for seed in args.seeds:
        try:
            run = harness.fit(
                name, args.config, seed, overrides, args.threads, args.force, args.runs
            )
            record = score(run)
        except (RuntimeError, KeyError, FileNotFoundError) as error:
            result["failed"][str(seed)] = str(error)
            print(f"seed {seed}: FAILED: {error}", flush=True)
            continue
        result["per_seed"] = sorted([*result["per_seed"], record], key=lambda r: r["seed"])
        print(
            f"seed {seed}: modes {record['modes']:.0f}/{record['total_modes']}, high quality "
            f"{100 * record['high_quality']:.1f}%, reverse KL {record['reverse_kl']:.4f}"
            + (" (reused)" if run.reused else ""),
            flush=True,
        )
        records = result["per_seed"]
        result["train_command"] = (
            record["train_command"]
            .replace(f"--seed_everything={seed}", "--seed_everything=SEED")
            .replace(f"/seed{seed}", "/seedSEED")
        )
        result["total_modes"] = record["total_modes"]
        result["seeds_all_modes"] = sum(bool(r["all_modes"]) for r in records)
        result["complete"] = len(records) == len(result["seeds_requested"])
        result["summary"] = summary(records)
        if committed is not None:
            result["compared_with"] = {
                "file": str(args.compare),
                "seeds": compare(records, committed),
            }
        harness.write_json(out, result)
    print(f"wrote {out}")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
