"""How much does the library (LightningModule + Trainer) cost over a plain PyTorch loop?

The same 2D GAN (PacGAN ring, 128-wide 2-hidden-layer MLPs for G and D, z = 2, batch 256,
Adam(1e-3, betas (0.5, 0.999)), non-saturating loss, one D step then one G step) is trained
three ways, interleaved, one thread, ``--reps`` repetitions of ``--steps`` generator steps:

- ``plain``: a hand-written loop (``plain_loop`` below, about 30 lines), ``nn.Sequential`` nets,
  real batches by random indices into one tensor;
- ``module``: the same hand-written loop driving ``mgan_lightning.methods.GAN``'s own hooks
  (``fake_batch``, ``discriminator_loss``, ``generator_loss``) and its nets, no Trainer: it
  separates the cost of the model code from the cost of the Trainer;
- ``lightning``: ``Trainer.fit`` exactly as ``mgan fit --config configs/ring/gan.yaml`` builds
  it (``build_cli(run=False)``, then ``trainer.fit``), with the config's CSVLogger
  (``log_every_n_steps: 200``), ModeCoverageEvaluation and GeneratorStepCheckpoint callbacks,
  and the progress bar on (as ``mgan fit`` shows it by default). Only
  ``model.max_generator_steps`` and ``default_root_dir`` are overridden, and the config's LR
  schedule and EMA are turned off (the plain loop has neither; ``--with-aids`` keeps them).

Throughput is generator steps per second in the steady state: from generator step
``--warmup`` to the last step (start-up, the end-of-training evaluation and the checkpoint are
outside the window; the whole ``fit`` wall time is reported separately). The medians over the
repetitions are compared; the target is ``lightning`` within 1.3x of ``plain``.

    OMP_NUM_THREADS=1 python benchmarks/lightning_overhead.py            # 3 reps x 2,000 steps
    OMP_NUM_THREADS=1 python benchmarks/lightning_overhead.py --profile  # + cProfile of the fit
    # + the training_step from before the logging change (self.log_dict every step):
    OMP_NUM_THREADS=1 python benchmarks/lightning_overhead.py --reps 5 --profile --ablate-logging

Writes ``benchmarks/results/lightning_overhead.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from lightning import __version__ as lightning_version  # noqa: E402
from lightning.pytorch import Callback  # noqa: E402
from torch import nn  # noqa: E402

from mgan_lightning.cli import build_cli  # noqa: E402
from mgan_lightning.data import GaussianMixture2D  # noqa: E402
from mgan_lightning.methods.base import GANMethod  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CONFIG = ROOT / "configs" / "ring" / "gan.yaml"
BATCH = 256


def ring_data(seed: int = 0) -> torch.Tensor:
    """The 100,000 training points the ring DataModule builds for this seed."""
    data = GaussianMixture2D(preset="ring", num_train=100_000, batch_size=BATCH, seed=seed)
    data.setup("fit")
    return data.train_set.tensors[0]


# ------------------------------------------------------------------ plain PyTorch
def plain_loop(data: torch.Tensor, steps: int, warmup: int, seed: int = 0) -> tuple[float, float]:
    """A plain PyTorch GAN loop; returns (wall, CPU) seconds spent on steps ``warmup..steps``."""
    torch.manual_seed(seed)
    g = nn.Sequential(
        nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2)
    )
    d = nn.Sequential(
        nn.Linear(2, 128),
        nn.LeakyReLU(0.2),
        nn.Linear(128, 128),
        nn.LeakyReLU(0.2),
        nn.Linear(128, 1),
    )
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.999))
    start, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        if step == warmup:
            start, cpu = time.perf_counter(), time.process_time()
        real = data[torch.randint(len(data), (BATCH,))]
        fake = g(torch.randn(BATCH, 2))
        # D step: BCE(D(x), 1) + BCE(D(G(z)), 0), written with softplus on logits.
        d_loss = F.softplus(-d(real)).mean() + F.softplus(d(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # G step: non-saturating BCE(D(G(z)), 1).
        g_loss = F.softplus(-d(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    return time.perf_counter() - start, time.process_time() - cpu


# ------------------------------------------------ the library's model, no Trainer
def cli_args(steps: int, root: str) -> list[str]:
    return [
        "--config",
        str(CONFIG),
        f"--model.init_args.max_generator_steps={steps}",
        f"--trainer.default_root_dir={root}",
        # the config's LR decay and EMA are extra work, not overhead: the plain loop has
        # neither, so they are off here (both are measured apart with --with-aids)
        *([] if WITH_AIDS else AIDS_OFF),
    ]


AIDS_OFF = [
    "--model.init_args.scheduler_g=null",
    "--model.init_args.scheduler_d=null",
    "--model.init_args.ema_decay=null",
]
WITH_AIDS = False


def module_loop(data: torch.Tensor, steps: int, warmup: int, root: str) -> tuple[float, float]:
    """The plain loop above, but through ``GAN``'s hooks and nets (no Trainer)."""
    torch.manual_seed(0)
    model = build_cli(cli_args(steps, root), run=False).model
    (opt_g, opt_d), _ = model.configure_optimizers()  # (optimizers, schedulers)
    start, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        if step == warmup:
            start, cpu = time.perf_counter(), time.process_time()
        real = data[torch.randint(len(data), (BATCH,))]
        fake, index, z = model.fake_batch(len(real))
        d_loss, _ = model.discriminator_loss(real, fake.detach(), index)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss, _ = model.generator_loss(fake, index, z)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    return time.perf_counter() - start, time.process_time() - cpu


# ------------------------------------------------------------- Trainer.fit
class StepTimer(Callback):
    """Wall and CPU time between the end of generator step ``warmup`` and step ``last``;
    with a ``profiler``, profiles exactly that window."""

    def __init__(self, warmup: int, last: int, profiler: cProfile.Profile | None = None) -> None:
        self.warmup, self.last, self.profiler = warmup, last, profiler
        self.start = self.end = (0.0, 0.0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = pl_module.generator_steps_done
        if step == self.last and self.profiler is not None:
            self.profiler.disable()
        now = (time.perf_counter(), time.process_time())
        if step == self.warmup:
            self.start = now
            if self.profiler is not None:
                self.profiler.enable()
        self.end = now


def lightning_fit(steps: int, warmup: int, root: str, profile: Path | None = None):
    """``mgan fit --config configs/ring/gan.yaml`` built via ``build_cli`` and timed."""
    wall_start = time.perf_counter()
    cli = build_cli(cli_args(steps, root), run=False)
    profiler = cProfile.Profile() if profile is not None else None
    timer = StepTimer(warmup, steps, profiler)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if profiler is not None:
        profiler.dump_stats(str(profile))
    wall = time.perf_counter() - wall_start
    logger = type(cli.trainer.logger).__name__ if cli.trainer.logger else None
    callbacks = [type(c).__name__ for c in cli.trainer.callbacks]
    seconds = (timer.end[0] - timer.start[0], timer.end[1] - timer.start[1])
    return seconds, wall, logger, callbacks, cli.trainer.log_every_n_steps


def training_step_logging_every_step(self, batch, batch_idx: int) -> None:
    """``GANMethod.training_step`` as it was before the logging change (commit 3b4ded6): it
    calls ``self.log_dict`` on every step. Only for ``--ablate-logging``."""
    real = self.real_samples(batch)
    opt_g, opt_d = self.optimizers()
    logs: dict[str, torch.Tensor] = {}
    for i in range(self.n_critic):
        if i < self.n_critic - 1:
            with torch.no_grad():
                fake, index, z = self.fake_batch(len(real))
        else:
            fake, index, z = self.fake_batch(len(real))
        d_loss, d_logs = self.discriminator_loss(real, fake.detach(), index)
        self._check_finite(d_loss, "discriminator")
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        opt_d.step()
        logs.update(d_logs)
    self.toggle_optimizer(opt_g)
    g_loss, g_logs = self.generator_loss(fake, index, z)
    self._check_finite(g_loss, "generator")
    opt_g.zero_grad(set_to_none=True)
    self.manual_backward(g_loss)
    opt_g.step()
    self.untoggle_optimizer(opt_g)
    logs.update(g_logs)
    self.generator_step += 1
    logs["generator_step"] = self.generator_step.float()
    self.log_dict({k: v.detach() for k, v in logs.items()}, prog_bar=False)


def lightning_fit_logging_every_step(steps: int, warmup: int, root: str):
    """:func:`lightning_fit` with the pre-change ``training_step`` patched in."""
    current = GANMethod.training_step
    GANMethod.training_step = training_step_logging_every_step  # type: ignore[method-assign]
    try:
        return lightning_fit(steps, warmup, root)
    finally:
        GANMethod.training_step = current  # type: ignore[method-assign]


def profile_plain(data: torch.Tensor, steps: int, warmup: int, path: Path) -> None:
    """cProfile of the plain loop's steps ``warmup..steps`` (the same window)."""
    plain_loop(data, warmup, warmup)  # warm-up outside the profile
    profiler = cProfile.Profile()
    profiler.enable()
    plain_loop(data, steps - warmup, steps)
    profiler.disable()
    profiler.dump_stats(str(path))


# Parts of one Lightning training step, as (label, file suffix, function name, own time only).
BREAKDOWN = (
    (
        "whole loop iteration (training_epoch_loop.advance)",
        "loops/training_epoch_loop.py",
        "advance",
        False,
    ),
    ("our training_step", "mgan_lightning/methods/base.py", "training_step", False),
    ("  self.log_dict", "lightning/pytorch/core/module.py", "log_dict", False),
    (
        "  manual_backward (Lightning + autograd)",
        "lightning/pytorch/core/module.py",
        "manual_backward",
        False,
    ),
    (
        "    of which autograd (run_backward)",
        "~",
        "<method 'run_backward' of 'torch._C._EngineBase' objects>",
        True,
    ),
    ("  LightningOptimizer.step", "lightning/pytorch/core/optimizer.py", "step", False),
    ("    of which torch Adam.step", "torch/optim/adam.py", "step", False),
    ("  toggle_optimizer", "lightning/pytorch/core/module.py", "toggle_optimizer", False),
    ("  untoggle_optimizer", "lightning/pytorch/core/module.py", "untoggle_optimizer", False),
    ("  our fake_batch (G forward)", "mgan_lightning/methods/base.py", "fake_batch", False),
    ("  our discriminator_loss", "mgan_lightning/methods/gan.py", "discriminator_loss", False),
    ("  our generator_loss", "mgan_lightning/methods/gan.py", "generator_loss", False),
    ("callback hooks (_call_callback_hooks)", "trainer/call.py", "_call_callback_hooks", False),
    (
        "LightningModule hooks (_call_lightning_module_hook)",
        "trainer/call.py",
        "_call_lightning_module_hook",
        False,
    ),
    ("next batch (Lightning data fetcher + DataLoader)", "loops/fetchers.py", "__next__", False),
    ("  of which DataLoader.__next__", "torch/utils/data/dataloader.py", "__next__", False),
    (
        "logger connector: on_batch_end + update_train_step_metrics",
        "logger_connector/logger_connector.py",
        "on_batch_end|update_train_step_metrics",
        False,
    ),
)


def breakdown(path: Path, steps: int) -> list[tuple[str, float]]:
    """Milliseconds per generator step of each part in :data:`BREAKDOWN` (cProfile times)."""
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for label, suffix, names, own in BREAKDOWN:
        total = 0.0
        for (file, _, func), (_, _, tt, ct, _) in stats.items():
            if file.endswith(suffix) and func in names.split("|"):
                total += tt if own else ct
        rows.append((label, 1000 * total / steps))
    return rows


# -------------------------------------------------------------------------- main
def profile_table(path: Path, top: int = 25) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(str(path), stream=stream)
    stats.sort_stats("cumulative").print_stats(top)
    stream.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(top)
    return stream.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="generator steps per rep")
    parser.add_argument("--warmup", type=int, default=100, help="steps excluded from timing")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--ablate-logging",
        action="store_true",
        help="also time the pre-change training_step that logs every step",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also run one cProfile'd fit and save its top functions",
    )
    parser.add_argument(
        "--out", default=str(RESULTS / "lightning_overhead"), help="output path without extension"
    )
    parser.add_argument(
        "--with-aids",
        action="store_true",
        help="keep the config's LR decay and EMA (extra work the plain loop does not do)",
    )
    args = parser.parse_args(argv)
    global WITH_AIDS
    WITH_AIDS = args.with_aids
    torch.set_num_threads(1)
    data = ring_data()
    timed = args.steps - args.warmup
    loops: tuple[str, ...] = ("plain", "module", "lightning")
    if args.ablate_logging:
        loops += ("lightning_log_every_step",)
    # steps per second by wall clock and by this process's CPU time (the machine may be shared:
    # CPU time is what the loop itself costs, wall time also counts waiting for a core).
    rates: dict[str, dict[str, list[float]]] = {c: {k: [] for k in loops} for c in ("wall", "cpu")}
    fit_wall: list[float] = []
    info: dict = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mgan_overhead_") as tmp:
        for rep in range(args.reps):
            seconds = {
                "plain": plain_loop(data, args.steps, args.warmup),
                "module": module_loop(data, args.steps, args.warmup, f"{tmp}/module{rep}"),
            }
            seconds["lightning"], wall, logger, callbacks, every = lightning_fit(
                args.steps, args.warmup, f"{tmp}/fit{rep}"
            )
            if args.ablate_logging:
                seconds["lightning_log_every_step"] = lightning_fit_logging_every_step(
                    args.steps, args.warmup, f"{tmp}/fitlog{rep}"
                )[0]
            for k in loops:
                rates["wall"][k].append(timed / seconds[k][0])
                rates["cpu"][k].append(timed / seconds[k][1])
            fit_wall.append(wall)
            info = {"logger": logger, "log_every_n_steps": every, "callbacks": callbacks}
            print(
                f"rep {rep}: "
                + ", ".join(
                    f"{k} {rates['wall'][k][-1]:.1f} (cpu {rates['cpu'][k][-1]:.1f}) steps/s"
                    for k in loops
                )
                + f", fit wall {wall:.1f} s",
                flush=True,
            )
        profile_text, parts = None, None
        if args.profile:
            prof, prof_plain = Path(tmp) / "fit.prof", Path(tmp) / "plain.prof"
            lightning_fit(args.steps, args.warmup, f"{tmp}/profiled", profile=prof)
            profile_plain(data, args.steps, args.warmup, prof_plain)
            profile_text = profile_table(prof)
            parts = {
                "lightning": breakdown(prof, timed),
                "plain": [
                    (label, ms)
                    for label, ms in breakdown(prof_plain, timed)
                    if "run_backward" in label or "Adam.step" in label
                ]
                + [
                    (
                        "whole step (plain_loop)",
                        1000
                        * sum(
                            ct
                            for (f, _, fn), (_, _, _, ct, _) in pstats.Stats(
                                str(prof_plain)
                            ).stats.items()  # type: ignore
                            if fn == "plain_loop"
                        )
                        / timed,
                    )
                ],
            }
    load_after = os.getloadavg()

    median = {c: {k: statistics.median(v) for k, v in r.items()} for c, r in rates.items()}
    slowdown = {c: {k: m["plain"] / m[k] for k in loops} for c, m in median.items()}
    ratio = slowdown["wall"]["lightning"]
    ratio_cpu = slowdown["cpu"]["lightning"]
    result = {
        "command": "OMP_NUM_THREADS=1 " + shlex.join(["python", *sys.argv]),
        "git_commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__}, lightning {lightning_version}, "
        f"threads {torch.get_num_threads()}",
        "load_average_before_after": [load_before[0], load_after[0]],
        "config": str(CONFIG.relative_to(ROOT)),
        "generator_steps_per_rep": args.steps,
        "warmup_steps": args.warmup,
        "reps": args.reps,
        "steps_per_second_wall": rates["wall"],
        "steps_per_second_cpu": rates["cpu"],
        "median_steps_per_second_wall": median["wall"],
        "median_steps_per_second_cpu": median["cpu"],
        "slowdown_vs_plain_wall": slowdown["wall"],
        "slowdown_vs_plain_cpu": slowdown["cpu"],
        "lightning_fit_wall_seconds": fit_wall,
        "lightning_setup": info,
        "target": 1.3,
        "meets_target_wall": ratio <= 1.3,
        "meets_target_cpu": ratio_cpu <= 1.3,
        "profile_ms_per_generator_step": parts,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# Lightning overhead: plain PyTorch loop vs `mgan fit`",
        "",
        f"Ring GAN ({result['config']}: MLP 128x2, z 2, batch {BATCH}, Adam 1e-3), "
        f"{args.reps} interleaved reps x {args.steps} generator steps, steps "
        f"{args.warmup}..{args.steps} timed, 1 thread; {result['machine']}; "
        f"commit {result['git_commit']}; load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after.",
        "",
        "| loop | median G steps/s (wall) | reps (wall) | median G steps/s (CPU time) "
        "| reps (CPU time) | slowdown vs plain (wall / CPU) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    labels = {
        "plain": "plain PyTorch loop, nn.Sequential nets",
        "module": "same loop through `GAN`'s hooks and nets (no Trainer)",
        "lightning": f"`Trainer.fit` as `mgan fit` builds it ({info.get('logger')}, "
        f"log_every_n_steps {info.get('log_every_n_steps')}, progress bar on, "
        f"{'with' if WITH_AIDS else 'without'} the config's LR decay and EMA)",
        "lightning_log_every_step": "the same `Trainer.fit`, with `training_step` as before "
        "the logging change (`self.log_dict` every step)",
    }
    labels = {k: v for k, v in labels.items() if k in loops}
    for key, label in labels.items():
        row = [label]
        for c in ("wall", "cpu"):
            row += [f"{median[c][key]:.1f}", ", ".join(f"{v:.1f}" for v in rates[c][key])]
        row.append(f"{slowdown['wall'][key]:.2f}x / {slowdown['cpu'][key]:.2f}x")
        md.append("| " + " | ".join(row) + " |")
    md += [
        "",
        f"Library vs plain loop: **{ratio:.2f}x** by wall clock, **{ratio_cpu:.2f}x** by CPU "
        f"time (target <= 1.3x: {'met' if ratio <= 1.3 else 'missed'} / "
        f"{'met' if ratio_cpu <= 1.3 else 'missed'}). Whole `fit` wall time incl. start-up, "
        f"final evaluation and checkpoint: " + ", ".join(f"{w:.1f} s" for w in fit_wall) + ".",
        f"Callbacks in the Trainer: {', '.join(info.get('callbacks', []))}.",
    ]
    if args.ablate_logging:
        md += [
            "",
            "Before the logging change in `GANMethod.training_step` (`self.log_dict` on every "
            f"step): **{slowdown['wall']['lightning_log_every_step']:.2f}x** by wall clock, "
            f"**{slowdown['cpu']['lightning_log_every_step']:.2f}x** by CPU time.",
        ]
    md += [
        "",
        f"Reproduce: `{result['command']}`",
    ]
    if profile_text and parts:
        (out.parent / (out.name + "_profile.txt")).write_text(profile_text)
        md += [
            "",
            f"## Where a step's time goes (cProfile, steps {args.warmup}..{args.steps}, ms per "
            "generator step; cProfile inflates Python-heavy parts, so read the proportions)",
            "",
            "| part | ms / step |",
            "| --- | --- |",
        ]
        md += [f"| {label} | {ms:.3f} |" for label, ms in parts["lightning"]]
        md += [f"| plain loop: {label.strip()} | {ms:.3f} |" for label, ms in parts["plain"]]
        md += ["", f"Top functions: `{out.name}_profile.txt`."]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
