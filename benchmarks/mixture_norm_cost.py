"""What does mixture normalization cost? A DCGAN generator step with batch norm vs mixture
normalization (Kalayeh & Shah 2019) at K = 2 and 4 components.

The networks are the Stacked MNIST benchmark's (``configs/stacked_mnist/gan.yaml``: its DCGAN
width, latent size, image size and batch size are read from the file), built through
``DCGAN(g_norm=...)``; mixture normalization replaces batch norm in all of G's shared blocks
(``g_norm_layers`` unset), with its default EM rounds. Two timings per variant, on random
latents (the data does not change the cost):

- ``g_step``: one generator step as a method runs it: ``G(z)``, ``D(G(z))``, the
  non-saturating loss, backward through D into G, Adam step on G;
- ``g_fwd_bwd``: G alone, forward and backward of ``mean(G(z))``.

Repetitions are interleaved so load on the machine hits every variant alike; each repetition
times ``--steps`` steps after ``--warmup`` steps; medians are compared.

    python benchmarks/mixture_norm_cost.py                 # 3 reps x 20 steps, 1 thread

Writes ``benchmarks/results/mixture_norm_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import yaml
from torch.nn.functional import softplus

from mgan_lightning.nets import DCGAN, MixtureNorm2d

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit, git_state  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "stacked_mnist" / "gan.yaml"
Norm = Literal["batch", "mixture"]
VARIANTS: dict[str, tuple[Norm, int]] = {
    "BN": ("batch", 1),
    "MN K=2": ("mixture", 2),
    "MN K=4": ("mixture", 4),
}


def stacked_mnist_setting(path: Path = CONFIG) -> dict[str, int]:
    """Width, latent size, image size and batch size of the Stacked MNIST GAN config."""
    config = yaml.safe_load(path.read_text())
    model, data = config["model"]["init_args"], config["data"]["init_args"]
    return {
        "width": model["architecture"]["init_args"]["width"],
        "latent_dim": model["latent_dim"],
        "image_size": data["image_size"],
        "batch_size": data["batch_size"],
    }


def make_steps(norm: Norm, k: int, setting: dict[str, int]) -> dict[str, Callable[[], None]]:
    """The two timed closures of one variant, on networks built from seed 0."""
    torch.manual_seed(0)
    shape = (3, setting["image_size"], setting["image_size"])
    arch = DCGAN(width=setting["width"], g_norm=norm, g_norm_components=k)
    generator = arch.generator_bank(1, setting["latent_dim"], shape).train()
    critic = arch.critic(shape).train()
    opt = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(1)
    n, d = setting["batch_size"], setting["latent_dim"]

    def g_step() -> None:
        fake = generator(torch.randn(n, d, generator=gen)).flatten(0, 1)
        loss = softplus(-critic(fake)[0]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def g_fwd_bwd() -> None:
        generator.zero_grad(set_to_none=True)
        generator(torch.randn(n, d, generator=gen)).mean().backward()

    return {"g_step": g_step, "g_fwd_bwd": g_fwd_bwd}


def median_seconds(step: Callable[[], None], warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS / "mixture_norm_cost"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    setting = stacked_mnist_setting()

    timings = ("g_step", "g_fwd_bwd")
    runs: dict[str, dict[str, list[float]]] = {v: {t: [] for t in timings} for v in VARIANTS}
    for rep in range(args.reps):
        for variant, (norm, k) in VARIANTS.items():  # interleaved
            steps = make_steps(norm, k, setting)
            for timing in timings:
                seconds = median_seconds(steps[timing], args.warmup, args.steps)
                runs[variant][timing].append(seconds)
            line = ", ".join(f"{t} {runs[variant][t][-1] * 1e3:.1f} ms" for t in timings)
            print(f"rep {rep} {variant}: {line}")
    median = {v: {t: statistics.median(r[t]) for t in timings} for v, r in runs.items()}
    em_iterations = MixtureNorm2d(1).em_iterations
    ratio = {v: {t: median[v][t] / median["BN"][t] for t in timings} for v in VARIANTS}
    commit = git_commit()
    command = ("python benchmarks/mixture_norm_cost.py " + " ".join(sys.argv[1:])).strip()
    result = {
        "command": command,
        "git_commit": commit,
        "dirty_files": git_state()["dirty_files"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "threads": args.threads,
        "load_average_at_end": os.getloadavg(),
        "settings": vars(args),
        "network": setting | {"config": str(CONFIG.relative_to(ROOT))},
        "em_iterations": em_iterations,
        "per_rep_seconds": runs,
        "median_seconds": median,
        "ratio_over_bn": ratio,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    load = ", ".join(f"{x:.1f}" for x in result["load_average_at_end"])
    rows = [
        f"| {v} | {median[v]['g_step'] * 1e3:.1f} | {ratio[v]['g_step']:.2f} | "
        f"{median[v]['g_fwd_bwd'] * 1e3:.1f} | {ratio[v]['g_fwd_bwd']:.2f} |"
        for v in VARIANTS
    ]
    table = [
        "# Cost of mixture normalization in the DCGAN generator",
        "",
        f"Stacked MNIST networks (`{CONFIG.relative_to(ROOT)}`: DCGAN width {setting['width']}, "
        f"{setting['image_size']} px, z = {setting['latent_dim']}, batch "
        f"{setting['batch_size']}, one generator); mixture normalization ({em_iterations} EM "
        f"rounds, the default) in all of G's shared blocks, the per-generator first layer "
        f"keeps batch norm. {args.threads} thread(s), {result['machine']}; median of {args.reps} "
        f"interleaved repetitions x {args.steps} steps (load average at the end: {load}).",
        "",
        "| G norm | G step, ms | / BN | G fwd+bwd, ms | / BN |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "G step: `G(z)`, `D(G(z))`, non-saturating loss, backward, Adam step on G. "
        "G fwd+bwd: G alone, `mean(G(z)).backward()`.",
        "",
        f"Reproduce: `{command}` (commit {commit}).",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(table))
    print("\n".join(table))


if __name__ == "__main__":
    main()
