"""Read IDX files, the format MNIST is distributed in, plain or gzip-compressed.

An IDX file is a 4-byte magic number ``0x00 0x00 <dtype code> <number of dims>``, then
one big-endian uint32 per dimension, then the values in C order, big-endian. Reading it
ourselves (instead of through ``torchvision.datasets.MNIST``) lets us use any folder that
holds only some of the files, e.g. the MNIST test split alone.

Why not torchvision's own reader (``torchvision.datasets.mnist.read_image_file`` /
``read_label_file``): it opens the path with plain ``open``, so it cannot read the ``.gz``
files MNIST is distributed as (they would have to be decompressed to disk first); it reads
with ``strict=False``, so a truncated or padded file is not reported as such, and a bad
header fails with a bare ``AssertionError`` that names no file. The data layer promises a
message that says which file is wrong and how, and accepts either form (:func:`read_idx`).
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

# IDX dtype code -> big-endian numpy dtype of the stored values.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip (told by its magic bytes, not its name)."""
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"corrupt or truncated gzip IDX file {path}: {err}") from err


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one IDX file (plain or ``.gz``) into a tensor of its stored shape.

    MNIST images come back as ``uint8`` of shape ``(N, 28, 28)``, labels as ``uint8`` of
    shape ``(N,)``. Multi-byte types are converted to native byte order.

    Raises:
        ValueError: the file is not IDX, is truncated or has trailing bytes; the message
            names the path.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"not an IDX file (bad magic number): {path}")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"unknown IDX data type code 0x{code:02x} in {path}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise ValueError(f"truncated IDX file (header cut short): {path}")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header_len + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "corrupt (trailing bytes after the data)"
        raise ValueError(
            f"{kind} IDX file {path}: header says shape {tuple(shape)} "
            f"({expected} bytes), file holds {len(data)} bytes"
        )
    values = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return torch.from_numpy(values.astype(dtype.newbyteorder("="), copy=True))


def find_idx_file(folder: str | Path, stem: str) -> Path | None:
    """Find ``stem`` or ``stem.gz`` in ``folder`` or in ``folder/MNIST/raw`` (the layout
    torchvision's downloader leaves). Returns ``None`` when none of them exists."""
    folder = Path(folder)
    for directory in (folder, folder / "MNIST" / "raw"):
        for name in (stem, f"{stem}.gz"):
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None
