"""Feature spaces for :class:`~mgan_lightning.metrics.prdc.PRDC` (and FID/KID), built from the
extractors the library already has.

k-NN metrics need a space where distance means similarity:
- raw coordinates for low-dimensional data (``PRDC(feature=None)``);
- the digit classifier's penultimate layer for MNIST-like digits (:class:`DigitFeatures`:
  the ``4 * width`` globally pooled activations, 128 numbers at ``width=32``; one block per
  channel for Stacked MNIST, so 384 numbers);
- Inception's 2,048-d pool for natural images, as FID uses it (:func:`inception_features`:
  torch-fidelity's InceptionV3, local weights, see :mod:`mgan_lightning.metrics.fidelity`).

Each is an ``nn.Module`` mapping [-1, 1] images ``(N, C, H, W)`` to float64 ``(N, d)``
features with a ``num_features`` attribute, so it also serves as FID/KID's ``feature``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mgan_lightning.metrics.fidelity import ImageFeatures, InceptionV3Features


class DigitFeatures(nn.Module):
    """A digit classifier's penultimate features: everything but its last linear layer.

    Each channel of the images is one digit (MNIST: one; Stacked MNIST: three), resized to
    the classifier's ``sample_shape`` when it has one (as the Stacked-MNIST mode counter
    does); the per-channel features are concatenated, channel by channel.

    Args:
        classifier: a :class:`~mgan_lightning.classifiers.DigitClassifier` (or any module
            whose ``net`` is a ``Sequential`` ending in the linear layer to the logits), a
            path to its weights, or ``None`` for the weights shipped with the package.
        channels: digits per image (1: MNIST, 3: Stacked MNIST).
    """

    def __init__(self, classifier: nn.Module | str | Path | None = None, channels: int = 1) -> None:
        super().__init__()
        if classifier is None or isinstance(classifier, (str, Path)):
            from mgan_lightning.classifiers.digit import load_digit_classifier

            classifier = load_digit_classifier(classifier)
        net = getattr(classifier, "net", None)
        if not isinstance(net, nn.Sequential) or not isinstance(net[-1], nn.Linear):
            raise TypeError(
                "DigitFeatures needs a classifier whose `net` is an nn.Sequential ending in "
                f"the nn.Linear to the logits (a DigitClassifier); got {type(classifier).__name__}"
            )
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.body = net[:-1]
        self.body.requires_grad_(False)
        shape = getattr(classifier, "sample_shape", None)
        self.size = None if shape is None else tuple(int(s) for s in shape[-2:])
        self.channels = channels
        self.num_features = channels * net[-1].in_features

    def train(self, mode: bool = True) -> DigitFeatures:
        """Stay in eval mode: batch norm always uses its running statistics."""
        return super().train(False)  # batch norm always uses its running statistics

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The digit classifier's penultimate features of each channel, concatenated, float64."""
        n, c, h, w = images.shape
        if c != self.channels:
            raise ValueError(f"DigitFeatures(channels={self.channels}) got {c}-channel images")
        digits = images.float().reshape(n * c, 1, h, w)
        if self.size is not None and self.size != (h, w):
            digits = F.interpolate(digits, size=self.size, mode="bilinear", antialias=True)
            digits = digits.clamp(-1, 1)
        with torch.autocast(images.device.type, enabled=False):
            features = self.body(digits)
        return features.reshape(n, -1).double()


def digit_features(
    classifier: nn.Module | str | Path | None = None, channels: int = 1
) -> DigitFeatures:
    """:class:`DigitFeatures` of ``classifier`` (default: the shipped digit classifier)."""
    return DigitFeatures(classifier, channels)


def inception_features(
    weights: str | os.PathLike | None = None,
    antialias: bool = False,
    download: bool = False,
) -> ImageFeatures:
    """Inception's 2,048-d pool features (FID's space) of [-1, 1] images, from the same
    torch-fidelity network and weights search as :func:`~mgan_lightning.metrics.build_fid`
    (``weights``, else ``MGAN_INCEPTION_WEIGHTS``, else the torch hub cache)."""
    return ImageFeatures(InceptionV3Features(weights, ("2048",), antialias, download))
