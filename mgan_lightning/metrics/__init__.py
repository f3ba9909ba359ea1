"""torchmetrics metrics for mode collapse and sample quality."""

from mgan_lightning.metrics.mode_coverage import ModeCoverage, assign_modes

__all__ = ["ModeCoverage", "assign_modes"]
