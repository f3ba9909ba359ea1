"""A checkpoint given to ``mgan fit|test|validate|predict --ckpt_path``: what it holds and how
it meets the configuration given now.

The configuration given now wins: a longer ``max_generator_steps``, a new learning rate or an
EMA switched on take effect from the resume step. The arguments that shape the networks
(``GANMethod.fixed_hparams``: K, architecture, latent size, ...) cannot change under a
checkpoint and are refused with the field and both values. Each checkpoint also holds the
run's resolved configuration, so ``--ckpt_path`` alone is enough to test or sample it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from mgan_lightning.validation import import_class

# Model arguments the CLI links from the data after parsing (their parsed value is a default;
# the data's own check compares them: ``checkpoint_mismatch``).
LINKED_FROM_DATA = ("sample_shape",)
# The sections of a run's configuration that a checkpoint keeps.
RUN_SECTIONS = ("seed_everything", "trainer", "model", "data")


CONFIG_KEY = "mgan_config"  # where a checkpoint keeps its run's configuration


def run_sections(config: Mapping[str, Any]) -> dict:
    """The sections of a configuration that a checkpoint keeps."""
    return {k: config[k] for k in RUN_SECTIONS if k in config}


def stored_config(path: str | Path) -> dict | None:
    """The configuration a checkpoint was trained with: the one it holds, else the newest
    ``config.yaml`` of its run folder (``<run>/checkpoints/x.ckpt`` -> ``<run>/logs/*/``)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if isinstance(checkpoint.get(CONFIG_KEY), dict):
        return checkpoint[CONFIG_KEY]
    run = Path(path).resolve().parent.parent
    found = sorted(run.glob("**/config.yaml"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    return run_sections(yaml.safe_load(found[-1].read_text()))


def with_stored_config(args: list[str]) -> tuple[list[str], str | None]:
    """``args`` of ``mgan <subcommand> --ckpt_path X`` given without ``--config``: with
    ``--config <file>`` holding the checkpoint's configuration inserted after the
    subcommand. Returns the arguments and, when none can be found, why."""
    if not args or args[0].startswith("-") or any(a in ("-c", "--config") for a in args):
        return args, None
    if any(a.startswith(("--config=", "-c=", "--print_config", "-h", "--help")) for a in args):
        return args, None
    ckpt = _option_value(args, "--ckpt_path")
    if ckpt is None or not Path(ckpt).is_file():
        return args, None
    try:
        config = stored_config(ckpt)
    except Exception:  # a damaged file: the checkpoint check names the problem
        return args, None
    if config is None:
        return args, (
            f"--ckpt_path: {ckpt} holds no run configuration and its run folder has no "
            f"config.yaml; give the config it was trained with (--config FILE)"
        )
    with tempfile.NamedTemporaryFile(
        "w", suffix=".yaml", prefix="mgan_ckpt_", delete=False
    ) as file:
        yaml.safe_dump(config, file, sort_keys=False)
    return [args[0], "--config", file.name, *args[1:]], None


def _option_value(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def plain(value: Any) -> Any:
    """``value`` with jsonargparse Namespaces as dicts and tuples as lists, for comparison."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def compare_hparams(
    saved: Mapping[str, Any], given: Mapping[str, Any], fixed: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """``(refused, changed)``: the fixed fields whose value differs between the checkpoint's
    hyperparameters (``saved``) and the arguments given now, and the other fields that
    differ, each as ``"name saved -> given"``. Fields absent from either side, and fields
    linked from the data, are skipped; a latent size that a data-built prior fixed (BourGAN)
    is the prior's to decide."""
    refused: list[str] = []
    changed: list[str] = []
    data_built_latent = _prior_needs_data(saved.get("prior"))
    for name in given:
        if name not in saved or name.startswith("_") or name in LINKED_FROM_DATA:
            continue
        if name == "latent_dim" and data_built_latent:
            continue
        before, now = plain(saved[name]), plain(given[name])
        if before != now:
            (refused if name in fixed else changed).append(f"{name} {before!r} -> {now!r}")
    return refused, changed


def _prior_needs_data(prior: Any) -> bool:
    config = plain(prior)
    if not isinstance(config, dict) or "class_path" not in config:
        return False
    try:
        return bool(getattr(import_class(config["class_path"]), "needs_data", False))
    except ImportError:
        return False
