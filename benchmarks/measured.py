"""Tables of measurements, rendered from their JSON.

Most of these results document one measured fact (a cost, a speed, what a mistake prints,
what a kill leaves behind), taken once by a script at the commit the JSON records. Those
scripts re-derived what the library or its tests do, so they are no longer kept; the JSON
keeps every number, and this module turns it back into the Markdown table
(``python -m benchmarks.report``). To measure again, run the script at its commit:
``git show <commit>:benchmarks/<script>.py``. The live measurements (``benchmarks/cost.py``,
``benchmarks/metric_cost.py``) write JSON that names its ``layout`` and ``provenance``; a
result named like a retired one (``cost.json``) is rendered by its own layout.

A table is a list of rows (dicts) and columns ``(title, key or function, format)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Row = dict[str, Any]
Column = tuple[str, str | Callable[[Row], Any], str]


def cell(value: Any, fmt: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "undefined"
    if fmt == "code":
        return f"`{value}`"
    if fmt == "yes":
        return "yes" if value else "**no**"
    return format(value, fmt)


def table(rows: list[Row], columns: list[Column]) -> list[str]:
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |"]
    lines.append("|" + " --- |" * len(columns))
    for row in rows:
        values = [key(row) if callable(key) else row.get(key) for _, key, _ in columns]
        lines.append("| " + " | ".join(cell(v, f) for v, (_, _, f) in zip(values, columns)) + " |")
    return lines


def flat(nested: dict[str, dict[str, Row]], outer: str, inner: str) -> list[Row]:
    """``{a: {b: row}}`` as rows with ``outer: a`` and ``inner: b``."""
    return [{outer: a, inner: b, **row} for a, rows in nested.items() for b, row in rows.items()]


def named(values: dict[str, Any], name: str) -> list[Row]:
    """``{a: row}`` as rows with ``name: a`` (a number becomes the row's ``value``)."""
    return [{name: a, **(v if isinstance(v, dict) else {"value": v})} for a, v in values.items()]


def per_mwu_round(results: list[Row]) -> list[Row]:
    rows = []
    for result in results:
        for run in result["runs"]:
            for r in run["rounds"]:
                for kept in ("raw", "average"):
                    mix, alone = r[kept]["mixture"], r[kept]["alone"]
                    rows.append(
                        {"data": result["data"], "seed": run["seed"], "round": r["round"]}
                        | {"kept": kept, "doubled": 100 * r["doubled_share"]}
                        | {"min_ratio": r["min_generation_ratio"], "alone": alone["modes"]}
                        | {k: mix[k] for k in ("modes", "reverse_kl")}
                        | {"hq": 100 * mix["high_quality"]}
                    )
    return rows


def rule_rows(real: dict[str, Row]) -> list[Row]:
    return [
        {"draw": draw, "rule": rule, **v, "accuracy": d["triple_accuracy"]}
        for draw, d in real.items()
        for rule, v in d.items()
        if isinstance(v, dict)
    ]


def peak(row: Row) -> Any:
    return row.get("peak_cuda_mb", row.get("peak_rss_mb"))


def prdc_target(row: Row) -> bool | None:
    """PRDC's target: under 60 s and 4 GiB at 10,000 points of 2,048 features."""
    if row["points"] < 10_000 or row["features"] < 2048 or peak(row) is None:
        return None
    return row["seconds"] < 60 and peak(row) < 4096


S, MS = ".2f", ".1f"
COST: list[Column] = [
    ("setting", "setting", "s"),
    ("method", "method", "s"),
    ("s / 1k G steps", "seconds_per_1k", S),
    ("ratio", "seconds_per_1k_ratio", S),
    ("CPU s / 1k", "cpu_seconds_per_1k", S),
    ("CPU ratio", "cpu_seconds_per_1k_ratio", S),
]
# name -> (title, script, [(heading, rows of the JSON, columns)])
TABLES: dict[str, tuple[str, str, list[tuple[str, Callable[[Any], list[Row]], list[Column]]]]] = {
    "training_cost": (
        "Training cost: seconds per 1,000 generator steps and peak memory",
        "cost.py",
        [
            (
                "Targets",
                lambda j: named(j.get("targets", {}), "case"),
                [
                    ("setting, case", "case", "s"),
                    ("target", "target", S),
                    ("ratio", "ratio", ".3f"),
                    ("met", "met", "yes"),
                ],
            ),
            (
                "",
                lambda j: flat(j["summary"], "setting", "case"),
                [
                    ("setting", "setting", "s"),
                    ("case", "case", "s"),
                    ("s / 1k G steps", "seconds_per_1k", S),
                    ("ratio", "seconds_per_1k_ratio", ".3f"),
                    ("peak MB", "peak_mb", ".0f"),
                    ("ratio", "peak_mb_ratio", S),
                    ("K", "num_generators", "d"),
                    ("fakes / G", "fake_per_generator", "d"),
                    ("G params", "generator_params", ",d"),
                    ("reps", lambda r: len(r["seconds_per_1k_reps"]), "d"),
                    ("config", "config", "code"),
                    ("overrides", lambda r: " ".join(r["overrides"]) or None, "code"),
                ],
            ),
        ],
    ),
    "bad_input": (
        "Bad input: what each mistake prints (one line, exit status 2)",
        "bad_input.py",
        [
            (
                "",
                lambda j: j["cases"],
                [
                    ("case", "case", "s"),
                    ("what", "what", "s"),
                    ("command", "command", "code"),
                    ("exit", "exit_code", "d"),
                    ("message", "message", "code"),
                ],
            )
        ],
    ),
    "cost": (
        "Cost per method: seconds per 1,000 generator steps and peak memory",
        "cost.py",
        [
            (
                "",
                lambda j: flat(j["summary"], "setting", "method"),
                [
                    *COST,
                    ("peak MB", "peak_mb", ".0f"),
                    ("ratio", "peak_mb_ratio", S),
                    ("peak RSS MB", "peak_rss_mb", ".0f"),
                ],
            )
        ],
    ),
    "k_scaling": (
        "MGAN's K generators at equal total fakes",
        "cost.py --part kscaling",
        [
            (
                "Targets",
                lambda j: named(j["targets"], "case"),
                [
                    ("setting, K", "case", "s"),
                    ("target", "target", S),
                    ("ratio", "ratio", ".3f"),
                    ("met", "met", "yes"),
                    ("CPU ratio", "cpu_ratio", ".3f"),
                    ("met", "cpu_met", "yes"),
                ],
            ),
            (
                "Every K",
                lambda j: flat(j["summary"], "setting", "method"),
                [
                    *COST,
                    ("K", "num_generators", "d"),
                    ("fakes / step", "fakes_per_step", "d"),
                    ("G params", "generator_params", ",d"),
                ],
            ),
        ],
    ),
    "ddp_speed": (
        "DDP on CPU: 2 processes vs 1 (32 px DCGAN MGAN step)",
        "ddp_speed.py",
        [
            (
                "",
                lambda j: j["rows"],
                [
                    ("layout", "layout", "s"),
                    ("G steps/s", "median_steps_per_second", S),
                    ("real images/s", "median_real_images_per_second", ".0f"),
                    ("steps ratio", "steps_ratio_vs_1x1", S),
                    ("images ratio", "images_ratio_vs_1x1", S),
                ],
            )
        ],
    ),
    "embedding_cost": (
        "Bourgain embedding: time and peak memory",
        "embedding_cost.py",
        [
            (
                "",
                lambda j: j["rows"],
                [
                    ("data", "kind", "s"),
                    ("n", "n", ",d"),
                    ("threads", "threads", "d"),
                    ("latent dim", "dim", "d"),
                    ("seconds", "seconds", ".1f"),
                    ("peak RSS GiB", "peak_rss_gib", S),
                    ("growth GiB", "growth_gib", S),
                    ("scale", "scale", ".3f"),
                ],
            )
        ],
    ),
    "generator_cost": (
        "Cost of K generators: MGAN (K=10) vs one generator making the same 120 fakes",
        "generator_cost.py",
        [
            (
                "",
                lambda j: [
                    {
                        "model": m,
                        "ms": 1000 * j["median_seconds_per_step"][m],
                        **j["parameters"][m],
                        "ratio": j["median_seconds_per_step"][m]
                        / j["median_seconds_per_step"]["gan"],
                    }
                    for m in ("gan", "mgan")
                ],
                [
                    ("model", "model", "s"),
                    ("ms / step", "ms", MS),
                    ("ratio", "ratio", ".3f"),
                    ("G params", "generator_params", ",d"),
                    ("D params", "critic_params", ",d"),
                ],
            )
        ],
    ),
    "kill_resume": (
        "Kill and resume: SIGKILL at random moments, then resume from the last checkpoint",
        "kill_resume.py",
        [
            (
                "Kills",
                lambda j: j["kill_resume"]["kills"],
                [
                    ("attempt", "attempt", "d"),
                    ("kind", "kind", "s"),
                    ("step at kill", "step_at_kill", "d"),
                    ("resumed from", "resumed_from", "d"),
                    ("steps lost", "steps_lost", "d"),
                    ("all loadable", "all_loadable", "yes"),
                    ("within bound", "within_bound", "yes"),
                ],
            ),
            (
                "Bitwise the same as an uninterrupted run",
                lambda j: [j["kill_resume"]],
                [
                    ("final step", "final_step", "d"),
                    ("identical", "bitwise_identical", "yes"),
                    ("uninterrupted s", "uninterrupted_seconds", ".0f"),
                    ("interrupted s", "interrupted_seconds", ".0f"),
                ],
            ),
            (
                "DDP: one process killed",
                lambda j: j["ddp"],
                [
                    ("victim", "victim", "d"),
                    ("moment", "moment", "s"),
                    ("exit", "exit_code", "d"),
                    ("s to exit", "seconds_to_exit", S),
                    ("message", "message", "code"),
                ],
            ),
            (
                "Lightning's own checkpoint writer, killed mid-write",
                lambda j: j["lightning_writer"],
                [
                    ("same file system", "same_file_system", "yes"),
                    ("checkpoint loads", "checkpoint_loads", "s"),
                    ("temp files left", "temp_files_left_in_temp_folder", "d"),
                ],
            ),
        ],
    ),
    "lightning_overhead": (
        "What Lightning costs over a plain PyTorch loop (ring GAN)",
        "lightning_overhead.py",
        [
            (
                "",
                lambda j: [
                    {
                        "loop": k,
                        "wall": v,
                        "cpu": j["median_steps_per_second_cpu"][k],
                        "slow": j["slowdown_vs_plain_wall"][k],
                        "slow_cpu": j["slowdown_vs_plain_cpu"][k],
                    }
                    for k, v in j["median_steps_per_second_wall"].items()
                ],
                [
                    ("loop", "loop", "s"),
                    ("G steps/s (wall)", "wall", MS),
                    ("(CPU)", "cpu", MS),
                    ("slowdown (wall)", "slow", S),
                    ("(CPU)", "slow_cpu", S),
                ],
            )
        ],
    ),
    "metric_cost": (
        "What the image metrics cost",
        "metric_cost.py",
        [
            (
                "Seconds per 10,000 samples",
                lambda j: named(j.get("cost", {}), "metric"),
                [
                    ("metric", "metric", "s"),
                    ("samples", "samples", ",d"),
                    (
                        "s / 10k",
                        lambda r: (
                            r.get("seconds_per_10k") or r.get("fake_and_compute_seconds_per_10k")
                        ),
                        ".2f",
                    ),
                    ("peak MB", peak, ".0f"),
                    (
                        "increase MB",
                        lambda r: r.get("rss_increase_mb", r.get("cuda_increase_mb")),
                        ".0f",
                    ),
                ],
            ),
            (
                "The counter on real stacked digits",
                lambda j: rule_rows(j.get("real_data", {})),
                [
                    ("draw", "draw", "s"),
                    ("rule", "rule", "s"),
                    ("modes", "modes", ".0f"),
                    ("KL", "kl", ".3f"),
                    ("counted", "counted", ".3f"),
                    ("accuracy", "accuracy", ".3f"),
                ],
            ),
            (
                "PRDC",
                lambda j: j.get("prdc", {}).get("rows", []),
                [
                    ("points", "points", ",d"),
                    ("features", "features", "d"),
                    ("seconds", "seconds", ".1f"),
                    ("peak MB", peak, ".0f"),
                    (
                        "increase MB",
                        lambda r: r.get("rss_increase_mb", r.get("cuda_increase_mb")),
                        ".0f",
                    ),
                    ("< 60 s, < 4 GiB", prdc_target, "yes"),
                ],
            ),
        ],
    ),
    "mixture_norm_cost": (
        "Cost of mixture normalization in the DCGAN generator",
        "mixture_norm_cost.py",
        [
            (
                "",
                lambda j: [
                    {
                        "norm": k,
                        **v,
                        "r": j["ratio_over_bn"][k]["g_step"],
                        "rf": j["ratio_over_bn"][k]["g_fwd_bwd"],
                    }
                    for k, v in j["median_seconds"].items()
                ],
                [
                    ("G norm", "norm", "s"),
                    ("G step, ms", lambda r: 1000 * r["g_step"], MS),
                    ("/ BN", "r", S),
                    ("G fwd+bwd, ms", lambda r: 1000 * r["g_fwd_bwd"], MS),
                    ("/ BN", "rf", S),
                ],
            )
        ],
    ),
    "mwu_rounds": (
        "Multiplicative-weights mixture, round by round (reduced rerun)",
        "mwu_rounds.py --reduced --seeds 0 1 2 3 4 --rounds 2 --steps 1250",
        [
            (
                "",
                per_mwu_round,
                [
                    ("data", "data", "s"),
                    ("seed", "seed", "d"),
                    ("round", "round", "d"),
                    ("mixture kept", "kept", "s"),
                    ("modes", "modes", ".0f"),
                    ("HQ %", "hq", MS),
                    ("reverse KL", "reverse_kl", S),
                    ("G_t alone: modes", "alone", ".0f"),
                    ("points doubled %", "doubled", MS),
                    ("min ratio", "min_ratio", ".3f"),
                ],
            )
        ],
    ),
    "pmgan_parallel": (
        "Parallel generators: step time against K, 1 process vs 2",
        "pmgan_parallel.py",
        [
            (
                "",
                lambda j: j["rows"],
                [
                    ("setting", "setting", "s"),
                    ("K", "num_generators", "d"),
                    ("layout", "layout", "s"),
                    ("ms / step", "ms_per_step", MS),
                    ("speed-up", "speedup_vs_1x1", S),
                    ("processes agree", "processes_agree", "yes"),
                    ("same weights as 1x1", "same_weights_as_1x1", "yes"),
                ],
            )
        ],
    ),
    "time_to_coverage": (
        "Time to coverage: generator steps until every mode and >= 90% high quality",
        "time_to_coverage.py --seeds-per-data grid=3",
        [
            (
                "Medians",
                lambda j: j["summaries"],
                [
                    ("data", "data", "s"),
                    ("method", "method", "s"),
                    ("seeds reaching", lambda r: f"{r['seeds_reached']}/{len(r['seeds'])}", "s"),
                    ("median steps", "median_steps", ",.0f"),
                    ("ratio", "ratio_steps_to_gan", S),
                    ("median s", "median_seconds", ".0f"),
                    ("ratio", "ratio_seconds_to_gan", S),
                ],
            ),
            (
                "Every run",
                lambda j: j["per_seed"],
                [
                    ("data", "data", "s"),
                    ("method", "method", "s"),
                    ("seed", "seed", "d"),
                    ("reached", "reached", "yes"),
                    ("steps", "steps", ",.0f"),
                    ("seconds", "seconds", ".0f"),
                ],
            ),
        ],
    ),
}


def commit_of(result: Any) -> str:
    found = result[0] if isinstance(result, list) else result
    commit = found.get("git_commit") or found.get("commit") or "unknown"
    return str(commit)[:10]


def layout(name: str, result: Any) -> str | None:
    """The table a result is rendered as: the one it names, else the one of its file name."""
    named_layout = result.get("layout") if isinstance(result, dict) else None
    return named_layout or (name if name in TABLES else None)


def markdown(name: str, result: Any) -> str:
    title, script, sections = TABLES[layout(name, result) or name]
    lines = [f"# {title}", ""]
    for heading, rows, columns in sections:
        found = rows(result)
        if not found:
            continue
        if heading:
            lines += [f"## {heading}", ""]
        lines += [*table(found, columns), ""]
    prov = result.get("provenance") if isinstance(result, dict) else None
    if prov:  # a live measurement: its own command, commit and machine
        dirty = " (with uncommitted changes)" if prov["git"].get("dirty_files") else ""
        lines.append(
            f"Measured by `{prov['command']}` at commit {prov['git']['commit'][:10]}{dirty} on "
            f"{prov['hardware']} ({prov['threads_per_run']} thread(s), {prov['date']}); every "
            f"figure is in `{name}.json`. Generated by `python -m benchmarks.report`."
        )
        if result.get("kept_from_earlier"):
            lines[-1] += (
                " Kept from an earlier measurement (its command is in the JSON): "
                + ", ".join(result["kept_from_earlier"])
                + "."
            )
        return "\n".join(lines) + "\n"
    machine = result[0].get("machine") if isinstance(result, list) else result.get("machine")
    lines.append(
        f"Measured by `benchmarks/{script}` at commit {commit_of(result)}"
        + (f" on {machine}" if machine else "")
        + f"; every figure is in `{name}.json`. Generated by `python -m benchmarks.report`."
    )
    return "\n".join(lines) + "\n"
