"""MNIST and Stacked MNIST DataModules, read from the IDX files in ``data_root``.

Stacked MNIST (VEEGAN, Srivastava et al. 2017; used by MGAN, Hoang et al. 2018, Sec. 5.2)
puts three independently drawn digits into the three channels of one image, giving
1000 modes: mode id ``100 * a + 10 * b + c`` for the digits ``a, b, c`` of channels 0, 1, 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from mgan_lightning.data.base import GANDataModule, TensorBatchDataset
from mgan_lightning.data.errors import missing_data_error, unreadable_data_error
from mgan_lightning.data.idx import find_idx_file, read_idx

Split = Literal["train", "test"]
MNIST_SIZE = 28
_FILE_PREFIX: dict[str, str] = {"train": "train", "test": "t10k"}


def mnist_file_stems(split: Split) -> tuple[str, str]:
    """The (images, labels) IDX file names of one split, without ``.gz``."""
    prefix = _FILE_PREFIX[split]
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def to_unit_range(images: torch.Tensor, image_size: int | None = None) -> torch.Tensor:
    """uint8 pixels ``(N, H, W)`` or ``(N, C, H, W)`` -> float32 ``(N, C, S, S)`` in [-1, 1].

    [-1, 1] matches a ``tanh`` generator output. With ``image_size`` the images are resized
    (bilinear, antialiased, so downsizing does not alias) to ``S x S``.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    x = images.float().div_(127.5).sub_(1.0)
    if image_size is not None and tuple(x.shape[-2:]) != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True)
        x = x.clamp_(-1.0, 1.0)
    return x


def _download_mnist(data_root: str | Path) -> None:
    """Fetch all four MNIST files into ``data_root/MNIST/raw`` with torchvision."""
    from torchvision.datasets import MNIST as TorchvisionMNIST

    try:
        TorchvisionMNIST(str(data_root), train=True, download=True)
    except (RuntimeError, OSError) as err:
        stems = mnist_file_stems("train") + mnist_file_stems("test")
        raise missing_data_error(
            "MNIST (download failed)", Path(data_root) / "MNIST" / "raw", stems, cause=err
        ) from err


def load_mnist_split(
    data_root: str | Path, split: Split, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one MNIST split: uint8 images ``(N, 28, 28)`` and int64 labels ``(N,)``.

    Files may be plain or ``.gz``, directly in ``data_root`` or in ``data_root/MNIST/raw``.
    Missing files are downloaded only when ``download`` is true; otherwise a
    ``DataNotFoundError`` names the missing files and the folder.
    """
    if split not in _FILE_PREFIX:
        raise ValueError(f"MNIST split must be 'train' or 'test', got {split!r}")
    stems = mnist_file_stems(split)
    paths = [find_idx_file(data_root, stem) for stem in stems]
    if None in paths and download:
        _download_mnist(data_root)
        paths = [find_idx_file(data_root, stem) for stem in stems]
    if None in paths:
        missing = [f"{stem}.gz" for stem, path in zip(stems, paths) if path is None]
        raise missing_data_error(
            f"MNIST ({split!r} split; IDX files, plain or .gz, here or in MNIST/raw/)",
            data_root,
            missing,
        )
    images_path, labels_path = paths
    assert images_path is not None and labels_path is not None
    images, labels = (_read(path) for path in (images_path, labels_path))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(
            f"MNIST files disagree: images {tuple(images.shape)} in {images_path}, "
            f"labels {tuple(labels.shape)} in {labels_path}"
        )
    return images, labels.long()


def _read(path: Path) -> torch.Tensor:
    """``read_idx``; a file that cannot be read or parsed raises ``DataUnreadableError``."""
    try:
        return read_idx(path)
    except (OSError, ValueError) as err:
        raise unreadable_data_error("MNIST", path, err) from err


def _check_split(value: str, name: str) -> Split:
    if value not in _FILE_PREFIX:
        raise ValueError(f"data.{name} must be 'train' or 'test', got {value!r}")
    return value  # type: ignore[return-value]


def _check_size(image_size: int | None) -> int | None:
    if image_size is not None and image_size < 1:
        raise ValueError(f"data.image_size must be >= 1 or None, got {image_size}")
    return image_size


class MNIST(GANDataModule):
    """MNIST digits as ``(images, labels)`` batches; images ``(1, S, S)`` in [-1, 1].

    Args:
        train_split: IDX split used for training. ``"test"`` trains on the 10,000 t10k
            digits: for offline checks where only the test split's files are at hand.
        image_size: resize the 28 x 28 digits to ``S x S`` (e.g. 32 for DCGAN bodies);
            ``None`` keeps 28.
        holdout: keep the last ``holdout`` items of the training split out of training and
            use them as the test set (0: the test set is the t10k split). With
            ``train_split="test"`` and ``holdout=2000`` the model trains on t10k items
            0..7999 and is tested on 8000..9999: a leak-free split when only t10k exists.

    See ``GANDataModule`` for the other arguments.
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
        train_split: Split = "train",
        image_size: int | None = None,
        holdout: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed)
        if holdout < 0:
            raise ValueError(f"data.holdout must be >= 0, got {holdout}")
        self.holdout = holdout
        self.train_split = _check_split(train_split, "train_split")
        self.image_size = _check_size(image_size)
        size = image_size or MNIST_SIZE
        self.sample_shape = (1, size, size)
        self._datasets: dict[str, TensorBatchDataset] = {}

    def prepare_data(self) -> None:
        """Download once (rank 0) when asked; reading happens in ``setup``."""
        if self.download:
            for split in {self.train_split, "test"}:
                load_mnist_split(self.data_root, split, download=True)

    def _split_dataset(self, split: Split) -> TensorBatchDataset:
        if split not in self._datasets:
            images, labels = load_mnist_split(self.data_root, split, self.download)
            self._datasets[split] = TensorBatchDataset(
                to_unit_range(images, self.image_size), labels
            )
        return self._datasets[split]

    def _holdout_part(self, part: str) -> TensorBatchDataset:
        """The first ``N - holdout`` (``"train"``) or last ``holdout`` items of the split."""
        full = self._split_dataset(self.train_split)
        if self.holdout >= len(full):
            raise ValueError(
                f"data.holdout={self.holdout} leaves no training items in the "
                f"{len(full)}-item {self.train_split!r} split"
            )
        cut = len(full) - self.holdout
        rows = slice(0, cut) if part == "train" else slice(cut, None)
        return TensorBatchDataset(*(t[rows] for t in full.tensors))

    def setup(self, stage: str | None = None) -> None:
        """Fit needs the training split; every other stage the test split (or the held-out
        tail of the training split when ``holdout > 0``)."""
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = (
                self._holdout_part("train")
                if self.holdout
                else self._split_dataset(self.train_split)
            )
        if stage != "fit" and self.test_set is None:
            self.test_set = (
                self._holdout_part("test") if self.holdout else self._split_dataset("test")
            )


def stacked_mode_ids(digit_labels: torch.Tensor) -> torch.Tensor:
    """Digit triples ``(..., 3)`` -> mode ids ``100 a + 10 b + c`` in 0..999."""
    weights = torch.tensor([100, 10, 1], dtype=torch.long, device=digit_labels.device)
    return (digit_labels.long() * weights).sum(-1)


def stacked_mode_digits(mode_ids: torch.Tensor) -> torch.Tensor:
    """Inverse of ``stacked_mode_ids``: mode ids ``(...)`` -> digit triples ``(..., 3)``."""
    mode_ids = mode_ids.long()
    return torch.stack([mode_ids // 100, mode_ids // 10 % 10, mode_ids % 10], dim=-1)


class StackedMNISTDataset(TensorBatchDataset):
    """Stacked-MNIST items built on demand from three digit indices each.

    Only the ``(length, 3)`` digit indices are stored, so a 100k-item set costs a few MB;
    images are stacked and resized per batch. Indexed a whole batch at a time like
    ``TensorBatchDataset`` (which it extends so the base loader batches it the same way):
    ``dataset[list_of_indices]`` returns ``(images (B, 3, S, S), mode_ids (B,))``.
    """

    def __init__(
        self,
        digits: torch.Tensor,
        labels: torch.Tensor,
        indices: torch.Tensor,
        image_size: int | None = None,
    ) -> None:
        super().__init__(indices)
        self.digits = digits
        self.labels = labels
        self.indices = indices
        self.image_size = image_size

    def __getitem__(self, index):
        index = torch.as_tensor(index, dtype=torch.long)
        triples = self.indices[index.reshape(-1)]
        images = to_unit_range(self.digits[triples], self.image_size)
        modes = stacked_mode_ids(self.labels[triples])
        if index.ndim == 0:
            return images[0], modes[0]
        return images, modes

    def digit_labels(self) -> torch.Tensor:
        """The three digit labels (channels 0, 1, 2) of every item, shape ``(length, 3)``."""
        return self.labels[self.indices]

    def mode_ids(self) -> torch.Tensor:
        """The mode id of every item, shape ``(length,)``."""
        return stacked_mode_ids(self.digit_labels())


class StackedMNIST(GANDataModule):
    """Stacked MNIST: three random MNIST digits as the channels of one ``(3, S, S)`` image.

    Batches are ``(images, mode_ids)`` with ``mode_id = 100 a + 10 b + c``. The data are a
    pure function of ``seed``: the training draw uses a local generator seeded with
    ``2 * seed``, the test draw one seeded with ``2 * seed + 1``, so different seeds never
    share a stream and the global RNG is untouched.

    Args:
        length: number of training items (any positive number).
        test_length: number of test items.
        source_split: MNIST split the digits come from: the training split, or ``"test"``
            for offline checks where only the test split's files are at hand.
        image_size: side ``S`` of the square images (32 in MGAN); ``None`` keeps 28.

    See ``GANDataModule`` for the other arguments.
    """

    num_modes: int = 1000

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
        length: int = 50_000,
        test_length: int = 10_000,
        source_split: Split = "train",
        image_size: int | None = 32,
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed)
        if length < 1 or test_length < 1:
            raise ValueError(
                f"data.length and data.test_length must be >= 1, got {length}, {test_length}"
            )
        self.length = length
        self.test_length = test_length
        self.source_split = _check_split(source_split, "source_split")
        self.image_size = _check_size(image_size)
        size = image_size or MNIST_SIZE
        self.sample_shape = (3, size, size)
        self._source: tuple[torch.Tensor, torch.Tensor] | None = None

    def prepare_data(self) -> None:
        """Download the source split's MNIST files once (rank 0) when asked; the stacks are drawn
        in ``setup``."""
        if self.download:
            load_mnist_split(self.data_root, self.source_split, download=True)

    def _draw(self, length: int, stream: int) -> StackedMNISTDataset:
        if self._source is None:
            self._source = load_mnist_split(self.data_root, self.source_split, self.download)
        digits, labels = self._source
        generator = torch.Generator().manual_seed(2 * self.seed + stream)
        indices = torch.randint(len(digits), (length, 3), generator=generator)
        return StackedMNISTDataset(digits, labels, indices, self.image_size)

    def setup(self, stage: str | None = None) -> None:
        """Fit builds the training draw; every other stage the test draw."""
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._draw(self.length, stream=0)
        if stage != "fit" and self.test_set is None:
            self.test_set = self._draw(self.test_length, stream=1)
