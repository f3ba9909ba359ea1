"""Stacked MNIST (1,000 modes): every method on equal terms, modes and KL under both rules.

A suite is a folder of method configs that share networks, data and budget (``SUITES``). For
every method config M of suite X (``configs/X/M.yaml``) and seed S the script runs what a user
runs,

    mgan fit --config configs/X/M.yaml --seed_everything=S
             --trainer.default_root_dir=runs/benchmarks/X_M/seedS [--model...steps]

as a subprocess with one thread (at most ``--jobs`` at once), and reads the final
``StackedMNISTEvaluation`` summary printed at the end of fit: distinct triples among 26,000
samples and KL(histogram || uniform over 1,000), under the PacGAN rule ``all`` (every predicted
triple counts) and the MWU/AdaGAN rule ``confident`` (all three digit confidences > 0.95). The
curve of both over generator steps comes from the run's CSV log. Each config states its own
budget in generator steps (the comparison configs share networks, data and budget); ``--steps``
overrides it for all.

    python benchmarks/stacked_mnist.py                        # 5 methods x 3 seeds
    python benchmarks/stacked_mnist.py --suite stacked_mnist_weak_d
    python benchmarks/stacked_mnist.py --methods gan mgan --seeds 1 --steps 500

Writes ``benchmarks/results/X.json``, ``.md`` and ``.png`` after every finished run. Finished
runs with the same config text and overrides are reused (``--force`` retrains).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RULES = ("all", "confident")
RULE_LINE = re.compile(
    r"rule '(\w+)' .*?: modes (\d+)/1000, KL ([\d.naif-]+|undefined \([^)]*\)), counted ([\d.]+)%"
)
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


def parse_summary(text: str) -> dict[str, dict[str, float]]:
    """The rules of the last ``Stacked MNIST at generator step ...`` block in ``text``."""
    final = text[text.rindex("Stacked MNIST at generator step") :]
    return {
        m.group(1): {
            "modes": int(m.group(2)),
            "kl": math.nan if m.group(3).startswith("undefined") else float(m.group(3)),
            "counted_percent": float(m.group(4)),
        }
        for m in RULE_LINE.finditer(final)
    }


def read_curve(run_dir: Path) -> list[dict[str, float]]:
    """Modes and KL of both rules at every evaluation the run logged (generator steps)."""
    logs = sorted(run_dir.glob("logs/version_*/metrics.csv"))
    if not logs:
        return []
    curve = []
    with logs[-1].open() as f:
        for row in csv.DictReader(f):
            if not row.get("stacked_mnist/all/modes"):
                continue
            point = {"step": float(row["step"])}
            for rule in RULES:
                for key in ("modes", "kl"):
                    value = row.get(f"stacked_mnist/{rule}/{key}")
                    point[f"{rule}/{key}"] = float(value) if value else math.nan
            curve.append(point)
    return curve


class Benchmark:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_root = Path(args.run_dir) if args.run_dir else ROOT / "runs" / "benchmarks"
        self.out_dir = Path(args.out_dir)
        self.suite = args.suite

    def config(self, method: str) -> str:
        """The method's config in this suite, relative to the repository root."""
        return f"configs/{self.suite}/{method}.yaml"

    def overrides(self) -> list[str]:
        return (
            [f"--model.init_args.max_generator_steps={self.args.steps}"] if self.args.steps else []
        )

    def command(self, method: str, seed: int, run_dir: Path) -> list[str]:
        script = Path(sys.executable).with_name("mgan")
        head = [str(script)] if script.exists() else [sys.executable, "-m", "mgan_lightning.cli"]
        return [
            *head, "fit", "--config", self.config(method),
            f"--seed_everything={seed}", f"--trainer.default_root_dir={run_dir}",
            *self.overrides(),
        ]  # fmt: skip

    def config_hash(self, method: str) -> str:
        text = (ROOT / self.config(method)).read_text()
        return hashlib.sha256((text + "\0" + "\0".join(self.overrides())).encode()).hexdigest()[:16]

    def run(self, method: str, seed: int) -> dict:
        run_dir = self.run_root / f"{self.suite}_{method}" / f"seed{seed}"
        record_path = run_dir / "stacked_mnist.json"
        digest = self.config_hash(method)
        if record_path.exists() and not self.args.force:
            record = json.loads(record_path.read_text())
            if record.get("config_hash") == digest:
                record["reused"] = True
                record["run_dir"] = str(run_dir)
                return record
        command = self.command(method, seed, run_dir)
        threads = str(self.args.threads)
        env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        run_dir.mkdir(parents=True, exist_ok=True)
        start = time.time()
        out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.time() - start
        (run_dir / "train.log").write_text(out.stdout + out.stderr)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
        curve = read_curve(run_dir)
        record = {
            "method": method,
            "seed": seed,
            "config": self.config(method),
            "config_hash": digest,
            "run_dir": str(run_dir),
            "generator_steps": int(curve[-1]["step"]) if curve else None,
            "wall_seconds": wall,
            "threads": self.args.threads,
            "command": "mgan " + " ".join(command[command.index("fit") :]),
            "git_commit": git_commit(),
            "rules": parse_summary(out.stdout + out.stderr),
            "curve": curve,
        }
        record_path.write_text(json.dumps(record, indent=2) + "\n")
        return record

    def main(self) -> None:
        missing = [
            self.config(m) for m in self.args.methods if not (ROOT / self.config(m)).exists()
        ]
        if missing:
            raise SystemExit(f"no such config: {', '.join(missing)}; check --suite and --methods")
        jobs = [(m, s) for s in range(self.args.seeds) for m in self.args.methods]
        results: list[dict] = []
        with ThreadPoolExecutor(max_workers=self.args.jobs) as pool:
            for record in pool.map(lambda job: self.run(*job), jobs):
                results.append(record)
                seeds = f"seed {record['seed']}" + (" (reused)" if record.get("reused") else "")
                cells = ", ".join(
                    f"{rule}: {r['modes']} modes, KL {kl_cell(r['kl'])}"
                    for rule, r in record["rules"].items()
                )
                print(f"{record['method']} {seeds}: {cells}", flush=True)
                write(results, self.args, self.out_dir)


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
        summary[method] = entry
    return summary


def write(results: list[dict], args: argparse.Namespace, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    suite = getattr(args, "suite", DEFAULT_SUITE)
    summary = summarise(results)
    payload = {
        "command": "python benchmarks/stacked_mnist.py " + " ".join(sys.argv[1:]),
        "settings": {k: v for k, v in vars(args).items()},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "git_commit": git_commit(),
        "summary": summary,
        "runs": results,
    }
    (out_dir / f"{suite}.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot_name = plot(results, out_dir / f"{suite}.png")
    samples_name = sample_sheet(results, out_dir / f"{suite}_samples.png")
    text = markdown(results, summary, plot_name, suite)
    if samples_name:
        text += f"\n![final samples, seed 0, one row per generator]({samples_name})\n"
    (out_dir / f"{suite}.md").write_text(text)


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


def markdown(
    results: list[dict],
    summary: dict[str, dict],
    plot_name: str | None,
    suite: str = DEFAULT_SUITE,
) -> str:
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
        "over 1,000).",
        "",
        "## Mean over seeds",
        "",
        "| method | seeds | modes (all) | KL (all) | modes (confident) | KL (confident) "
        "| more modes than GAN in every seed (all / confident) |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]

    def yes_no(value: object) -> str:
        return "—" if value is None else ("yes" if value else "**no**")

    for method, entry in summary.items():
        a, c = entry["all"], entry["confident"]
        lines.append(
            f"| {method} | {len(entry['seeds'])} | {a['modes_mean']:.1f} ± {a['modes_se']:.1f} | "
            f"{kl_cell(a['kl_mean'])} | {c['modes_mean']:.1f} ± {c['modes_se']:.1f} | "
            f"{kl_cell(c['kl_mean'])} | {yes_no(a['beats_baseline_every_seed'])} / "
            f"{yes_no(c['beats_baseline_every_seed'])} |"
        )
    for name, source, modes, kl in PUBLISHED:
        lines.append(f"| {name} | **published**, {source} | {modes} | {kl} | | | |")
    lines += [
        "",
        "Published rows are quoted, not rerun: their networks (DCGAN with D shrunk to a quarter "
        "for DCGAN/Unrolled/VEEGAN) and their budgets (PacGAN: about 100,000 generator steps).",
        "",
        "## Every run",
        "",
        "| method | seed | G steps | modes (all) | KL (all) | modes (confident) | KL (confident) "
        "| counted (confident) | wall s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(results, key=lambda r: (r["method"] != BASELINE, r["method"], r["seed"])):
        a, c = r["rules"].get("all", {}), r["rules"].get("confident", {})
        lines.append(
            f"| {r['method']} | {r['seed']} | {steps_cell(r.get('generator_steps'))} | "
            f"{a.get('modes')} | {kl_cell(a.get('kl'))} | {c.get('modes')} | "
            f"{kl_cell(c.get('kl'))} | {c.get('counted_percent')}% | {r['wall_seconds']:.0f} |"
        )
    if plot_name:
        lines += ["", f"![modes vs generator steps]({plot_name})"]
    command = "python benchmarks/stacked_mnist.py" + (
        "" if suite == DEFAULT_SUITE else f" --suite {suite}"
    )
    lines += ["", f"Reproduce: `{command}` (each run below):", ""]
    lines += [f"- `{r['command']}`" for r in results]
    lines += [
        "",
        "Wall times: one thread per run on a 2-core CPU that other jobs shared; not speed "
        "figures (see `cost.md`).",
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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=sorted(SUITES), default=DEFAULT_SUITE)
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="override every config's budget")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--force", action="store_true", help="retrain finished runs")
    p.add_argument("--run-dir", default=None, help="default runs/benchmarks")
    p.add_argument("--out-dir", default=str(RESULTS))
    Benchmark(p.parse_args(argv)).main()


if __name__ == "__main__":
    main()
