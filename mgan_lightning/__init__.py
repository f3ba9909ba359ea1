"""mgan-lightning: multi-generator and mode-covering GANs as PyTorch Lightning modules."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mgan-lightning")  # pyproject.toml's, as installed
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
