"""Stacked-MNIST mode counting (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018).

A digit classifier labels each of the three channels of a generated image; the triple
``(a, b, c)`` is the mode ``100 a + 10 b + c`` (1,000 modes). Reported over N samples
(26,000 in PacGAN): the number of modes hit and ``KL(q || uniform) = sum_m q_m log(q_m /
0.001)``, where ``q`` is the histogram of counted samples over modes.

Two counting rules:
- ``"all"`` (PacGAN, VEEGAN): every sample counts with its predicted triple;
- ``"confident"`` (MWU, Zhong et al. 2019; AdaGAN): a sample counts only if the classifier's
  confidence in each of its three digits exceeds ``threshold`` (0.95).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from mgan_lightning.data.mnist import stacked_mode_ids

Rule = Literal["all", "confident"]
RULES: tuple[str, ...] = ("all", "confident")
RULE_DESCRIPTIONS = {
    "all": "every predicted triple counts (PacGAN/VEEGAN)",
    "confident": "only samples with all three digit confidences > {threshold} (MWU/AdaGAN)",
}
NUM_MODES = 1000


@torch.no_grad()
def classify_channels(classifier: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Digit probabilities ``(N, 3, 10)`` of each channel of ``(N, 3, H, W)`` images in
    [-1, 1]. Channels are resized to the classifier's ``sample_shape`` when it has one."""
    n, c, h, w = images.shape
    channels = images.float().reshape(n * c, 1, h, w)
    size = getattr(classifier, "sample_shape", None)
    if size is not None and tuple(size[-2:]) != (h, w):
        channels = F.interpolate(
            channels, size=tuple(size[-2:]), mode="bilinear", antialias=True
        ).clamp(-1, 1)
    classifier.eval()
    with torch.autocast(images.device.type, enabled=False):
        logits = classifier(channels)
    return logits.float().softmax(-1).reshape(n, c, -1)


class StackedMNISTModes(Metric):
    """Modes covered and KL to uniform on Stacked MNIST, by a digit classifier.

    ``update`` takes generated images ``(N, 3, H, W)`` in [-1, 1] (classified here) or
    ready-made digit probabilities ``(N, 3, 10)``. State: per-mode counts of the counted
    samples and the number of samples seen, both summed across processes.

    ``compute`` returns ``modes`` (modes with at least one counted sample), ``kl``
    (undefined if nothing was counted: NaN, printed as words) and ``counted`` (fraction of
    samples counted; 1 under the ``"all"`` rule).

    Args:
        classifier: the digit classifier (any module mapping ``(N, 1, S, S)`` [-1, 1] digits
            to 10 logits), or a path to its weights; ``None`` loads the weights shipped
            with the package on the first image ``update``.
        rule: ``"all"`` or ``"confident"`` (see the module docstring).
        threshold: the per-digit confidence the ``"confident"`` rule requires.
    """

    full_state_update = False
    higher_is_better = None
    mode_counts: torch.Tensor
    total: torch.Tensor
    classifier: nn.Module | None

    def __init__(
        self,
        classifier: nn.Module | str | Path | None = None,
        rule: Rule = "all",
        threshold: float = 0.95,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {threshold}")
        if isinstance(classifier, (str, Path)):
            from mgan_lightning.classifiers.digit import load_digit_classifier

            classifier = load_digit_classifier(classifier)
        self.classifier = classifier
        self.rule = rule
        self.threshold = threshold
        self.add_state("mode_counts", torch.zeros(NUM_MODES, dtype=torch.long), "sum")
        self.add_state("total", torch.zeros((), dtype=torch.long), "sum")

    @property
    def description(self) -> str:
        """The counting rule in words, as the printed summary shows it."""
        return RULE_DESCRIPTIONS[self.rule].format(threshold=self.threshold)

    def update(self, inputs: torch.Tensor) -> None:
        """Count the triples of a batch: images ``(N, 3, H, W)`` are classified channel by
        channel; digit probabilities ``(N, 3, 10)`` are used as they are."""
        if inputs.ndim == 4:
            if self.classifier is None:
                from mgan_lightning.classifiers.digit import load_digit_classifier

                self.classifier = load_digit_classifier().to(inputs.device)
            probs = classify_channels(self.classifier, inputs)
        elif inputs.ndim == 3 and inputs.shape[1] == 3:
            probs = inputs
        else:
            raise ValueError(
                "StackedMNISTModes.update expects images (N, 3, H, W) or digit probabilities "
                f"(N, 3, 10), got shape {tuple(inputs.shape)}"
            )
        confidence, digits = probs.max(dim=-1)
        if self.rule == "confident":
            digits = digits[(confidence > self.threshold).all(dim=1)]
        modes = stacked_mode_ids(digits).to(self.mode_counts.device)
        self.mode_counts += torch.bincount(modes, minlength=NUM_MODES)
        self.total += len(probs)

    def compute(self) -> dict[str, torch.Tensor]:
        """``modes`` covered (of 1,000) and ``kl`` to the uniform distribution over triples."""
        counts = self.mode_counts.double()
        counted = counts.sum()
        q = counts / counted.clamp_min(1)
        terms = torch.where(q > 0, q * (q * NUM_MODES).log(), torch.zeros_like(q))
        kl = terms.sum() if counted > 0 else torch.tensor(math.nan, dtype=torch.float64)
        return {
            "modes": (self.mode_counts > 0).sum().double(),
            "kl": kl,
            "counted": counted / self.total.clamp_min(1).double(),
        }
