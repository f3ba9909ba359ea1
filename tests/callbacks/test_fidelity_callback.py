"""FidelityEvaluation: schedule, real statistics once, logging, test, kept out of checkpoints,
PRDC beside FID/KID/IS."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from torch import nn

from mgan_lightning.callbacks import FidelityEvaluation
from mgan_lightning.metrics.fidelity import INCEPTION_WEIGHTS_ENV, InceptionWeightsNotFoundError


def projection(out: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, out))


def custom_callback(**kwargs) -> FidelityEvaluation:
    options = dict(
        every_n_steps=2,
        num_samples=30,
        num_real=40,
        feature=projection(8, 0),
        logits=projection(10, 1),
        kid_subsets=5,
        kid_subset_size=10,
        is_splits=2,
        batch_size=16,
    )
    options.update(kwargs)
    return FidelityEvaluation(**options)


def test_custom_extractor_during_fit_and_test(tmp_path, data, gan_factory, trainer_factory):
    callback = custom_callback()
    model = gan_factory()
    trainer = trainer_factory(tmp_path, [callback], generator_steps=4)
    trainer.fit(model, datamodule=data)
    metrics = callback.metrics
    assert metrics is not None and metrics.real_count == 40  # real features added once
    assert set(callback.last) == {"fid", "kid_mean", "kid_std", "is_mean", "is_std"}
    logged = trainer.callback_metrics
    assert "fidelity/fid" in logged and "fidelity/is_mean" in logged
    assert int(metrics.fid.fake_features_num_samples) == 0  # reset after each evaluation

    # the metric modules live in the callback: nothing of them reaches the checkpoint
    ckpt_path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt_path)
    ckpt = torch.load(ckpt_path, weights_only=False)
    assert all(k.split(".")[0] in ("generators", "critic", "prior", "generator_step")
               for k in ckpt["state_dict"])  # fmt: skip
    states = [v for k, v in ckpt.get("callbacks", {}).items() if "Fidelity" in k]
    assert states in ([], [{}])

    # the same evaluation is deterministic (fixed seed) and untouched by training RNG
    again = callback.evaluate(trainer, model)
    assert again == pytest.approx(callback.last)
    results = trainer.test(model, datamodule=data, verbose=False)
    assert results[0]["test/fidelity/fid"] == pytest.approx(callback.last["fid"], rel=1e-5)


def test_evaluation_leaves_the_global_rng_alone(tmp_path, data, gan_factory, trainer_factory):
    callback = custom_callback(every_n_steps=0)
    model = gan_factory()
    trainer = trainer_factory(tmp_path, [callback], generator_steps=1)
    trainer.fit(model, datamodule=data)
    before = torch.get_rng_state()
    callback.evaluate(trainer, model)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))


def test_missing_inception_weights_fail_at_setup(
    tmp_path, data, gan_factory, trainer_factory, no_weights
):
    trainer = trainer_factory(tmp_path, [FidelityEvaluation(num_samples=10, num_real=10)])
    with pytest.raises(InceptionWeightsNotFoundError, match="MGAN_INCEPTION_WEIGHTS"):
        trainer.fit(gan_factory(), datamodule=data)


def test_optional_fidelity_is_skipped_with_a_warning(
    tmp_path, data, gan_factory, trainer_factory, no_weights
):
    callback = FidelityEvaluation(every_n_steps=1, num_samples=10, num_real=10, required=False)
    trainer = trainer_factory(tmp_path, [callback], generator_steps=2)
    with pytest.warns(UserWarning, match="FidelityEvaluation is skipped"):
        trainer.fit(gan_factory(), datamodule=data)
    assert callback.disabled and callback.last == {}
    assert not any(k.startswith("fidelity/") for k in trainer.callback_metrics)


def test_prdc_is_logged_at_the_generator_step_with_per_generator_bars(
    tmp_path, data, gan_factory, trainer_factory
):
    pytest.importorskip("matplotlib")
    callback = custom_callback(prdc=True, prdc_nearest_k=3, prdc_plot=True)
    model = gan_factory(k=3)
    trainer = trainer_factory(tmp_path, [callback], generator_steps=4)
    trainer.fit(model, datamodule=data)
    last = callback.last
    scores = {"precision", "recall", "density", "coverage"}
    shares = {"covered_by_one", "covered_by_several", "covered_by_none"}
    per_generator = {f"{n}_g{g}" for n in ("precision", "density", "coverage") for g in range(3)}
    assert scores | shares | per_generator <= set(last)
    assert "fid" in last and "is_mean" in last  # the other metrics are still there
    assert all(0 <= last[n] <= 1 for n in scores - {"density"} | shares)
    assert sum(last[n] for n in shares) == pytest.approx(1.0)
    assert last["covered_by_none"] == pytest.approx(1 - last["coverage"])
    assert trainer.callback_metrics["fidelity/coverage"] == pytest.approx(last["coverage"])

    trainer.loggers[0].save()
    with open(Path(trainer.loggers[0].log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = {int(r["step"]): float(r["fidelity/precision"]) for r in rows
              if r.get("fidelity/precision")}  # fmt: skip
    assert sorted(logged) == [2, 4]  # generator steps, as fid and the others
    assert callback.last_plot is not None and callback.last_plot.is_file()
    assert callback.last_plot.name == "fidelity_prdc_per_generator_step0000004.png"
    assert "precision" in callback.summary(last, 4) and "one generator" in callback.summary(last, 4)

    # the real features are kept (added once); the same evaluation again gives the same
    assert callback.metrics is not None and callback.metrics.prdc is not None
    assert sum(len(t) for t in callback.metrics.prdc.real_features) == 40
    assert callback.evaluate(trainer, model) == pytest.approx(last)
    results = trainer.test(model, datamodule=data, verbose=False)
    assert results[0]["test/fidelity/coverage"] == pytest.approx(last["coverage"])
