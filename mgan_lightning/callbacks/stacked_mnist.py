"""Stacked-MNIST modes and KL every N generator steps, at the end of fit and at ``mgan test``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from lightning.pytorch import LightningModule, Trainer

from mgan_lightning.callbacks.evaluation import SampleEvaluation
from mgan_lightning.classifiers.digit import DigitClassifier, load_digit_classifier
from mgan_lightning.metrics.mode_coverage import kl_text
from mgan_lightning.metrics.stacked_mnist import (
    RULES,
    Rule,
    StackedMNISTModes,
    classify_channels,
)


class StackedMNISTEvaluation(SampleEvaluation):
    """Counts the modes of ``num_samples`` generated Stacked-MNIST images (26,000 in
    PacGAN) and their KL to the uniform distribution over the 1,000 modes.

    Each channel is labelled by the digit classifier once; every counting rule in ``rules``
    is then applied to the same predictions and logged under its own name, e.g.
    ``stacked_mnist/all/modes``, ``stacked_mnist/confident/kl`` (and ``.../counted``, the
    fraction of samples the rule counted). ``"all"``: every predicted triple (PacGAN);
    ``"confident"``: only samples whose three digit confidences exceed ``threshold``
    (MWU/AdaGAN).

    Args:
        classifier: a Lightning checkpoint or weights file of
            :class:`~mgan_lightning.classifiers.DigitClassifier`; ``None``: the weights
            shipped with the package.
        rules: counting rules to report.
        threshold: confidence the ``"confident"`` rule requires of each digit.
        every_n_steps / num_samples / batch_size / seed: see :class:`SampleEvaluation`.
    """

    prefix = "stacked_mnist"

    def __init__(
        self,
        every_n_steps: int = 1000,
        num_samples: int = 26_000,
        classifier: str | None = None,
        rules: Sequence[str] = ("all",),
        threshold: float = 0.95,
        batch_size: int = 1000,
        seed: int = 1234,
    ) -> None:
        super().__init__(every_n_steps, num_samples, batch_size, seed)
        rules = tuple(rules)
        if not rules or any(r not in RULES for r in rules):
            raise ValueError(f"rules must be a non-empty subset of {RULES}, got {rules}")
        self.classifier_path = classifier
        self.rules = rules
        self.threshold = threshold
        self.classifier: DigitClassifier | None = None
        self.metrics: dict[str, StackedMNISTModes] = {}

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Load the classifier before the first step, so a missing file fails fast."""
        if self.classifier is None:
            self.classifier = load_digit_classifier(self.classifier_path)
            self.metrics = {
                r: StackedMNISTModes(None, cast(Rule, r), self.threshold) for r in self.rules
            }

    def score(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Label each channel of this process's samples with the digit classifier and count
        the triples under each rule (summed across processes by the metrics)."""
        self.setup(trainer, pl_module, "evaluate")
        assert self.classifier is not None
        device = pl_module.device
        classifier = self.classifier.to(device)
        metrics = {r: m.to(device) for r, m in self.metrics.items()}
        for m in metrics.values():
            m.reset()
        for samples in self.generated(trainer, pl_module):
            if samples.ndim != 4 or samples.shape[1] != 3:
                raise ValueError(
                    f"StackedMNISTEvaluation needs 3-channel images, got {tuple(samples.shape)}"
                )
            probs = classify_channels(classifier, samples)
            for m in metrics.values():
                m.update(probs)
        result: dict[str, float] = {}
        for rule, m in metrics.items():
            for key, value in m.compute().items():
                result[f"{rule}/{key}"] = float(value)
        return result

    def summary(self, result: dict[str, float], step: int) -> str:
        """The lines printed after each evaluation: modes and KL under each counting rule."""
        lines = [f"Stacked MNIST at generator step {step} ({self.num_samples} samples):"]
        for rule, m in self.metrics.items():
            lines.append(
                f"  rule '{rule}' ({m.description}): modes {result[f'{rule}/modes']:.0f}/1000, "
                f"KL {kl_text(result[f'{rule}/kl'], 4, 'no sample counted')}, "
                f"counted {100 * result[f'{rule}/counted']:.1f}%"
            )
        return "\n".join(lines)
