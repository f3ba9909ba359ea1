"""mgan-lightning: multi-generator and mode-covering GANs as PyTorch Lightning modules."""

__version__ = "0.1.0"
