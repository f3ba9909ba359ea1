"""Stacked MNIST (1,000 modes): every method on equal terms, modes and KL under both rules.

A suite is a folder of method configs that share networks, data and budget (``SUITES``). Each
method config M of suite X and seed S is one ``mgan fit --config configs/X/M.yaml
--seed_everything=S`` through the harness (:mod:`benchmarks.harness`; runs under
``runs/benchmarks/X_M/seedS``, reused when their effective configuration is unchanged). The
figures are those the config's ``StackedMNISTEvaluation`` logged (26,000 samples; distinct
triples and KL(histogram || uniform over 1,000) under the PacGAN rule ``all``, every
predicted triple, and the MWU/AdaGAN rule ``confident``, all three digit confidences > 0.95),
read from the run's ``metrics.csv``: the last evaluation, and the curve over generator steps.
``--steps`` overrides every config's budget.

    python -m benchmarks.stacked_mnist                        # 5 methods x 3 seeds
    python -m benchmarks.stacked_mnist --suite stacked_mnist_weak_d
    python -m benchmarks.stacked_mnist --methods gan mgan --seeds 0 --steps 500

Writes ``benchmarks/results/X.json``, ``.md`` and ``.png`` after every finished run, keeping
the earlier result's runs of other methods and seeds (each names its commit);
``python -m benchmarks.report`` rewrites the ``.md`` from the JSON.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks import harness

RULES = ("all", "confident")
# FidelityEvaluation's figures on the digit classifier's features, where a run logged them.
FIDELITY = ("fid", "kid_mean", "precision", "recall", "density", "coverage")
DEFAULT_METHODS = ("gan", "mgan", "mimgan", "bourgan", "mwu_cpu")
# Each suite: its title and what its configs share (the configs' headers give the details).
SUITES = {
    "stacked_mnist": (
        "Stacked MNIST (1,000 modes)",
        "G and D both DCGAN width 16, Adam 1e-3, linear decay and EMA",
    ),
    "stacked_mnist_weak_d": (
        "Stacked MNIST (1,000 modes), weak discriminator",
        "G DCGAN width 16, D shrunk to a quarter (width 4, the Unrolled GAN / VEEGAN / "
        "PacGAN Table 2 setting for DCGAN), Adam 2e-4, linear decay and EMA",
    ),
}
DEFAULT_SUITE = "stacked_mnist"
BASELINE = "gan"
# Published Stacked-MNIST rows (modes / KL), their networks and budgets, not rerun here.
# PacGAN Table 2 (Lin et al. 2018) quotes the first three from VEEGAN's Table 2
# (Srivastava et al. 2017), whose DCGAN setting shrinks D to a quarter (Unrolled GAN's).
PUBLISHED = [
    ("DCGAN", "VEEGAN Table 2 / PacGAN Table 2", 99, 3.40),
    ("Unrolled GAN", "VEEGAN Table 2 / PacGAN Table 2", 48.7, 4.32),
    ("VEEGAN", "VEEGAN Table 2 / PacGAN Table 2", 150, 2.95),
    ("PacDCGAN2", "PacGAN Table 2", 1000, 0.06),
    ("PacDCGAN4", "PacGAN Table 2", 1000, 0.07),
]


def steps_cell(steps: int | None) -> str:
    return "?" if steps is None else f"{steps:,}"


def kl_cell(kl: float | None) -> str:
    """A KL as printed: undefined (NaN: no sample counted) in words, never ``nan``."""
    if kl is None:
        return "?"
    return "undefined" if math.isnan(kl) else f"{kl:.2f}"


def score(method: str, run: harness.Run) -> dict[str, Any]:
    """One run's final figures under both rules and its curve, from its ``metrics.csv``."""
    steps = harness.logged(run.folder)
    evaluated = [s for s in sorted(steps) if "stacked_mnist/all/modes" in steps[s]]
    if not evaluated:
        raise KeyError(f"stacked_mnist/all/modes never logged under {run.folder}")
    last = steps[evaluated[-1]]
    rules = {
        rule: {
            "modes": int(last[f"stacked_mnist/{rule}/modes"]),
            "kl": last.get(f"stacked_mnist/{rule}/kl", math.nan),  # NaN: nothing counted
            "counted_percent": round(100 * last[f"stacked_mnist/{rule}/counted"], 1),
        }
        for rule in RULES
        if f"stacked_mnist/{rule}/modes" in last
    }
    curve = [
        {"step": float(s)}
        | {
            f"{r}/{k}": steps[s].get(f"stacked_mnist/{r}/{k}", math.nan)
            for r in RULES
            for k in ("modes", "kl")
        }
        | {k: steps[s][f"fidelity/{k}"] for k in FIDELITY if f"fidelity/{k}" in steps[s]}
        for s in evaluated
    ]
    fidelity = {k: last[f"fidelity/{k}"] for k in FIDELITY if f"fidelity/{k}" in last}
    return {
        "method": method,
        "generator_steps": evaluated[-1],
        "rules": rules,
        **({"fidelity": fidelity} if fidelity else {}),
        "curve": curve,
        "command": run.command,
    } | run.record()


# ------------------------------------------------------------------ report
def summarise(results: list[dict]) -> dict[str, dict]:
    """Per method and rule: mean, standard error, and whether it beat the baseline's modes
    in every seed they share."""
    methods = sorted({r["method"] for r in results}, key=lambda m: (m != BASELINE, m))
    base = {r["seed"]: r for r in results if r["method"] == BASELINE}
    summary: dict[str, dict] = {}
    for method in methods:
        runs = sorted((r for r in results if r["method"] == method), key=lambda r: r["seed"])
        entry: dict[str, object] = {"seeds": [r["seed"] for r in runs]}
        for rule in RULES:
            modes = [r["rules"][rule]["modes"] for r in runs if rule in r["rules"]]
            kls = [r["rules"][rule]["kl"] for r in runs if rule in r["rules"]]
            finite = [k for k in kls if not math.isnan(k)]
            shared = [r for r in runs if r["seed"] in base and rule in r["rules"]]
            entry[rule] = {
                "modes_mean": statistics.fmean(modes) if modes else None,
                "modes_se": statistics.stdev(modes) / math.sqrt(len(modes))
                if len(modes) > 1
                else 0.0,
                "kl_mean": statistics.fmean(finite) if finite else None,
                "beats_baseline_every_seed": (
                    all(
                        r["rules"][rule]["modes"] > base[r["seed"]]["rules"][rule]["modes"]
                        for r in shared
                    )
                    if shared and method != BASELINE
                    else None
                ),
            }
        if runs and all("fidelity" in r for r in runs):
            for key in FIDELITY:
                values = [r["fidelity"][key] for r in runs]
                entry[key] = {
                    "mean": statistics.fmean(values),
                    "se": statistics.stdev(values) / math.sqrt(len(values))
                    if len(values) > 1
                    else 0.0,
                }
        summary[method] = entry
    return summary


def write(results: list[dict], suite: str, settings: dict[str, Any], out_dir: Path) -> None:
    summary = summarise(results)
    payload = {
        "settings": settings,
        "provenance": harness.provenance(settings["threads"]),
        "summary": summary,
        "runs": results,
    }
    harness.write_json(out_dir / f"{suite}.json", payload)
    plot(results, out_dir / f"{suite}.png")
    sample_sheet(results, out_dir / f"{suite}_samples.png")
    (out_dir / f"{suite}.md").write_text(markdown(payload, suite))


def sample_sheet(results: list[dict], path: Path) -> str | None:
    """Each method's last sample grid of its lowest seed (``SampleGrid``'s PNG), side by side."""
    grids = []
    for method in sorted({r["method"] for r in results}, key=lambda m: (m != BASELINE, m)):
        run = min((r for r in results if r["method"] == method), key=lambda r: r["seed"])
        if not run.get("run_dir"):
            continue
        pictures = sorted(Path(run["run_dir"]).glob("logs/version_*/images/samples_grid_step*.png"))
        if pictures:
            grids.append((f"{method}, seed {run['seed']}", pictures[-1]))
    if not grids:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 3.5), squeeze=False)
    for ax, (title, picture) in zip(axes[0], grids):
        ax.imshow(plt.imread(picture))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


MIXTURE_NORM = "gan_mixture_norm"  # the baseline's DCGAN with mixture normalization in G


def earlier_runs_note(results: list[dict]) -> list[str]:
    """A sentence naming the methods whose runs come from other commits than the baseline's
    (kept from an earlier result), when there are any."""
    baseline = {r.get("git_commit") for r in results if r["method"] == BASELINE}
    older = sorted({r["method"] for r in results if r.get("git_commit") not in baseline})
    if not baseline or not older:
        return []
    return [
        "",
        f"Kept from earlier runs (their commits in the table below; measured before FID, KID and "
        f"density were logged): {', '.join(older)}. Their 'more modes than GAN' column compares "
        f"them with the GAN runs of this table, made with newer code.",
    ]


def first_step_reaching(curve: list[dict], key: str, target: float) -> float | None:
    """The first evaluated generator step whose ``key`` is at most ``target`` (lower is
    better), or None."""
    for point in curve:
        value = point.get(key)
        if value is not None and not math.isnan(value) and value <= target:
            return point["step"]
    return None


def mixture_norm_section(results: list[dict]) -> list[str]:
    """Mixture normalization against batch norm in the same DCGAN, seed by seed: the final
    figures of both, and the first evaluation at which the mixture-norm model's FID on the
    digit features reached the batch-norm model's final FID."""
    bn = {r["seed"]: r for r in results if r["method"] == BASELINE and "fidelity" in r}
    mn = {r["seed"]: r for r in results if r["method"] == MIXTURE_NORM and "fidelity" in r}
    seeds = sorted(set(bn) & set(mn))
    if not seeds:
        return []
    lines = [
        "",
        "## Mixture Normalization against batch norm",
        "",
        f"`{MIXTURE_NORM}` is `{BASELINE}` with mixture normalization (K = 2) in G's shared "
        "blocks; both train the same budget. FID and KID on the digit classifier's features "
        "(lower is better), evaluated every 1,000 generator steps; 'steps to BN's final FID': "
        "the first evaluation at which the mixture-norm model's FID was at most the batch-norm "
        "model's final FID of the same seed. A mixture-norm G step costs about 2x batch norm's "
        "on this CPU (`mixture_norm_cost.md`).",
        "",
        "| seed | norm | FID (digits) | KID (digits) | density | coverage | modes (all) "
        "| steps to BN's final FID |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for seed in seeds:
        target = bn[seed]["fidelity"]["fid"]
        for label, run in (("batch", bn[seed]), ("mixture", mn[seed])):
            f = run["fidelity"]
            reached = first_step_reaching(run["curve"], "fid", target)
            lines.append(
                f"| {seed} | {label} | {f['fid']:.2f} | {f['kid_mean']:.4f} | {f['density']:.3f} "
                f"| {f['coverage']:.3f} | {run['rules']['all']['modes']} | "
                + ("not reached" if reached is None else f"{reached:,.0f}")
                + " |"
            )
    return lines


def fidelity_cells(entry: dict[str, Any], keys: list[str]) -> str:
    """``| mean ± se`` per figure on the classifier's features, ``not logged`` for runs made
    without them."""
    cells = []
    for key in keys:
        stat = entry.get(key)
        cells.append("not logged" if stat is None else f"{stat['mean']:.3f} ± {stat['se']:.3f}")
    return "".join(f" | {c}" for c in cells)


def markdown(payload: dict[str, Any], suite: str = DEFAULT_SUITE) -> str:
    """The suite's table from its JSON: means over seeds beside the published rows, every
    run, the plots and the command."""
    results, summary = payload["runs"], payload["summary"]
    steps = sorted({r["generator_steps"] for r in results if r.get("generator_steps")})
    title, shared = SUITES[suite]
    lines = [
        f"# {title}",
        "",
        f"Each method runs its own config in `configs/{suite}/` (which states its budget); "
        "the comparison configs share the networks, the data and the budget in generator steps "
        f"({shared}). "
        f"Budgets in these runs: {', '.join(f'{s:,}' for s in steps)} generator steps. "
        "Digits come from the MNIST t10k split (offline); 26,000 samples of the final model are "
        "labelled by the shipped digit classifier. Rule `all`: every predicted triple counts "
        "(PacGAN, VEEGAN); rule `confident`: only samples whose three digit confidences all "
        "exceed 0.95 count (MWU, AdaGAN). KL is KL(histogram of counted triples || uniform "
        "over 1,000). FID, KID and density and coverage (Naeem et al. 2020, k = 5) compare "
        "10,000 samples with 10,000 training images on the classifier's penultimate features "
        "of the three digits (not Inception's), where a run logged them: unlike the confident "
        "rule, density tells noise (near 0) from real digit triples.",
        "",
        "## Mean over seeds",
        "",
    ]
    titles = {"fid": "FID (digits)", "kid_mean": "KID (digits)", "density": "density"}
    titles["coverage"] = "coverage"
    shown = [k for k in titles if any(k in e for e in summary.values())]
    lines += [
        "| method | seeds | modes (all) | KL (all) | modes (confident) | KL (confident) "
        + "".join(f"| {titles[k]} " for k in shown)
        + "| more modes than GAN in every seed (all / confident) |",
        "| --- | --- | ---: | ---: | ---: | ---: " + "| ---: " * len(shown) + "| --- |",
    ]

    def yes_no(value: object) -> str:
        return "—" if value is None else ("yes" if value else "**no**")

    for method, entry in summary.items():
        a, c = entry["all"], entry["confident"]
        lines.append(
            f"| {method} | {len(entry['seeds'])} | {a['modes_mean']:.1f} ± {a['modes_se']:.1f} | "
            f"{kl_cell(a['kl_mean'])} | {c['modes_mean']:.1f} ± {c['modes_se']:.1f} | "
            f"{kl_cell(c['kl_mean'])}{fidelity_cells(entry, shown)} | "
            f"{yes_no(a['beats_baseline_every_seed'])} / "
            f"{yes_no(c['beats_baseline_every_seed'])} |"
        )
    for name, source, modes, kl in PUBLISHED:
        lines.append(
            f"| {name} | **published**, {source} | {modes} | {kl} | | |" + " |" * len(shown) + " |"
        )
    lines += [
        "",
        "Published rows are quoted, not rerun: their networks (DCGAN with D shrunk to a quarter "
        "for DCGAN/Unrolled/VEEGAN) and their budgets (PacGAN: about 100,000 generator steps).",
        *earlier_runs_note(results),
        "",
        "## Every run",
        "",
        "| method | seed | G steps | modes (all) | KL (all) | modes (confident) | KL (confident) "
        "| counted (confident) | wall s | commit |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in sorted(results, key=lambda r: (r["method"] != BASELINE, r["method"], r["seed"])):
        a, c = r["rules"].get("all", {}), r["rules"].get("confident", {})
        lines.append(
            f"| {r['method']} | {r['seed']} | {steps_cell(r.get('generator_steps'))} | "
            f"{a.get('modes')} | {kl_cell(a.get('kl'))} | {c.get('modes')} | "
            f"{kl_cell(c.get('kl'))} | {c.get('counted_percent')}% | {r['wall_seconds']:.0f} | "
            f"{str(r.get('git_commit', '?'))[:10]} |"
        )
    lines += mixture_norm_section(results)
    lines += ["", f"![modes vs generator steps]({suite}.png)"]
    lines += ["", f"![final samples, seed 0, one row per generator]({suite}_samples.png)"]
    command = "python -m benchmarks.stacked_mnist --methods " + " ".join(summary)
    if suite != DEFAULT_SUITE:
        command += f" --suite {suite}"
    commit = payload.get("provenance", {}).get("git", {}).get("commit") or payload.get("git_commit")
    lines += ["", f"Reproduce: `{command}` (commit {str(commit)[:10]}; each run below):", ""]
    lines += [f"- `{r['command']}`" for r in results]
    lines += [
        "",
        "Wall times: one thread per run on a 2-core CPU that other jobs shared; not speed figures.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> str | None:
    if not any(r.get("curve") for r in results):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    methods = sorted({r["method"] for r in results}, key=lambda m: (m != BASELINE, m))
    colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    for ax, rule in zip(axes, RULES):
        for r in results:
            curve = r.get("curve") or []
            if not curve:
                continue
            ax.plot(
                [p["step"] for p in curve],
                [p[f"{rule}/modes"] for p in curve],
                color=colours[r["method"]],
                alpha=0.8,
                marker=".",
                label=r["method"] if r["seed"] == min(x["seed"] for x in results) else None,
            )
        ax.set_xlabel("generator steps")
        ax.set_ylabel(f"modes covered (rule '{rule}')")
        ax.set_title(f"Stacked MNIST, rule '{rule}' (one line per seed)", fontsize=9)
        ax.set_ylim(0, None)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def kept_runs(path: Path, methods: list[str], seeds: list[int]) -> list[dict]:
    """The runs of an earlier result that this call does not redo (other methods or seeds),
    each with its own commit, so one method can be measured again without the others."""
    if not path.exists():
        return []
    earlier = json.loads(path.read_text()).get("runs", [])
    return [r for r in earlier if not (r["method"] in methods and r["seed"] in seeds)]


def main(argv: list[str] | None = None) -> int:
    own, overrides = harness.split_overrides(sys.argv[1:] if argv is None else argv)
    p = harness.parser(__doc__.splitlines()[0])
    p.set_defaults(seeds=[0, 1, 2])
    p.add_argument("--suite", choices=sorted(SUITES), default=DEFAULT_SUITE)
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    p.add_argument("--steps", type=int, default=None, help="override every config's budget")
    p.add_argument("--out-dir", type=Path, default=harness.RESULTS)
    args = p.parse_args(own)
    if args.steps:
        overrides = [f"--model.init_args.max_generator_steps={args.steps}", *overrides]
    settings = {"suite": args.suite, "methods": args.methods, "seeds": args.seeds}
    settings |= {"steps": args.steps, "overrides": overrides, "threads": args.threads}
    results = kept_runs(args.out_dir / f"{args.suite}.json", args.methods, args.seeds)
    for seed in args.seeds:
        for method in args.methods:
            config = f"configs/{args.suite}/{method}.yaml"
            name = f"{args.suite}_{method}"
            run = harness.fit(name, config, seed, overrides, args.threads, args.force, args.runs)
            results.append(score(method, run))
            cells = ", ".join(
                f"{rule}: {r['modes']} modes, KL {kl_cell(r['kl'])}"
                for rule, r in results[-1]["rules"].items()
            )
            print(f"{method} seed {seed}{' (reused)' if run.reused else ''}: {cells}", flush=True)
            write(results, args.suite, settings, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
