"""Trainer settings checked before anything is built, each refused with one line that says
what to fix: Lightning would otherwise raise a 35-line traceback, or silently do something
else than asked (3 gloo processes on a 2-core machine)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

# Keys of a run's configuration that name folders the run writes into.
OUTPUT_KEYS = ("default_root_dir", "dirpath", "save_dir")


def accelerator_problem(accelerator: Any) -> str | None:
    """Why ``trainer.accelerator`` cannot run here (``None``: it can, or it is an object)."""
    if not isinstance(accelerator, str):
        return None
    name = accelerator.lower()
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        found = "MPS (Apple)" if _mps() else "none"
        return (
            f"trainer.accelerator={accelerator}: this machine has no CUDA GPU (found: {found}); "
            f"use --trainer.accelerator=auto (or cpu)"
        )
    if name == "mps" and not _mps():
        return "trainer.accelerator=mps: no Apple GPU here; use --trainer.accelerator=auto"
    if name == "tpu":
        from lightning.pytorch.accelerators import XLAAccelerator

        if not XLAAccelerator.is_available():
            return "trainer.accelerator=tpu: no TPU here; use --trainer.accelerator=auto"
    return None


def _mps() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def devices_problem(accelerator: Any, devices: Any, num_nodes: Any = 1) -> str | None:
    """Why ``trainer.devices`` is refused: more CPU processes than this machine has cores
    (each would get a fraction of a core and its own batch: slower, and another run)."""
    on_cpu = accelerator == "cpu" or (
        accelerator in (None, "auto") and not torch.cuda.is_available() and not _mps()
    )
    try:
        count = int(devices)
    except (TypeError, ValueError):
        return None  # "auto", a list of ids: Lightning decides
    if count == 0 or count < -1:
        return f"trainer.devices must be >= 1 (or -1/auto), got {devices}"
    cores = os.cpu_count() or 1
    if on_cpu and count > cores:
        return (
            f"trainer.devices={count} would start {count} training processes on this "
            f"machine's {cores} CPU cores (each with its own batch); use --trainer.devices="
            f"{min(cores, 2) if cores > 1 else 1} or fewer"
        )
    return None


#: The strategy the ``mgan`` command asks for when a run spans several processes: DDP that
#: looks for unused parameters (a GAN's D step leaves G's parameters without gradient, and a
#: G step D's, which the default DDP reducer reports as an error).
DDP_STRATEGY = "ddp_find_unused_parameters_true"


def gan_strategy(strategy: Any, devices: Any, num_nodes: Any = 1) -> Any:
    """``trainer.strategy`` for a GAN run: :data:`DDP_STRATEGY` where the config leaves the
    choice to Lightning (``auto``) or asks for plain ``ddp`` and the run has more than one
    device or node; otherwise ``strategy`` as given (a device count of ``auto``/``-1`` is
    left to Lightning, and the model then tells its DDP strategy itself)."""
    if strategy not in (None, "auto", "ddp"):
        return strategy
    if isinstance(devices, (list, tuple)):
        count = len(devices)
    elif isinstance(devices, str) and "," in devices:
        count = len([d for d in devices.split(",") if d.strip()])
    else:
        try:
            count = int(devices)
        except (TypeError, ValueError):
            count = 1
    try:
        nodes = int(num_nodes or 1)
    except (TypeError, ValueError):
        nodes = 1
    return DDP_STRATEGY if count > 1 or nodes > 1 else strategy


def unwritable_folder(config: Any) -> str | None:
    """The first output folder in ``config`` (``default_root_dir``, a checkpoint's
    ``dirpath``, a logger's ``save_dir``) that cannot be created or written, in words. The
    nearest existing folder is tried with a temporary file (permission bits do not tell for
    root, or on a read-only or virtual file system)."""
    found = [(k, v) for k, v in _strings(config) if k in OUTPUT_KEYS and v and "://" not in v]
    found.sort(key=lambda item: OUTPUT_KEYS.index(item[0]))
    for key, value in found:
        folder = Path(value).expanduser()
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None:
            continue
        if not existing.is_dir():
            return f"{key}: cannot create {folder}: {existing} is a file; choose another folder"
        try:
            handle, probe = tempfile.mkstemp(dir=existing, prefix=".mgan_write_probe_")
        except OSError as error:
            reason = error.strerror or type(error).__name__
            return f"{key}: cannot write to {existing} ({reason}); choose another folder"
        os.close(handle)
        os.unlink(probe)
    return None


def _strings(config: Any, key: str = ""):
    """``(key, value)`` of every string in a nested config (dicts, lists, Namespaces)."""
    if hasattr(config, "as_dict"):
        config = config.as_dict()
    if isinstance(config, dict):
        for k, v in config.items():
            yield from _strings(v, str(k))
    elif isinstance(config, (list, tuple)):
        for v in config:
            yield from _strings(v, key)
    elif isinstance(config, (str, os.PathLike)):
        yield key, str(config)
