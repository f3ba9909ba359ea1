"""Gaussian mixtures in d = 1, 3 and 10 dimensions, end to end: the DataModule's shapes and
statistics, the d-dimensional high-quality rule of mode coverage (true data passes, shifted
or collapsed data does not), the scatter of d != 2 data, a short fit of every method on 3D
data, and one run through the CLI."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.loggers import CSVLogger

from mgan_lightning.callbacks import ModeCoverageEvaluation
from mgan_lightning.callbacks.scatter import PALETTE, planar_view, render_scatter
from mgan_lightning.data import GaussianMixture, GaussianMixture2D
from mgan_lightning.methods import GAN, MGAN, MIMGAN, MWU, BourGAN
from mgan_lightning.metrics import ModeCoverage, assign_modes, high_quality_radius
from mgan_lightning.nets import MLP

DIMS = [1, 3, 10]
ROOT = Path(__file__).resolve().parents[2]


def spread_means(dim: int, scale: float = 4.0) -> list[list[float]]:
    """2 dim modes at ±scale e_i, written out here (independent of the ``cross`` layout)."""
    rows = []
    for sign in (1.0, -1.0):
        for i in range(dim):
            rows.append([sign * scale if j == i else 0.0 for j in range(dim)])
    return rows


def drawn(dm: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    dm.setup("fit")
    return dm.train_set.tensors


# ------------------------------------------------------------------ DataModule
@pytest.mark.parametrize("dim", DIMS)
def test_shapes_and_batches(dim: int) -> None:
    dm = GaussianMixture(preset=None, means=spread_means(dim), std=0.2, num_train=512, num_test=64)
    assert dm.sample_shape == (dim,) and dm.dim == dim and dm.num_channels == 0
    assert dm.modes.shape == (2 * dim, dim)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (256, dim) and x.dtype == torch.float32 and y.shape == (256,)
    assert dm.subsample(10, seed=0).shape == (10, dim)
    assert torch.cat([b[0] for b in dm.test_dataloader()]).shape == (64, dim)


@pytest.mark.parametrize("dim", DIMS)
def test_statistics_recover_means_std_and_weights(dim: int) -> None:
    n, std = 20_000, 0.2
    means = torch.tensor(spread_means(dim))
    m = len(means)
    weights = torch.arange(1, m + 1, dtype=torch.float64)
    dm = GaussianMixture(
        preset=None, means=means.tolist(), std=std, weights=weights.tolist(), num_train=n, seed=3
    )
    points, labels = drawn(dm)
    assert points.shape == (n, dim)
    assert torch.equal(torch.cdist(points.double(), means.double()).argmin(1), labels)
    residual = points - means[labels]
    # per-coordinate std within 3% (its own sampling error is ~ 1 / sqrt(2n) = 0.5%)
    assert residual.std(dim=0).tolist() == pytest.approx([std] * dim, rel=0.03)
    for k in range(m):  # each mode's sample mean within 5 standard errors of its mean
        mine = points[labels == k]
        assert (mine.mean(0) - means[k]).abs().max() < 5 * std / math.sqrt(len(mine))
    p = weights / weights.sum()
    freq = torch.bincount(labels, minlength=m).double() / n
    assert ((freq - p).abs() < 5 * (p * (1 - p) / n).sqrt()).all()


@pytest.mark.parametrize("dim", DIMS)
def test_cube_and_cross_layouts(dim: int) -> None:
    cross = GaussianMixture(preset="cross", dim=dim, num_train=256)
    assert cross.modes.shape == (2 * dim, dim) and cross.mode_std == pytest.approx(0.05)
    assert {tuple(r) for r in cross.modes.tolist()} == {tuple(r) for r in spread_means(dim, 1)}
    cube = GaussianMixture(preset="cube", dim=dim, num_train=256, std=0.1)
    assert cube.modes.shape == (2**dim, dim) and cube.mode_std == pytest.approx(0.1)
    assert (cube.modes.abs() == 1).all() and len(set(map(tuple, cube.modes.tolist()))) == 2**dim


def test_2d_name_keeps_the_presets_and_refuses_other_widths() -> None:
    ring = GaussianMixture2D(preset="ring", num_train=256)
    assert isinstance(ring, GaussianMixture) and ring.sample_shape == (2,)
    same = GaussianMixture(preset="ring", num_train=256)
    assert torch.equal(drawn(ring)[0], drawn(same)[0])
    with pytest.raises(ValueError, match=r"data\.means"):
        GaussianMixture2D(preset=None, means=[[0.0, 0.0, 0.0]], std=0.1)
    with pytest.raises(ValueError, match=r"data\.preset"):
        GaussianMixture2D(preset="cube", dim=3)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"preset": None, "means": [[0.0], [1.0, 2.0]], "std": 0.1}, "data.means"),
        ({"preset": None, "means": [1.0, 2.0], "std": 0.1}, "data.means"),
        ({"preset": None, "means": [[0.0, 1.0, 2.0]], "std": 0.1, "dim": 2}, "data.dim"),
        ({"preset": "ring", "dim": 3}, "data.dim"),
        ({"preset": "cross"}, "data.dim"),
        ({"preset": "cross", "dim": 0}, "data.dim"),
        ({"preset": "cube", "dim": 20}, "data.dim"),
        ({"preset": "simplex", "dim": 3}, "data.preset"),
        ({"preset": "cross", "dim": 3, "weights": [1.0] * 5}, "data.weights"),
    ],
)
def test_invalid_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        GaussianMixture(**kwargs)


# ---------------------------------------------------------------- mode coverage
def test_radius_is_3_std_in_2d_bit_for_bit() -> None:
    assert high_quality_radius(3.0, 2) == 3.0 and high_quality_radius(1.5, 2) == 1.5
    modes = GaussianMixture2D(preset="grid", num_train=256).modes
    g = torch.Generator().manual_seed(0)
    samples = modes[torch.randint(25, (4000,), generator=g)] + 0.15 * torch.randn(
        4000, 2, generator=g
    )  # about half inside 3 std = 0.15
    nearest, good = assign_modes(samples, modes, 0.05)
    direct = torch.cdist(samples, modes, compute_mode="donot_use_mm_for_euclid_dist")
    assert torch.equal(good, direct.min(1).values < 3.0 * 0.05)
    assert 0.2 < good.float().mean() < 0.8


@pytest.mark.parametrize("dim", [1, 3, 4, 10, 50])
def test_radius_keeps_the_2d_share_of_a_mode(dim: int) -> None:
    """P(chi_d < r_d) = 1 - exp(-t^2 / 2), checked with closed forms / scipy."""
    for t in (1.0, 3.0):
        r = high_quality_radius(t, dim)
        want = 1 - math.exp(-t * t / 2)
        if dim == 1:  # |N(0, 1)| < r
            assert math.erf(r / math.sqrt(2)) == pytest.approx(want, abs=1e-10)
        elif dim == 4:  # chi-square with 4 degrees of freedom
            x = r * r / 2
            assert 1 - math.exp(-x) * (1 + x) == pytest.approx(want, abs=1e-10)
        else:
            stats = pytest.importorskip("scipy.stats")
            assert stats.chi.cdf(r, dim) == pytest.approx(want, abs=1e-9)
    assert high_quality_radius(3.0, 1) < 3.0 < high_quality_radius(3.0, 3)


@pytest.mark.parametrize("dim", DIMS)
def test_true_data_is_covered_with_high_quality(dim: int) -> None:
    n = 5000
    dm = GaussianMixture(preset="cross", dim=dim, num_train=256, num_test=n, seed=1)
    dm.setup("test")
    true = dm.test_set.tensors[0]
    metric = ModeCoverage(dm.modes, dm.mode_std, dm.mode_weights)
    metric.update(true)
    out = {k: float(v) for k, v in metric.compute().items()}
    assert out["modes"] == 2 * dim
    # 1 - exp(-9/2) = 98.89% of true samples pass in every d; 5 binomial standard errors
    share = 1 - math.exp(-4.5)
    assert out["high_quality"] == pytest.approx(share, abs=5 * math.sqrt(share * (1 - share) / n))
    assert out["reverse_kl"] < 0.01


def test_a_fixed_3_std_ball_would_reject_true_10d_data() -> None:
    """Why the radius grows with d: 3 std keeps under half of the true 10D samples."""
    dm = GaussianMixture(preset="cross", dim=10, num_train=256, num_test=5000)
    dm.setup("test")
    true = dm.test_set.tensors[0]
    distance = torch.cdist(true, dm.modes).min(1).values
    assert (distance < 3 * dm.mode_std).float().mean() < 0.55


@pytest.mark.parametrize("dim", DIMS)
def test_shifted_or_collapsed_fakes_score_low(dim: int) -> None:
    dm = GaussianMixture(preset="cross", dim=dim, num_train=256, num_test=2000)
    dm.setup("test")
    true, labels = dm.test_set.tensors
    shifted = ModeCoverage(dm.modes, dm.mode_std)
    shifted.update(true + 10 * dm.mode_std)  # every coordinate moved by 10 std
    out = {k: float(v) for k, v in shifted.compute().items()}
    assert out["high_quality"] < 0.01 and out["modes"] <= 1
    collapsed = ModeCoverage(dm.modes, dm.mode_std)
    collapsed.update(true[labels == 0])
    out = {k: float(v) for k, v in collapsed.compute().items()}
    assert out["modes"] == 1 and out["high_quality"] > 0.97
    assert out["reverse_kl"] == pytest.approx(math.log(2 * dim), rel=1e-5)


# ---------------------------------------------------------------------- scatter
def coloured(img: np.ndarray, k: int = 0) -> int:
    rgb = np.array([int(PALETTE[k][i : i + 2], 16) for i in (1, 3, 5)])
    return int((img == rgb).all(-1).sum())


@pytest.mark.parametrize("dim", DIMS)
def test_scatter_renders_d_dimensional_points(dim: int) -> None:
    dm = GaussianMixture(preset="cross", dim=dim, std=0.1, num_train=256, num_test=400)
    dm.setup("test")
    points = dm.test_set.tensors[0]
    index = torch.arange(len(points)) % 2
    image = render_scatter(points, index, dm.modes, f"{dim}D", size=256)
    img = np.asarray(image)
    assert image.size[0] == 256 and 256 <= image.size[1] <= 320
    assert coloured(img, 0) > 50 and coloured(img, 1) > 50
    caption_rows = slice(img.shape[0] - 22, img.shape[0] - 8)  # the line at the bottom
    flat, flat_modes, caption = planar_view(points, dm.modes)
    assert flat.shape == (len(points), 2) and caption
    if dim >= 3:
        assert caption == f"coordinates 1-2 of {dim}"
        plain = np.asarray(render_scatter(points[:, :2], index, dm.modes[:, :2], f"{dim}D", 256))
        # the same picture as the first two coordinates; only the caption line differs
        assert np.array_equal(img[: caption_rows.start], plain[: caption_rows.start])
        assert not np.array_equal(img[caption_rows], plain[caption_rows])
    else:  # x against a bounded, reproducible jitter; modes on y = 0
        assert torch.equal(flat[:, 0], points[:, 0]) and flat[:, 1].abs().max() <= 0.5
        assert flat[:, 1].std() > 0.1 and torch.equal(flat_modes[:, 1], torch.zeros(2))
        assert torch.equal(planar_view(points, dm.modes)[0], flat)
        assert "jitter" in caption
    assert (img[caption_rows] < 60).all(-1).sum() > 20  # the caption is written, in black


# ------------------------------------------------------------ every method in 3D
MEANS_3D = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-1.0, 1.0, 0.0]]
STEPS = 30
TINY = dict(g_hidden=16, g_layers=1, d_hidden=16, d_layers=1)


def build(name: str):
    common = dict(sample_shape=(3,), architecture=MLP(**TINY))
    if name == "GAN":
        return GAN(latent_dim=4, max_generator_steps=STEPS, **common)
    if name == "MGAN":
        return MGAN(num_generators=3, latent_dim=4, max_generator_steps=STEPS, **common)
    if name == "MIMGAN":
        return MIMGAN(num_generators=3, latent_dim=4, max_generator_steps=STEPS, **common)
    if name == "BourGAN":
        return BourGAN(num_embedding_points=64, max_generator_steps=STEPS, **common)
    return MWU(
        num_rounds=2, steps_per_round=STEPS // 2, coverage_samples=200, latent_dim=4, **common
    )


@pytest.mark.parametrize("name", ["GAN", "MGAN", "MIMGAN", "BourGAN", "MWU"])
def test_every_method_fits_3d_data_and_is_evaluated(name: str, tmp_path) -> None:
    seed_everything(0, verbose=False)
    torch.set_num_threads(1)
    data = GaussianMixture(preset=None, means=MEANS_3D, std=0.3, num_train=512, batch_size=64)
    evaluation = ModeCoverageEvaluation(every_n_steps=10, num_samples=300)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=2 * STEPS,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[evaluation],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    model = build(name)
    trainer.fit(model, datamodule=data)
    assert model.generator_steps_done == STEPS
    samples, index = model.sample(50, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (50, 3) and index.shape == (50,)
    assert evaluation.last_step == STEPS and set(evaluation.last) == {
        "modes",
        "high_quality",
        "reverse_kl",
        "spread",
        "spread_max",
    }
    assert all(math.isfinite(v) for v in evaluation.last.values()), evaluation.last
    trainer.loggers[0].save()
    with open(Path(trainer.loggers[0].log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["coverage/modes"]) for r in rows if r.get("coverage/modes")]
    assert len(logged) == 3 and all(0 <= v <= 3 for v in logged)  # steps 10, 20, 30
    assert evaluation.last_plot is not None and evaluation.last_plot.is_file()
    if name == "MWU":
        for row in model.round_history:
            assert math.isfinite(row["mwu/new_generator_high_quality"])
            assert 0 <= row["mwu/new_generator_modes"] <= 3


# ---------------------------------------------------------------- via the CLI
FAST = """
trainer:
  callbacks:
    - class_path: mgan_lightning.callbacks.ModeCoverageEvaluation
      init_args: {every_n_steps: 10, num_samples: 300}
"""


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_cli_fits_a_3d_mixture_given_on_the_command_line(tmp_path) -> None:
    from mgan_lightning.cli import build_cli

    fast = tmp_path / "fast.yaml"
    fast.write_text(FAST)
    args = [
        "fit",
        "--config",
        str(ROOT / "configs" / "ring" / "gan.yaml"),
        "--config",
        str(fast),
        "--data.class_path=mgan_lightning.data.GaussianMixture",
        f"--data.init_args.means={MEANS_3D}",
        "--data.init_args.std=0.3",
        "--data.init_args.num_train=512",
        "--data.init_args.batch_size=64",
        "--model.init_args.architecture.init_args.g_hidden=16",
        "--model.init_args.architecture.init_args.d_hidden=16",
        "--trainer.max_steps=20",  # generator steps
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        cli = build_cli(args)
    finally:
        os.chdir(old)
    assert type(cli.datamodule) is GaussianMixture and cli.datamodule.sample_shape == (3,)
    assert cli.model.sample_shape == (3,) and cli.model.generator_steps_done == 20
    evaluation = next(c for c in cli.trainer.callbacks if isinstance(c, ModeCoverageEvaluation))
    assert evaluation.last_step == 20 and all(math.isfinite(v) for v in evaluation.last.values())
    pictures = list((tmp_path / "run" / "logs").glob("version_0/images/*.png"))
    assert pictures, "no scatter plot was written"
