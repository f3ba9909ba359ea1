"""Loss functions: pure functions of tensors (no modules, no state).

All adversarial losses take logits and use ``softplus`` for numerical safety:
``-log sigmoid(t) = softplus(-t)`` and ``-log(1 - sigmoid(t)) = softplus(t)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Goodfellow et al. (2014), eq. 1, as D minimises it:
    ``E_data[-log D(x)] + E_model[-log(1 - D(x))]``."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``E_z[-log D(G(z))]`` (Goodfellow et al. 2014, sec. 3)."""
    return F.softplus(-fake_logits).mean()


# --------------------------------------------------------------------------------------
# MGAN's classifier (diversity) losses (Hoang et al., ICLR 2018). The classifier C
# and the generators both minimise these: C to tell the generators apart, each G_k to
# stay recognisable as itself, which pushes the generators' distributions apart.
# Every function takes the classifier's logits on fake samples and the index of the
# generator that made each sample; every generator is expected to appear in the batch
# (``GANMethod.fake_batch`` always gives each one the same number of samples).
# --------------------------------------------------------------------------------------


def _per_generator_means(
    values: torch.Tensor, generator_index: torch.Tensor, num_generators: int
) -> torch.Tensor:
    """``out[g, c] = mean of values[n, c] over the samples n of generator g`` (0 if none).

    One matrix product with the one-hot membership matrix: no loop over generators."""
    onehot = F.one_hot(generator_index, num_generators).to(values.dtype)  # (N, K)
    counts = onehot.sum(0).clamp_min(1.0)  # (K,)
    return (onehot.T @ values) / counts[:, None]


def classifier_loss_general(logits: torch.Tensor, generator_index: torch.Tensor) -> torch.Tensor:
    """MGAN's classifier term (the ``beta`` term of the objective in sec. 3): a K-way
    softmax classifier C and

    ``L_C = - sum_k pi_k E_{x ~ G_k}[log C_k(x)]``,  pi_k = 1/K,

    i.e. the cross-entropy between C's softmax over ``logits[N, K]`` and the generator
    index. With equally many samples per generator the batch mean is the pi-weighted sum.
    """
    return F.cross_entropy(logits, generator_index)


REDUCTIONS: tuple[str, ...] = ("sum", "mean")


def _check_reduction(reduction: str, function: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"{function}: reduction must be one of {REDUCTIONS} ('sum': the paper's "
            f"equation; 'mean': averaged over the classifiers), got {reduction!r}"
        )


def classifier_loss_one_vs_all(
    logits: torch.Tensor, generator_index: torch.Tensor, reduction: str = "sum"
) -> torch.Tensor:
    """MGAN's one-vs-all JSD variant: K binary classifiers, ``C_k = sigmoid(logits[:, k])``,
    each telling samples of G_k (label 1) from the uniform mixture of the other generators
    (label 0). With ``l_k = E_{x~G_k}[-log C_k(x)]
    + (1/(K-1)) sum_{j != k} E_{x~G_j}[-log(1 - C_k(x))]``:

    - ``reduction="sum"`` (default; the paper's equation): ``L_C = sum_k l_k``;
    - ``reduction="mean"``: ``L_C = (1/K) sum_k l_k``, K times smaller (so a ``beta`` on
      it is K times weaker than the paper's).

    Each expectation is a mean over that generator's samples, so the "others" side is the
    average of the other generators whatever their sample counts. Needs K >= 2.
    """
    _check_reduction(reduction, "classifier_loss_one_vs_all")
    k = logits.shape[1]
    if k < 2:
        raise ValueError(f"one-vs-all classifiers need at least 2 generators, got {k}")
    positive = _per_generator_means(F.softplus(-logits), generator_index, k)  # (K, K)
    negative = _per_generator_means(F.softplus(logits), generator_index, k)  # (K, K)
    # negative[j, k]: classifier k on generator j's samples; drop j == k, average over j.
    others = (negative.sum(0) - negative.diagonal()) / (k - 1)
    per_classifier = positive.diagonal() + others
    return per_classifier.sum() if reduction == "sum" else per_classifier.mean()


def classifier_loss_pairwise(
    logits: torch.Tensor,
    generator_index: torch.Tensor,
    num_generators: int,
    reduction: str = "sum",
) -> torch.Tensor:
    """MGAN's pairwise JSD variant: one binary classifier per pair i < j,
    ``C_ij = sigmoid(logits[:, p])`` with the pairs ``p`` in ``torch.triu_indices(K, K, 1)``
    order, telling G_i's samples (label 1) from G_j's (label 0). With
    ``l_ij = E_{x~G_i}[-log C_ij(x)] + E_{x~G_j}[-log(1 - C_ij(x))]``:

    - ``reduction="sum"`` (default; the paper's equation): ``L_C = sum_{i<j} l_ij``;
    - ``reduction="mean"``: ``L_C = (1/P) sum_{i<j} l_ij``, P times smaller,

    with P = K(K-1)/2 and ``logits`` of shape ``(N, P)``. Needs K >= 2.
    """
    _check_reduction(reduction, "classifier_loss_pairwise")
    k = num_generators
    if k < 2:
        raise ValueError(f"pairwise classifiers need at least 2 generators, got {k}")
    first, second = torch.triu_indices(k, k, offset=1, device=logits.device)
    if logits.shape[1] != len(first):
        raise ValueError(
            f"pairwise logits need K(K-1)/2 = {len(first)} columns for K={k}, got {logits.shape[1]}"
        )
    positive = _per_generator_means(F.softplus(-logits), generator_index, k)  # (K, P)
    negative = _per_generator_means(F.softplus(logits), generator_index, k)  # (K, P)
    pair = torch.arange(len(first), device=logits.device)
    per_pair = positive[first, pair] + negative[second, pair]
    return per_pair.sum() if reduction == "sum" else per_pair.mean()


# --------------------------------------------------------------------------------------
# MIM-GAN (Li et al. 2021): mutual information between classifier predictions.
# --------------------------------------------------------------------------------------


def mutual_information(
    probs_a: torch.Tensor, probs_b: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Plug-in estimate of ``I(Y_a; Y_b)`` from paired soft predictions.

    ``probs_a``, ``probs_b``: ``(..., N, K)`` categorical distributions, row n of both
    made from the same latent z_n. The joint is the batch average of outer products,
    ``P = (1/N) sum_n a_n b_n^T`` (K x K), its marginals ``p = P 1``, ``q = P^T 1``, and

    ``I = sum_ij P_ij log( P_ij / (p_i q_j) )``  (nats; 0 .. log K).

    ``eps`` inside both logarithms keeps the value and its gradient finite when entries
    of P are 0 (one-hot predictions). Leading dimensions are batch dimensions, so all
    pairs of generators can be scored in one call. Returns a tensor of shape ``(...)``.
    """
    if probs_a.shape != probs_b.shape:
        raise ValueError(
            f"probs_a and probs_b must have the same shape, got {tuple(probs_a.shape)} "
            f"and {tuple(probs_b.shape)}"
        )
    n = probs_a.shape[-2]
    joint = probs_a.transpose(-1, -2) @ probs_b / n  # (..., K, K)
    p = joint.sum(-1, keepdim=True)  # (..., K, 1)
    q = joint.sum(-2, keepdim=True)  # (..., 1, K)
    ratio = (joint + eps).log() - (p * q + eps).log()
    return (joint * ratio).sum((-2, -1))


def distance_preserving_loss(
    fake_1: torch.Tensor,
    fake_2: torch.Tensor,
    z_1: torch.Tensor,
    z_2: torch.Tensor,
    scale: float | torch.Tensor,
    eps: float = 1e-8,
) -> torch.Tensor:
    """BourGAN's distance-preserving term (Xiao et al. 2018, eq. 4, as the authors' code
    computes it): pairs (z_1[i], z_2[i]) of independent latent draws should land at
    generated samples as far apart as the data points their embedding came from,

        MSE( log(||G(z_1) - G(z_2)||_2 + eps),  log(s ||z_1 - z_2||_2 + eps) )

    over the pairs. Samples and latents are flattened per row; ``eps`` keeps the logarithm
    finite when two samples (or latents) coincide (the authors' code has none)."""
    apart = (fake_1 - fake_2).flatten(1).norm(dim=1)
    latent_apart = (z_1 - z_2).flatten(1).norm(dim=1)
    return F.mse_loss(torch.log(apart + eps), torch.log(scale * latent_apart + eps))
