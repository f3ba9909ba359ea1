"""The sample grid: row k is generator k; the latent batch is fixed and checkpointed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mgan_lightning.callbacks.sample_grid import SampleGrid, grid_image, grid_layout


def test_layout_row_k_is_generator_k():
    k, n, h, w, p = 3, 4, 5, 6, 2
    values = torch.linspace(-0.9, 0.9, k * n).reshape(k, n)  # tile (g, j) is constant
    images = values[:, :, None, None, None].expand(k, n, 1, h, w)
    grid = grid_layout(images, padding=p)
    assert grid.dtype == torch.uint8
    assert grid.shape == (p + k * (h + p), p + n * (w + p), 3)
    for g in range(k):
        for j in range(n):
            top, left = p + g * (h + p), p + j * (w + p)
            tile = grid[top : top + h, left : left + w]
            expected = round((float(values[g, j]) + 1) * 127.5)
            assert (tile == expected).all(), (g, j)
            assert (grid[top - 1, left : left + w] == 255).all()  # white padding above
            assert (grid[top : top + h, left - 1] == 255).all()  # and to the left
    assert (grid[-1] == 255).all() and (grid[:, -1] == 255).all()


def test_layout_keeps_colour_channels_and_scales():
    images = torch.full((2, 3, 3, 4, 4), -1.0)
    images[1, :, 0] = 1.0  # generator 1: red
    grid = grid_layout(images, padding=0)
    assert grid[0:4, :].tolist() == [[[0, 0, 0]] * 12] * 4
    assert (grid[4:8, :, 0] == 255).all() and (grid[4:8, :, 1:] == 0).all()
    assert grid_image(images, padding=0, scale=3).size == (36, 24)


def test_layout_rejects_other_shapes():
    with pytest.raises(ValueError, match="K, n"):
        grid_layout(torch.zeros(4, 3, 8, 8))


def test_fixed_latent_is_drawn_once_and_leaves_the_rng_alone(gan_factory):
    model = gan_factory()
    grid = SampleGrid(samples_per_generator=5, seed=3)
    before = torch.get_rng_state()
    z = grid.fixed_latent(model)
    assert torch.equal(torch.get_rng_state(), before)
    assert z.shape == model.sample_latent(5).shape
    assert torch.equal(grid.fixed_latent(model), z)
    restored = SampleGrid(samples_per_generator=5, seed=99)
    restored.load_state_dict(grid.state_dict())
    assert torch.equal(restored.fixed_latent(model), z)


def test_grid_is_logged_and_its_latent_survives_a_checkpoint(
    tmp_path, data, gan_factory, trainer_factory
):
    model = gan_factory(k=3)
    grid = SampleGrid(every_n_steps=2, samples_per_generator=4, padding=1, scale=1)
    trainer = trainer_factory(tmp_path, [grid], generator_steps=4)
    trainer.fit(model, datamodule=data)
    pngs = sorted(p.name for p in (tmp_path / "logs" / "version_0" / "images").glob("*.png"))
    assert pngs == [
        "samples_grid_step0000002.png",
        "samples_grid_step0000004.png",
    ]  # the end-of-fit grid at step 4 overwrote the scheduled one
    picture = np.asarray(Image.open(grid.last_path))
    model.eval()
    with torch.no_grad():
        expected = grid_layout(model.generate(grid.latent), padding=1).numpy()
    assert picture.shape == (1 + 3 * 17, 1 + 4 * 17, 3)
    np.testing.assert_array_equal(picture, expected)

    ckpt_path = tmp_path / "grid.ckpt"
    trainer.save_checkpoint(ckpt_path)
    ckpt = torch.load(ckpt_path, weights_only=False)
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("SampleGrid")]
    resumed = SampleGrid(samples_per_generator=4)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.latent, grid.latent)
