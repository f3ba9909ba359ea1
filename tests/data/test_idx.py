"""The IDX reader: exact round trips of files we write, clear errors on broken ones."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mgan_lightning.data.idx import find_idx_file, read_idx

_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B, np.dtype("i4"): 0x0C}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array in the IDX format (written independently of the reader)."""
    header = bytes([0, 0, _CODES[array.dtype], array.ndim])
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True])
def test_uint8_images_round_trip(tmp_path: Path, compress: bool) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "imgs-idx3-ubyte", images, compress)
    out = read_idx(path)
    assert out.dtype == torch.uint8 and out.shape == (5, 28, 28)
    assert torch.equal(out, torch.from_numpy(images))


@pytest.mark.parametrize("compress", [False, True])
def test_uint8_labels_round_trip(tmp_path: Path, compress: bool) -> None:
    labels = np.array([7, 2, 1, 0, 4, 9], dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / "labels-idx1-ubyte.gz", labels, compress))
    assert out.shape == (6,)
    assert out.tolist() == labels.tolist()


def test_multibyte_values_are_big_endian(tmp_path: Path) -> None:
    values = np.array([[1, -2, 70000], [-300000, 0, 2**31 - 1]], dtype=np.int32)
    out = read_idx(write_idx(tmp_path / "ints", values, compress=False))
    assert out.dtype == torch.int32
    assert out.tolist() == values.tolist()


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_file_names_the_path(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))[:-10]
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(ValueError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_cut_gzip_stream_names_the_path(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="cut.gz"):
        read_idx(path)


def test_bad_magic_and_trailing_bytes(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    extra = tmp_path / "extra"
    extra.write_bytes(idx_bytes(np.arange(3, dtype=np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(extra)


def test_find_idx_file_plain_gz_and_torchvision_layout(tmp_path: Path) -> None:
    assert find_idx_file(tmp_path, "t10k-labels-idx1-ubyte") is None
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(b"")
    assert find_idx_file(tmp_path, "t10k-labels-idx1-ubyte") == raw / "t10k-labels-idx1-ubyte.gz"
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"")
    assert find_idx_file(tmp_path, "t10k-labels-idx1-ubyte") == tmp_path / "t10k-labels-idx1-ubyte"
