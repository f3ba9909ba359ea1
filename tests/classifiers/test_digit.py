"""The digit classifier: shapes, the CLI link, weights round trip, the shipped weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mgan_lightning.classifiers.digit import (
    DEFAULT_DIGIT_WEIGHTS,
    DigitClassifier,
    export_weights,
    load_digit_classifier,
)
from mgan_lightning.cli import build_cli
from mgan_lightning.data.mnist import MNIST, load_mnist_split, to_unit_range
from tests.mnist_data import MNIST_DIR, needs_mnist

ROOT = Path(__file__).resolve().parents[2]


def test_logits_for_any_size_and_jitter_keeps_the_background():
    net = DigitClassifier(sample_shape=(1, 32, 32), width=8)
    assert net(torch.zeros(5, 1, 32, 32)).shape == (5, 10)
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    blank = torch.full((4, 1, 32, 32), -1.0)
    assert torch.allclose(DigitClassifier.jitter(blank), blank, atol=1e-6)


def test_export_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    net = DigitClassifier(sample_shape=(1, 16, 16), width=4)
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": dict(net.hparams)}, ckpt)
    out = export_weights(ckpt, tmp_path / "slim.pt")
    loaded = load_digit_classifier(out)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert loaded.sample_shape == (1, 16, 16)
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    net.eval()
    assert torch.allclose(loaded(x), net(x))
    bare = tmp_path / "bare.pt"
    torch.save(DigitClassifier().state_dict(), bare)
    assert load_digit_classifier(bare).sample_shape == (1, 32, 32)


def test_missing_weights_say_how_to_make_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="configs/mnist/digit_classifier.yaml"):
        load_digit_classifier(tmp_path / "none.pt")


@needs_mnist
def test_holdout_split_is_disjoint_and_complete():
    dm = MNIST(data_root=str(MNIST_DIR), train_split="test", holdout=2000, image_size=32)
    dm.setup("fit")
    dm.setup("test")
    train_x, train_y = dm.train_set.tensors
    test_x, test_y = dm.test_set.tensors
    assert len(train_x) == 8000 and len(test_x) == 2000
    images, labels = load_mnist_split(MNIST_DIR, "test")
    assert torch.equal(test_y, labels[8000:]) and torch.equal(train_y, labels[:8000])
    assert torch.equal(test_x, to_unit_range(images[8000:], 32))
    with pytest.raises(ValueError, match="holdout"):
        MNIST(holdout=-1)


@needs_mnist
def test_config_trains_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cli = build_cli(
        [
            "fit",
            "--config",
            "configs/mnist/digit_classifier.yaml",
            "--trainer.fast_dev_run=2",
            f"--trainer.default_root_dir={tmp_path}",
            "--data.init_args.batch_size=16",
            f"--data.init_args.data_root={MNIST_DIR}",  # the config's data/mnist is the user's
            "--data.init_args.train_split=test",  # the offline option: CI has the t10k files
            "--data.init_args.holdout=2000",
        ]
    )
    assert isinstance(cli.model, DigitClassifier)
    assert cli.model.sample_shape == (1, 32, 32)  # linked from the DataModule
    assert "train/acc" in cli.trainer.callback_metrics


@needs_mnist
@pytest.mark.skipif(not DEFAULT_DIGIT_WEIGHTS.is_file(), reason="no shipped digit weights")
def test_shipped_weights_read_held_out_digits():
    """The shipped weights were trained on t10k items 0..7999 (the config's offline option,
    ``train_split=test``, ``holdout=2000``), so items 8000..9999 are held out."""
    images, labels = load_mnist_split(MNIST_DIR, "test")
    net = load_digit_classifier()
    with torch.no_grad():
        pred = net(to_unit_range(images[8000:], 32)).argmax(1)
    assert (pred == labels[8000:]).float().mean() > 0.975
