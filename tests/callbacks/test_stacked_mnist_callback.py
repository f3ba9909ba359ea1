"""StackedMNISTEvaluation: both counting rules from one classification pass."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from mgan_lightning.callbacks import FidelityEvaluation, StackedMNISTEvaluation
from mgan_lightning.classifiers.digit import DigitClassifier
from mgan_lightning.cli import build_cli
from tests.mnist_data import MNIST_DIR, needs_mnist


@pytest.fixture
def classifier_file(tmp_path):
    torch.manual_seed(0)
    net = DigitClassifier(sample_shape=(1, 16, 16), width=4)
    path = tmp_path / "digits.pt"
    hp = {"sample_shape": [1, 16, 16], "width": 4}
    torch.save({"hyper_parameters": hp, "state_dict": net.state_dict()}, path)
    return path


def test_both_rules_logged_during_fit_and_test(
    tmp_path, data, gan_factory, trainer_factory, classifier_file
):
    callback = StackedMNISTEvaluation(
        every_n_steps=2,
        num_samples=50,
        classifier=str(classifier_file),
        rules=["all", "confident"],
        batch_size=20,
    )
    model = gan_factory()
    trainer = trainer_factory(tmp_path, [callback], generator_steps=2)
    trainer.fit(model, datamodule=data)
    result = callback.last
    assert set(result) == {
        f"{rule}/{key}" for rule in ("all", "confident") for key in ("modes", "kl", "counted")
    }
    assert result["all/counted"] == 1.0 and 1 <= result["all/modes"] <= 50
    assert result["confident/modes"] <= result["all/modes"]
    assert int(callback.metrics["all"].total) == 50
    assert "stacked_mnist/all/modes" in trainer.callback_metrics
    text = callback.summary(result, 2)
    assert "PacGAN" in text and "MWU" in text and "0.95" in text
    out = trainer.test(model, datamodule=data, verbose=False)[0]
    assert out["test/stacked_mnist/all/modes"] == result["all/modes"]


def test_missing_classifier_fails_at_setup(tmp_path, data, gan_factory, trainer_factory):
    callback = StackedMNISTEvaluation(classifier=str(tmp_path / "missing.pt"))
    trainer = trainer_factory(tmp_path, [callback])
    with pytest.raises(FileNotFoundError, match="digit_classifier.yaml"):
        trainer.fit(gan_factory(), datamodule=data)


def test_bad_rules():
    with pytest.raises(ValueError, match="rules"):
        StackedMNISTEvaluation(rules=["some"])


ROOT = Path(__file__).resolve().parents[2]
CONFIG = "configs/stacked_mnist/gan.yaml"


def stacked_cli(tmp_path, *extra: str):
    """What `mgan fit/test --config CONFIG ...` builds (run=False: no subcommand)."""
    root = f"--data.init_args.data_root={MNIST_DIR}"  # the config's data/mnist is the user's
    split = "--data.init_args.source_split=test"  # the offline option: CI has the t10k files
    cli = build_cli(
        ["--config", CONFIG, f"--trainer.default_root_dir={tmp_path}", root, split, *extra],
        run=False,
    )
    for callback in cli.trainer.callbacks:  # keep the evaluations small
        if isinstance(callback, StackedMNISTEvaluation):
            callback.num_samples = 200
        if isinstance(callback, FidelityEvaluation):
            callback.num_samples = callback.num_real = 6
            callback.options["is_splits"] = 2
    return cli


@needs_mnist
def test_config_builds(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli = stacked_cli(tmp_path)
    assert cli.model.sample_shape == (3, 32, 32)
    kinds = {type(c).__name__ for c in cli.trainer.callbacks}
    assert {"StackedMNISTEvaluation", "FidelityEvaluation", "SampleGrid"} <= kinds


@needs_mnist
@pytest.mark.slow
def test_fit_then_test_from_checkpoint_prints_modes(tmp_path, monkeypatch, caplog):
    """`mgan fit` a few steps, then `mgan test` from the checkpoint: the modes, and FID, KID,
    density and coverage on the digit classifier's features, which need no Inception weights."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MGAN_INCEPTION_WEIGHTS", str(tmp_path / "absent.pth"))
    fit = stacked_cli(tmp_path, "--trainer.max_steps=6")
    fit.trainer.fit(fit.model, datamodule=fit.datamodule)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    test = stacked_cli(tmp_path)
    with caplog.at_level(logging.INFO):
        out = test.trainer.test(test.model, datamodule=test.datamodule, ckpt_path=str(ckpt))[0]
    assert 1 <= out["test/stacked_mnist/all/modes"] <= 200
    assert "test/stacked_mnist/confident/kl" in out
    for key in ("fid", "kid_mean", "density", "coverage"):
        assert f"test/fidelity/{key}" in out
    assert "test/fidelity/is_mean" not in out  # no Inception
    assert "Stacked MNIST at generator step 3" in caplog.text


@needs_mnist
@pytest.mark.slow
def test_test_prints_fidelity_when_inception_weights_exist(
    tmp_path, monkeypatch, caplog, random_inception_weights
):
    """Without the config's digit ``feature``, and with a weights file (random values here),
    `mgan test` reports Inception's IS, FID and KID."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MGAN_INCEPTION_WEIGHTS", str(random_inception_weights))
    cli = stacked_cli(tmp_path)
    for callback in cli.trainer.callbacks:  # as if the feature line were removed
        if isinstance(callback, FidelityEvaluation):
            callback.options |= {"feature": None, "inception_score": True, "prdc": False}
    with caplog.at_level(logging.INFO):
        out = cli.trainer.test(cli.model, datamodule=cli.datamodule)[0]
    for key in ("fid", "kid_mean", "kid_std", "is_mean", "is_std"):
        assert f"test/fidelity/{key}" in out
    assert "Fidelity at generator step 0" in caplog.text and "FID" in caplog.text
