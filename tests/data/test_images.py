"""Image DataModules: offline errors that say what to put where, and loading local files."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

from mgan_lightning.data.errors import DataNotFoundError
from mgan_lightning.data.mnist import MNIST, StackedMNIST
from mgan_lightning.data.torchvision_images import CIFAR10, STL10, CelebA, ImageFolder

OFFLINE_CASES = [
    (MNIST, ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]),
    (StackedMNIST, ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]),
    (
        CIFAR10,
        [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)]
        + ["cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta"],
    ),
    (
        STL10,
        [
            f"stl10_binary/{name}"
            for name in [
                "unlabeled_X.bin",
                "train_X.bin",
                "train_y.bin",
                "test_X.bin",
                "test_y.bin",
            ]
        ],
    ),
    (
        CelebA,
        [
            "celeba/img_align_celeba",
            "celeba/list_eval_partition.txt",
            "celeba/identity_CelebA.txt",
            "celeba/list_attr_celeba.txt",
            "celeba/list_bbox_celeba.txt",
            "celeba/list_landmarks_align_celeba.txt",
        ],
    ),
    (ImageFolder, ["<class_name>/<image files"]),
]


@pytest.mark.parametrize(
    ("datamodule", "names"), OFFLINE_CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_empty_root_offline_error_names_files(tmp_path: Path, datamodule, names: list[str]) -> None:
    dm = datamodule(data_root=str(tmp_path), download=False)
    with pytest.raises(DataNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    for name in names:
        assert str(tmp_path / name) in message, f"{name!r} missing from:\n{message}"
    # Only data sets that can be fetched suggest downloading; an image folder cannot.
    assert ("download=true" in message) == datamodule.downloadable


@pytest.mark.parametrize(
    ("datamodule", "shape"),
    [
        (CIFAR10, (3, 32, 32)),
        (STL10, (3, 48, 48)),
        (CelebA, (3, 64, 64)),
        (ImageFolder, (3, 64, 64)),
    ],
)
def test_sample_shape_known_before_setup(tmp_path: Path, datamodule, shape) -> None:
    assert datamodule(data_root=str(tmp_path)).sample_shape == shape
    assert datamodule(data_root=str(tmp_path), image_size=24).sample_shape == (3, 24, 24)


def write_image_folder(root: Path) -> None:
    """Two classes: white RGB landscapes and black grayscale portraits of odd sizes."""
    for cls, (mode, size, value) in {
        "white": ("RGB", (50, 40), (255, 255, 255)),
        "black": ("L", (30, 44), 0),
    }.items():
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new(mode, size, value).save(root / cls / f"{i}.png")


def test_image_folder_loads_pngs(tmp_path: Path) -> None:
    write_image_folder(tmp_path)
    dm = ImageFolder(batch_size=6, data_root=str(tmp_path), image_size=16)
    dm.setup("fit")
    assert len(dm.train_set) == 6
    batch = next(iter(dm.test_dataloader()))  # sequential: classes sorted, "black" first
    assert isinstance(batch, tuple)
    images, labels = batch
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.float32
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.all(images[:3] == -1.0) and torch.all(images[3:] == 1.0)
    train_images, _ = next(iter(dm.train_dataloader()))
    assert train_images.shape == (6, 3, 16, 16)
    assert train_images.min() >= -1 and train_images.max() <= 1


def test_image_folder_without_images_is_missing_data(tmp_path: Path) -> None:
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataNotFoundError, match="class_name"):
        ImageFolder(data_root=str(tmp_path)).setup("fit")


def write_fake_cifar(root: Path, per_batch: int = 4) -> dict[str, dict]:
    """The CIFAR-10 python layout with tiny random contents (not the official files).
    Returns what each file holds, by file name."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            "data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, size=per_batch).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch))
        written[name] = batch
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    written["batches.meta"] = meta
    return written


def test_cifar10_from_tiny_local_folder(tmp_path: Path, monkeypatch) -> None:
    """Our wrapper over torchvision's CIFAR10: pixels scaled exactly to [-1, 1], CHW order,
    labels, both splits. torchvision accepts only files with the official md5s, so the md5s
    it checks are set to those of the files written here; the integrity check still runs
    (see the test below for the rejection of unknown files)."""
    written = write_fake_cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    vision = datasets.CIFAR10
    monkeypatch.setattr(vision, "train_list", [[n, md5(n)] for n, _ in vision.train_list])
    monkeypatch.setattr(vision, "test_list", [[n, md5(n)] for n, _ in vision.test_list])
    monkeypatch.setattr(vision, "meta", {**vision.meta, "md5": md5("batches.meta")})
    dm = CIFAR10(batch_size=4, data_root=str(tmp_path))
    dm.setup()
    assert len(dm.train_set) == 20 and len(dm.test_set) == 4

    def expected(name: str) -> torch.Tensor:  # rows of R, G, B planes -> (N, 3, 32, 32)
        return torch.from_numpy(written[name]["data"]).float().view(-1, 3, 32, 32) / 127.5 - 1

    images, labels = next(iter(dm.test_dataloader()))  # sequential over test_batch
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert torch.allclose(images, expected("test_batch"), atol=1e-6)
    assert labels.tolist() == written["test_batch"]["labels"]
    # A shuffled training batch: each image is one written row, with that row's label.
    rows = torch.cat([expected(f"data_batch_{i}") for i in range(1, 6)]).flatten(1)
    all_labels = [y for i in range(1, 6) for y in written[f"data_batch_{i}"]["labels"]]
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and labels.shape == (4,)
    for image, label in zip(images, labels.tolist()):
        match = torch.nonzero((rows - image.flatten()).abs().amax(1) < 1e-6).flatten()
        assert len(match) == 1 and all_labels[match.item()] == label


def test_cifar10_rejected_files_are_not_reported_missing(tmp_path: Path) -> None:
    write_fake_cifar(tmp_path)
    with pytest.raises(RuntimeError, match="md5") as info:
        CIFAR10(data_root=str(tmp_path)).setup("fit")
    assert not isinstance(info.value, DataNotFoundError)
    assert str(tmp_path) in str(info.value)
