"""MGAN: a mixture of K generators, a discriminator and a classifier (Hoang et al., ICLR 2018)."""

from __future__ import annotations

from typing import Literal

import torch

from mgan_lightning import losses
from mgan_lightning.methods.gan import GAN

Diversity = Literal["general", "one_vs_all", "pairwise"]
DIVERSITY_CHOICES: tuple[str, ...] = ("general", "one_vs_all", "pairwise")
DiversityReduction = Literal["sum", "mean"]
DIVERSITY_REDUCTIONS: tuple[str, ...] = ("sum", "mean")


def classifier_outputs(diversity: str, num_generators: int) -> int:
    """Width of C: K logits (general, one-vs-all) or K(K-1)/2 (pairwise)."""
    k = num_generators
    return k * (k - 1) // 2 if diversity == "pairwise" else k


class MGAN(GAN):
    """Mixture GAN (Hoang, Nguyen, Le, Phung; ICLR 2018), sec. 3 of the paper.

    K generators G_1..G_K (mixed uniformly, pi_k = 1/K), a discriminator D and a
    classifier C that share every layer but the last play

        min_{G_1:K, C} max_D  E_{x~data}[log D(x)] + E_{x~model}[log(1 - D(x))]
                              - beta * sum_k pi_k E_{x~G_k}[log C_k(x)].

    At the equilibrium the mixture matches the data while the JSD among the generators'
    distributions is maximal (the paper's Theorem), so the generators spread over
    different modes instead of collapsing onto the same one.

    One training step (the loop lives in ``GANMethod.training_step``):

        x ~ data;  z ~ prior;  x_k = G_k(z) for every k     (one batched call)
        D/C step:  BCE(D(x), 1) + BCE(D(x_k), 0) + L_C(C(x_k), k)
        G step:    BCE(D(x_k), 1) + beta * L_C(C(x_k), k)

    D and C come out of one critic forward pass on the fake batch; C is trained on fake
    samples only, in D's optimizer, and its loss is not scaled by ``beta``. The G step
    uses the non-saturating loss (the paper follows Goodfellow et al.'s heuristic).
    ``L_C`` is the generator-classification loss of the chosen ``diversity`` variant
    (``mgan_lightning.losses``):

    - ``"general"``: K-way softmax C, cross-entropy (the paper's main objective);
    - ``"one_vs_all"``: K binary classifiers, C_k: G_k vs the average of the others;
    - ``"pairwise"``: K(K-1)/2 binary classifiers, C_ij: G_i vs G_j.

    The binary variants sum their classifiers' terms, as the paper's equations do
    (``diversity_reduction="sum"``): ``L_C = sum_k l_k`` (one-vs-all) and
    ``L_C = sum_{i<j} l_ij`` (pairwise). ``"mean"`` averages them instead, (1/K) sum_k and
    (1/P) sum_{i<j} with P = K(K-1)/2, which makes ``beta`` K resp. P times weaker than
    the paper's. ``"general"`` is unaffected: its loss is already the paper's pi-weighted
    sum.

    Args:
        beta: weight of the diversity term in G's loss (paper: 0.01 on images, 0.05-0.1
            on 2D data). ``0`` trains C but leaves the generators independent of it.
        diversity: which classifier(s) measure how distinguishable the generators are.
        diversity_reduction: ``"sum"`` (the paper's equations) or ``"mean"`` over the
            binary classifiers of ``"one_vs_all"`` / ``"pairwise"``; ignored by
            ``"general"``.
        num_generators: K (paper: 10 on images, 4 on 2D data).
        same_latent: feed the same z batch to every generator (the authors do).

    The other arguments (``latent_dim``, ``architecture``, ``optimizer_g``, ...) are
    :class:`GANMethod`'s, passed through ``**kwargs``.
    """

    fixed_hparams = (*GAN.fixed_hparams, "diversity")  # the classifier head's width

    def __init__(
        self,
        num_generators: int = 4,
        same_latent: bool = True,
        beta: float = 0.01,
        diversity: Diversity = "general",
        diversity_reduction: DiversityReduction = "sum",
        **kwargs,
    ) -> None:
        if not beta >= 0:  # also rejects NaN
            raise ValueError(f"model.beta must be >= 0, got {beta}")
        if diversity not in DIVERSITY_CHOICES:
            raise ValueError(
                f"model.diversity must be one of {DIVERSITY_CHOICES}, got {diversity!r}"
            )
        if diversity_reduction not in DIVERSITY_REDUCTIONS:
            raise ValueError(
                f"model.diversity_reduction must be one of {DIVERSITY_REDUCTIONS} ('sum': the "
                f"paper's equations; 'mean': averaged over the classifiers), "
                f"got {diversity_reduction!r}"
            )
        if diversity != "general" and num_generators < 2:
            raise ValueError(
                f"model.diversity={diversity!r} compares generators with each other and needs "
                f"model.num_generators >= 2, got {num_generators}"
            )
        super().__init__(
            num_generators=num_generators,
            same_latent=same_latent,
            _classifier_outputs=classifier_outputs(diversity, num_generators),
            **kwargs,
        )
        self.beta = float(beta)
        self.diversity = diversity
        self.diversity_reduction = diversity_reduction

    # ----------------------------------------------------------------- hooks

    def classifier_loss(
        self, class_logits: torch.Tensor, generator_index: torch.Tensor
    ) -> torch.Tensor:
        """``L_C``: how badly C tells the generators apart (C and every G_k minimise it)."""
        if self.diversity == "general":
            return losses.classifier_loss_general(class_logits, generator_index)
        if self.diversity == "one_vs_all":
            return losses.classifier_loss_one_vs_all(
                class_logits, generator_index, reduction=self.diversity_reduction
            )
        return losses.classifier_loss_pairwise(
            class_logits, generator_index, self.num_generators, reduction=self.diversity_reduction
        )

    def discriminator_loss(self, real, fake, generator_index):
        """D: real vs fake; C: which generator made each fake (one pass gives both heads)."""
        real_logits, _ = self.critic(real)
        fake_logits, class_logits = self.critic(fake)
        adversarial = losses.discriminator_loss(real_logits, fake_logits)
        classifier = self.classifier_loss(class_logits, generator_index)
        return adversarial + classifier, {"loss/d": adversarial, "loss/c": classifier}

    def generator_loss(self, fake, generator_index, z):
        """Fool D, and stay recognisable to C as the generator that made the sample."""
        fake_logits, class_logits = self.critic(fake)
        adversarial = losses.generator_loss_nonsaturating(fake_logits)
        diversity = self.classifier_loss(class_logits, generator_index)
        loss = adversarial + self.beta * diversity
        return loss, {"loss/g": adversarial, "loss/g_diversity": diversity, "loss/g_total": loss}
