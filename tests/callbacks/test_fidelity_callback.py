"""FidelityEvaluation: schedule, real statistics once, logging, test, kept out of checkpoints."""

from __future__ import annotations

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
