"""MIM-GAN: K generators kept apart by a mutual-information penalty (Li et al., KBS 2021)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from mgan_lightning import losses
from mgan_lightning.methods.hparams import from_import_path
from mgan_lightning.methods.mgan import MGAN

MIEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class MIMGAN(MGAN):
    """Mutual-information-minimising multi-generator GAN (Li, Liang, Neuman, Chen, Cui;
    Knowledge-Based Systems 2021), **as we read it**: the paper's abstract describes the
    method (K generators, one classifier, one discriminator; the mutual information
    between each generator and every other one, computed from the classifier's
    probabilities, is added to that generator's loss and minimised), but we found
    neither its formulas nor code. Our reading:

        z ~ prior, the same z_1..z_n fed to every generator
        Y_k(z) = softmax(C(G_k(z)))              C's soft category of G_k's sample
        P_kj   = (1/n) sum_i Y_k(z_i) Y_j(z_i)^T  joint of (Y_k, Y_j), a K x K matrix
        I(Y_k; Y_j) = sum P_kj log(P_kj / (p_k p_j^T))   p_k, p_j its marginals

        D/C step:  as in MGAN (BCE real/fake + C's generator-classification loss)
        G step:    (1/K) sum_k [ L_adv(G_k) + lam * sum_{j != k} I(Y_k; Y_j) ]
                   + beta * L_C                  (unless keep_classifier_term=False)

    The penalty sums MI over all ordered pairs, so each pair's MI counts for both of its
    generators; it is averaged over k with the same weights pi_k = 1/K as the
    adversarial loss. Two generators that send the same z to the same categories share
    information; generators that keep to their own manifold share none. C is trained as
    in MGAN (which generator made this sample), so the categories are generator
    identities.

    **Why MGAN's classifier term stays on by default.** Under this reading the MI
    penalty vanishes exactly where it is needed: when G_k and G_j have collapsed together,
    C cannot tell their samples apart, and its best answer on them does not depend on z,

        Y_k(z_i) = Y_j(z_i) = y (about uniform) for all i  =>  P_kj = y y^T = p q^T  =>  I = 0,

    and since I >= 0 has its minimum there, its gradient is 0 too: the penalty cannot
    push collapsed generators apart. The alternatives we considered:

    (a) keep MGAN's ``beta * L_C`` in G's loss as well (``keep_classifier_term=True``, the
        default; chosen). Where generators collapse, L_C is about log K with a non-zero
        gradient, so MIM-GAN is never weaker than MGAN there; once C separates the
        generators, the MI term adds its own push on top.
    (b) the MI penalty alone, the literal reading of the abstract
        (``keep_classifier_term=False``): zero gradient at collapse, as shown above.
    (c) an estimator that is not 0 for indistinguishable generators, e.g. the MI between
        the generators' sample features rather than C's outputs. Not adopted, because the
        paper says the MI is computed from the classifier's probabilities; the
        ``mi_estimator`` hook allows it (it receives C's probabilities, so a feature-based
        estimator needs a subclass that overrides :meth:`pairwise_mutual_information`).

    Args:
        lam: weight of the mutual-information penalty in G's loss.
        keep_classifier_term: also keep MGAN's ``beta * L_C`` term in G's loss (default
            ``True``; ``False`` is the MI-only reading, see above).
        mi_estimator: ``(probs_a[..., n, K], probs_b[..., n, K]) -> I[...]``, called once
            with every ordered pair of generators stacked in the leading dimension.
            Default: :func:`mgan_lightning.losses.mutual_information` (plug-in estimate);
            set any importable function (its import path) or a callable object in the
            config. An importable function is stored in the hyperparameters by its path
            (:mod:`mgan_lightning.methods.hparams`), so checkpoints load with
            ``torch.load(weights_only=True)``.
        same_latent: must stay true: the MI pairs samples made from the same z.

    The other arguments are :class:`GANMethod`'s, passed through ``**kwargs`` (the
    classifier is MGAN's general K-way one).
    """

    derived_hparams = ("diversity", "diversity_reduction")  # MGAN's, fixed here

    def __init__(
        self,
        num_generators: int = 4,
        same_latent: bool = True,
        beta: float = 0.01,
        lam: float = 1.0,
        keep_classifier_term: bool = True,
        mi_estimator: MIEstimator | str = losses.mutual_information,
        **kwargs,
    ) -> None:
        if not same_latent:
            raise ValueError(
                "model.same_latent must be true for MIMGAN: the mutual information pairs "
                "the samples the generators make from the same z"
            )
        if not lam >= 0:
            raise ValueError(f"model.lam must be >= 0, got {lam}")
        estimator: object = mi_estimator
        if isinstance(mi_estimator, str):  # an import path, e.g. from a checkpoint
            estimator = from_import_path(mi_estimator, "model.mi_estimator")
        if not callable(estimator):
            raise ValueError(f"model.mi_estimator must be callable, got {mi_estimator!r}")
        super().__init__(
            num_generators=num_generators,
            same_latent=same_latent,
            beta=beta,
            diversity="general",
            diversity_reduction="sum",  # unused by "general"; fixed, like ``diversity``
            **kwargs,
        )
        self.lam = float(lam)
        self.keep_classifier_term = keep_classifier_term
        self.mi_estimator: MIEstimator = estimator  # after Module.__init__: may be a Module

    def pairwise_mutual_information(
        self, class_logits: torch.Tensor, generator_index: torch.Tensor
    ) -> torch.Tensor:
        """``I(Y_k; Y_j)`` for every ordered pair k != j, shape ``(K, K)`` (diagonal 0).

        ``class_logits`` are C's logits on a fake batch laid out as ``fake_batch`` makes
        it: generator-major, each generator's samples in z order."""
        k = self.num_generators
        n = len(generator_index) // k
        expected = torch.arange(k, device=generator_index.device).repeat_interleave(n)
        if len(generator_index) != k * n or not torch.equal(generator_index, expected):
            raise ValueError(
                "MIMGAN needs the fake batch generator-major with equally many samples per "
                "generator (as GANMethod.fake_batch makes it)"
            )
        probs = class_logits.softmax(-1).reshape(k, n, -1)  # Y_k(z_i): (K, n, K)
        off_diagonal = ~torch.eye(k, dtype=torch.bool, device=probs.device)
        rows, cols = off_diagonal.nonzero(as_tuple=True)
        mi = torch.zeros(k, k, dtype=probs.dtype, device=probs.device)
        if len(rows):
            mi = mi.index_put((rows, cols), self.mi_estimator(probs[rows], probs[cols]))
        return mi

    def generator_loss(self, fake, generator_index, z):
        """Fool D, and share as little information with the other generators as possible."""
        fake_logits, class_logits = self.critic(fake)
        adversarial = losses.generator_loss_nonsaturating(fake_logits)
        mi = self.pairwise_mutual_information(class_logits, generator_index)
        k = self.num_generators
        penalty = mi.sum() / k  # (1/K) sum_k sum_{j != k} I(Y_k; Y_j)
        loss = adversarial + self.lam * penalty
        logs = {
            "loss/g": adversarial,
            "loss/g_mi": penalty,
            "mi/mean_pair": mi.sum() / max(k * (k - 1), 1),
        }
        if self.keep_classifier_term:
            diversity = self.classifier_loss(class_logits, generator_index)
            loss = loss + self.beta * diversity
            logs["loss/g_diversity"] = diversity
        logs["loss/g_total"] = loss
        return loss, logs
