"""Fit-time values and lines sent to the loggers and the console, by whichever layer has them
(the evaluation callbacks, a method's rounds): one way for all, in the core, so a method
never imports a callback to report."""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.utilities import rank_zero_info


def publish_metrics(trainer: Trainer, metrics: dict[str, float], step: int) -> None:
    """Send fit-time values to every logger at ``step`` and into ``callback_metrics`` (where
    checkpoint monitors and the progress bar read them)."""
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=step)
    for name, value in metrics.items():
        trainer.callback_metrics[name] = torch.tensor(value)


def report(trainer: Trainer, text: str) -> None:
    """Print ``text`` once (rank 0), above the progress bar when one is drawing that can print
    above itself (it says so with ``prints_above_itself = True``, as
    :class:`~mgan_lightning.callbacks.GeneratorStepProgressBar` does), else to the log."""
    if trainer.global_rank != 0:
        return
    bar = trainer.progress_bar_callback
    if getattr(bar, "prints_above_itself", False) and getattr(bar, "is_enabled", False):
        bar.print(text)  # type: ignore[union-attr]
    else:
        rank_zero_info(text)
