"""Time and peak memory of BourGAN's Bourgain embedding (``mgan_lightning.embedding``).

For n = 1,000, 5,000 and 20,000 points, of 2D points (a PacGAN grid sample) and of 32x32x3
images (uniform noise in [-1, 1]: the cost depends on n and the dimension, not on the
pixels), each case runs in a fresh Python process: build the points, then time
``bourgain_embedding`` (embedding + scale, float32, CPU, default chunking and distance
cache). Peak memory is the process's peak resident set size (``ru_maxrss``) and its growth
over the resident size just before the call (the points themselves included in the first,
not in the second). Targets: n = 20,000 images under 60 s and 4 GiB.

    python benchmarks/embedding_cost.py                 # all six cases, torch threads = 2
    python benchmarks/embedding_cost.py --threads 1 --sizes 1000 5000

Writes ``benchmarks/results/embedding_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
KINDS = {"2d points": (2,), "32x32x3 images": (3, 32, 32)}


def rss_bytes() -> int:
    """Current resident set size (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(kind: str, n: int, threads: int) -> dict:
    import torch

    from mgan_lightning.data import GaussianMixture2D
    from mgan_lightning.embedding import bourgain_embedding

    torch.set_num_threads(threads)
    if kind == "2d points":
        data = GaussianMixture2D(preset="grid", num_train=n, num_test=1, batch_size=1)
        data.setup("fit")
        points = data.train_set.tensors[0]
    else:
        points = torch.rand(n, *KINDS[kind], generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = rss_bytes()
    start = time.perf_counter()
    result = bourgain_embedding(points, generator=torch.Generator().manual_seed(1))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "kind": kind,
        "n": n,
        "threads": torch.get_num_threads(),
        "dim": result.points.shape[1],
        "scale": result.scale,
        "seconds": seconds,
        "peak_rss_gib": peak / 2**30,
        "growth_gib": (peak - before) / 2**30,
        "points_gib": points.numel() * points.element_size() / 2**30,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, n = args.child
        print(json.dumps(child(kind, int(n), args.threads)))
        return

    rows = []
    for kind in KINDS:
        for n in args.sizes:
            command = [
                sys.executable,
                __file__,
                "--threads",
                str(args.threads),
                "--child",
                kind,
                str(n),
            ]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-3000:])
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"{kind}, n={n}: {row['seconds']:.1f} s, peak RSS {row['peak_rss_gib']:.2f} GiB",
                flush=True,
            )

    import torch

    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "rows": rows,
        "command": "python benchmarks/embedding_cost.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embedding_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Bourgain embedding: time and peak memory",
        "",
        f"`mgan_lightning.embedding.bourgain_embedding` (embedding + scale, float32, CPU), one "
        f"fresh process per case; {result['machine']}, torch {result['torch']}, commit "
        f"{result['git_commit'][:10]}. Target: n = 20,000 images under 60 s and 4 GiB.",
        "",
        "| data | n | torch threads | latent dim | seconds | peak RSS (GiB) | "
        "growth during the call (GiB) | the points (GiB) | scale s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['kind']} | {r['n']:,} | {r['threads']} | {r['dim']} | {r['seconds']:.1f} | "
            f"{r['peak_rss_gib']:.2f} | {r['growth_gib']:.2f} | {r['points_gib']:.2f} | "
            f"{r['scale']:.3f} |"
        )
    lines += [
        "",
        "For reference (measured on this machine): the authors' code took 62-83 s "
        "and 12.8 GB for n = 20,000 2D points.",
        "",
        f"Reproduce: `{result['command']}`",
        "",
    ]
    (RESULTS / "embedding_cost.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
