"""The loss functions against small cases computed independently with NumPy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mgan_lightning import losses


def _np_general(logits: np.ndarray, index: np.ndarray) -> float:
    total = 0.0
    for row, k in zip(logits, index):
        total += -(row[k] - np.log(np.exp(row).sum()))
    return total / len(index)


def _np_one_vs_all(logits: np.ndarray, index: np.ndarray) -> float:
    """The paper's sum over the K classifiers."""
    k_total = logits.shape[1]
    loss = 0.0
    for k in range(k_total):
        mine = logits[index == k, k]
        positive = np.mean(-np.log(1 / (1 + np.exp(-mine))))
        others = []
        for j in range(k_total):
            if j != k:
                theirs = logits[index == j, k]
                others.append(np.mean(-np.log(1 - 1 / (1 + np.exp(-theirs)))))
        loss += positive + np.mean(others)
    return loss


def _np_pairwise(logits: np.ndarray, index: np.ndarray, k_total: int) -> float:
    """The paper's sum over the K(K-1)/2 pair classifiers."""
    terms = []
    p = 0
    for i in range(k_total):
        for j in range(i + 1, k_total):
            first = logits[index == i, p]
            second = logits[index == j, p]
            terms.append(
                np.mean(-np.log(1 / (1 + np.exp(-first))))
                + np.mean(-np.log(1 - 1 / (1 + np.exp(-second))))
            )
            p += 1
    return float(np.sum(terms))


def test_existing_adversarial_losses_by_hand():
    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([-1.0])
    expected_d = (math.log(2) + math.log(1 + math.exp(-2))) / 2 + math.log(1 + math.exp(-1))
    assert losses.discriminator_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    expected_g = math.log(1 + math.exp(1))
    assert losses.generator_loss_nonsaturating(fake).item() == pytest.approx(expected_g, rel=1e-6)


def test_general_classifier_loss_by_hand():
    # Two samples, K = 2: logits (2, 0) labelled 0 and (0, 1) labelled 1.
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    index = torch.tensor([0, 1])
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert losses.classifier_loss_general(logits, index).item() == pytest.approx(expected, 1e-6)


def test_general_classifier_loss_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 4, generator=gen, dtype=torch.float64)
    index = torch.arange(4).repeat_interleave(3)
    expected = _np_general(logits.numpy(), index.numpy())
    assert losses.classifier_loss_general(logits, index).item() == pytest.approx(expected, 1e-10)


def test_one_vs_all_uninformed_classifier_costs_two_log_two_per_classifier():
    # Every C_k outputs 1/2: each side costs log 2, 2 log 2 per classifier, K = 3 of them.
    index = torch.tensor([0, 1, 1, 2])
    loss = losses.classifier_loss_one_vs_all(torch.zeros(4, 3), index)
    assert loss.item() == pytest.approx(3 * 2 * math.log(2), rel=1e-6)
    mean = losses.classifier_loss_one_vs_all(torch.zeros(4, 3), index, reduction="mean")
    assert mean.item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_one_vs_all_by_hand_k2():
    # K = 2, one sample each. C_0 logits: +1 on G0's sample, -2 on G1's.
    # C_1 logits: +3 on G1's sample, 0 on G0's.
    logits = torch.tensor([[1.0, 0.0], [-2.0, 3.0]])
    index = torch.tensor([0, 1])
    c0 = math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))
    c1 = math.log(1 + math.exp(-3)) + math.log(2)
    assert losses.classifier_loss_one_vs_all(logits, index).item() == pytest.approx(
        c0 + c1, rel=1e-6
    )
    mean = losses.classifier_loss_one_vs_all(logits, index, reduction="mean")
    assert mean.item() == pytest.approx((c0 + c1) / 2, rel=1e-6)


def test_one_vs_all_matches_numpy_with_unequal_counts():
    # Unequal counts: the "others" side is the average of the other generators, so a
    # pooled mean over their samples would give a different number.
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(7, 3, generator=gen, dtype=torch.float64) * 2
    index = torch.tensor([0, 1, 1, 1, 1, 2, 2])
    expected = _np_one_vs_all(logits.numpy(), index.numpy())
    assert losses.classifier_loss_one_vs_all(logits, index).item() == pytest.approx(expected, 1e-10)


def test_one_vs_all_perfect_classifier_costs_nothing():
    index = torch.arange(3).repeat_interleave(2)
    logits = torch.full((6, 3), -30.0)
    logits[torch.arange(6), index] = 30.0
    assert losses.classifier_loss_one_vs_all(logits, index).item() < 1e-10


def test_pairwise_by_hand_k3():
    # K = 3, pairs (0,1), (0,2), (1,2); one sample per generator.
    # Only pair (0,2) (column 1) is informative: +2 on G0's sample, -2 on G2's.
    logits = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.0, -2.0, 0.0]])
    index = torch.tensor([0, 1, 2])
    informed = 2 * math.log(1 + math.exp(-2))
    expected = 2 * math.log(2) + informed + 2 * math.log(2)
    loss = losses.classifier_loss_pairwise(logits, index, num_generators=3)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    mean = losses.classifier_loss_pairwise(logits, index, 3, reduction="mean")
    assert mean.item() == pytest.approx(expected / 3, rel=1e-6)


def test_pairwise_matches_numpy():
    gen = torch.Generator().manual_seed(2)
    k = 4
    logits = torch.randn(10, k * (k - 1) // 2, generator=gen, dtype=torch.float64) * 2
    index = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 3, 3])
    expected = _np_pairwise(logits.numpy(), index.numpy(), k)
    loss = losses.classifier_loss_pairwise(logits, index, k)
    assert loss.item() == pytest.approx(expected, 1e-10)


def test_pairwise_rejects_wrong_width_and_single_generator():
    with pytest.raises(ValueError, match="K\\(K-1\\)/2"):
        losses.classifier_loss_pairwise(torch.zeros(4, 4), torch.tensor([0, 1, 2, 3]), 4)
    with pytest.raises(ValueError, match="at least 2"):
        losses.classifier_loss_pairwise(torch.zeros(2, 0), torch.tensor([0, 0]), 1)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_one_vs_all_sum_is_k_times_mean(k):
    gen = torch.Generator().manual_seed(k)
    logits = torch.randn(4 * k, k, generator=gen, dtype=torch.float64) * 3
    index = torch.arange(k).repeat_interleave(4)
    total = losses.classifier_loss_one_vs_all(logits, index, reduction="sum")
    mean = losses.classifier_loss_one_vs_all(logits, index, reduction="mean")
    assert torch.allclose(total, k * mean, rtol=1e-12)
    assert torch.equal(total, losses.classifier_loss_one_vs_all(logits, index))  # the default


@pytest.mark.parametrize("k", [2, 3, 5])
def test_pairwise_sum_is_p_times_mean(k):
    p = k * (k - 1) // 2
    gen = torch.Generator().manual_seed(k)
    logits = torch.randn(4 * k, p, generator=gen, dtype=torch.float64) * 3
    index = torch.arange(k).repeat_interleave(4)
    total = losses.classifier_loss_pairwise(logits, index, k, reduction="sum")
    mean = losses.classifier_loss_pairwise(logits, index, k, reduction="mean")
    assert torch.allclose(total, p * mean, rtol=1e-12)
    assert torch.equal(total, losses.classifier_loss_pairwise(logits, index, k))  # the default


@pytest.mark.parametrize("reduction", ["none", "Sum", "", "avg"])
def test_bad_reduction_is_rejected(reduction):
    index = torch.arange(3).repeat_interleave(2)
    with pytest.raises(ValueError, match="classifier_loss_one_vs_all: reduction must be one of"):
        losses.classifier_loss_one_vs_all(torch.zeros(6, 3), index, reduction=reduction)
    with pytest.raises(ValueError, match="classifier_loss_pairwise: reduction must be one of"):
        losses.classifier_loss_pairwise(torch.zeros(6, 3), index, 3, reduction=reduction)


@pytest.mark.parametrize("variant", ["general", "one_vs_all", "pairwise"])
def test_classifier_losses_give_finite_gradients(variant):
    k = 3
    width = k * (k - 1) // 2 if variant == "pairwise" else k
    logits = (torch.randn(9, width) * 50).requires_grad_()
    index = torch.arange(k).repeat_interleave(3)
    if variant == "general":
        loss = losses.classifier_loss_general(logits, index)
    elif variant == "one_vs_all":
        loss = losses.classifier_loss_one_vs_all(logits, index)
    else:
        loss = losses.classifier_loss_pairwise(logits, index, k)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
