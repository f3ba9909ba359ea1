"""Image DataModules on ``torchvision.datasets``: CIFAR-10, STL-10, CelebA, ImageFolder.

Each reads a local ``data_root``, downloads only when ``download=True``, scales pixels to
[-1, 1] (a ``tanh`` generator's range) and yields ``(images, labels)`` tuples. Images are
decoded lazily, one item at a time, by torchvision. When files are missing, the error
names every file torchvision expects and where.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch.utils.data import Dataset
from torchvision import datasets, transforms

from mgan_lightning.data.base import GANDataModule
from mgan_lightning.data.errors import DataUnreadableError, missing_data_error


class ImagesAndLabels(NamedTuple):
    """One item or one batch. A NamedTuple, not a plain tuple, because the default collate
    turns plain tuples into lists but keeps NamedTuples: batches stay ``(images, labels)``."""

    images: torch.Tensor
    labels: Any


class _AsTuple(Dataset):
    """Wrap a torchvision dataset so its items are ``ImagesAndLabels``."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> ImagesAndLabels:
        image, label = self.dataset[index]
        return ImagesAndLabels(image, label)


def image_transform(image_size: int, native_size: int | None = None) -> transforms.Compose:
    """PIL image -> float ``(3, S, S)`` in [-1, 1]; resize the short side to ``S`` and
    center-crop to a square, unless the images are already ``native_size == S`` square."""
    steps: list[Any] = []
    if image_size != native_size:
        steps += [transforms.Resize(image_size, antialias=True), transforms.CenterCrop(image_size)]
    steps += [transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)]
    return transforms.Compose(steps)


class TorchvisionImages(GANDataModule):
    """Shared loading and offline errors for the torchvision-backed image DataModules.

    Subclasses set ``dataset_name``, ``expected_files`` (relative to ``data_root``) and
    ``native_size``, and implement ``_build(train, download)``.
    """

    dataset_name: str = ""
    expected_files: tuple[str, ...] = ()
    native_size: int | None = None

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
        image_size: int = 32,
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed)
        if image_size < 1:
            raise ValueError(f"data.image_size must be >= 1, got {image_size}")
        self.image_size = image_size
        self.sample_shape = (3, image_size, image_size)

    @property
    def transform(self) -> transforms.Compose:
        """Every image's transform: resize and center-crop to ``image_size`` (unless the images
        are square of that size already), then scale to [-1, 1] (:func:`image_transform`)."""
        return image_transform(self.image_size, self.native_size)

    def _build(self, train: bool, download: bool) -> Dataset:
        """The torchvision dataset of the training (``train``) or test split."""
        raise NotImplementedError

    def _folder(self, train: bool) -> str:
        """The folder the split is read from (named in the missing-data error)."""
        return self.data_root

    def _files_present(self) -> bool:
        root = Path(self.data_root)
        return bool(self.expected_files) and all((root / f).exists() for f in self.expected_files)

    def _open(self, train: bool, download: bool) -> Dataset:
        try:
            dataset = self._build(train, download)
        except (RuntimeError, FileNotFoundError) as err:
            if not download and self._files_present():
                raise DataUnreadableError(
                    f"{self.dataset_name} files are in {self._folder(train)} but torchvision "
                    f"rejected them (failed md5 integrity check, or unreadable): {err}. "
                    f"Replace them with the official files or pass `--data.download=true`."
                ) from err
            raise missing_data_error(
                self.dataset_name,
                self._folder(train),
                self.expected_files,
                cause=err,
                downloadable=self.downloadable,
            ) from err
        return _AsTuple(dataset)

    def prepare_data(self) -> None:
        """Download once (rank 0) when asked."""
        if self.download:
            self._open(train=True, download=True)
            self._open(train=False, download=True)

    def setup(self, stage: str | None = None) -> None:
        """Fit needs the training split; every other stage the test split."""
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._open(train=True, download=self.download)
        if stage != "fit" and self.test_set is None:
            self.test_set = self._open(train=False, download=self.download)


class CIFAR10(TorchvisionImages):
    """CIFAR-10 (50,000 train / 10,000 test images, 10 classes), ``(3, S, S)``, default 32.

    Expects ``data_root/cifar-10-batches-py/`` as unpacked from the official archive.
    """

    dataset_name = "CIFAR-10"
    expected_files = tuple(
        f"cifar-10-batches-py/{name}"
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
    )
    native_size = 32

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
        image_size: int = 32,
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed, image_size)

    def _build(self, train: bool, download: bool) -> Dataset:
        return datasets.CIFAR10(
            self.data_root, train=train, transform=self.transform, download=download
        )


STL10Split = Literal["unlabeled", "train", "train+unlabeled", "test"]


class STL10(TorchvisionImages):
    """STL-10, resized from 96 to ``S`` (default 48, as in MGAN). Trains on ``split``
    (default the 100,000 ``"unlabeled"`` images, label -1, as MGAN does); tests on
    ``"test"``. Expects ``data_root/stl10_binary/`` from the official archive.
    """

    dataset_name = "STL-10"
    expected_files = tuple(
        f"stl10_binary/{name}"
        for name in ["unlabeled_X.bin", "train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"]
    )
    native_size = 96

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
        image_size: int = 48,
        split: STL10Split = "unlabeled",
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed, image_size)
        if split not in ("unlabeled", "train", "train+unlabeled", "test"):
            raise ValueError(f"data.split must be an STL-10 split, got {split!r}")
        self.split = split

    def _build(self, train: bool, download: bool) -> Dataset:
        split = self.split if train else "test"
        return datasets.STL10(
            self.data_root, split=split, transform=self.transform, download=download
        )


CelebASplit = Literal["train", "valid", "test", "all"]
CelebATarget = Literal["attr", "identity", "bbox", "landmarks"]


class CelebA(TorchvisionImages):
    """Aligned CelebA faces, resized and center-cropped to ``S`` (default 64). Trains on
    ``split``, tests on ``"test"``; labels are the ``target_type`` annotations (default
    the 40 binary attributes). Expects ``data_root/celeba/`` as torchvision lays it out.
    """

    dataset_name = "CelebA"
    expected_files = (
        "celeba/img_align_celeba/",
        "celeba/list_eval_partition.txt",
        "celeba/identity_CelebA.txt",
        "celeba/list_attr_celeba.txt",
        "celeba/list_bbox_celeba.txt",
        "celeba/list_landmarks_align_celeba.txt",
    )

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
        image_size: int = 64,
        split: CelebASplit = "train",
        target_type: CelebATarget = "attr",
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed, image_size)
        if split not in ("train", "valid", "test", "all"):
            raise ValueError(f"data.split must be a CelebA split, got {split!r}")
        self.split = split
        self.target_type = target_type

    def _build(self, train: bool, download: bool) -> Dataset:
        return datasets.CelebA(
            self.data_root,
            split=self.split if train else "test",
            target_type=self.target_type,
            transform=self.transform,
            download=download,
        )


class ImageFolder(TorchvisionImages):
    """Any folder of images laid out as ``data_root/<class_name>/<image files>`` (one
    sub-folder per class; a single sub-folder is fine for unlabeled data). Images are
    converted to RGB, resized and center-cropped to ``S`` (default 64). The test set is
    ``test_root`` in the same layout, or the training folder when it is ``None``.
    There is nothing to download: ``download`` is ignored.
    """

    dataset_name = "ImageFolder"
    downloadable = False
    expected_files = ("<class_name>/<image files (.png, .jpg, ...)>",)

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        data_root: str = "data",
        download: bool = False,
        seed: int = 0,
        image_size: int = 64,
        test_root: str | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, data_root, download, seed, image_size)
        self.test_root = test_root

    def _files_present(self) -> bool:
        return False

    def _folder(self, train: bool) -> str:
        return self.data_root if train or self.test_root is None else self.test_root

    def _build(self, train: bool, download: bool) -> Dataset:
        return datasets.ImageFolder(self._folder(train), transform=self.transform)

    def prepare_data(self) -> None:
        """Nothing to download."""
