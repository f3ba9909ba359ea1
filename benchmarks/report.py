"""Every committed Markdown table under ``benchmarks/results/``, regenerated from the JSON.

- ``coverage.md`` from the results of :mod:`benchmarks.coverage` (every JSON with per-seed
  coverage records): one table per data set with our methods (mean +- standard error over
  seeds, how many seeds covered every mode, PRDC on the raw coordinates where the results
  have it) beside the published rows of PacGAN Table 1 (Lin et al. 2018, 10 trials, their own
  networks and budget), each of our rows with the command that reproduces it; and
  ``coverage.png``, one bar chart per metric and data set, our per-seed values as dots;
- ``stacked_mnist.md`` and ``stacked_mnist_weak_d.md`` by :mod:`benchmarks.stacked_mnist`;
- the tables of measurements (one-off and live) by :mod:`benchmarks.measured`.

    python -m benchmarks.report
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import measured, stacked_mnist
from benchmarks.harness import RESULTS

# Published rows, quoted from the papers' tables, not rerun: name -> (source, values), values being
# (modes, s.e.), (high-quality %, s.e.), (reverse KL, s.e.), None where the paper gives none.
Stat = tuple[float, float | None] | None
PACGAN = "PacGAN Table 1"
VEEGAN = "VEEGAN Table 1"
PUBLISHED: dict[str, dict[str, tuple[str, tuple[Stat, Stat, Stat]]]] = {
    "ring": {
        "GAN": (PACGAN, ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09))),
        "ALI": (PACGAN, ((6.6, 0.3), (97.6, 0.4), (0.36, 0.04))),
        "PacGAN2": (PACGAN, ((7.9, 0.1), (95.6, 2.0), (0.07, 0.03))),
        "PacGAN3": (PACGAN, ((7.8, 0.1), (97.7, 0.3), (0.10, 0.02))),
        "PacGAN4": (PACGAN, ((7.8, 0.1), (95.9, 1.4), (0.07, 0.02))),
        "Unrolled GAN": (VEEGAN, ((7.6, None), (35.6, None), None)),
        "VEEGAN": (VEEGAN, ((8.0, None), (52.9, None), None)),
    },
    "grid": {
        "GAN": (PACGAN, ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07))),
        "ALI": (PACGAN, ((24.1, 0.4), (95.7, 0.6), (0.14, 0.03))),
        "PacGAN2": (PACGAN, ((23.8, 0.7), (91.3, 0.8), (0.13, 0.04))),
        "PacGAN3": (PACGAN, ((24.6, 0.4), (94.2, 0.4), (0.06, 0.02))),
        "PacGAN4": (PACGAN, ((24.8, 0.2), (93.6, 0.6), (0.04, 0.01))),
        "Unrolled GAN": (VEEGAN, ((23.6, None), (16.0, None), None)),
        "VEEGAN": (VEEGAN, ((24.6, None), (40.0, None), None)),
    },
}
# The targets of the benchmark report: every seed covers every mode, and the
# mean high quality and reverse KL reach these.
TARGETS = {"ring": (97.0, 0.03), "grid": (95.0, 0.03)}
DATA_TITLES = {
    "ring": "2D ring: 8 Gaussians on a circle of radius 1, std 0.01",
    "grid": "2D grid: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05",
    "ring_rare_modes": (
        "Rare modes on the ring: modes 2 and 6 hold 1% of the mass each, the other six 16.3% "
        "(`configs/overlays/ring_rare_modes.yaml`)"
    ),
    "grid_rare_modes": (
        "Rare modes on the grid: (-4,-4), (-2,0), (0,0), (4,0) hold 0.5% of the mass each, the "
        "other 21 4.67% (`configs/overlays/grid_rare_modes.yaml`)"
    ),
    "grid_bourgan_alpha": (
        "BourGAN's distance-preserving weight alpha on the grid (`configs/grid/bourgan.yaml`; "
        "spread: each mode's median sample distance against the data's, averaged over modes)"
    ),
    "grid_bourgan_paper": (
        "BourGAN's own grid: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.1, 1,250 training points, "
        "at the authors' budget (5,000 iterations, batch 128, no LR decay or EMA)"
    ),
}
METRICS = (  # key in "summary", column title, decimals, per-seed value
    ("modes", "modes covered", 1, lambda r: r["modes"]),
    ("high_quality_percent", "high-quality %", 1, lambda r: 100 * r["high_quality"]),
    ("reverse_kl", "reverse KL", 2, lambda r: r["reverse_kl"]),
)
PRDC = ("precision", "recall", "density", "coverage")  # shown where a row of a table has it
# Figures shown where a row of a table has them: key in "summary", column title, decimals.
EXTRA_COLUMNS = (
    ("spread", "spread", 2),
    ("rare_modes", "rare modes covered", 1),
    ("rare_share_ratio", "rare share / weight", 2),
    ("rare_share_ratio_min", "worst rare mode share / weight", 2),
)
# Shown only in the tables named: the widest mode tells whether BourGAN's distance term widens
# every mode or a few.
EXTRA_COLUMNS_BY_DATA = {"grid_bourgan_alpha": (("spread_max", "widest mode's spread", 2),)}
# The ablations read together under "Where the gains come from": result names by data set.
ABLATIONS = {
    "ring": (
        "mgan",
        "mgan_beta0",
        "mimgan",
        "mimgan_no_mi",
        "mgan_k4",
        "mgan_k4_beta0",
        "mimgan_k4",
        "mimgan_k4_no_mi",
        "mgan_gmm_prior",
        "mgan_gmm_prior_k4",
        "gan",
    ),
    "grid": (
        "mgan",
        "mgan_beta0",
        "mimgan",
        "mimgan_no_mi",
        "mgan_k10",
        "mgan_k10_beta0",
        "mimgan_k10",
        "mimgan_k10_no_mi",
        "mgan_gmm_prior",
        "mgan_gmm_prior_k10",
        "gan",
    ),
}
NOTES = Path(__file__).resolve().parent / "notes"  # hand-written readings of the tables


def load_results(folder: Path) -> list[dict]:
    results = []
    for path in sorted(folder.glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        # coverage.py's results only: one config, one data set, per-seed records
        if (
            isinstance(result, dict)
            and result.get("per_seed")
            and isinstance(result.get("data"), str)
            and "config" in result
            and "seeds_all_modes" in result
        ):
            result["_file"] = path.name
            results.append(result)
    return results


def fmt(stat: dict, digits: int) -> str:
    if stat.get("mean") is None:
        return "n/a"
    text = f"{stat['mean']:.{digits}f} ± {stat['se']:.{digits}f}"
    return text


def budget(result: dict) -> str:
    steps = {r.get("generator_steps") for r in result["per_seed"]}
    steps.discard(None)
    if not steps:
        return "?"
    return "/".join(f"{s:,}" for s in sorted(steps)) + " G steps"


def generators(result: dict) -> int | None:
    """K (T for the multiplicative-weights mixture) of a result: recorded per seed, or read
    from its overrides and config for results written before it was recorded."""
    recorded = {r.get("num_generators") for r in result["per_seed"]} - {None}
    if len(recorded) == 1:
        return int(recorded.pop())
    for override in result.get("overrides", []):
        for key in ("num_generators", "num_rounds"):
            if override.startswith(f"--model.init_args.{key}="):
                return int(override.split("=", 1)[1])
    try:
        import yaml

        config = yaml.safe_load((RESULTS.parents[1] / result["config"]).read_text())
        args = config["model"].get("init_args", {})
    except (OSError, KeyError, TypeError, AttributeError):
        return None
    return int(args.get("num_generators", args.get("num_rounds", 1)))


def k_cell(result: dict, total: int | None) -> str:
    k = generators(result)
    if k is None:
        return "?"
    return f"{k} (= modes)" if k == total and k > 1 else str(k)


def method_label(result: dict) -> str:
    return result.get("method", "?")


def source_cell(result: dict) -> str:
    """``ours``, the config and what the command line changed: overlays by file, model
    arguments as ``name=value``."""
    changes, overrides = [], list(result.get("overrides", []))
    while overrides:
        item = overrides.pop(0)
        if item == "--config" and overrides:
            changes.append(f"`{overrides.pop(0)}`")
        else:
            changes.append(f"`{item.removeprefix('--model.init_args.')}`")
    return f"ours, `{result['config']}`" + "".join(f" + {c}" for c in changes)


def per_seed_line(result: dict) -> str:
    rows = sorted(result["per_seed"], key=lambda r: r["seed"])
    modes = ", ".join(f"{r['seed']}: {r['modes']:.0f}" for r in rows)
    hq = ", ".join(f"{100 * r['high_quality']:.1f}" for r in rows)
    kl = ", ".join(
        "undefined" if not math.isfinite(r["reverse_kl"]) else f"{r['reverse_kl']:.3f}"
        for r in rows
    )
    line = (
        f"- **{method_label(result)}** modes by seed ({modes}); high-quality % ({hq}); "
        f"reverse KL ({kl})"
    )
    if all("rare_modes" in r for r in rows):
        rare = ", ".join(f"{r['rare_modes']:.0f}/{r['rare_modes_total']}" for r in rows)
        share = ", ".join(f"{r['rare_share_ratio']:.2f}" for r in rows)
        line += f"; rare modes covered ({rare}); rare share / weight ({share})"
    if all("spread" in r for r in rows):
        line += "; spread (" + ", ".join(f"{r['spread']:.2f}" for r in rows) + ")"
    return line


def reproduce(result: dict[str, Any]) -> str:
    """The command of a result, its commit, and what each seed ran."""
    git = result.get("provenance", {}).get("git") or {
        "commit": result.get("git_commit", "?"),
        "dirty_files": result.get("git_dirty_files"),
    }
    command = result.get("provenance", {}).get("command") or result["command"]
    dirty = " (with uncommitted changes)" if git.get("dirty_files") else ""
    train = result["train_command"]
    scored = result.get("protocol", {}).get("evaluated", "?")
    return (
        f"`{command}` (commit {str(git['commit'])[:10]}{dirty}; each seed runs `{train}`; "
        f"scored: {scored}){kept_from(result)}"
    )


def kept_from(result: dict[str, Any]) -> str:
    """Where the seeds that ``--keep`` carried over from earlier results ran."""
    sources = []
    for source in result.get("kept", []):
        seeds = ", ".join(str(seed) for seed in source["seeds"])
        ran = source["provenance"]
        commit = str((ran.get("git") or {}).get("commit", "?"))[:10]
        sources.append(
            f"{'seed' if len(source['seeds']) == 1 else 'seeds'} {seeds} kept from "
            f"`{ran.get('command', '?')}` (commit {commit}, {ran.get('hardware', '?')})"
        )
    return "".join(f"; {source}" for source in sources)


def published_cell(value: Stat, digits: int) -> str:
    if value is None:
        return "not reported"
    mean, se = value
    return f"{mean:.{digits}f}" + ("" if se is None else f" ± {se:.{digits}f}")


def n_seeds(n: int) -> str:
    """``"1 seed"``, ``"10 seeds"``."""
    return f"{n} seed" + ("" if n == 1 else "s")


def terms_labeller(ours: list[dict]) -> Callable[[dict], str]:
    """A row's name, with its seeds and budget where they differ from the table's usual ones
    (the most seeds, the most common budget), so a verdict never hides unequal terms."""
    usual_seeds = max(len(r["per_seed"]) for r in ours)
    budgets = [budget(r) for r in ours]
    usual_budget = max(set(budgets), key=budgets.count)

    def label(result: dict) -> str:
        terms = []
        if len(result["per_seed"]) != usual_seeds:
            terms.append(n_seeds(len(result["per_seed"])))
        if budget(result) != usual_budget:
            terms.append(budget(result))
        return method_label(result) + (f" ({', '.join(terms)})" if terms else "")

    return label


def target_line(data: str, ours: list[dict], total: int | None) -> str:
    """Which of our rows meet the report's targets on this data set."""
    hq, kl = TARGETS[data]
    met: list[str] = []
    missed: list[str] = []
    label = terms_labeller(ours)
    for r in ours:
        s = r["summary"]
        ok = (
            r["seeds_all_modes"] == len(r["per_seed"])
            and (s["high_quality_percent"]["mean"] or 0) >= hq
            and s["reverse_kl"]["mean"] is not None
            and s["reverse_kl"]["mean"] <= kl
        )
        (met if ok else missed).append(label(r))
    return (
        f"Targets: {total}/{total} modes in every seed, >= {hq:g}% high quality, reverse KL "
        f"<= {kl:g}. Met by: {', '.join(met) or 'none'}. Missed by: {', '.join(missed) or 'none'}."
    )


def rare_line(ours: list[dict], rare_total: int) -> str:
    """Which methods covered every rare mode in every seed, and how often the others dropped
    one."""
    kept, dropped = [], []
    label = terms_labeller(ours)
    for r in ours:
        missing = [x["seed"] for x in r["per_seed"] if x["rare_modes"] < x["rare_modes_total"]]
        if missing:
            which = ", ".join(str(m) for m in sorted(missing))
            total = n_seeds(len(r["per_seed"]))
            dropped.append(f"{label(r)} in {len(missing)} of {total} ({which})")
        else:
            kept.append(label(r))
    return (
        f"Target: every one of the {rare_total} rare modes covered (>= 1 high-quality sample) in "
        f"every seed. Met by: {', '.join(kept) or 'none'}. A rare mode dropped by: "
        f"{'; '.join(dropped) or 'none'}."
    )


def gains_section(data: str, ours: list[dict], total: int | None) -> list[str]:
    """The ablation rows side by side, and the hand-written reading of them
    (``benchmarks/notes/<data>_gains.md``) when there is one."""
    by_method = {r.get("method"): r for r in ours}
    rows = [by_method[m] for m in ABLATIONS[data] if m in by_method]
    if len(rows) < 2:
        return []
    lines = [
        "",
        f"### Where the gains come from ({data})",
        "",
        "| row | K | beta | MI penalty | modes | high-quality % | reverse KL "
        "| seeds with all modes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        s, n = r["summary"], len(r["per_seed"])
        name = r["method"]
        beta = "0" if "beta0" in name else ("-" if name == "gan" else "config's")
        mi = "on" if name.startswith("mimgan") and "no_mi" not in name else "off"
        lines.append(
            f"| {name} | {k_cell(r, total)} | {beta} | {mi if name != 'gan' else '-'} | "
            + " | ".join(fmt(s[key], d) for key, _, d, _ in METRICS)
            + f" | {r['seeds_all_modes']}/{n} |"
        )
    notes = NOTES / f"{data}_gains.md"
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    return lines


def markdown(results: list[dict], plot_name: str | None) -> str:
    by_data: dict[str, list[dict]] = {}
    for r in results:
        by_data.setdefault(r.get("data") or "other", []).append(r)
    first = ("ring", "grid", "ring_rare_modes", "grid_rare_modes", "grid_bourgan_alpha")
    order: list[str] = [d for d in first if d in by_data or d in PUBLISHED]
    order += sorted(d for d in by_data if d not in order)
    lines = [
        "# Mode coverage on the 2D synthetic benchmarks",
        "",
        "Protocol (VEEGAN / PacGAN): 2,500 samples of the final model; a sample is high quality "
        "if it lies within 3 standard deviations of its nearest mode; a mode is covered if at "
        "least one high-quality sample has it as nearest mode; reverse KL is KL(histogram of the "
        "high-quality samples over modes || the data's mode weights (uniform but in the rare-mode "
        "tables). Mean ± standard error over seeds. Spread: each mode's median sample distance "
        "against the data's, averaged over modes (1: the data's width). A rare mode weighs less "
        "than half the uniform share; it is covered with one high-quality sample, and its share "
        "/ weight is the share of all samples that are high quality at it over its weight.",
        "",
        "Rows marked **published** are copied from PacGAN Table 1 (Lin et al. 2018; 10 trials "
        "each) and VEEGAN Table 1 (Srivastava et al. 2017; modes and high quality only) and "
        "were not rerun here. Their budget, from the authors' configs "
        "(fjxmlzn/PacGAN, synthetic_data_experiments): a 4x400 ReLU+BN generator, a 3x200 "
        "maxout (5 pieces) discriminator, z = 2, Adam lr 1e-4 (beta1 0.8), batch 100, 400 "
        "epochs of 100,000 points (400,000 iterations). Our rows use the budget in their own "
        "column and the networks of the config they name (for `gan`: 128x2 MLPs, Adam 1e-3, "
        "batch 256), so a difference from a published row is not a reproduction result.",
        "",
        "Generated by `python -m benchmarks.report` from `benchmarks/results/*.json`. PRDC "
        "(precision, recall, density, coverage; k = 5, raw coordinates, against as many test "
        "points) appears for the rows that logged it (`configs/overlays/prdc.yaml`); rows "
        "measured before it say `not logged`. K is the number of generators (T rounds for "
        "`mwu`); `(= modes)` marks K set to the number of modes, which no user of real data "
        "knows. Wall seconds are per run with two runs (and at times other work) sharing the "
        "2-core CPU: not speed figures.",
    ]
    for data in order:
        ours = sorted(by_data.get(data, []), key=lambda r: r.get("method", ""))
        total = next((r.get("total_modes") for r in ours if r.get("total_modes")), None)
        if total is None:
            total = {"ring": 8, "grid": 25}.get(data)
        lines += ["", f"## {DATA_TITLES.get(data, data)}", ""]
        prdc = [k for k in PRDC if any(f"prdc_{k}" in r["summary"] for r in ours)]
        columns = EXTRA_COLUMNS + EXTRA_COLUMNS_BY_DATA.get(data, ())
        extra = [c for c in columns if any(c[0] in r["summary"] for r in ours)]
        rare_total = next((r["per_seed"][0].get("rare_modes_total") for r in ours), None)
        lines += [
            f"| method | K | source | seeds | modes (of {total}) | high-quality % | reverse KL "
            + "".join(f"| {k} " for k in prdc)
            + "".join(f"| {title} " for _, title, _ in extra)
            + ("| seeds with every rare mode " if rare_total else "")
            + "| seeds with all modes | budget | wall s / run |",
            "|" + " --- |" * (10 + len(prdc) + len(extra) + bool(rare_total)),
        ]
        for r in ours:
            s = r["summary"]
            n = len(r["per_seed"])
            partial = "" if r.get("complete", True) else f" (of {len(r['seeds_requested'])})"
            lines.append(
                f"| {method_label(r)} | {k_cell(r, total)} | {source_cell(r)} | "
                f"{n}{partial} | "
                + " | ".join(fmt(s[key], d) for key, _, d, _ in METRICS)
                + "".join(
                    f" | {fmt(s[f'prdc_{k}'], 3) if f'prdc_{k}' in s else 'not logged'}"
                    for k in prdc
                )
                + "".join(
                    f" | {fmt(s[key], d) if key in s else 'not logged'}" for key, _, d in extra
                )
                + (f" | {s.get('seeds_all_rare_modes', '?')}/{n}" if rare_total else "")
                + f" | {r['seeds_all_modes']}/{n} | {budget(r)} | "
                f"{fmt(s['wall_seconds'], 0)} |"
            )
        for name, (source, values) in PUBLISHED.get(data, {}).items():
            cells = [published_cell(v, d) for v, (_, _, d, _) in zip(values, METRICS)]
            lines.append(
                f"| {name} | 1 | **published**, {source} | {10 if source == PACGAN else '?'} | "
                + " | ".join(cells)
                + " | not reported" * (len(prdc) + len(extra) + bool(rare_total))
                + f" | not reported | {source.split()[0]}'s | |"
            )
        if data in TARGETS and ours:
            lines += ["", target_line(data, ours, total)]
        if rare_total and ours:
            lines += ["", rare_line(ours, rare_total)]
        if data in ABLATIONS and ours:
            lines += gains_section(data, ours, total)
        if ours:
            lines += ["", "Per seed:", ""] + [per_seed_line(r) for r in ours]
            lines += ["", "Reproduce:", ""]
            for r in ours:
                lines.append(f"- {method_label(r)}: " + reproduce(r))
            failed = {k: v for r in ours for k, v in r.get("failed", {}).items()}
            if failed:
                lines += ["", f"Failed seeds: {', '.join(sorted(failed))}."]
    if plot_name:
        lines += ["", f"![mode coverage]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas: list[str] = [d for d in ("ring", "grid") if any(r.get("data") == d for r in results)]
    datas += sorted({str(r["data"]) for r in results if r.get("data")} - set(datas))
    if not datas:
        return
    fig, axes = plt.subplots(
        len(datas), len(METRICS), figsize=(4.2 * len(METRICS), 3.6 * len(datas)), squeeze=False
    )
    for row, data in enumerate(datas):
        ours = sorted(
            (r for r in results if r.get("data") == data), key=lambda r: r.get("method", "")
        )
        published = PUBLISHED.get(data, {})
        labels = [f"{method_label(r)}\n(ours, n={len(r['per_seed'])})" for r in ours]
        labels += [f"{n}\n(published)" for n in published]
        for col, (key, title, _, value) in enumerate(METRICS):
            ax = axes[row][col]
            means, errors, colours = [], [], []
            for r in ours:
                stat = r["summary"][key]
                means.append(stat["mean"] if stat["mean"] is not None else float("nan"))
                errors.append(stat["se"] or 0.0)
                colours.append("tab:blue")
            for _, values in published.values():
                stat = values[col]
                means.append(float("nan") if stat is None else stat[0])
                errors.append(0.0 if stat is None or stat[1] is None else stat[1])
                colours.append("lightgray")
            x = list(range(len(means)))
            ax.bar(x, means, yerr=errors, color=colours, edgecolor="black", capsize=3)
            for i, r in enumerate(ours):  # every seed as a dot
                seeds = [value(s) for s in r["per_seed"]]
                ax.scatter([i] * len(seeds), seeds, color="black", s=10, zorder=3, alpha=0.7)
            if key == "modes":
                total = next(
                    (r.get("total_modes") for r in ours if r.get("total_modes")),
                    {"ring": 8, "grid": 25}.get(data),
                )
                if total:
                    ax.axhline(total, color="tab:green", linestyle="--", linewidth=1)
            ax.set_xticks(x)
            ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
            ax.set_title(f"{data}: {title}", fontsize=10)
        axes[row][0].set_ylabel(
            "mean ± s.e. (blue: ours, dots: seeds;\ngrey: published)", fontsize=8
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of result JSON")
    parser.add_argument("--no-plot", action="store_true", help="leave coverage.png as it is")
    args = parser.parse_args(argv)
    folder = args.results
    results = load_results(folder)
    out = folder / "coverage.md"
    if not args.no_plot and results:
        plot(results, out.with_suffix(".png"))
    out.write_text(markdown(results, out.with_suffix(".png").name if results else None))
    written = [out]
    for suite in stacked_mnist.SUITES:
        if (folder / f"{suite}.json").exists():
            result = json.loads((folder / f"{suite}.json").read_text())
            (folder / f"{suite}.md").write_text(stacked_mnist.markdown(result, suite))
            written.append(folder / f"{suite}.md")
    for path in sorted(folder.glob("*.json")):  # measurements: by name or by their layout
        result = json.loads(path.read_text())
        if measured.layout(path.stem, result):
            path.with_suffix(".md").write_text(measured.markdown(path.stem, result))
            written.append(path.with_suffix(".md"))
    print(f"{len(results)} coverage results; wrote " + ", ".join(p.name for p in written))


if __name__ == "__main__":
    main()
