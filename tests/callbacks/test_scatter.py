"""render_scatter: image size, black crosses on the modes, points in their generator's colour.

Pixel positions are found from the picture itself: the plot frame and the two mode crosses
give the data-to-pixel mapping, which then predicts where each point must be drawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import ImageColor
from scipy import ndimage

from mgan_lightning.callbacks.scatter import render_scatter

# Tableau-10 (matplotlib's tab10), written out here rather than read from the module.
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip
MODES = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])


def _black(img: np.ndarray) -> np.ndarray:
    return (img < 50).all(axis=-1)


def _frame(img: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) rows/columns of the black plot frame."""
    black = _black(img)
    rows = np.flatnonzero(black.sum(axis=1) > 0.8 * img.shape[1])
    cols = np.flatnonzero(black.sum(axis=0) > 0.8 * img.shape[1])
    assert len(rows) >= 2 and len(cols) >= 2, "no plot frame found"
    return rows.min(), rows.max(), cols.min(), cols.max()


def _cross_centres(img: np.ndarray) -> list[tuple[float, float]]:
    """Centroids (row, col) of black blobs strictly inside the frame, sorted by column."""
    top, bottom, left, right = _frame(img)
    inner = _black(img)[top + 2 : bottom - 1, left + 2 : right - 1]
    labels, n = ndimage.label(inner)
    centres = ndimage.center_of_mass(inner, labels, range(1, n + 1))
    return sorted(((r + top + 2, c + left + 2) for r, c in centres), key=lambda rc: rc[1])


def _mapping(size: int):
    """data (x, y) -> pixel (row, col), from the crosses of MODES in a points-free plot."""
    img = np.asarray(render_scatter(torch.empty(0, 2), None, MODES, size=size))
    centres = _cross_centres(img)
    assert len(centres) == 2, f"expected 2 crosses, found {len(centres)}"
    (r0, c0), (r1, c1) = centres  # mode (-1, -1) is left, (1, 1) right
    sx = (c1 - c0) / 2.0
    sy = (r0 - r1) / 2.0  # y grows upwards, rows downwards
    assert sx > 0 and sy > 0
    assert sx == pytest.approx(sy, rel=0.02), "the plot should have equal axis scales"

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return (r0 + r1) / 2 - y * sy, (c0 + c1) / 2 + x * sx

    return to_pixel


@pytest.mark.parametrize("size", [256, 512])
def test_image_size(size: int) -> None:
    img = render_scatter(torch.randn(100, 2), torch.zeros(100, dtype=torch.long), MODES, "t", size)
    assert img.mode == "RGB"
    assert img.width == size
    assert size <= img.height <= size + 64  # the plot plus a title strip


@pytest.mark.parametrize("size", [256, 512])
def test_modes_are_black_crosses_at_their_positions(size: int) -> None:
    img = np.asarray(render_scatter(torch.empty(0, 2), None, MODES, size=size))
    centres = _cross_centres(img)
    assert len(centres) == 2
    top, bottom, left, right = _frame(img)
    for (r, c), (x, y) in zip(centres, [(-1.0, -1.0), (1.0, 1.0)]):
        # Both crosses lie inside the frame, in the quadrant of their mode.
        assert left < c < right and top < r < bottom
        assert (c > (left + right) / 2) == (x > 0)
        assert (r < (top + bottom) / 2) == (y > 0)
        rr, cc = round(r), round(c)
        assert _black(img[rr, cc])
        # A cross: black along its arms, white on its diagonals.
        assert _black(img[rr, cc - 4 : cc + 5]).all() and _black(img[rr - 4 : rr + 5, cc]).all()
        assert (img[rr - 4, cc - 4] > 200).all() and (img[rr + 4, cc + 4] > 200).all()


def test_points_take_their_generators_palette_colour() -> None:
    size = 400
    to_pixel = _mapping(size)
    points = torch.tensor(
        [[0.0, 0.0], [0.8, -0.8], [-0.8, 0.8], [-0.7, -0.2], [0.3, 0.6], [0.0, -1.1]]
    )
    index = torch.tensor([0, 1, 2, 3, 9, 5])
    img = np.asarray(render_scatter(points, index, MODES, size=size))
    for (x, y), k in zip(points.tolist(), index.tolist()):
        r, c = (round(v) for v in to_pixel(x, y))
        patch = img[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3)
        want = np.array(ImageColor.getrgb(TAB10[k]))
        hits = (patch == want).all(axis=1).sum()
        assert hits >= 5, f"generator {k} at ({x}, {y}): colours {patch.tolist()}"
        # Other generators' colours are not there.
        for j, other in enumerate(TAB10[:10]):
            if j != k:
                assert not (patch == np.array(ImageColor.getrgb(other))).all(axis=1).any()
    # Away from every point, mode and the frame the plot is white.
    r, c = (round(v) for v in to_pixel(0.5, -0.3))
    assert (img[r - 2 : r + 3, c - 2 : c + 3] == 255).all()


def test_without_generator_index_all_points_use_the_first_colour() -> None:
    size = 300
    to_pixel = _mapping(size)
    points = torch.tensor([[0.2, 0.2], [-0.5, 0.6]])
    img = np.asarray(render_scatter(points, None, MODES, size=size))
    want = np.array(ImageColor.getrgb(TAB10[0]))
    for x, y in points.tolist():
        r, c = (round(v) for v in to_pixel(x, y))
        assert (img[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3) == want).all(axis=1).sum() >= 5


def test_points_outside_the_window_are_not_drawn() -> None:
    size = 300
    img_empty = np.asarray(render_scatter(torch.empty(0, 2), None, MODES, size=size))
    far = torch.tensor([[50.0, 50.0], [-40.0, 3.0]])
    img_far = np.asarray(render_scatter(far, None, MODES, size=size))
    assert np.array_equal(img_empty, img_far)


def test_without_modes_the_window_follows_the_points() -> None:
    torch.manual_seed(0)
    points = torch.randn(500, 2) * 0.1 + torch.tensor([100.0, -50.0])
    img = np.asarray(render_scatter(points, torch.zeros(500, dtype=torch.long), None, size=256))
    want = np.array(ImageColor.getrgb(TAB10[0]))
    coloured = (img == want).all(axis=-1)
    assert coloured.sum() > 500  # most points are visible
