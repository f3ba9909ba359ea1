"""Running a network in eval mode for a while without losing any submodule's own mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run the block with every submodule in eval mode, then give each its own mode back
    (a submodule the user keeps in eval mode stays there)."""
    modes = {name: m.training for name, m in module.named_modules()}
    module.eval()
    try:
        yield
    finally:
        for name, m in module.named_modules():
            m.training = modes.get(name, m.training)
