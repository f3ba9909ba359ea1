"""IS / FID / KID (and PRDC) every N generator steps, at the end of fit and at ``mgan test``."""

from __future__ import annotations

from collections.abc import Sized
from pathlib import Path
from typing import Any, cast

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torch.utils.data import Dataset, default_collate

from mgan_lightning.callbacks.evaluation import SampleEvaluation, generator_step
from mgan_lightning.callbacks.image_logging import log_image
from mgan_lightning.data.base import TensorBatchDataset
from mgan_lightning.metrics.fidelity import FidelityMetrics, InceptionWeightsNotFoundError


def real_dataset(trainer: Trainer, split: str, user: str = "FidelityEvaluation") -> Dataset:
    """The DataModule's ``train_set`` / ``test_set``, set up if it is not yet (``user``: the
    callback named in the error when there is no DataModule)."""
    data = getattr(trainer, "datamodule", None)
    if data is None:
        raise ValueError(f"{user} needs a DataModule for the real samples")
    dataset = getattr(data, f"{split}_set", None)
    if dataset is None:
        data.setup("fit" if split == "train" else "test")
        dataset = getattr(data, f"{split}_set", None)
    if dataset is None:
        raise ValueError(f"the DataModule has no {split}_set for the real images")
    return dataset


def real_batches(dataset: Dataset, indices: torch.Tensor, batch_size: int):
    """Images of ``dataset[indices]``, ``batch_size`` at a time (first element of a tuple)."""
    for start in range(0, len(indices), batch_size):
        rows = indices[start : start + batch_size]
        if isinstance(dataset, TensorBatchDataset):
            batch = dataset[rows]
        else:
            batch = default_collate([dataset[int(i)] for i in rows])
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


class FidelityEvaluation(SampleEvaluation):
    """Inception score, FID, KID and, when asked, precision / recall / density / coverage
    (PRDC) of ``num_samples`` generated images against ``num_real`` real images of the
    DataModule's ``real_split``.

    The metric modules belong to this callback (never to the LightningModule), so they stay
    out of checkpoints. Real features are computed once, at the first evaluation, with each
    process taking its share of a fixed random subset, and are reused afterwards
    (``reset_real_features=False``); generated images are split across processes the same
    way, and ``compute`` runs on every process. Features reach the metrics in float64 and
    autocast is off while they are extracted. Logged as ``fidelity/fid``,
    ``fidelity/kid_mean``, ``fidelity/kid_std``, ``fidelity/is_mean``, ``fidelity/is_std``;
    with ``prdc``: ``fidelity/precision``, ``fidelity/recall``, ``fidelity/density``,
    ``fidelity/coverage``, each generator's ``fidelity/{precision,density,coverage}_g<i>``
    and the shares of real balls reached by one, several and no generator
    (``fidelity/covered_by_one``, ``_several``, ``_none``), in the same feature space as
    FID (Inception's pool, or ``feature``; see :mod:`mgan_lightning.metrics.prdc`).

    Inception weights come from ``inception_weights``, the ``MGAN_INCEPTION_WEIGHTS``
    environment variable or torch hub's cache (see :mod:`mgan_lightning.metrics.fidelity`);
    without them the run stops at setup with instructions, unless ``required=False``, which
    turns the callback into a warning and a no-op.

    Args:
        every_n_steps: generator steps between evaluations during fit (0: only at the end).
        num_samples: generated images per evaluation (50,000 in most papers).
        num_real: real images for the reference statistics.
        real_split: ``"train"`` or ``"test"``: the DataModule's data set to take them from.
        fid / kid / inception_score / prdc: which metrics to compute.
        feature / logits: custom extractors (``nn.Module``; FID/KID/PRDC features, IS
            logits) instead of Inception; they receive [-1, 1] float images (e.g.
            :class:`~mgan_lightning.metrics.DigitFeatures` for digits).
        inception_weights / download / antialias / inception_dtype: see
            :class:`~mgan_lightning.metrics.fidelity.InceptionV3Features`.
        kid_subsets / kid_subset_size / is_splits: KID / IS settings (the subset size is
            capped at ``num_samples`` and ``num_real``).
        prdc_nearest_k: k of PRDC's k-NN radii.
        prdc_plot: with ``prdc`` and several generators, also log a bar chart of each
            generator's coverage and precision (``fidelity/prdc_per_generator``; PNG under
            the log dir, and to TensorBoard / W&B; needs matplotlib).
        required: fail when the Inception weights are missing (else warn and skip).
        batch_size / seed: see :class:`SampleEvaluation`.
    """

    prefix = "fidelity"

    def __init__(
        self,
        every_n_steps: int = 5000,
        num_samples: int = 10_000,
        num_real: int = 10_000,
        real_split: str = "train",
        fid: bool = True,
        kid: bool = True,
        inception_score: bool = True,
        feature: nn.Module | None = None,
        logits: nn.Module | None = None,
        inception_weights: str | None = None,
        download: bool = False,
        antialias: bool = False,
        inception_dtype: str = "float32",
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
        prdc: bool = False,
        prdc_nearest_k: int = 5,
        prdc_plot: bool = False,
        required: bool = True,
        batch_size: int = 250,
        seed: int = 1234,
    ) -> None:
        super().__init__(every_n_steps, num_samples, batch_size, seed)
        if real_split not in ("train", "test"):
            raise ValueError(f"real_split must be 'train' or 'test', got {real_split!r}")
        if num_real < 2:
            raise ValueError(f"num_real must be >= 2, got {num_real}")
        self.num_real = num_real
        self.real_split = real_split
        self.options: dict[str, Any] = dict(
            fid=fid,
            kid=kid,
            inception_score=inception_score,
            feature=feature,
            logits=logits,
            inception_weights=inception_weights,
            download=download,
            antialias=antialias,
            inception_dtype=inception_dtype,
            kid_subsets=kid_subsets,
            kid_subset_size=kid_subset_size,
            is_splits=is_splits,
            prdc=prdc,
            prdc_nearest_k=prdc_nearest_k,
        )
        self.prdc_plot = prdc_plot
        self.last_plot: Path | None = None
        self.required = required
        self.metrics: FidelityMetrics | None = None
        self.disabled = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Build the metrics (and load Inception) before the first step: fail fast."""
        if self.metrics is not None or self.disabled:
            return
        shape = tuple(getattr(pl_module, "sample_shape", (3, 32, 32)))
        options = dict(self.options)
        cap = min(self.num_samples, self.num_real)
        options["kid_subset_size"] = min(options["kid_subset_size"], cap)
        if options["prdc"]:
            options["num_generators"] = getattr(pl_module, "num_generators", None)
        try:
            self.metrics = FidelityMetrics(probe_shape=shape, **options)
        except InceptionWeightsNotFoundError as err:
            if self.required:
                raise
            self.disabled = True
            rank_zero_warn(f"FidelityEvaluation is skipped (required=False). {err}")

    def _add_real(self, trainer: Trainer, device: torch.device) -> None:
        assert self.metrics is not None
        dataset = real_dataset(trainer, self.real_split)
        size = len(cast(Sized, dataset))
        n = min(self.num_real, size)
        order = torch.randperm(size, generator=torch.Generator().manual_seed(self.seed))
        mine = order[:n][trainer.global_rank :: trainer.world_size]
        for images in real_batches(dataset, mine, self.batch_size):
            self.metrics.update(images.to(device), real=True)

    def score(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """IS / FID / KID (and PRDC when asked) of this process's share of the samples against
        the real statistics, computed once and kept; ``{}`` when the Inception weights are
        missing and not required."""
        if self.disabled:
            return {}
        if self.metrics is None:
            self.setup(trainer, pl_module, "evaluate")
        if self.metrics is None:  # weights missing and not required
            return {}
        metrics = self.metrics.to(pl_module.device)
        if metrics.real_count == 0:
            self._add_real(trainer, pl_module.device)
        metrics.reset()
        for samples, index in self.generated_with_index(trainer, pl_module):
            metrics.update(samples, real=False, generator_index=index)
        result = {k: float(v) for k, v in metrics.compute().items()}
        if self.prdc_plot and metrics.prdc is not None:
            self._plot_prdc(trainer, pl_module, metrics)
        metrics.reset()
        return result

    def _plot_prdc(
        self, trainer: Trainer, pl_module: LightningModule, metrics: FidelityMetrics
    ) -> None:
        """Rank 0 logs the per-generator bars (cached ``compute()``: nothing is recomputed)."""
        assert metrics.prdc is not None
        scores = metrics.prdc.compute()
        if trainer.global_rank != 0 or len(scores.get("coverage_per_generator", ())) < 2:
            return
        from mgan_lightning.metrics.prdc_plot import plot_per_generator

        step = generator_step(trainer, pl_module)
        image = plot_per_generator(scores, f"generator step {step}")
        self.last_plot = log_image(trainer, "fidelity/prdc_per_generator", image, step)

    def summary(self, result: dict[str, float], step: int) -> str:
        """One line of IS, FID, KID and PRDC (or why they were skipped)."""
        if not result:
            return "FidelityEvaluation skipped: no Inception weights (see the warning above)."
        uses_inception = self.metrics is not None and self.metrics.uses_inception
        extractor = "Inception" if uses_inception else "custom extractor"
        parts = []
        if "is_mean" in result:
            parts.append(f"IS {result['is_mean']:.3f} ± {result['is_std']:.3f}")
        if "fid" in result:
            parts.append(f"FID {result['fid']:.3f}")
        if "kid_mean" in result:
            parts.append(f"KID {result['kid_mean']:.5f} ± {result['kid_std']:.5f}")
        if "precision" in result:
            parts.append(
                "precision {precision:.3f}, recall {recall:.3f}, density {density:.3f}, "
                "coverage {coverage:.3f}".format(**result)
            )
        if "covered_by_one" in result:
            parts.append(
                "real balls reached by one generator {:.1f}%, several {:.1f}%, none {:.1f}%".format(
                    *(100 * result[f"covered_by_{n}"] for n in ("one", "several", "none"))
                )
            )
        text = (
            f"Fidelity at generator step {step} ({self.num_samples} samples vs "
            f"{self.num_real} real {self.real_split} images, {extractor}): " + ", ".join(parts)
        )
        return text + (f"\nPer-generator PRDC: {self.last_plot}" if self.last_plot else "")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Evaluate at the end of fit, unless disabled (weights missing, not required)."""
        if not self.disabled:
            super().on_train_end(trainer, pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Evaluate at ``mgan test``, unless disabled."""
        if not self.disabled:
            super().on_test_epoch_end(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Evaluate every ``every_n_steps`` generator steps, unless disabled."""
        if not self.disabled:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
