"""What each method costs per generator step, and what MGAN's K generators cost.

Two parts, one command (``--part methods|kscaling|all``):

A. ``methods``: GAN, MGAN, MIM-GAN, BourGAN and MWU, each as ``mgan fit`` builds it from its
   config (``build_cli(run=False)`` then ``trainer.fit``), on two settings:

   - ``ring``: ``configs/ring/<method>.yaml`` (128x2 MLPs, z = 2, batch 256), the config's own
     ring data (100,000 points);
   - ``dcgan``: ``configs/stacked_mnist/<method>.yaml`` (MWU: ``mwu_cpu.yaml``, the width-16
     variant; ``mwu.yaml`` is the width-128 GPU setting), 32 px DCGAN at ``--width``, real batch
     64, with the data replaced by ``--images`` random 3x32x32 tensors in [-1, 1] (the data do
     not change the cost of a step; no MNIST file is read).

   Only the run length, device, threads, output folder and (for the random data) BourGAN's
   number of embedded points are overridden; the config's evaluation, sample-grid and checkpoint
   callbacks and the progress bar are removed (they fire every 2,000-5,000 steps, outside any
   window timed here, and their end-of-fit evaluation would dominate peak memory); its CSV
   logger stays. Every measurement runs in a fresh process (one thread by default) and reports

   - seconds per 1,000 generator steps: wall clock (and process CPU time) from the end of step
     ``--warmup`` to the end of the last step. A step is the method's whole training step
     (``n_critic`` D steps + one G step, data loading, logging, EMA, schedulers); every config
     here has ``n_critic = 1``;
   - peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the peak resident set
     (``ru_maxrss``) minus the resident set just before ``build_cli`` built the model, data and
     trainer (what the run adds to an idle Python with torch and Lightning imported), and the
     absolute peak. This covers the whole fit, one-time preparation included (BourGAN's
     embedding).

   Repetitions are interleaved (gan mgan mimgan bourgan mwu, gan mgan ...) so load from other
   jobs hits all methods alike; medians of the repetitions are compared with the GAN's.

   Not inside the timed window: BourGAN's embedding (once, before step 1; its memory is in the
   peak) and MWU's round end (every ``steps_per_round`` steps, 5,000 on the ring and 400 in
   ``mwu_cpu.yaml``: scoring every training point with D, reweighting, a fresh D). The round
   end's main part, ``score_training_points`` plus the weight update, is timed separately after
   the fit on the same process and reported amortised over its round (on the random images
   scaled linearly from ``--images`` to the config's 50,000 training images); its coverage
   evaluation of the new generator (ring only) and critic re-initialisation are not timed.

B. ``kscaling``: MGAN (``configs/<ring|stacked_mnist>/mgan.yaml``) with K = 1, 2, 5, 10, 20, 50
   making F fakes in all (``fake_per_generator = F / K``; F = 200 on the ring, 100 on the
   DCGAN, which every K divides) against a single-generator GAN (its ``gan.yaml``, made to
   produce the same F fakes; the Stacked-MNIST configs share prior, networks and optimiser, so
   only the generators' number and the classifier differ). Seconds per 1,000 generator steps
   as above, ratio to the GAN, in the parent process (no memory on CPU). Targets:
   K = 10 <= 1.05x, K = 50 <= 1.3x.

    OMP_NUM_THREADS=1 python benchmarks/cost.py                     # both parts, ~10 min
    python benchmarks/cost.py --part kscaling --reps 5 --width 64 --device cuda

Writes ``cost.{json,md}`` and ``k_scaling.{json,md,png}`` under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Callback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generator_cost import RandomImages  # noqa: E402
from provenance import git_commit  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METHODS = ("gan", "mgan", "mimgan", "bourgan", "mwu")
SETTINGS = ("ring", "dcgan")
KS = (1, 2, 5, 10, 20, 50)
TOTAL_FAKES = {"ring": 200, "dcgan": 100}
TARGETS = {10: 1.05, 50: 1.3}
IMAGE_TRAIN_SIZE = 50_000  # training images of configs/stacked_mnist/*.yaml (CPU variants)


# ------------------------------------------------------------------ one measurement
def config_path(setting: str, method: str) -> Path:
    if setting == "ring":
        return ROOT / "configs" / "ring" / f"{method}.yaml"
    return ROOT / "configs" / "stacked_mnist" / f"{'mwu_cpu' if method == 'mwu' else method}.yaml"


class WindowClock(Callback):
    """Wall and CPU time from the end of generator step ``warmup`` to the end of the last."""

    def __init__(self, warmup: int, cuda: bool) -> None:
        self.warmup, self.cuda = warmup, cuda
        self.start = self.end = self.cpu_start = self.cpu_end = 0.0
        self.steps = 0

    def _now(self) -> tuple[float, float]:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        done = pl_module.generator_steps_done
        if done == self.warmup:
            self.start, self.cpu_start = self._now()
        elif done > self.warmup:
            self.end, self.cpu_end = self._now()
            self.steps = done - self.warmup


def current_rss_mb() -> float:
    """Resident set now (Linux /proc; elsewhere the peak so far)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes / KiB


def measure(spec: dict) -> dict:
    """Train one config for ``warmup + steps`` generator steps; see the module docstring.

    ``spec``: setting, config, overrides (extra ``build_cli`` arguments), warmup, steps,
    device, threads, images, width, fresh_process."""
    from mgan_lightning.cli import build_cli
    from mgan_lightning.methods.mwu import MWU, multiplicative_weights_update

    with quiet(spec["threads"]):
        cuda = spec["device"] == "cuda"
        images = spec["setting"] == "dcgan"
        with tempfile.TemporaryDirectory() as tmp:
            args = [
                "--config", spec["config"],
                f"--model.init_args.max_generator_steps={spec['warmup'] + spec['steps']}",
                f"--trainer.default_root_dir={tmp}",
                f"--trainer.accelerator={'gpu' if cuda else 'cpu'}",
                "--trainer.devices=1",
                "--trainer.enable_progress_bar=false",
                "--trainer.enable_model_summary=false",
                *(
                    [f"--model.init_args.architecture.init_args.width={spec['width']}"]
                    if images else []
                ),
                *spec.get("overrides", []),
            ]  # fmt: skip
            if cuda:
                torch.cuda.reset_peak_memory_stats()
                cuda_before = torch.cuda.memory_allocated()
            rss_before = current_rss_mb()
            argv, sys.argv = sys.argv, sys.argv[:1]  # build_cli reads only ``args``
            try:
                cli = build_cli(args, run=False)
            finally:
                sys.argv = argv
            model, trainer = cli.model, cli.trainer
            clock = WindowClock(spec["warmup"], cuda)
            trainer.callbacks[:] = [clock]  # the config's evaluation/checkpoint callbacks: out
            if images:
                datamodule = RandomImages(n=spec["images"], batch_size=cli.datamodule.batch_size)
                full_size = getattr(cli.datamodule, "length", spec["images"])
            else:
                datamodule = cli.datamodule
                full_size = None
            trainer.fit(model, datamodule=datamodule)
            result: dict = {
                "seconds_per_1k": (clock.end - clock.start) / clock.steps * 1000,
                "cpu_seconds_per_1k": (clock.cpu_end - clock.cpu_start) / clock.steps * 1000,
                "timed_steps": clock.steps,
                "generator_steps": model.generator_steps_done,
                "n_critic": model.n_critic,
                "num_generators": model.num_generators,
                "fakes_per_step": fakes_per_step(model, datamodule.batch_size),
                "real_batch": datamodule.batch_size,
                "latent_dim": model.latent_dim,
                "generator_params": sum(p.numel() for p in model.generators.parameters()),
                "critic_params": sum(p.numel() for p in model.critic.parameters()),
                "torch_threads": torch.get_num_threads(),
            }
            if cuda:
                result["peak_mb"] = (torch.cuda.max_memory_allocated() - cuda_before) / 2**20
                result["memory_kind"] = "torch.cuda.max_memory_allocated"
            if spec.get("fresh_process"):
                result["rss_before_mb"] = rss_before
                result["peak_rss_mb"] = peak_rss_mb()
                result["peak_rss_increment_mb"] = result["peak_rss_mb"] - rss_before
                if not cuda:
                    result["peak_mb"] = result["peak_rss_increment_mb"]
                    result["memory_kind"] = "peak RSS - RSS before build"
            if isinstance(model, MWU):  # the round end, timed alone (see the module docstring)
                start, _ = clock._now()
                scores = model.score_training_points()
                multiplicative_weights_update(
                    datamodule.enable_example_weights(), scores, model.delta
                )
                seconds, _ = clock._now()
                seconds -= start
                scored = datamodule.num_train_examples()
                scale = (full_size or scored) / scored
                result["mwu_round_end"] = {
                    "points_scored": scored,
                    "seconds": seconds,
                    "config_points": full_size or scored,
                    "seconds_at_config_size": seconds * scale,
                    "steps_per_round": model.steps_per_round,
                    "amortised_seconds_per_1k": seconds * scale * 1000 / model.steps_per_round,
                }
        return result


@contextlib.contextmanager
def quiet(threads: int):
    """Lightning's start/stop messages and warnings that do not apply here off, and torch on
    ``threads`` threads, for the measurement only: the logger levels, warning filters and
    thread count are restored after it (in-process callers, such as the tests, keep theirs)."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            for logger in loggers:
                logger.setLevel(logging.WARNING)
            for message in (".*number of training batches.*", ".*LeafSpec.*", ".*litlogger.*"):
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        torch.set_num_threads(before)


def fakes_per_step(model, real_batch: int) -> int:
    """Fake samples one step makes: K x fake_per_generator (default ceil(batch / K)); MWU's
    current generator alone makes fake_per_generator (default one real batch)."""
    from mgan_lightning.methods.mwu import MWU

    if isinstance(model, MWU):
        return model.fake_per_generator or real_batch
    k = model.num_generators
    return k * (model.fake_per_generator or -(-real_batch // k))


def measure_in_subprocess(spec: dict) -> dict:
    """:func:`measure` in a fresh Python (its own peak memory), one thread unless told."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "PYTHONWARNINGS": "ignore"}
        spec = {**spec, "fresh_process": True}
        command = [sys.executable, __file__, "--child", json.dumps(spec), "--child-out", str(out)]
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"measurement {spec} failed:\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


# ------------------------------------------------------------------------- metadata
def machine(device: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"
    if device == "cuda":
        text += f", GPU {torch.cuda.get_device_name()}"
    return text


def metadata(args: argparse.Namespace, argv: list[str] | None, load_start, commit: str) -> dict:
    import lightning

    command = ["python", "benchmarks/cost.py", *(sys.argv[1:] if argv is None else argv)]
    return {
        "command": " ".join(command),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "git_commit": commit,  # at the start of the part
        "machine": machine(args.device),
        "device": args.device,
        "threads": args.threads,
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "python": platform.python_version(),
        "load_average_start": list(load_start),
        "load_average_end": list(os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "child_out")},
    }


def header_lines(meta: dict, what: str) -> list[str]:
    load = "/".join(f"{x:.1f}" for x in meta["load_average_start"])
    load_end = "/".join(f"{x:.1f}" for x in meta["load_average_end"])
    shared = (
        "a CPU shared with other jobs: absolute times move with their load, ratios of "
        "interleaved repetitions much less"
        if meta["device"] == "cpu"
        else "a GPU"
    )
    return [
        f"{what} Measured {meta['date']} on {meta['machine']}, device {meta['device']}, "
        f"{meta['threads']} torch thread(s) (OMP_NUM_THREADS={meta['omp_num_threads_env']}), "
        f"torch {meta['torch']}, Lightning {meta['lightning']}, commit {meta['git_commit']}; "
        f"{shared}. Load average (1/5/15 min) {load} at the start, {load_end} at the end.",
        "",
        f"Reproduce: `{meta['command']}`",
    ]


def median(values: list[float]) -> float:
    return statistics.median(values)


# --------------------------------------------------------------------- part A: methods
def methods_part(args: argparse.Namespace) -> dict:
    runs: dict[str, dict[str, list[dict]]] = {
        s: {m: [] for m in args.methods} for s in args.settings
    }
    for rep in range(args.reps):
        for setting in args.settings:
            for method in args.methods:  # interleaved: ABCDE ABCDE ...
                spec = base_spec(args, setting)
                spec["config"] = str(config_path(setting, method))
                if setting == "dcgan" and method == "bourgan":
                    points = min(args.images, 20_000)
                    spec["overrides"] = [f"--model.init_args.num_embedding_points={points}"]
                result = measure_in_subprocess(spec)
                runs[setting][method].append(result)
                print(
                    f"[methods] rep {rep} {setting} {method}: "
                    f"{result['seconds_per_1k']:.2f} s / 1k G steps, "
                    f"peak {result.get('peak_mb', float('nan')):.0f} MB",
                    flush=True,
                )
    table: dict[str, dict[str, dict]] = {}
    for setting in args.settings:
        table[setting] = {}
        base = runs[setting].get("gan")
        for method, reps in runs[setting].items():
            row = summarise(reps, base)
            row["config"] = str(config_path(setting, method).relative_to(ROOT))
            first = reps[0]
            for key in (
                "fakes_per_step", "real_batch", "num_generators", "n_critic", "latent_dim",
                "generator_params", "critic_params", "memory_kind",
            ):  # fmt: skip
                row[key] = first.get(key)
            if "mwu_round_end" in first:
                ends = [r["mwu_round_end"] for r in reps]
                amortised = median([e["amortised_seconds_per_1k"] for e in ends])
                row["mwu_round_end"] = {
                    **{
                        k: ends[0][k] for k in ("points_scored", "config_points", "steps_per_round")
                    },
                    "seconds_median": median([e["seconds"] for e in ends]),
                    "seconds_at_config_size_median": median(
                        [e["seconds_at_config_size"] for e in ends]
                    ),
                    "amortised_seconds_per_1k": amortised,
                    "seconds_per_1k_with_round_ends": row["seconds_per_1k"] + amortised,
                }
                if base:
                    row["mwu_round_end"]["ratio_with_round_ends"] = (
                        row["seconds_per_1k"] + amortised
                    ) / median([r["seconds_per_1k"] for r in base])
            table[setting][method] = row
    return {"runs": runs, "summary": table}


def summarise(reps: list[dict], base: list[dict] | None) -> dict:
    row: dict = {}
    for key in ("seconds_per_1k", "cpu_seconds_per_1k", "peak_mb", "peak_rss_mb"):
        values = [r[key] for r in reps if key in r]
        if not values:
            continue
        row[key] = median(values)
        row[f"{key}_reps"] = values
        base_values = [r[key] for r in base or [] if key in r]
        if base_values:
            row[f"{key}_ratio"] = row[key] / median(base_values)
    return row


def base_spec(args: argparse.Namespace, setting: str) -> dict:
    ring = setting == "ring"
    return {
        "setting": setting,
        "warmup": args.warmup if ring else args.image_warmup,
        "steps": args.steps if ring else args.image_steps,
        "device": args.device,
        "threads": args.threads,
        "images": args.images,
        "width": args.width,
        "overrides": [],
    }


def methods_markdown(result: dict, meta: dict, args: argparse.Namespace) -> str:
    lines = [
        "# Cost per method: seconds per 1,000 generator steps and peak memory",
        "",
        *header_lines(
            meta,
            f"Each method trained as `mgan fit` builds it from its config, median of "
            f"{args.reps} interleaved repetitions, each in a fresh process, timing "
            f"{args.steps} (ring) / {args.image_steps} (DCGAN) generator steps after "
            f"{args.warmup} / {args.image_warmup} warm-up steps. One generator step = "
            f"n_critic (here 1) D steps + one G step, with data loading, logging, EMA.",
        ),
        "",
        "Settings: **ring** = `configs/ring/<method>.yaml` (128x2 MLPs, z = 2, real batch 256, "
        "the config's 100,000 ring points); **dcgan** = `configs/stacked_mnist/<method>.yaml` "
        f"(MWU: `mwu_cpu.yaml`), 32 px DCGAN width {args.width}, real batch 64, data replaced "
        f"by {args.images:,} random 3x32x32 images. BourGAN on the DCGAN embeds "
        f"{min(args.images, 20_000):,} of them (the config: 20,000, i.e. 75 latent dims "
        "instead of 5 * ceil(log2 n) here; the embedding is a one-time cost, "
        "`embedding_cost.md`: 38 s and 2 GiB at 20,000 images on 2 threads). The configs' "
        "evaluation/checkpoint callbacks and the progress bar are removed (they fire every "
        "2,000-5,000 steps); the CSV logger stays.",
        "",
        "Peak memory: "
        + (
            "`torch.cuda.max_memory_allocated` over the whole fit."
            if args.device == "cuda"
            else "peak resident set (`ru_maxrss`) of the process minus its resident set just "
            "before `build_cli` built model, data and trainer, i.e. what the run adds to an "
            "idle Python with torch and Lightning loaded (whole fit, one-time preparation "
            "such as BourGAN's embedding included); the absolute peak RSS beside it."
        ),
        "",
    ]
    for setting, rows in result["summary"].items():
        lines += [
            f"## {setting}",
            "",
            "| method | config | fakes / step | s / 1k G steps | ratio to GAN | CPU s / 1k | "
            "CPU ratio | peak memory MB | ratio to GAN | absolute peak RSS MB |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for method, row in rows.items():
            lines.append(
                f"| {method} | `{row['config']}` | {row['fakes_per_step']} | "
                f"{row['seconds_per_1k']:.2f} | "
                f"{row.get('seconds_per_1k_ratio', float('nan')):.2f} | "
                f"{row['cpu_seconds_per_1k']:.2f} | "
                f"{row.get('cpu_seconds_per_1k_ratio', float('nan')):.2f} | "
                f"{row.get('peak_mb', float('nan')):.0f} | "
                f"{row.get('peak_mb_ratio', float('nan')):.2f} | "
                f"{row.get('peak_rss_mb', float('nan')):.0f} |"
            )
        mwu = rows.get("mwu", {}).get("mwu_round_end")
        if mwu:
            scaled = (
                f", scaled to the config's {mwu['config_points']:,}: "
                f"{mwu['seconds_at_config_size_median']:.2f} s"
                if mwu["config_points"] != mwu["points_scored"]
                else ""
            )
            ratio = mwu.get("ratio_with_round_ends", float("nan"))
            lines += [
                "",
                f"MWU's round end (every {mwu['steps_per_round']:,} steps, outside the timed "
                f"window): scoring {mwu['points_scored']:,} training points with D and the "
                f"weight update took {mwu['seconds_median']:.2f} s{scaled}; amortised "
                f"{mwu['amortised_seconds_per_1k']:.2f} s per 1k G steps, so MWU with its "
                f"round ends costs {mwu['seconds_per_1k_with_round_ends']:.2f} s / 1k G steps, "
                f"{ratio:.2f}x the GAN. Not timed: the new generator's coverage evaluation "
                "(ring) and the critic's re-initialisation.",
            ]
        lines.append("")
    lines += [
        "Per-repetition values are in `cost.json`. Methods differ in fakes per step (MGAN and "
        "MIM-GAN: K x fake_per_generator as configured; the others: one real batch's worth), so "
        "these ratios are the configs' costs, not a same-work comparison; `k_scaling.md` "
        "compares MGAN with a GAN at equal fakes.",
        "",
    ]
    return "\n".join(lines)


# -------------------------------------------------------------------- part B: K-scaling
def kscaling_spec(args: argparse.Namespace, setting: str, k: int | None) -> dict:
    """MGAN with K generators (``k``), or the GAN baseline (``None``), making F fakes."""
    total = args.total_fakes[setting]
    spec = base_spec(args, setting)
    folder = "ring" if setting == "ring" else "stacked_mnist"
    if k is None:
        spec["config"] = str(ROOT / "configs" / folder / "gan.yaml")
        spec["overrides"] = [f"--model.init_args.fake_per_generator={total}"]
    else:
        if total % k:
            raise ValueError(f"K={k} does not divide the {total} fakes of {setting}")
        spec["config"] = str(ROOT / "configs" / folder / "mgan.yaml")
        spec["overrides"] = [
            f"--model.init_args.num_generators={k}",
            f"--model.init_args.fake_per_generator={total // k}",
        ]
    return spec


def kscaling_part(args: argparse.Namespace) -> dict:
    names = ["gan", *(f"K={k}" for k in args.ks)]
    runs: dict[str, dict[str, list[dict]]] = {s: {n: [] for n in names} for s in args.settings}
    for rep in range(args.reps):
        for setting in args.settings:
            for name, k in zip(names, [None, *args.ks]):
                result = measure({**kscaling_spec(args, setting, k), "fresh_process": False})
                runs[setting][name].append(result)
                print(
                    f"[kscaling] rep {rep} {setting} {name}: "
                    f"{result['seconds_per_1k']:.2f} s / 1k G steps",
                    flush=True,
                )
    summary: dict[str, dict[str, dict]] = {}
    for setting in args.settings:
        summary[setting] = {}
        for name, reps in runs[setting].items():
            row = summarise(reps, runs[setting]["gan"])
            row.update(
                {key: reps[0][key] for key in ("num_generators", "fakes_per_step",
                                               "generator_params", "critic_params")}
            )  # fmt: skip
            summary[setting][name] = row
    targets = {}
    for setting in args.settings:
        for k, bound in TARGETS.items():
            row = summary[setting].get(f"K={k}")
            if row:
                targets[f"{setting} K={k}"] = {
                    "target": bound,
                    "ratio": row["seconds_per_1k_ratio"],
                    "met": row["seconds_per_1k_ratio"] <= bound,
                    "cpu_ratio": row["cpu_seconds_per_1k_ratio"],
                    "cpu_met": row["cpu_seconds_per_1k_ratio"] <= bound,
                }
    return {"runs": runs, "summary": summary, "targets": targets}


def kscaling_markdown(result: dict, meta: dict, args: argparse.Namespace) -> str:
    lines = [
        "# MGAN's K generators at equal total fakes",
        "",
        *header_lines(
            meta,
            f"MGAN with K generators making F fakes per step in all (fake_per_generator = F/K) "
            f"against a single-generator GAN making the same F, median of {args.reps} "
            f"interleaved repetitions of {args.steps} (ring) / {args.image_steps} (DCGAN) "
            f"generator steps after {args.warmup} / {args.image_warmup} warm-up steps, "
            "through `Trainer.fit` as `mgan fit` builds it (all in one process).",
        ),
        "",
        f"Settings: **ring** = `configs/ring/mgan.yaml` vs `gan.yaml` (MLPs, real batch 256), "
        f"F = {args.total_fakes['ring']}; **dcgan** = `configs/stacked_mnist/mgan.yaml` vs "
        f"`gan.yaml` (the same prior, networks and optimiser), 32 px DCGAN width "
        f"{args.width}, real batch 64, {args.images:,} random images, "
        f"F = {args.total_fakes['dcgan']}. MGAN's step includes its classifier head and "
        "loss; the GAN's does not.",
        "",
        "## Targets: K = 10 <= 1.05x, K = 50 <= 1.3x the single generator",
        "",
        "| setting, K | target | wall ratio | met | CPU-time ratio | met |",
        "| --- | ---: | ---: | --- | ---: | --- |",
    ]
    for name, t in result["targets"].items():
        lines.append(
            f"| {name} | {t['target']:.2f} | {t['ratio']:.3f} | {'yes' if t['met'] else 'no'} | "
            f"{t['cpu_ratio']:.3f} | {'yes' if t['cpu_met'] else 'no'} |"
        )
    for setting, rows in result["summary"].items():
        lines += [
            "",
            f"## {setting} (F = {args.total_fakes[setting]})",
            "",
            "| model | fakes / generator | s / 1k G steps | ratio to GAN | CPU s / 1k | CPU ratio "
            "| generator params |" + (" peak MB |" if args.device == "cuda" else ""),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
            + (" ---: |" if args.device == "cuda" else ""),
        ]
        for name, row in rows.items():
            k = row["num_generators"]
            label = "GAN (K=1)" if name == "gan" else f"MGAN {name}"
            lines.append(
                f"| {label} | {row['fakes_per_step'] // k} | {row['seconds_per_1k']:.2f} | "
                f"{row['seconds_per_1k_ratio']:.3f} | {row['cpu_seconds_per_1k']:.2f} | "
                f"{row['cpu_seconds_per_1k_ratio']:.3f} | {row['generator_params']:,} |"
                + (f" {row.get('peak_mb', float('nan')):.0f} |" if args.device == "cuda" else "")
            )
    lines += ["", "Per-repetition values are in `k_scaling.json`; plot: `k_scaling.png`.", ""]
    return "\n".join(lines)


def kscaling_plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(result["summary"])
    fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 4), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        rows = {n: r for n, r in result["summary"][setting].items() if n != "gan"}
        ks = [r["num_generators"] for r in rows.values()]
        ax.plot(ks, [r["seconds_per_1k_ratio"] for r in rows.values()], "o-", label="wall")
        ax.plot(ks, [r["cpu_seconds_per_1k_ratio"] for r in rows.values()], "s--", label="CPU")
        ax.axhline(1.0, color="grey", lw=0.8)
        for i, (k, bound) in enumerate(TARGETS.items()):
            ax.plot([k], [bound], "rv", ms=10, label="target" if i == 0 else None)
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_xlabel("K generators (equal total fakes)")
        ax.set_ylabel("time per G step / single-generator GAN")
        ax.set_title(f"{setting}, F = {rows and next(iter(rows.values()))['fakes_per_step']}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("methods", "kscaling", "all"), default="all")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--steps", type=int, default=200, help="timed generator steps, ring")
    p.add_argument("--warmup", type=int, default=20, help="untimed first steps, ring")
    p.add_argument("--image-steps", type=int, default=30, help="timed generator steps, DCGAN")
    p.add_argument("--image-warmup", type=int, default=5, help="untimed first steps, DCGAN")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if any")
    p.add_argument("--width", type=int, default=16, help="DCGAN width")
    p.add_argument("--images", type=int, default=4096, help="random training images (DCGAN)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    p.add_argument("--ks", nargs="+", type=int, default=list(KS), help="K values of part B")
    p.add_argument("--ring-fakes", type=int, default=TOTAL_FAKES["ring"], help="F, ring")
    p.add_argument("--image-fakes", type=int, default=TOTAL_FAKES["dcgan"], help="F, DCGAN")
    p.add_argument("--out-dir", default=str(RESULTS))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if "gan" not in args.methods:
        args.methods = ["gan", *args.methods]  # the baseline of every ratio
    args.total_fakes = {"ring": args.ring_fakes, "dcgan": args.image_fakes}
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.child:
        result = measure(json.loads(args.child))
        Path(args.child_out).write_text(json.dumps(result))
        return result
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outputs: dict = {}
    if args.part in ("methods", "all"):
        load, commit = os.getloadavg(), git_commit()
        result = methods_part(args)
        meta = metadata(args, argv, load, commit)
        outputs["methods"] = {**meta, **result}
        (out / "cost.json").write_text(json.dumps(outputs["methods"], indent=2) + "\n")
        text = methods_markdown(result, meta, args)
        (out / "cost.md").write_text(text)
        print(text)
    if args.part in ("kscaling", "all"):
        load, commit = os.getloadavg(), git_commit()
        result = kscaling_part(args)
        meta = metadata(args, argv, load, commit)
        outputs["kscaling"] = {**meta, "targets_from_issue": TARGETS, **result}
        (out / "k_scaling.json").write_text(json.dumps(outputs["kscaling"], indent=2) + "\n")
        text = kscaling_markdown(result, meta, args)
        (out / "k_scaling.md").write_text(text)
        kscaling_plot(result, out / "k_scaling.png")
        print(text)
    return outputs


if __name__ == "__main__":
    main()
