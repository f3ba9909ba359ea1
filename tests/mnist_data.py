"""Where the tests find MNIST's test split (the t10k IDX files): the folder named by the
``MGAN_MNIST_ROOT`` environment variable, which ``.ci/run`` sets. Tests that need it skip
with one line when it is not set or holds no t10k files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "MGAN_MNIST_ROOT"
MNIST_DIR = Path(os.environ.get(ENV) or "/nonexistent-mnist")
HAS_MNIST = (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file()
SKIP_REASON = f"MNIST's t10k files not found: set {ENV} to their folder"

needs_mnist = pytest.mark.skipif(not HAS_MNIST, reason=SKIP_REASON)
