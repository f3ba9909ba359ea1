"""A small CNN that labels MNIST digits; the Stacked-MNIST metric classifies each channel
with it (VEEGAN / PacGAN protocol).

Train it through the CLI like any model (the DataModule links ``sample_shape``)::

    mgan fit --config configs/mnist/digit_classifier.yaml
    mgan test --config configs/mnist/digit_classifier.yaml --ckpt_path <checkpoint>
    python -m mgan_lightning.classifiers <checkpoint>   # -> DEFAULT_DIGIT_WEIGHTS

The metric loads either a Lightning checkpoint or the slim file ``export_weights`` writes
(hyperparameters + ``state_dict``, no optimizer state).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torch import nn

from mgan_lightning.errors import InputError, WeightsMismatchError, load_error_summary

DEFAULT_DIGIT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "digit_cnn_mnist32.pt"


class ClassifierWeightsNotFoundError(InputError, FileNotFoundError):
    """No digit-classifier weights file where one was asked for."""


def default_classifier_adam(params) -> torch.optim.Optimizer:
    """Adam(lr 1e-3): the usual setting for a small MNIST CNN."""
    return torch.optim.Adam(params, lr=1e-3)


def _block(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]


class DigitClassifier(LightningModule):
    """Three stride-2 conv blocks (``width``, ``2 width``, ``4 width`` channels; 3 x 3,
    batch norm, ReLU), global average pooling and a linear layer to 10 logits: about 94k
    parameters and 2.4M multiply-adds per 32 px digit at ``width=32``, so counting the modes
    of 26,000 Stacked-MNIST samples (78,000 digits) stays cheap on a CPU.

    Inputs are ``(N, C, S, S)`` digits in [-1, 1], as the MNIST DataModule yields them and a
    ``tanh`` generator makes them; any spatial size works (global pooling), but accuracy is
    best at the training size ``sample_shape[1:]``.

    Args:
        sample_shape: ``(C, S, S)`` of the training digits; linked from the DataModule.
        width: channels of the first block.
        augment: random affine jitter of the training digits (rotation up to 10 degrees,
            scale 0.9..1.1, shift up to 8% of the side), so the classifier also reads the
            less tidy digits a generator draws.
        cosine: anneal the learning rate to 0 over the run (cosine, per step).
        optimizer: optimizer factory (default Adam, lr 1e-3).
    """

    def __init__(
        self,
        sample_shape: Sequence[int] = (1, 32, 32),
        width: int = 32,
        augment: bool = True,
        cosine: bool = True,
        optimizer: OptimizerCallable = default_classifier_adam,
    ) -> None:
        super().__init__()
        if len(sample_shape) != 3 or width < 1:
            raise ValueError(
                f"DigitClassifier needs sample_shape (C, H, W) and width >= 1, "
                f"got {tuple(sample_shape)}, {width}"
            )
        self.save_hyperparameters(ignore=["optimizer"])
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.optimizer = optimizer
        self.augment = augment
        self.cosine = cosine
        channels = self.sample_shape[0]
        self.net = nn.Sequential(
            *_block(channels, width, stride=2),
            *_block(width, 2 * width, stride=2),
            *_block(2 * width, 4 * width, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * width, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 10)``."""
        return self.net(x)

    def configure_optimizers(self):
        """The optimizer, with a cosine decay over the run when ``cosine`` is set."""
        optimizer = self.optimizer(self.parameters())
        if not self.cosine:
            return optimizer
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    @staticmethod
    def jitter(images: torch.Tensor) -> torch.Tensor:
        """Random rotation (+-10 deg), scale (0.9..1.1) and shift (+-8%) per image; the
        background stays -1."""
        n = len(images)
        angle = (torch.rand(n, device=images.device) * 2 - 1) * (10 * torch.pi / 180)
        scale = 0.9 + 0.2 * torch.rand(n, device=images.device)
        shift = (torch.rand(n, 2, device=images.device) * 2 - 1) * 0.16
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        moved = F.grid_sample(images + 1, grid, align_corners=False, padding_mode="zeros")
        return moved - 1

    def _step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        if stage == "train" and self.augment:
            images = self.jitter(images)
        logits = self(images)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, batch_size=len(labels))
        self.log(
            f"{stage}/acc",
            accuracy,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(labels),
        )
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Cross-entropy on a (jittered, when ``augment``) training batch."""
        return self._step(batch, "train")

    def test_step(self, batch, batch_idx: int) -> None:
        """Log test loss and accuracy."""
        self._step(batch, "test")


def export_weights(checkpoint: str | Path, out: str | Path = DEFAULT_DIGIT_WEIGHTS) -> Path:
    """Write a slim weights file (hyperparameters + ``state_dict``, no optimizer state)
    from a Lightning checkpoint of :class:`DigitClassifier`."""
    data = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hp = data.get("hyper_parameters", {})
    slim = {
        "hyper_parameters": {
            "sample_shape": list(hp.get("sample_shape", (1, 32, 32))),
            "width": int(hp.get("width", 32)),
        },
        "state_dict": {k: v.clone() for k, v in data["state_dict"].items()},
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim, out)
    return out


def load_digit_classifier(path: str | Path | None = None) -> DigitClassifier:
    """A frozen :class:`DigitClassifier` in eval mode, from a Lightning checkpoint or an
    :func:`export_weights` file (default: the weights shipped with the package)."""
    path = Path(path) if path is not None else DEFAULT_DIGIT_WEIGHTS
    if not path.is_file():
        raise ClassifierWeightsNotFoundError(
            f"Digit classifier weights not found at {path}. Train one with\n"
            f"  mgan fit --config configs/mnist/digit_classifier.yaml\n"
            f"then pass its checkpoint (e.g. `classifier: runs/mnist/digit_classifier/"
            f"checkpoints/last.ckpt`) or export it to {DEFAULT_DIGIT_WEIGHTS} with\n"
            f"  python -m mgan_lightning.classifiers <checkpoint>"
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # not a torch file at all: say so, not how unpickling failed
        raise WeightsMismatchError(
            f"digit classifier weights {path} cannot be read by torch.load "
            f"({type(err).__name__}); give a DigitClassifier checkpoint or an export_weights file"
        ) from err
    if not isinstance(data, dict):
        raise WeightsMismatchError(
            f"digit classifier weights {path} hold a {type(data).__name__}, not a state_dict"
        )
    if "state_dict" not in data:  # a bare state_dict
        data = {"state_dict": data, "hyper_parameters": {}}
    hp = data.get("hyper_parameters", {})
    model = DigitClassifier(
        sample_shape=tuple(hp.get("sample_shape", (1, 32, 32))), width=int(hp.get("width", 32))
    )
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        summary = load_error_summary(err)
        if summary is None:
            raise
        raise WeightsMismatchError(
            f"digit classifier weights {path} do not fit DigitClassifier(sample_shape="
            f"{model.sample_shape}, width={hp.get('width', 32)}): {summary}"
        ) from err
    model.requires_grad_(False)
    return model.eval()
