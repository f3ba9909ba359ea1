"""IS / FID / KID builders: custom extractors, local Inception weights, the offline error."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from mgan_lightning.metrics import fidelity
from mgan_lightning.metrics.fidelity import (
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_FILE,
    INCEPTION_WEIGHTS_URL,
    FidelityMetrics,
    ImageFeatures,
    InceptionV3Features,
    InceptionWeightsNotFoundError,
    build_fid,
    build_inception_score,
    build_kid,
    resolve_inception_weights,
    to_uint8_rgb,
)


def projection(dim: int = 12, seed: int = 0, shape=(3, 8, 8)) -> nn.Module:
    torch.manual_seed(seed)
    c, h, w = shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, dim)).eval()


def images(n: int, shift: float = 0.0, seed: int = 0, shape=(3, 8, 8)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, *shape, generator=g) * 1.6 - 0.8 + shift).clamp(-1, 1)


def scipy_fid(f1: np.ndarray, f2: np.ndarray) -> float:
    """The Fréchet distance of Heusel et al. (2017), independently, with scipy.linalg.sqrtm."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """No env var and an empty torch hub cache: nothing to find locally."""
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path


# --------------------------------------------------------------- custom extractor
def test_fid_of_custom_extractor_matches_scipy():
    net = projection()
    real, fake = images(300, seed=1), images(250, shift=0.2, seed=2)
    fid = build_fid(net, probe_shape=(3, 8, 8))
    fid.update(real[:150], real=True)
    fid.update(real[150:], real=True)
    fid.update(fake, real=False)
    with torch.no_grad():
        f_real, f_fake = net(real).double().numpy(), net(fake).double().numpy()
    expected = scipy_fid(f_real, f_fake)
    value = fid.compute()
    assert value.dtype == torch.float64
    assert float(value) == pytest.approx(expected, rel=1e-6, abs=1e-8)
    assert expected > 0.01  # the two sets differ: the comparison is not trivial


def test_fid_keeps_real_statistics_across_reset():
    net = projection()
    fid = build_fid(net, probe_shape=(3, 8, 8))
    fid.update(images(200, seed=1), real=True)
    fid.update(images(100, shift=0.3, seed=2), real=False)
    first = float(fid.compute())
    fid.reset()
    assert int(fid.real_features_num_samples) == 200 and int(fid.fake_features_num_samples) == 0
    fid.update(images(100, shift=0.3, seed=2), real=False)
    assert float(fid.compute()) == pytest.approx(first, rel=1e-9)


def test_fidelity_metrics_with_custom_modules_matches_builders():
    feat, logits = projection(12, seed=0), projection(10, seed=1)
    metrics = FidelityMetrics(
        feature=feat, logits=logits, kid_subset_size=50, is_splits=2, probe_shape=(3, 8, 8)
    )
    assert not metrics.uses_inception
    real, fake = images(120, seed=3), images(100, shift=-0.2, seed=4)
    metrics.update(real, real=True)
    metrics.update(fake, real=False)
    torch.manual_seed(0)
    out = metrics.compute()
    assert set(out) == {"fid", "kid_mean", "kid_std", "is_mean", "is_std"}
    assert all(v.dtype == torch.float64 and torch.isfinite(v) for v in out.values())
    reference = build_fid(feat, probe_shape=(3, 8, 8))
    reference.update(real, real=True)
    reference.update(fake, real=False)
    assert float(out["fid"]) == pytest.approx(float(reference.compute()), rel=1e-9)
    assert metrics.real_count == 120
    metrics.reset()  # keeps real statistics for the next evaluation
    metrics.update(fake, real=False)
    assert float(metrics.compute()["fid"]) == pytest.approx(float(out["fid"]), rel=1e-9)


def test_kid_and_is_builders_with_custom_modules():
    kid = build_kid(projection(), subsets=5, subset_size=40, probe_shape=(3, 8, 8))
    kid.update(images(60, seed=1), real=True)
    kid.update(images(60, shift=0.5, seed=2), real=False)
    mean, std = kid.compute()
    assert mean > 0 and torch.isfinite(std)
    score = build_inception_score(projection(10), splits=2, probe_shape=(3, 8, 8))
    score.update(images(40, seed=5))
    mean, _ = score.compute()
    assert 1.0 <= float(mean) <= 10.0


def test_image_features_converts_and_disables_autocast():
    seen = {}

    class Spy(nn.Module):
        def forward(self, x):
            seen["dtype"], seen["autocast"] = x.dtype, torch.is_autocast_enabled("cpu")
            return x.flatten(1)[:, :5]

    feature = ImageFeatures(Spy(), probe_shape=(1, 4, 4))
    assert feature.num_features == 5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = feature(torch.zeros(3, 1, 4, 4, dtype=torch.bfloat16))
    assert seen == {"dtype": torch.float32, "autocast": False}
    assert out.dtype == torch.float64 and out.shape == (3, 5)


def test_to_uint8_rgb():
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).reshape(1, 1, 2, 2)
    out = to_uint8_rgb(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 2, 2)
    assert out[0, 0].flatten().tolist() == [0, 128, 255, 255]


# -------------------------------------------------------------- Inception weights
def test_offline_error_names_the_file_and_where_to_put_it(no_weights):
    with pytest.raises(InceptionWeightsNotFoundError) as info:
        resolve_inception_weights()
    text = str(info.value)
    assert INCEPTION_WEIGHTS_FILE in text and INCEPTION_WEIGHTS_URL in text
    assert INCEPTION_WEIGHTS_ENV in text and "inception_weights" in text
    assert str(no_weights / "hub" / "checkpoints" / INCEPTION_WEIGHTS_FILE) in text
    with pytest.raises(InceptionWeightsNotFoundError):
        FidelityMetrics()  # Inception needed, none found
    with pytest.raises(InceptionWeightsNotFoundError):
        build_fid()


def test_failed_download_gives_the_same_instructions(no_weights, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(InceptionWeightsNotFoundError) as info:
        resolve_inception_weights(download=True)
    assert "Downloading" in str(info.value) and INCEPTION_WEIGHTS_URL in str(info.value)
    assert "no internet" in str(info.value)


def test_wrong_paths_are_named(no_weights, monkeypatch):
    missing = no_weights / "nowhere.pth"
    with pytest.raises(InceptionWeightsNotFoundError, match="nowhere.pth"):
        resolve_inception_weights(missing)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(missing))
    with pytest.raises(InceptionWeightsNotFoundError, match=INCEPTION_WEIGHTS_ENV):
        resolve_inception_weights()


def test_weights_found_by_argument_env_var_and_hub_cache(
    no_weights, monkeypatch, random_inception_weights
):
    assert resolve_inception_weights(random_inception_weights) == random_inception_weights
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(random_inception_weights))
    assert resolve_inception_weights() == random_inception_weights
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV)
    cached = fidelity.hub_weights_path()
    cached.parent.mkdir(parents=True)
    cached.symlink_to(random_inception_weights)
    assert resolve_inception_weights() == cached
    cached.unlink()  # pytorch-fid's copy of the same network is found there too
    other = cached.with_name(fidelity.PYTORCH_FID_WEIGHTS_FILE)
    other.symlink_to(random_inception_weights)
    assert resolve_inception_weights() == other


def test_a_file_of_another_network_is_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match="FeatureExtractorInceptionV3"):
        InceptionV3Features(path)


def test_inception_from_a_local_weights_file_runs(random_inception_weights):
    net = InceptionV3Features(random_inception_weights)
    net.train()
    assert not net.training  # never leaves eval mode
    pool, logits = net(images(1, shape=(1, 16, 16)))  # grey images become RGB
    assert pool.shape == (1, 2048) and logits.shape == (1, 1008)
    assert pool.dtype == torch.float64 and torch.isfinite(pool).all()


@pytest.mark.slow
def test_fidelity_metrics_on_inception(random_inception_weights):
    metrics = FidelityMetrics(
        inception_weights=str(random_inception_weights), kid_subset_size=2, is_splits=2
    )
    assert metrics.uses_inception
    metrics.update(images(3, seed=1, shape=(3, 16, 16)), real=True)
    metrics.update(images(3, shift=0.3, seed=2, shape=(3, 16, 16)), real=False)
    out = metrics.compute()
    assert set(out) == {"fid", "kid_mean", "kid_std", "is_mean", "is_std"}
    assert all(torch.isfinite(v) for v in out.values())
