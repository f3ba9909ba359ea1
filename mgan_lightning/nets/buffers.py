"""Buffers whose size is known only once the data is seen (BourGAN's prior centres, MWU's
per-point sums): a fresh module holds an empty placeholder, and loading a checkpoint must
take the saved size instead of failing on the mismatch."""

from __future__ import annotations

import torch
from torch import nn


def take_saved_shapes(module: nn.Module, state_dict: dict, prefix: str, names: list[str]) -> None:
    """Before ``module._load_from_state_dict``: give each buffer in ``names`` the shape of its
    saved value (on the buffer's device) so the values can be copied in."""
    for name in names:
        saved = state_dict.get(prefix + name)
        current = getattr(module, name)
        if saved is not None and saved.shape != current.shape:
            setattr(module, name, torch.empty_like(saved, device=current.device))
