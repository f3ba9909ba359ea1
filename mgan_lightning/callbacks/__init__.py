"""Callbacks: evaluation during training and at test time, pictures of samples."""

from mgan_lightning.callbacks.checkpoint import GeneratorStepCheckpoint
from mgan_lightning.callbacks.compile import CompileNetworks
from mgan_lightning.callbacks.evaluation import SampleEvaluation
from mgan_lightning.callbacks.fidelity import FidelityEvaluation
from mgan_lightning.callbacks.mode_coverage import ModeCoverageEvaluation
from mgan_lightning.callbacks.progress import GeneratorStepProgressBar
from mgan_lightning.callbacks.sample_grid import SampleGrid, grid_image, grid_layout
from mgan_lightning.callbacks.sample_writer import SampleWriter
from mgan_lightning.callbacks.stacked_mnist import StackedMNISTEvaluation
from mgan_lightning.callbacks.throughput import GeneratorStepRate

__all__ = [
    "CompileNetworks",
    "GeneratorStepCheckpoint",
    "GeneratorStepProgressBar",
    "GeneratorStepRate",
    "ModeCoverageEvaluation",
    "SampleEvaluation",
    "FidelityEvaluation",
    "StackedMNISTEvaluation",
    "SampleGrid",
    "SampleWriter",
    "grid_image",
    "grid_layout",
]
