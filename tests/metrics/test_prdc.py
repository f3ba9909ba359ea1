"""PRDC: equal to a brute-force NumPy reference, the limiting cases, torch-fidelity's
precision/recall, the digit classifier's features on MNIST, per-generator results, DDP."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy.spatial.distance import cdist
from torch import nn

from mgan_lightning.metrics import PRDC, DigitFeatures, flat_scores, plot_per_generator, prdc
from mgan_lightning.metrics.fidelity import FidelityMetrics
from mgan_lightning.metrics.knn import knn_radii
from mgan_lightning.metrics.prdc_features import inception_features
from tests.mnist_data import MNIST_DIR, needs_mnist

ROOT = Path(__file__).resolve().parents[2]


def brute_force(real: np.ndarray, fake: np.ndarray, k: int, groups=None, count=None) -> dict:
    """The papers' definitions, one full distance matrix at a time, in NumPy."""
    d_rr, d_ff, d_rf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    np.fill_diagonal(d_rr, np.inf)
    np.fill_diagonal(d_ff, np.inf)
    r_real = np.sort(d_rr, axis=1)[:, k - 1]
    r_fake = np.sort(d_ff, axis=1)[:, k - 1]
    inside = d_rf < r_real[:, None]  # [i, j]: fake j in the ball of real i
    out = {
        "precision": inside.any(axis=0).mean(),
        "recall": (d_rf < r_fake[None, :]).any(axis=1).mean(),
        "density": inside.sum(axis=0).mean() / k,
        "coverage": (d_rf.min(axis=1) < r_real).mean(),
    }
    if groups is not None:
        hit = np.stack([inside[:, groups == g].any(axis=1) for g in range(count)], axis=1)
        out["precision_per_generator"] = [inside[:, groups == g].any(axis=0).mean()
                                          for g in range(count)]  # fmt: skip
        out["density_per_generator"] = [inside[:, groups == g].sum(axis=0).mean() / k
                                        for g in range(count)]  # fmt: skip
        out["coverage_per_generator"] = hit.mean(axis=0)
        reached = hit.sum(axis=1)
        out["covered_by_one"] = (reached == 1).mean()
        out["covered_by_several"] = (reached > 1).mean()
        out["covered_by_none"] = (reached == 0).mean()
    return out


def gaussian(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) * scale + shift


# -------------------------------------------------------------- the definitions
@pytest.mark.parametrize(
    ("n", "m", "dim", "k", "block"),
    [(120, 90, 5, 5, 1 << 23), (120, 90, 5, 3, 500), (64, 201, 12, 1, 37), (31, 40, 2, 7, 1)],
)
def test_equals_brute_force_numpy(n: int, m: int, dim: int, k: int, block: int) -> None:
    real = gaussian(n, dim, seed=n)
    fake = gaussian(m, dim, seed=m + 1, shift=0.4, scale=1.3)
    groups = np.random.default_rng(k).integers(0, 4, size=m)
    groups[:4] = np.arange(4)  # every generator has samples
    expected = brute_force(real, fake, k, groups, 4)
    got = prdc(torch.tensor(real), torch.tensor(fake), k, torch.tensor(groups), max_block=block)
    for name, value in expected.items():
        assert got[name].numpy() == pytest.approx(np.asarray(value), abs=1e-12), name
    assert got["samples_per_generator"].tolist() == np.bincount(groups, minlength=4).tolist()


def test_radii_exclude_the_point_itself_but_count_its_duplicates() -> None:
    points = torch.tensor([[0.0], [0.0], [1.0], [3.0], [7.0]])
    assert knn_radii(points, 1).tolist() == [0.0, 0.0, 1.0, 2.0, 4.0]
    assert knn_radii(points, 2, max_block=4).tolist() == [1.0, 1.0, 1.0, 3.0, 6.0]
    with pytest.raises(ValueError, match="more than 5 points"):
        knn_radii(points, 5)


def test_identical_sets_score_one() -> None:
    x = torch.tensor(gaussian(200, 6, seed=0))
    got = prdc(x, x.clone(), nearest_k=5)
    assert got["precision"] == 1 and got["recall"] == 1 and got["coverage"] == 1


def test_far_apart_sets_score_zero() -> None:
    real = torch.tensor(gaussian(100, 4, seed=0))
    fake = torch.tensor(gaussian(80, 4, seed=1, shift=100.0))
    got = prdc(real, fake, 5, torch.zeros(80, dtype=torch.long))
    assert {k: float(got[k]) for k in ("precision", "recall", "density", "coverage")} == {
        "precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0
    }  # fmt: skip
    assert got["covered_by_none"] == 1 and got["covered_by_one"] == 0


def test_samples_of_one_gaussian_have_density_near_one() -> None:
    """Naeem et al.: E[density] = 1 and E[coverage] = 1 - (1/2)^k (M = N, large) when fake
    and real samples come from one distribution."""
    real = torch.tensor(gaussian(2000, 8, seed=0))
    fake = torch.tensor(gaussian(2000, 8, seed=1))
    got = prdc(real, fake, nearest_k=5)
    assert float(got["density"]) == pytest.approx(1.0, abs=0.06)
    assert float(got["coverage"]) == pytest.approx(1 - 0.5**5, abs=0.02)
    assert 0.6 < float(got["precision"]) < 0.95 and 0.6 < float(got["recall"]) < 0.95


def test_large_offsets_keep_float64_accuracy() -> None:
    """Far from the origin, the |a|^2 + |b|^2 - 2ab formula would cancel; the data is
    centred first, so the memberships equal the brute-force ones."""
    real = gaussian(80, 3, seed=3, shift=1e5, scale=1e-2)
    fake = gaussian(70, 3, seed=4, shift=1e5, scale=1e-2)
    expected = brute_force(real, fake, 5)
    got = prdc(torch.tensor(real), torch.tensor(fake), 5)
    assert {k: float(got[k]) for k in expected} == pytest.approx(expected, abs=1e-12)


def test_agrees_with_torch_fidelity_precision_recall() -> None:
    """torch-fidelity's precision/recall on features (``prc_features_to_metric``, generated
    first); it counts ``<=`` where the papers count ``<``: the same on continuous data."""
    from torch_fidelity.metric_prc import prc_features_to_metric

    real = torch.tensor(gaussian(300, 16, seed=0))
    fake = torch.tensor(gaussian(250, 16, seed=1, shift=0.3, scale=1.2))
    for k in (3, 5):
        theirs = prc_features_to_metric(
            fake, real, prc_neighborhood=k, prc_batch_size=128, save_cpu_ram=True, verbose=False
        )
        ours = prdc(real, fake, nearest_k=k)
        # the same counts; torch-fidelity averages in float32 (1e-6 << 1 / 300)
        assert float(ours["precision"]) == pytest.approx(theirs["precision"], abs=1e-6)
        assert float(ours["recall"]) == pytest.approx(theirs["recall"], abs=1e-6)


# ------------------------------------------------------------------ the metric
def test_metric_update_forms_give_the_functional_result() -> None:
    real = torch.tensor(gaussian(60, 4, seed=0)).float()
    fake = torch.tensor(gaussian(50, 4, seed=1, shift=0.5)).float()
    index = torch.arange(50) % 3
    a = PRDC(nearest_k=3)
    a.update(real[:25], real=True)
    a.update(fake[:20], real=False, generator_index=index[:20])
    a.update(real_features=real[25:], fake_features=fake[20:], generator_index=index[20:])
    b = PRDC(nearest_k=3)
    b.update(real_features=real, fake_features=fake, generator_index=index)
    expected = prdc(real, fake, 3, index)
    for metric in (a, b):
        got = metric.compute()
        assert got.keys() == expected.keys()
        for name in expected:
            assert torch.equal(got[name], expected[name]), name
    per = a.per_generator()
    assert set(per) == {"precision_per_generator", "density_per_generator",
                        "coverage_per_generator", "covered_by_one", "covered_by_several",
                        "covered_by_none", "samples_per_generator"}  # fmt: skip
    assert all(a._reductions[s] is not None for s in ("real_features", "fake_features"))


def test_feature_module_is_applied_before_storing() -> None:
    images = torch.tensor(gaussian(40, 12, seed=0)).float().reshape(40, 3, 2, 2)
    fakes = torch.tensor(gaussian(30, 12, seed=1)).float().reshape(30, 3, 2, 2)
    torch.manual_seed(0)
    projection = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    metric = PRDC(nearest_k=4, feature=projection)
    metric.update(images, real=True)
    metric.update(fakes, real=False)
    assert (
        metric.real_features[0].shape == (40, 5) and metric.real_features[0].dtype.is_floating_point
    )
    with torch.no_grad():
        expected = prdc(projection(images), projection(fakes), 4)
    assert {k: float(v) for k, v in metric.compute().items()} == pytest.approx(
        {k: float(v) for k, v in expected.items()}
    )


def test_reset_keeps_real_features_when_asked() -> None:
    real, fake = torch.randn(30, 3), torch.randn(30, 3)
    metric = PRDC(nearest_k=2, reset_real_features=False)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    first = metric.compute()
    metric.reset()
    assert len(metric.real_features) == 1 and len(metric.fake_features) == 0
    metric.update(fake, real=False)
    assert torch.equal(metric.compute()["density"], first["density"])
    forgetful = PRDC(nearest_k=2)
    forgetful.update(real, real=True)
    forgetful.reset()
    assert forgetful.real_features == []


def test_bad_input_is_refused_with_one_line() -> None:
    metric = PRDC(nearest_k=5)
    with pytest.raises(ValueError, match="give both"):
        metric.update(torch.randn(4, 2))
    with pytest.raises(ValueError, match="belongs to fake samples"):
        metric.update(torch.randn(4, 2), real=True, generator_index=torch.zeros(4))
    with pytest.raises(ValueError, match="3 entries for 4 fakes"):
        metric.update(torch.randn(4, 2), real=False, generator_index=torch.zeros(3))
    metric.update(real_features=torch.randn(4, 2), fake_features=torch.randn(4, 2))
    with pytest.raises(ValueError, match="more than 5 real and fake"):
        metric.compute()
    mixed = PRDC(nearest_k=1)
    mixed.update(torch.randn(4, 2), real=True)
    mixed.update(torch.randn(4, 2), real=False, generator_index=torch.zeros(4))
    mixed.update(torch.randn(4, 2), real=False)
    with pytest.raises(ValueError, match="every fake batch or with none"):
        mixed.compute()
    with pytest.raises(ValueError, match="nearest_k"):
        PRDC(nearest_k=0)


def test_num_generators_gives_an_empty_generator_its_bar() -> None:
    real, fake = torch.randn(40, 2), torch.randn(40, 2)
    got = prdc(real, fake, 3, torch.zeros(40, dtype=torch.long), num_generators=3)
    assert got["coverage_per_generator"][1:].tolist() == [0.0, 0.0]
    assert torch.isnan(got["precision_per_generator"][1:]).all()
    flat = flat_scores(got)
    assert {"coverage_g0", "coverage_g2", "precision_g1", "covered_by_one"} <= set(flat)
    assert "samples_per_generator" not in flat and "samples_g0" not in flat
    with pytest.raises(ValueError, match="num_generators"):
        prdc(real, fake, 3, torch.full((40,), 3), num_generators=3)


def test_one_generator_logs_its_per_generator_values() -> None:
    """torchmetrics squeezes a one-element result to a 0-d tensor; a GAN's run still logs g0."""
    real, fake = torch.randn(40, 2), torch.randn(30, 2)
    metric = PRDC(nearest_k=3)
    metric.update(real_features=real, fake_features=fake, generator_index=torch.zeros(30).long())
    flat = flat_scores(metric.compute())
    expected = flat_scores(prdc(real, fake, 3, torch.zeros(30, dtype=torch.long)))
    assert {"coverage_g0", "precision_g0", "density_g0"} <= set(flat)
    assert flat == pytest.approx(expected, nan_ok=True)


def test_per_generator_shares_on_two_separate_clusters() -> None:
    """Two real clusters; generator 0 draws from the first, generator 1 from both."""
    g = np.random.default_rng(0)
    real = np.concatenate([g.normal(size=(100, 2)), g.normal(size=(100, 2)) + 50])
    fake = np.concatenate([g.normal(size=(100, 2)), g.normal(size=(50, 2)),
                           g.normal(size=(50, 2)) + 50])  # fmt: skip
    index = np.repeat([0, 1], 100)
    got = prdc(torch.tensor(real), torch.tensor(fake), 5, torch.tensor(index))
    cov0, cov1 = got["coverage_per_generator"].tolist()
    assert cov0 < 0.5 and cov1 > 0.8  # generator 0 reaches one cluster only
    assert float(got["covered_by_several"]) < cov0
    total = sum(float(got[f"covered_by_{n}"]) for n in ("one", "several", "none"))
    assert total == pytest.approx(1.0)
    assert float(got["covered_by_none"]) == pytest.approx(1 - float(got["coverage"]))


def test_plot_has_one_bar_pair_per_generator(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    got = prdc(torch.randn(60, 2), torch.randn(60, 2), 3, torch.arange(60) % 4)
    image = plot_per_generator(got, "step 10")
    assert image.mode == "RGB" and image.size == (640, 360)
    pixels = np.asarray(image)
    blue = (np.abs(pixels.astype(int) - [0x1F, 0x77, 0xB4]).sum(axis=-1) < 10).any(axis=0)
    runs = np.flatnonzero(np.diff(blue.astype(int)) == 1)  # left edges of blue columns
    assert len(runs) >= 4  # four coverage bars (and the legend's patch)
    image.save(tmp_path / "bars.png")
    with pytest.raises(ValueError, match="generator_index"):
        plot_per_generator(prdc(torch.randn(20, 2), torch.randn(20, 2), 3))


# ------------------------------------------------------------- feature spaces
def test_digit_features_are_the_penultimate_layer_per_channel() -> None:
    from mgan_lightning.classifiers import DigitClassifier

    torch.manual_seed(0)
    classifier = DigitClassifier(sample_shape=(1, 16, 16), width=4).eval()
    single, stacked = DigitFeatures(classifier), DigitFeatures(classifier, channels=3)
    assert single.num_features == 16 and stacked.num_features == 48
    images = torch.rand(5, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        per_channel = [classifier.net[:-1](images[:, c : c + 1]) for c in range(3)]
    out = stacked(images)
    assert out.dtype == torch.float64 and out.shape == (5, 48)
    assert torch.allclose(out, torch.cat(per_channel, dim=1).double(), atol=1e-6)
    assert single(images[:, :1]).shape == (5, 16)
    assert single(torch.zeros(2, 1, 28, 28)).shape == (2, 16)  # resized to 16 px
    with pytest.raises(ValueError, match="channels=1"):
        single(images)
    single.train()
    assert not single.training  # batch norm keeps its running statistics
    with pytest.raises(TypeError, match="DigitClassifier"):
        DigitFeatures(nn.Linear(3, 3))


def test_inception_features_reuse_the_fid_network(random_inception_weights) -> None:
    extractor = inception_features(random_inception_weights)
    assert extractor.num_features == 2048
    out = extractor(torch.zeros(1, 3, 16, 16))
    assert out.shape == (1, 2048) and out.dtype == torch.float64


def test_fidelity_metrics_add_prdc_on_their_features() -> None:
    torch.manual_seed(0)
    projection = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 6)).eval()
    metrics = FidelityMetrics(
        fid=False, kid=False, inception_score=False, prdc=True, prdc_nearest_k=3,
        feature=projection, probe_shape=(3, 4, 4),
    )  # fmt: skip
    real, fake = torch.rand(40, 3, 4, 4) * 2 - 1, torch.rand(30, 3, 4, 4) - 0.5
    metrics.update(real, real=True)
    index = torch.arange(30) % 2
    metrics.update(fake, real=False, generator_index=index)
    got = metrics.compute()
    with torch.no_grad():
        expected = flat_scores(prdc(projection(real), projection(fake), 3, index))
    assert {k: float(v) for k, v in got.items()} == pytest.approx(expected, nan_ok=True)
    assert {"precision", "coverage_g1", "covered_by_none"} <= set(got)
    metrics.reset()  # the real features stay
    metrics.update(fake, real=False, generator_index=index)
    assert float(metrics.compute()["density"]) == pytest.approx(expected["density"])


# -------------------------------------------------------------- real digits
@needs_mnist
def test_noise_is_far_from_mnist_digits_on_the_classifier_features() -> None:
    from mgan_lightning.data.mnist import load_mnist_split, to_unit_range

    digits = to_unit_range(load_mnist_split(MNIST_DIR, "test")[0][:1000])
    features = DigitFeatures()  # the shipped classifier
    real, other = features(digits[:500]), features(digits[500:])
    noise = features(torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    bad = prdc(real, noise, nearest_k=5)
    good = prdc(real, other, nearest_k=5)
    assert float(bad["precision"]) < 0.05 and float(bad["density"]) < 0.05
    assert float(bad["coverage"]) < 0.05
    assert float(good["precision"]) > 0.6 and float(good["coverage"]) > 0.8
    assert 0.6 < float(good["density"]) < 1.5


# ------------------------------------------------------------------------ DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    real = torch.randn(61, 5, generator=g)
    fake = torch.randn(47, 5, generator=g) + 0.3
    return real, fake, torch.randint(0, 3, (47,), generator=g)


def _gloo_worker(rank: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # A bounded wait: a lost peer fails the test in two minutes instead of gloo's thirty.
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=120))
    try:
        real, fake, index = _data()
        metric = PRDC(nearest_k=4, reset_real_features=False)
        metric.update(real[rank::2], real=True)  # uneven shares: 31 and 30 reals
        for part in torch.arange(len(fake))[rank::2].split(10):
            metric.update(fake[part], real=False, generator_index=index[part])
        result = flat_scores(metric.compute())
        local = (sum(len(t) for t in metric.real_features), len(metric.fake_features))
        queue.put((rank, result, local))
        dist.barrier()  # neither rank tears down while the other still talks to it
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_gathers_every_feature(monkeypatch: pytest.MonkeyPatch) -> None:
    # Spawned workers import this module by name; the repo goes first on their path.
    monkeypatch.syspath_prepend(str(ROOT))
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_gloo_worker, args=(_free_port(), queue), nprocs=2, start_method="spawn")
    results = {rank: (result, local) for rank, result, local in (queue.get() for _ in range(2))}
    real, fake, index = _data()
    expected = flat_scores(prdc(real, fake, 4, index))
    for rank, (result, local) in results.items():
        assert result == pytest.approx(expected, nan_ok=True), rank
        assert local[0] == (31 if rank == 0 else 30)  # the local states are restored
