"""The parallel balanced mix-generator GAN's losses and schedules, as pure functions of tensors
and numbers (no modules, no state): :class:`mgan_lightning.methods.PMGAN` holds the state and
calls these.

The adjustment component is one binary classifier ``C_ij`` per pair ``i < j`` of generators
(the critic's classifier head, ``K(K-1)/2`` logits in ``torch.triu_indices(K, K, 1)`` order, as
MGAN's pairwise variant). ``C_ij(x) = sigmoid(c_p(x))`` is the probability that ``x`` was made
by ``G_i`` rather than ``G_j``. Generator ``k``'s view of the pairs is the orientation
``s[k, p]``: ``+1`` where ``k`` is the pair's ``i``, ``-1`` where it is its ``j``, ``0`` where
``k`` is not in the pair, so ``s[k, p] * c_p(x)`` is the logit of "``x`` is ``G_k``'s" for
every classifier that involves ``k``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

Shrink = Literal["none", "linear", "exponential", "cosine"]
SHRINK_CHOICES: tuple[str, ...] = ("none", "linear", "exponential", "cosine")
Balance = Literal["none", "ratio"]
BALANCE_CHOICES: tuple[str, ...] = ("none", "ratio")


# ------------------------------------------------------------------ the pairs
def pair_orientation(num_generators: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``s[k, p]`` (``(K, K(K-1)/2)``, float): ``+1`` if generator ``k`` is pair ``p``'s first
    member ``i``, ``-1`` if its second ``j``, ``0`` otherwise (pairs in ``triu_indices``
    order)."""
    k = num_generators
    first, second = torch.triu_indices(k, k, offset=1, device=device)
    pair = torch.arange(len(first), device=device)
    s = torch.zeros(k, len(first), device=device)
    s[first, pair] = 1.0
    s[second, pair] = -1.0
    return s


def pair_targets(
    generator_index: torch.Tensor, num_generators: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The adjustment classifiers' training targets on a fake batch: ``(targets, mask)``, both
    ``(N, K(K-1)/2)``. Sample ``n`` of ``G_g`` is a positive (1) of every ``C_gj`` (``g < j``)
    and a negative (0) of every ``C_ig`` (``i < g``); ``mask`` is false for the pairs that do
    not involve ``g`` (they never see the sample)."""
    s = pair_orientation(num_generators, generator_index.device)[generator_index]
    return (s > 0).to(s.dtype), s != 0


def per_generator_mean(
    values: torch.Tensor, generator_index: torch.Tensor, num_generators: int
) -> torch.Tensor:
    """``out[k]`` = mean of ``values[n]`` over the samples ``n`` of generator ``k`` (``(K,)``;
    0 for a generator without samples). A product with the one-hot membership matrix: no loop
    over generators, and ``out[k]`` has no gradient towards other generators' samples."""
    onehot = F.one_hot(generator_index, num_generators).to(values.dtype)  # (N, K)
    counts = onehot.sum(0).clamp_min(1.0)
    return (onehot.T @ values) / counts


def adjustment_errors(
    class_logits: torch.Tensor,
    generator_index: torch.Tensor,
    num_generators: int,
    margin: float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """Each generator's adjustment error, ``(K,)``:

        e_k = E_{x~G_k} [ 1/(K-1) sum_{j != k} softplus(margin - s_kj c_kj(x)) ]

    the binary cross-entropy (``margin = 0``) of the K-1 pairwise classifiers that involve
    ``G_k``, each asked to call ``G_k``'s samples ``G_k``'s. ``margin > 0`` asks for a logit
    of at least about ``margin`` (a soft hinge): samples within that band of a boundary keep
    being pushed. ``e_k`` depends on ``G_k``'s samples alone, averaged over its K-1 pairs so
    its size does not grow with K. Needs K >= 2."""
    k = num_generators
    if k < 2:
        raise ValueError(f"pairwise adjustment needs at least 2 generators, got {k}")
    s = pair_orientation(k, class_logits.device).to(class_logits.dtype)[generator_index]
    if class_logits.shape[-1] != s.shape[-1]:
        raise ValueError(
            f"adjustment logits need K(K-1)/2 = {s.shape[-1]} columns for K={k}, "
            f"got {class_logits.shape[-1]}"
        )
    per_pair = F.softplus(margin - s * class_logits) * (s != 0)
    per_sample = per_pair.sum(-1) / (k - 1)
    return per_generator_mean(per_sample, generator_index, k)


def adjustment_classifier_loss(
    class_logits: torch.Tensor, generator_index: torch.Tensor, num_generators: int
) -> torch.Tensor:
    """The adjustment component's own loss: ``L_C = (1/K) sum_k e_k`` at margin 0, i.e. the
    mean over pairs of ``(E_{G_i}[-log C_ij] + E_{G_j}[-log(1 - C_ij)]) / 2``
    (``log 2`` at chance; half of :func:`mgan_lightning.losses.classifier_loss_pairwise`
    with ``reduction="mean"``)."""
    return adjustment_errors(class_logits, generator_index, num_generators).mean()


# ------------------------------------------------------- embracing a few modes
def embrace_values(fake_logits: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per sample, ``(1 - D(x))^gamma * (-log D(x))`` (``D = sigmoid(logit)``): the
    non-saturating loss with the samples D already believes down-weighted (a focal loss,
    Lin et al. 2017). Minimised by each generator over its own samples, it concentrates the
    generator's mass where D gives the data high probability: the modes it already
    holds, not the bridges between them. ``gamma = 0`` is the non-saturating loss."""
    not_real = torch.sigmoid(-fake_logits)  # 1 - D(x)
    return not_real.pow(gamma) * F.softplus(-fake_logits)


# --------------------------------------------------------------- the schedules
def shrink_factor(step: int, start: int, end: int, final: float, kind: str = "linear") -> float:
    """The shrinkage of the adjustment component after ``step`` generator steps: 1 until
    ``start``, ``final`` from ``end`` on, and in between, with ``u = (step - start) /
    (end - start)``,

    - ``"linear"``: ``1 + (final - 1) u``;
    - ``"exponential"``: ``final ** u`` (geometric; ``final > 0``);
    - ``"cosine"``: ``final + (1 - final) (1 + cos(pi u)) / 2``;
    - ``"none"``: 1 throughout.
    """
    if kind not in SHRINK_CHOICES:
        raise ValueError(f"shrink must be one of {SHRINK_CHOICES}, got {kind!r}")
    if kind == "none":
        return 1.0
    if end <= start:
        raise ValueError(f"the shrinkage needs start < end, got start={start}, end={end}")
    u = min(max((step - start) / (end - start), 0.0), 1.0)
    if kind == "linear":
        return 1.0 + (final - 1.0) * u
    if kind == "exponential":
        if not final > 0:
            raise ValueError(f"exponential shrinkage needs shrink_to > 0, got {final}")
        return final**u
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * u))


def running_average(
    average: torch.Tensor, value: torch.Tensor, decay: float, first: bool | torch.Tensor
) -> torch.Tensor:
    """The decay factor's exponential moving average, ``decay * average + (1 - decay) *
    value`` (written as ``lerp``), or ``value`` itself for the first update (``first``, a
    bool or a boolean tensor: no read from the device)."""
    weight = torch.where(
        torch.as_tensor(first, device=average.device),
        torch.ones((), dtype=average.dtype, device=average.device),
        torch.full((), 1.0 - decay, dtype=average.dtype, device=average.device),
    )
    return torch.lerp(average, value.detach().to(average.dtype), weight)


def balance_weights(
    d_average: torch.Tensor,
    c_average: torch.Tensor,
    balance: str = "ratio",
    low: float = 0.1,
    high: float = 10.0,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(w_D, w_C)``, the weights of the discriminator's and the adjustment classifier's
    losses in the critic's objective ``w_D L_D + w_C L_C``, from their running averages:

    - ``"none"``: ``(1, 1)`` (MGAN's critic);
    - ``"ratio"``: ``w_D = 1``, ``w_C = clip(avg L_D / avg L_C, low, high)``, so the two terms
      weigh about the same in the shared body's gradient: the classifier cannot take it over
      while it is still learning (``L_C`` large), nor fade out once it separates the
      generators (``L_C`` small).

    The weights carry no gradient."""
    if balance not in BALANCE_CHOICES:
        raise ValueError(f"balance must be one of {BALANCE_CHOICES}, got {balance!r}")
    one = torch.ones((), dtype=d_average.dtype, device=d_average.device)
    if balance == "none":
        return one, one.clone()
    ratio = d_average.detach() / c_average.detach().clamp_min(eps)
    return one, ratio.clamp(low, high)
