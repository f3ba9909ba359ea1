"""The multiplicative-weights mixture round by round, from the coverage benchmark's runs.

``coverage.py --config configs/{ring,grid}/mwu{,_t5}.yaml`` trains each seed with
``ModeCoverageEvaluation`` every 5,000 generator steps, which is every round's end: the row
at step 5,000 t scores the mixture of the first t generators. MWU itself logs, per round,
``mwu/min_generation_ratio`` (the smallest, over training points, of the mixture's
estimated generation probability, as a multiple of 1/n: the pointwise quantity the paper
guarantees), ``mwu/new_generator_modes`` and the weights' statistics. This script reads
those CSV logs for every seed and writes, per data set and round, every seed's values and
their mean, as JSON, a Markdown table and plots per run set (modes and high-quality share
against T; the smallest estimated generation ratio per round).

    python benchmarks/mwu_rounds.py        # after coverage.py ran configs/*/mwu{,_t5}.yaml

``--reduced`` trains instead, in this process, a few short runs of ``configs/{ring,grid}/
mwu.yaml`` (``--rounds`` rounds of ``--steps`` generator steps, the LR decay over each
round's second half as in the configs) with a moving average kept beside them (decay
``1 - 5 / steps`` from half-way through each round: the 0.999 from step 2,500 of the
configs before the fix, scaled), and scores after each round both mixtures that the same
training gives: the raw G_1..G_t that the rounds' D scored (what MWU keeps now) and their
averages (what it kept before the fix). The averages never enter training, so the weights,
the share doubled and the smallest ratio are the same for both: only what joins the
mixture differs. For a machine where the full runs do not fit:

    python benchmarks/mwu_rounds.py --reduced --seeds 0 1 2 3 4 --rounds 2 --steps 1250

Writes ``benchmarks/results/mwu_rounds.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "benchmarks"
METRICS = {
    "modes": "coverage/modes",
    "high_quality": "coverage/high_quality",
    "reverse_kl": "coverage/reverse_kl",
    "min_generation_ratio": "mwu/min_generation_ratio",
    "new_generator_modes": "mwu/new_generator_modes",
    "doubled_share": "mwu/doubled_share",
}


def read_seed(csv_path: Path, steps_per_round: int) -> dict[int, dict[str, float]]:
    """Round t (1-based) -> the metrics logged at step t * steps_per_round."""
    rounds: dict[int, dict[str, float]] = {}
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            step = int(float(row["step"]))
            if step % steps_per_round:
                continue
            values = rounds.setdefault(step // steps_per_round, {})
            for name, key in METRICS.items():
                if row.get(key):
                    values[name] = float(row[key])
    return rounds


RUN_SETS = ("ring_mwu", "ring_mwu_t5", "grid_mwu", "grid_mwu_t5")  # coverage.py's names


def collect(run_set: str) -> dict | None:
    result_path = RESULTS / f"{run_set}.json"
    if not result_path.exists():
        return None
    result = json.loads(result_path.read_text())
    config = (ROOT / result["config"]).read_text()
    steps_per_round = int(config.split("steps_per_round:")[1].split()[0])
    for override in result.get("overrides") or []:  # a command-line value wins
        if override.startswith("--model.init_args.steps_per_round="):
            steps_per_round = int(override.split("=", 1)[1])
    seeds = {}
    for record in result["per_seed"]:
        logs = sorted((RUNS / run_set / f"seed{record['seed']}" / "logs").glob("*/metrics.csv"))
        if logs:
            seeds[record["seed"]] = read_seed(logs[-1], steps_per_round)
    rounds = sorted({t for s in seeds.values() for t in s})
    table = []
    for t in rounds:
        row: dict = {"round": t}
        for name in METRICS:
            values = [s[t][name] for s in seeds.values() if name in s.get(t, {})]
            row[name] = {"seeds": values, "mean": statistics.fmean(values) if values else None}
        table.append(row)
    return {
        "name": run_set,
        "data": result.get("data", run_set.split("_")[0]),
        "config": result["config"],
        "steps_per_round": steps_per_round,
        "seeds": sorted(seeds),
        "total_modes": result.get("total_modes"),
        "rounds": table,
    }


def markdown(results: list[dict]) -> str:
    lines = [
        "# Multiplicative-weights mixture, round by round",
        "",
        "From the runs of `benchmarks/coverage.py --config configs/<data>/mwu{,_t5}.yaml` (2,500 "
        "samples of the mixture of the first t generators at the end of round t; PacGAN "
        "protocol). `min ratio`: the smallest, over training points, of the mixture's "
        "estimated generation probability times n (1 = as likely as under the uniform "
        "empirical distribution). Mean over seeds, then every seed.",
        "",
        "Generated by `python benchmarks/mwu_rounds.py`.",
    ]
    for r in results:
        lines += [
            "",
            f"## {r['name']} (`{r['config']}`, {r['steps_per_round']:,} steps a round, "
            f"seeds {', '.join(map(str, r['seeds']))})",
            "",
            "| round t | modes of the first t (of "
            f"{r['total_modes']}) | high-quality % | reverse KL | min ratio | modes of G_t alone "
            "| points doubled % |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]

        def cell(row: dict, name: str, scale: float = 1.0, digits: int = 2) -> str:
            stat = row[name]
            if stat["mean"] is None:
                return "n/a"
            each = ", ".join(f"{scale * v:.{digits}f}" for v in stat["seeds"])
            return f"{scale * stat['mean']:.{digits}f} ({each})"

        for row in r["rounds"]:
            lines.append(
                f"| {row['round']} | {cell(row, 'modes', digits=1)} | "
                f"{cell(row, 'high_quality', 100, 1)} | {cell(row, 'reverse_kl')} | "
                f"{cell(row, 'min_generation_ratio', digits=3)} | "
                f"{cell(row, 'new_generator_modes', digits=0)} | "
                f"{cell(row, 'doubled_share', 100, 1)} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 3, figsize=(14, 3.4 * len(results)), squeeze=False)
    for (ax_modes, ax_hq, ax_ratio), r in zip(axes, results):
        rounds = [row["round"] for row in r["rounds"]]
        for name, ax, title in (
            ("modes", ax_modes, f"{r['name']}: modes covered by the first t generators"),
            ("high_quality", ax_hq, f"{r['name']}: high-quality share of the first t"),
            ("min_generation_ratio", ax_ratio, f"{r['name']}: smallest estimated n * P(x_i)"),
        ):
            for i in range(len(r["seeds"])):
                ys = [
                    row[name]["seeds"][i] if i < len(row[name]["seeds"]) else None
                    for row in r["rounds"]
                ]
                ax.plot(rounds, ys, color="0.7", marker=".", linewidth=0.8)
            ax.plot(rounds, [row[name]["mean"] for row in r["rounds"]], color="C0", marker="o",
                    linewidth=2, label="mean over seeds")  # fmt: skip
            ax.set_xlabel("round t")
            ax.set_title(title, fontsize=9)
            ax.set_xticks(rounds)
        ax_modes.axhline(r["total_modes"], color="C2", linestyle="--", linewidth=1)
        ax_ratio.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ------------------------------------------------------------- --reduced: train here
def coverage_of(samples, datamodule) -> dict[str, float | None]:
    from mgan_lightning.metrics.mode_coverage import ModeCoverage

    metric = ModeCoverage(datamodule.modes, datamodule.mode_std, datamodule.mode_weights)
    metric.update(samples.cpu())
    values = {k: float(v) for k, v in metric.compute().items()}
    return {k: v if v == v else None for k, v in values.items()}  # NaN (undefined KL): null


def train_reduced(data: str, seed: int, rounds: int, steps: int) -> dict:
    """One short run of ``configs/<data>/mwu.yaml`` with a moving average kept beside it;
    after the run, each round's two mixtures of the first t generators (the raw G_1..G_t and
    their averages at their rounds' ends), 2,500 samples each, PacGAN protocol."""
    import torch

    from mgan_lightning.cli import build_cli
    from mgan_lightning.rng import derive_seed

    half = steps // 2
    model_args: dict[str, float] = {"num_rounds": rounds, "steps_per_round": steps}
    model_args |= {"ema_decay": 1 - 5 / steps, "ema_start": half}
    overrides = [f"--model.init_args.{k}={v}" for k, v in model_args.items()]
    for net in ("g", "d"):
        for key, value in (("start", half), ("end", steps), ("period", steps)):
            overrides.append(f"--model.init_args.scheduler_{net}.init_args.{key}={value}")
    run_dir = RUNS / "mwu_rounds_reduced" / data / f"seed{seed}"
    sys.argv[1:] = []  # the arguments are these, not this script's
    cli = build_cli(
        [
            "--config", str(ROOT / "configs" / data / "mwu.yaml"), f"--seed_everything={seed}",
            f"--trainer.default_root_dir={run_dir}", "--trainer.enable_progress_bar=false",
            "--trainer.logger=false", "--trainer.enable_checkpointing=false",
            "--trainer.callbacks=[]", *overrides,
        ],
        run=False,
    )  # fmt: skip
    model, datamodule = cli.model, cli.datamodule
    averages: dict[int, dict] = {}
    freeze = model.freeze_generator

    def freeze_and_keep_the_average(t: int) -> None:  # what MWU froze before the fix
        averages[t] = {n: p[t].clone() for n, p in model.generators_ema.named_parameters()}
        freeze(t)

    model.freeze_generator = freeze_and_keep_the_average
    start = time.perf_counter()
    cli.trainer.fit(model, datamodule=datamodule)
    wall = time.perf_counter() - start
    raw = {n: p.detach().clone() for n, p in model.bank.named_parameters()}
    arms = {"raw": lambda s, n: raw[n][s], "average": lambda s, n: averages[s][n]}
    table = []
    for t, logged in enumerate(model.round_history):
        row: dict = {
            "round": t + 1,
            "doubled_share": logged["mwu/doubled_share"],
            "min_generation_ratio": logged["mwu/min_generation_ratio"],
        }
        weights = torch.zeros(rounds)
        weights[: t + 1] = 1.0 / (t + 1)
        for arm, slot in arms.items():
            with torch.no_grad():
                for bank in (model.bank, model.generators_ema):  # sample() reads the average
                    for name, p in bank.named_parameters():
                        for s in range(t + 1):
                            p[s].copy_(slot(s, name))
                mixture_rng = torch.Generator().manual_seed(derive_seed(seed, "mixture", t))
                samples, _ = model.sample(2500, weights=weights, generator=mixture_rng)
                alone_rng = torch.Generator().manual_seed(derive_seed(seed, "alone", t))
                z = model.prior.sample(2500, model.latent_dim, alone_rng)
                alone = model.bank.forward_one(t, z)
            row[arm] = {
                "mixture": coverage_of(samples, datamodule),
                "alone": coverage_of(alone, datamodule),
            }
        table.append(row)
    print(f"{data} seed {seed}: {rounds} x {steps} steps in {wall:.0f} s", flush=True)
    return {"seed": seed, "wall_seconds": wall, "rounds": table}


ARMS = {"raw": "raw G_t (kept now)", "average": "EMA of G_t (kept before the fix)"}


def reduced_markdown(results: list[dict]) -> str:
    first = results[0]
    lines = [
        "# Multiplicative-weights mixture, round by round: reduced rerun after the fix",
        "",
        f"A reduced rerun ({first['rounds']} rounds of {first['steps_per_round']:,} generator "
        "steps, seeds " + ", ".join(map(str, first["seeds"])) + "; the configs train 4 or 5 "
        "rounds of 5,000 steps, which did not fit the machine this was run on). Each run "
        "trains `configs/<data>/mwu.yaml` with its LR decay over each round's second half, "
        f"and keeps beside it a moving average (decay {first['ema_decay']:.4f} from half-way "
        "through each round: the configs' 0.999 from step 2,500 before the fix, scaled). "
        "From the same training, after round t, two mixtures of the first t generators: "
        "**raw**, the G_t that the round's D was trained against and scored (what MWU keeps "
        "now), and **EMA**, their averages (what it kept before the fix). The average never "
        "enters training, so the weights, the share of points doubled and the smallest "
        "ratio are the same for both; only what joins the mixture differs. 2,500 samples per "
        "mixture and per G_t, PacGAN protocol. `min ratio`: the smallest, over training "
        "points, of the mixture's estimated generation probability times n. A row per "
        "mixture and round; cells: mean over seeds, then every seed. The full-budget tables "
        "(before the fix) are in this file's git history.",
        "",
        "Generated by `python benchmarks/mwu_rounds.py --reduced --seeds "
        + " ".join(map(str, first["seeds"]))
        + f" --rounds {first['rounds']} --steps {first['steps_per_round']}`.",
    ]

    def cell(values: list[float | None], scale: float, digits: int) -> str:
        """Mean over the seeds where the value is defined (a reverse KL is undefined when
        no sample is of high quality), then every seed."""
        each = ", ".join("undefined" if v is None else f"{scale * v:.{digits}f}" for v in values)
        defined = [v for v in values if v is not None]
        mean = f"{scale * statistics.fmean(defined):.{digits}f}" if defined else "undefined"
        return f"{mean} ({each})"

    for r in results:
        lines += [
            "",
            f"## {r['data']} (`{r['config']}`, {r['rounds']} x {r['steps_per_round']:,} steps, "
            f"{statistics.fmean(run['wall_seconds'] for run in r['runs']):.0f} s a run)",
            "",
            "| round t | mixture | modes of the first t | high-quality % | reverse KL "
            "| G_t alone: modes | G_t alone: high-quality % | points doubled % | min ratio |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for t in range(r["rounds"]):
            rows = [run["rounds"][t] for run in r["runs"] if t < len(run["rounds"])]
            common = (
                f"{cell([x['doubled_share'] for x in rows], 100, 1)} | "
                f"{cell([x['min_generation_ratio'] for x in rows], 1, 3)}"
            )
            for arm in ARMS:
                mix = [x[arm]["mixture"] for x in rows]
                alone = [x[arm]["alone"] for x in rows]
                lines.append(
                    f"| {t + 1} | {ARMS[arm]} | {cell([m['modes'] for m in mix], 1, 1)} | "
                    f"{cell([m['high_quality'] for m in mix], 100, 1)} | "
                    f"{cell([m['reverse_kl'] for m in mix], 1, 2)} | "
                    f"{cell([a['modes'] for a in alone], 1, 0)} | "
                    f"{cell([a['high_quality'] for a in alone], 100, 1)} | "
                    + (common if arm == "raw" else "same | same")
                    + " |"
                )
    return "\n".join(lines) + "\n"


def reduced_plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 3, figsize=(14, 3.4 * len(results)), squeeze=False)
    for row_axes, r in zip(axes, results):
        rounds = list(range(1, r["rounds"] + 1))
        panels = (("modes", "modes of the first t"), ("high_quality", "high-quality share"))
        for ax, (key, title) in zip(row_axes, panels):
            for colour, arm in zip(("C0", "C1"), ARMS):
                for run in r["runs"]:
                    ys = [x[arm]["mixture"][key] for x in run["rounds"]]
                    ax.plot(rounds[: len(ys)], ys, color=colour, alpha=0.25, linewidth=0.8)
                means = [
                    statistics.fmean(run["rounds"][t][arm]["mixture"][key] for run in r["runs"])
                    for t in range(r["rounds"])
                ]
                ax.plot(rounds, means, color=colour, marker="o", linewidth=2, label=ARMS[arm])
            ax.set_title(f"{r['data']}: {title}", fontsize=9)
            ax.set_xlabel("round t")
            ax.set_xticks(rounds)
        row_axes[0].legend(fontsize=7)
        ax = row_axes[2]
        for run in r["runs"]:
            ys = [x["min_generation_ratio"] for x in run["rounds"]]
            ax.plot(rounds[: len(ys)], ys, color="0.6", marker=".", linewidth=0.8)
        ax.set_title(f"{r['data']}: smallest estimated n * P(x_i) (both)", fontsize=9)
        ax.set_xlabel("round t")
        ax.set_xticks(rounds)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def reduced_main(args: argparse.Namespace) -> None:
    import warnings

    warnings.filterwarnings("ignore", message=".*keeps each round's raw G_t.*")
    results = []
    for data in args.data:
        runs = [train_reduced(data, seed, args.rounds, args.steps) for seed in args.seeds]
        results.append(
            {
                "name": f"{data}_mwu_reduced",
                "data": data,
                "config": f"configs/{data}/mwu.yaml",
                "rounds": args.rounds,
                "steps_per_round": args.steps,
                "ema_decay": 1 - 5 / args.steps,
                "seeds": args.seeds,
                "runs": runs,
            }
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mwu_rounds.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "mwu_rounds.md").write_text(reduced_markdown(results))
    reduced_plot(results, RESULTS / "mwu_rounds.png")
    print(reduced_markdown(results))


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--reduced", action="store_true", help="train short runs here instead")
    p.add_argument("--data", nargs="+", default=["ring", "grid"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=1250, help="generator steps a round")
    args = p.parse_args()
    if args.reduced:
        reduced_main(args)
        return
    results = [r for r in (collect(name) for name in RUN_SETS) if r is not None]
    if not results:
        raise SystemExit("no benchmarks/results/{ring,grid}_mwu*.json: run coverage.py first")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mwu_rounds.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "mwu_rounds.md").write_text(markdown(results))
    plot(results, RESULTS / "mwu_rounds.png")
    print(markdown(results))


if __name__ == "__main__":
    main()
