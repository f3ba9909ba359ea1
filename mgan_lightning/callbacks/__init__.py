"""Callbacks: evaluation during training and at test time, pictures of samples."""

from mgan_lightning.callbacks.mode_coverage import ModeCoverageEvaluation

__all__ = ["ModeCoverageEvaluation"]
