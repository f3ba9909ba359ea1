"""The uses of Lightning internals that no public API serves, in one place, each with a test
(``tests/test_private_api.py``) that fails loudly when a Lightning release changes it."""

from __future__ import annotations

from lightning.pytorch import Trainer


def set_max_steps(trainer: Trainer, steps: int) -> None:
    """Change a Trainer's optimizer-step limit after it was built (``trainer.max_steps`` has
    no setter): the generator-step clock sets it from ``max_generator_steps`` at fit start,
    and a resumed run that is longer or shorter moves it."""
    trainer.fit_loop.epoch_loop.max_steps = steps
