"""torchmetrics metrics for mode collapse and sample quality."""

from mgan_lightning.metrics.fidelity import (
    FidelityMetrics,
    ImageFeatures,
    InceptionV3Features,
    InceptionWeightsNotFoundError,
    build_fid,
    build_inception_score,
    build_kid,
    resolve_inception_weights,
)
from mgan_lightning.metrics.mode_coverage import ModeCoverage, assign_modes, high_quality_radius
from mgan_lightning.metrics.prdc import PRDC, flat_scores, prdc
from mgan_lightning.metrics.prdc_features import DigitFeatures, digit_features, inception_features
from mgan_lightning.metrics.prdc_plot import plot_per_generator
from mgan_lightning.metrics.stacked_mnist import StackedMNISTModes, classify_channels

__all__ = [
    "ModeCoverage",
    "assign_modes",
    "high_quality_radius",
    "FidelityMetrics",
    "ImageFeatures",
    "InceptionV3Features",
    "InceptionWeightsNotFoundError",
    "build_fid",
    "build_inception_score",
    "build_kid",
    "resolve_inception_weights",
    "PRDC",
    "prdc",
    "flat_scores",
    "DigitFeatures",
    "digit_features",
    "inception_features",
    "plot_per_generator",
    "StackedMNISTModes",
    "classify_channels",
]
