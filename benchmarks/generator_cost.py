"""What do K generators cost? MGAN (K=10) vs a single-generator GAN making as many fakes.

MGAN's claim (Hoang et al. 2018, sec. 3.1): because the K generators share every layer but
the first, a mixture of K generators costs about as much as one generator producing the same
number of samples. This measures one full training step (D step + G step, through
``Trainer.fit`` as ``mgan fit`` runs it) of

- ``mgan``: ``MGAN(num_generators=10, fake_per_generator=12)``, the paper's CIFAR-10 setting
  (real batch 64, 12 fakes per generator, z = 100 ~ U[-1, 1], beta 0.01, BN offset fixed);
- ``gan``: ``GAN(num_generators=1, fake_per_generator=120)``, the same 120 fakes per step;

both on the 32 px DCGAN (``--width``, default 64 as in DCGAN), random 3x32x32 "real" images
(the data does not change the cost). Repetitions are interleaved so load on the machine hits
both alike; each repetition times ``--steps`` steps after ``--warmup`` steps; medians are
compared. Target: mgan / gan <= 1.15.

    OMP_NUM_THREADS=2 python benchmarks/generator_cost.py             # 3 reps x 20 steps
    python benchmarks/generator_cost.py --reps 5 --steps 30 --threads 1

Writes ``benchmarks/results/generator_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from mgan_lightning.data.base import GANDataModule, TensorBatchDataset
from mgan_lightning.latent import UniformPrior
from mgan_lightning.methods import GAN, MGAN
from mgan_lightning.nets import DCGAN

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


class RandomImages(GANDataModule):
    """``n`` random images in [-1, 1]: enough batches for a timing run, nothing to load."""

    def __init__(self, n: int = 2048, size: int = 32, batch_size: int = 64) -> None:
        super().__init__(batch_size=batch_size)
        self.sample_shape = (3, size, size)
        self.n = n

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            gen = torch.Generator().manual_seed(0)
            x = torch.rand(self.n, *self.sample_shape, generator=gen) * 2 - 1
            self.train_set = TensorBatchDataset(x, torch.zeros(self.n, dtype=torch.long))
            self.test_set = self.train_set


class StepTimer(Callback):
    """Wall time of each training step (one D step + one G step)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._start)


def build(kind: str, width: int):
    common = dict(
        sample_shape=(3, 32, 32),
        latent_dim=100,
        prior=UniformPrior(-1.0, 1.0),
        architecture=DCGAN(width=width, bn_offset=False),
    )
    if kind == "mgan":
        return MGAN(num_generators=10, fake_per_generator=12, beta=0.01, same_latent=True, **common)
    return GAN(num_generators=1, fake_per_generator=120, **common)


def time_steps(kind: str, width: int, warmup: int, steps: int) -> dict[str, float]:
    seed_everything(0, verbose=False)
    model = build(kind, width)
    timer = StepTimer()
    trainer = Trainer(
        accelerator="cpu",
        max_steps=2 * (warmup + steps),  # one D + one G optimizer step per iteration
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=RandomImages())
    window = timer.times[warmup:]
    return {
        "seconds_per_step": statistics.median(window),
        "generator_params": sum(p.numel() for p in model.generators.parameters()),
        "critic_params": sum(p.numel() for p in model.critic.parameters()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    p.add_argument("--out", default=str(RESULTS / "generator_cost"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    runs: dict[str, list[dict[str, float]]] = {"gan": [], "mgan": []}
    for rep in range(args.reps):
        for kind in ("gan", "mgan"):  # interleaved: load on the machine hits both alike
            runs[kind].append(time_steps(kind, args.width, args.warmup, args.steps))
            print(f"rep {rep} {kind}: {runs[kind][-1]['seconds_per_step'] * 1e3:.1f} ms/step")
    median = {k: statistics.median(r["seconds_per_step"] for r in v) for k, v in runs.items()}
    ratio = median["mgan"] / median["gan"]
    commit = git_commit()
    command = "python benchmarks/generator_cost.py " + " ".join(sys.argv[1:])
    result = {
        "command": command.strip(),
        "git_commit": commit,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "threads": args.threads,
        "load_average_at_end": os.getloadavg(),
        "settings": vars(args),
        "per_rep_seconds_per_step": {
            k: [r["seconds_per_step"] for r in v] for k, v in runs.items()
        },
        "median_seconds_per_step": median,
        "parameters": {
            k: {n: v[0][n] for n in ("generator_params", "critic_params")} for k, v in runs.items()
        },
        "ratio_mgan_over_gan": ratio,
        "target": 1.15,
        "meets_target": ratio <= 1.15,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    params = result["parameters"]
    load = ", ".join(f"{x:.1f}" for x in result["load_average_at_end"])
    gan_row = f"{median['gan'] * 1e3:.1f} | {params['gan']['generator_params']:,}"
    table = [
        "# Cost of K generators: MGAN (K=10) vs one generator making the same 120 fakes",
        "",
        f"One training step (D + G) through `Trainer.fit`, 32 px DCGAN width {args.width}, real "
        f"batch 64, 120 fake samples per step, {args.threads} thread(s), {result['machine']}; "
        f"median of {args.reps} interleaved repetitions x {args.steps} steps "
        f"(load average at the end: {load}).",
        "",
        "| model | ms / step | generator params | critic params |",
        "| --- | ---: | ---: | ---: |",
        f"| GAN, K=1, 120 fakes | {gan_row} | {params['gan']['critic_params']:,} |",
        f"| MGAN, K=10 x 12 fakes | {median['mgan'] * 1e3:.1f} | "
        f"{params['mgan']['generator_params']:,} | {params['mgan']['critic_params']:,} |",
        "",
        f"**Ratio MGAN / GAN: {ratio:.3f}** (target <= 1.15: "
        f"{'met' if ratio <= 1.15 else 'missed'}).",
        "",
        f"Reproduce: `{result['command']}` (commit {commit}).",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(table))
    print("\n".join(table))


if __name__ == "__main__":
    main()
