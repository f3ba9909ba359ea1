"""The arguments of ``mgan predict`` and what the CLI makes of them.

    mgan predict --config <run config> --ckpt_path <ckpt> --num_samples N
                 [--output_dir DIR] [--seed S]

writes ``N`` samples of the checkpoint's model, with the generator of each, into ``DIR``
(default ``<trainer.default_root_dir>/samples``): see
:mod:`mgan_lightning.callbacks.sample_files` for the layout. Sample ``i`` depends only on
``(S, i)`` and the weights, so the files are the same on one process or several.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from jsonargparse import Namespace
from lightning.pytorch.cli import LightningArgumentParser

from mgan_lightning.callbacks.sample_writer import SampleWriter
from mgan_lightning.rng import run_seed

PREDICT_DESCRIPTION = (
    "Write --num_samples samples of the model in --ckpt_path, with the generator that made "
    "each, to --output_dir: samples.pt and samples.npz, and for images a PNG per sample and "
    "grid.png (one row per generator)."
)


@dataclass(frozen=True)
class PredictOptions:
    """What ``mgan predict`` was asked for, defaults resolved."""

    num_samples: int
    output_dir: Path
    seed: int


def add_predict_arguments(parser: LightningArgumentParser) -> None:
    """The ``predict`` subcommand's own flags (``fit``/``test``/``validate`` have none)."""
    parser.add_argument(
        "--num_samples", type=Optional[int], default=None, help="Samples to write (required)."
    )
    parser.add_argument(
        "--output_dir",
        type=Optional[str],
        default=None,
        help="Folder for the samples (default: <trainer.default_root_dir>/samples).",
    )
    parser.add_argument(
        "--seed",
        type=Optional[int],
        default=None,
        help="Seed of the samples (default: seed_everything). Same seed, same samples.",
    )


def predict_problem(config: Namespace) -> str | None:
    """What is wrong with a ``predict`` command line, in one sentence (``None``: nothing)."""
    if not config.get("ckpt_path"):
        return (
            "--ckpt_path is required: mgan predict samples a trained model, e.g. --ckpt_path "
            "<trainer.default_root_dir>/checkpoints/last.ckpt (without one it would sample "
            "untrained weights, which is almost certainly a mistake)"
        )
    num_samples = config.get("num_samples")
    if num_samples is None:
        return "--num_samples is required: how many samples to write, e.g. --num_samples 1000"
    if num_samples < 1:
        return f"--num_samples must be >= 1, got {num_samples}"
    return None


def predict_options(config: Namespace) -> PredictOptions:
    """Resolve the defaults: the folder under the trainer's root, the run's seed."""
    output_dir = config.get("output_dir")
    if output_dir is None:
        root = config.get("trainer", {}).get("default_root_dir") or "."
        output_dir = Path(root) / "samples"
    seed = config.get("seed")
    if seed is None:
        configured = config.get("seed_everything")
        is_int = isinstance(configured, int) and not isinstance(configured, bool)
        seed = configured if is_int else run_seed()
    return PredictOptions(int(config["num_samples"]), Path(output_dir), int(seed))


def sample_writer(options: PredictOptions) -> SampleWriter:
    """The callback that writes the files."""
    return SampleWriter(options.output_dir, num_samples=options.num_samples, seed=options.seed)
