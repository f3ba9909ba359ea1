"""Stacked-MNIST modes and KL every N generator steps, at the end of fit and at ``mgan test``."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from typing import cast

import torch
from lightning.pytorch import LightningModule, Trainer

from mgan_lightning.callbacks.evaluation import SampleEvaluation, process_share
from mgan_lightning.callbacks.fidelity import real_batches, real_dataset
from mgan_lightning.classifiers.digit import DigitClassifier, load_digit_classifier
from mgan_lightning.metrics.mode_coverage import kl_text
from mgan_lightning.metrics.prdc import PRDC, flat_scores
from mgan_lightning.metrics.prdc_features import DigitFeatures
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

    With ``prdc``, also precision, recall, density and coverage
    (:mod:`mgan_lightning.metrics.prdc`) on the classifier's penultimate features of the
    three digits (:class:`~mgan_lightning.metrics.prdc_features.DigitFeatures`, 384 numbers
    at width 32), for the first ``prdc_samples`` samples against as many images of the
    DataModule's test split (a fixed random subset, split across processes like the
    samples): ``stacked_mnist/prdc/precision`` ... ``/coverage``, each generator's
    ``.../precision_g<i>``, ``density_g<i>``, ``coverage_g<i>`` and the shares of real balls
    reached by one, several and no generator. Unlike the confident rule, density and
    precision see whether samples look like real digit triples at all: noise scores near 0.

    Args:
        classifier: a Lightning checkpoint or weights file of
            :class:`~mgan_lightning.classifiers.DigitClassifier`; ``None``: the weights
            shipped with the package.
        rules: counting rules to report.
        threshold: confidence the ``"confident"`` rule requires of each digit.
        prdc: also compute PRDC on the classifier's features.
        prdc_samples: samples (and real images) PRDC compares, at most ``num_samples``.
        prdc_nearest_k: k of PRDC's k-NN radii.
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
        prdc: bool = False,
        prdc_samples: int = 10_000,
        prdc_nearest_k: int = 5,
    ) -> None:
        super().__init__(every_n_steps, num_samples, batch_size, seed)
        rules = tuple(rules)
        if not rules or any(r not in RULES for r in rules):
            raise ValueError(f"rules must be a non-empty subset of {RULES}, got {rules}")
        if prdc and not prdc_nearest_k < prdc_samples:
            raise ValueError(
                f"prdc_samples must exceed prdc_nearest_k ({prdc_nearest_k}), got {prdc_samples}"
            )
        self.prdc, self.prdc_samples, self.prdc_nearest_k = prdc, prdc_samples, prdc_nearest_k
        self.last_prdc: PRDC | None = None  # the last evaluation's PRDC, with its features
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
        prdc = self._prdc_metric(trainer, pl_module) if self.prdc else None
        share = self._prdc_share(trainer)
        for samples, index in self.generated_with_index(trainer, pl_module):
            if samples.ndim != 4 or samples.shape[1] != 3:
                raise ValueError(
                    f"StackedMNISTEvaluation needs 3-channel images, got {tuple(samples.shape)}"
                )
            probs = classify_channels(classifier, samples)
            for m in metrics.values():
                m.update(probs)
            if prdc is not None and share > 0:
                prdc.update(samples[:share], real=False, generator_index=index[:share])
                share -= min(share, len(samples))
        result: dict[str, float] = {}
        for rule, m in metrics.items():
            for key, value in m.compute().items():
                result[f"{rule}/{key}"] = float(value)
        if prdc is not None:
            self.last_prdc = prdc
            result.update({f"prdc/{k}": v for k, v in flat_scores(prdc.compute()).items()})
        return result

    def _prdc_share(self, trainer: Trainer) -> int:
        """This process's part of the ``prdc_samples`` (as the samples are split)."""
        return process_share(min(self.prdc_samples, self.num_samples), trainer)

    def _prdc_metric(self, trainer: Trainer, pl_module: LightningModule) -> PRDC:
        """PRDC on the classifier's features, fed this process's share of the real test
        images; the metric gathers real and fake features from every process."""
        assert self.classifier is not None
        dataset = real_dataset(trainer, "test", type(self).__name__)
        size = len(cast(Sized, dataset))
        order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed))
        count = min(self.prdc_samples, self.num_samples, size)
        mine = order[:count][trainer.global_rank :: trainer.world_size]
        metric = PRDC(
            self.prdc_nearest_k,
            feature=DigitFeatures(self.classifier, channels=3),
            num_generators=getattr(pl_module, "num_generators", None),
        ).to(pl_module.device)
        for real in real_batches(dataset, mine, self.batch_size):
            metric.update(real.to(pl_module.device), real=True)
        return metric

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
