"""Samples of every method on the ring and the grid, coloured by the generator that made them.

For each coverage result (``benchmarks/results/<data>_<method>.json``, written by
``coverage.py``) the script rebuilds the trained model of one seed (default 0) from its config
and ``last.ckpt`` under ``runs/benchmarks/<name>/seed<S>`` exactly as ``coverage.py`` scores
it, draws 2,500 samples of the mixture (EMA generators where the method keeps them) and plots
them over the true modes, one panel per method, ring above grid.

    python benchmarks/coverage_scatter.py            # after the coverage runs
    python benchmarks/coverage_scatter.py --seed 3

Writes ``benchmarks/results/coverage_scatter.png``. A result whose run directory is missing
(a clean clone that has not run ``coverage.py``) is listed as skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# benchmarks/coverage.py by path: the name "coverage" is also the coverage.py package's.
_spec = importlib.util.spec_from_file_location(
    "coverage_benchmark", ROOT / "benchmarks/coverage.py"
)
assert _spec is not None and _spec.loader is not None
coverage_benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(coverage_benchmark)
find_checkpoint, load_trained = coverage_benchmark.find_checkpoint, coverage_benchmark.load_trained

DATA_ORDER = ("ring", "grid")


def panels(results_dir: Path, seed: int, run_root: Path) -> tuple[list[dict], list[str]]:
    """One entry per coverage result with the seed's trained run: its config and checkpoint."""
    found, skipped = [], []
    for path in sorted(results_dir.glob("*.json")):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        if not isinstance(result, dict) or result.get("data") not in DATA_ORDER:
            continue
        if not result.get("per_seed"):
            continue
        run_dir = run_root / result["name"] / f"seed{seed}"
        checkpoint = find_checkpoint(run_dir) if run_dir.exists() else None
        if checkpoint is None:
            skipped.append(f"{result['name']} (no run at {run_dir})")
            continue
        found.append(
            {
                "name": result["name"],
                "data": result["data"],
                "method": result["method"],
                "config": result["config"],
                "overrides": result.get("overrides", []),
                "run_dir": str(run_dir),
                "checkpoint": str(checkpoint),
            }
        )
    return found, skipped


def draw_samples(panel: dict, seed: int, num_samples: int):
    import torch

    torch.set_num_threads(1)
    model, data, _, _ = load_trained(
        panel["config"], seed, panel["run_dir"], panel["checkpoint"], panel["overrides"]
    )
    torch.manual_seed(20_000 + seed)
    model.eval()
    with torch.no_grad():
        samples, index = model.sample(num_samples)
    return samples.reshape(len(samples), -1).float(), index, data.modes, model.num_generators


def plot(entries: list[tuple[dict, object]], path: Path, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [d for d in DATA_ORDER if any(p["data"] == d for p, _ in entries)]
    cols = max(sum(p["data"] == d for p, _ in entries) for d in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 2.8 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r, data in enumerate(rows):
        mine = sorted((e for e in entries if e[0]["data"] == data), key=lambda e: e[0]["method"])
        for c, (panel, (samples, index, modes, k)) in enumerate(mine):
            ax = axes[r][c]
            ax.axis("on")
            cmap = plt.get_cmap("tab10" if k <= 10 else "hsv")
            colours = cmap((index.numpy() % 10) / 10 if k <= 10 else index.numpy() / k)
            ax.scatter(
                samples[:, 0], samples[:, 1], s=4, c=colours, alpha=0.7, linewidths=0, zorder=2
            )
            ax.scatter(
                modes[:, 0], modes[:, 1], s=30, marker="+", c="0.6", linewidths=0.6, zorder=1
            )
            span = float(modes.abs().max()) * 1.35
            ax.set_xlim(-span, span)
            ax.set_ylim(-span, span)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{data}: {panel['method']} (K={k})", fontsize=8)
    fig.suptitle(
        f"2,500 samples of each method's final model, seed {seed}; colour = generator, "
        "+ = true modes (under the samples)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-samples", type=int, default=2500)
    p.add_argument("--results", default=str(RESULTS))
    p.add_argument("--run-root", default=str(ROOT / "runs" / "benchmarks"))
    p.add_argument("--out", default=None, help="default <results>/coverage_scatter.png")
    args = p.parse_args(argv)
    found, skipped = panels(Path(args.results), args.seed, Path(args.run_root))
    entries = [(panel, draw_samples(panel, args.seed, args.num_samples)) for panel in found]
    out = Path(args.out) if args.out else Path(args.results) / "coverage_scatter.png"
    if entries:
        plot(entries, out, args.seed)
    print(f"{len(entries)} panels -> {out}")
    for line in skipped:
        print(f"skipped: {line}")


if __name__ == "__main__":
    main()
