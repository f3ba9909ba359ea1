"""Stacked-MNIST mode counting on hand-made predictions, both counting rules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mgan_lightning.metrics.stacked_mnist import StackedMNISTModes, classify_channels


def predictions(rows: list[tuple[tuple[int, int, int], tuple[float, float, float]]]):
    """Probabilities (N, 3, 10): digit d with confidence c, the rest spread evenly."""
    probs = torch.zeros(len(rows), 3, 10)
    for i, (digits, confidences) in enumerate(rows):
        for ch, (d, c) in enumerate(zip(digits, confidences)):
            probs[i, ch] = (1 - c) / 9
            probs[i, ch, d] = c
    return probs


HAND_MADE = [
    ((1, 2, 3), (0.99, 0.99, 0.99)),
    ((1, 2, 3), (0.99, 0.90, 0.99)),  # one unsure digit
    ((4, 5, 6), (0.99, 0.96, 0.99)),
    ((0, 0, 0), (0.97, 0.98, 0.999)),
    ((9, 9, 9), (0.50, 0.99, 0.99)),  # one unsure digit
]


def kl_uniform(q: list[float]) -> float:
    return sum(p * math.log(p / 0.001) for p in q)


def test_rule_all_counts_every_predicted_triple():
    metric = StackedMNISTModes(rule="all")
    metric.update(predictions(HAND_MADE))
    out = metric.compute()
    assert metric.mode_counts[123] == 2 and metric.mode_counts[456] == 1
    assert metric.mode_counts[0] == 1 and metric.mode_counts[999] == 1
    assert int(metric.mode_counts.sum()) == 5
    assert float(out["modes"]) == 4
    assert float(out["kl"]) == pytest.approx(kl_uniform([0.4, 0.2, 0.2, 0.2]), rel=1e-12)
    assert float(out["counted"]) == 1.0


def test_rule_confident_counts_only_sure_triples():
    metric = StackedMNISTModes(rule="confident", threshold=0.95)
    metric.update(predictions(HAND_MADE))
    out = metric.compute()
    assert {int(m) for m in metric.mode_counts.nonzero().flatten()} == {0, 123, 456}
    assert float(out["modes"]) == 3
    assert float(out["kl"]) == pytest.approx(math.log(1000 / 3), rel=1e-12)
    assert float(out["counted"]) == pytest.approx(3 / 5)


def test_uniform_over_all_modes_has_zero_kl_and_nothing_counted_is_nan():
    digits = torch.stack(torch.meshgrid(*[torch.arange(10)] * 3, indexing="ij"), -1)
    probs = nn.functional.one_hot(digits.reshape(-1, 3), 10).float()
    metric = StackedMNISTModes()
    metric.update(probs)
    metric.update(probs)
    out = metric.compute()
    assert float(out["modes"]) == 1000 and float(out["kl"]) == pytest.approx(0.0, abs=1e-12)
    empty = StackedMNISTModes(rule="confident")
    empty.update(predictions([((1, 1, 1), (0.5, 0.5, 0.5))]))
    out = empty.compute()
    assert float(out["modes"]) == 0 and math.isnan(float(out["kl"]))


def test_states_merge_like_processes():
    """Per-mode counts are sum-reduced: two halves merged equal one pass (DDP reduction)."""
    probs = predictions(HAND_MADE)
    whole, a, b = (StackedMNISTModes(rule="confident") for _ in range(3))
    whole.update(probs)
    a.update(probs[:2])
    b.update(probs[2:])
    a.merge_state(b)
    assert torch.equal(a.mode_counts, whole.mode_counts) and int(a.total) == 5
    assert a._reductions["mode_counts"] is not None


class IntensityDigits(nn.Module):
    """A stand-in classifier: a constant image of value v reads as digit round(4.5 (v + 1))."""

    sample_shape = (1, 8, 8)

    def forward(self, x):
        digit = ((x.mean(dim=(1, 2, 3)) + 1) * 4.5).round().long().clamp(0, 9)
        return nn.functional.one_hot(digit, 10).float() * 20


def test_images_are_classified_channel_by_channel():
    triples = torch.tensor([[7, 0, 3], [2, 9, 9]])
    values = triples.float() / 4.5 - 1  # channel c of image i is the constant for its digit
    images = values[:, :, None, None].expand(-1, -1, 12, 12)  # resized to 8 x 8 for the net
    probs = classify_channels(IntensityDigits(), images)
    assert probs.shape == (2, 3, 10)
    assert torch.equal(probs.argmax(-1), triples)
    metric = StackedMNISTModes(IntensityDigits())
    metric.update(images)
    assert {int(m) for m in metric.mode_counts.nonzero().flatten()} == {703, 299}


def test_bad_arguments():
    with pytest.raises(ValueError, match="rule"):
        StackedMNISTModes(rule="most")
    with pytest.raises(ValueError, match="expects images"):
        StackedMNISTModes().update(torch.zeros(4, 10))
