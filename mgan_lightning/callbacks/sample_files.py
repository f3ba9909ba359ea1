"""The files ``mgan predict`` writes: tensors, one PNG per image sample, a grid per generator.

Layout of the output folder::

    samples.pt     torch.save({"samples": (N, ...), "generator": (N,), "latent": (N, L), "seed"})
    samples.npz    the same arrays for NumPy
    images/        image data only: <slot>_g<generator>.png, one per sample
    grid.png       image data only: row k = the first samples of generator k
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mgan_lightning.callbacks.sample_grid import grid_image

IMAGE_NAME = re.compile(r"^\d+_g\d+\.png$")  # what write_pngs writes (and may replace)


def is_image_shape(shape: tuple[int, ...]) -> bool:
    """Whether samples of ``shape`` are pictures: ``(C, H, W)`` with 1 or 3 channels."""
    return len(shape) == 3 and shape[0] in (1, 3)


def write_tensors(folder: Path, arrays: dict[str, torch.Tensor], seed: int | None) -> list[Path]:
    """``samples.pt`` (tensors and the seed) and ``samples.npz`` (arrays) in ``folder``."""
    pt, npz = folder / "samples.pt", folder / "samples.npz"
    torch.save({**arrays, **({} if seed is None else {"seed": seed})}, pt)
    np.savez(npz, **{name: tensor.numpy() for name, tensor in arrays.items()})  # type: ignore[arg-type]
    return [pt, npz]


def to_picture(image: torch.Tensor) -> Image.Image:
    """One ``(C, H, W)`` image in [-1, 1] as an 8-bit PIL image (grey for C = 1)."""
    pixels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0].numpy(), "L")
    return Image.fromarray(pixels.permute(1, 2, 0).contiguous().numpy(), "RGB")


def write_pngs(folder: Path, samples: torch.Tensor, generator: torch.Tensor) -> Path:
    """``folder/images/<slot>_g<k>.png`` for every sample; PNGs a previous prediction left
    there under the same naming are removed first, so the folder holds exactly these."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    for old in images.iterdir():
        if IMAGE_NAME.match(old.name):
            old.unlink()
    digits = max(6, len(str(len(samples) - 1)))
    for slot, (image, k) in enumerate(zip(samples, generator.tolist())):
        to_picture(image).save(images / f"{slot:0{digits}d}_g{k}.png")
    return images


def grid_tiles(
    samples: torch.Tensor, generator: torch.Tensor, num_generators: int, per_row: int
) -> torch.Tensor:
    """``(K, per_row, C, H, W)``: row k holds generator k's first samples in slot order;
    tiles a generator did not fill are white."""
    tiles = torch.ones(num_generators, per_row, *samples.shape[1:])
    for k in range(num_generators):
        own = samples[generator == k][:per_row]
        tiles[k, : len(own)] = own.float()
    return tiles


def write_grid(
    path: Path,
    samples: torch.Tensor,
    generator: torch.Tensor,
    num_generators: int,
    per_row: int = 8,
    scale: int = 2,
) -> Path:
    """One picture, one row per generator (:func:`grid_image`), at ``path``."""
    tiles = grid_tiles(samples, generator, num_generators, per_row)
    grid_image(tiles, padding=2, scale=scale).save(path)
    return path
