"""One sheet of every coverage row's samples, coloured by generator: the scatter plot that
each run's own ``ModeCoverageEvaluation`` drew at its last evaluation, for one seed.

    python -m benchmarks.scatter_sheet            # seed 0, after benchmarks.coverage

Reads the coverage results (``benchmarks/results/<data>_<method>.json``) for their run
folders (``runs/benchmarks/<name>/seed<S>``) and writes ``results/coverage_scatter.png``,
one row per data set. Rows whose run is not on this machine are left out (and named).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks import harness


def last_scatter(folder: Path) -> Path | None:
    pictures = sorted(folder.rglob("coverage_scatter_step*.png"))
    return pictures[-1] if pictures else None


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=Path, default=harness.RUNS)
    p.add_argument("--out", type=Path, default=harness.RESULTS / "coverage_scatter.png")
    args = p.parse_args(argv)
    panels: dict[str, list[tuple[str, Path]]] = {}
    missing = []
    for path in sorted(harness.RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        if not (isinstance(result, dict) and "seeds_all_modes" in result):
            continue
        picture = last_scatter(args.runs / result["name"] / f"seed{args.seed}")
        if picture is None:
            missing.append(result["name"])
            continue
        panels.setdefault(result["data"], []).append((result["method"], picture))
    if not panels:
        raise SystemExit(f"no coverage run of seed {args.seed} under {args.runs}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(len(row) for row in panels.values())
    fig, axes = plt.subplots(len(panels), cols, figsize=(2.8 * cols, 3 * len(panels)))
    for ax in fig.axes:
        ax.axis("off")
    for r, (data, row) in enumerate(sorted(panels.items(), reverse=True)):
        for c, (method, picture) in enumerate(row):
            ax = fig.axes[r * cols + c]
            ax.imshow(plt.imread(picture))
            ax.set_title(f"{data}: {method}", fontsize=8)
    fig.suptitle(f"Each method's samples at its last evaluation, seed {args.seed}", fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"wrote {args.out}" + (f"; no run for {', '.join(missing)}" if missing else ""))


if __name__ == "__main__":
    main()
