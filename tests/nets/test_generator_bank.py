"""The batched generator bank equals K generators run one at a time, and its per-generator
batch norm normalises each generator over its own samples only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mgan_lightning.nets import DCGAN, MLP, GeneratorBank
from mgan_lightning.nets.generator_bank import PerGeneratorBatchNorm

K, B, D = 4, 6, 5


@pytest.mark.parametrize("shared_z", [False, True])
def test_mlp_bank_equals_each_generator_alone_in_train_mode(shared_z: bool) -> None:
    torch.manual_seed(0)
    bank = MLP(g_hidden=16, g_layers=3).generator_bank(K, D, (2,)).train()
    z = torch.randn(B, D) if shared_z else torch.randn(K, B, D)
    out = bank(z)
    for k in range(K):
        alone = bank.forward_one(k, z if shared_z else z[k])
        torch.testing.assert_close(out[k], alone, rtol=1e-5, atol=1e-6)


def test_mlp_bank_matches_an_independent_per_generator_computation() -> None:
    """Recompute generator k by hand from its own input layer and the shared body."""
    torch.manual_seed(0)
    bank = MLP(g_hidden=16, g_layers=2).generator_bank(K, D, (2,))
    z = torch.randn(K, B, D)
    out = bank(z)
    for k in range(K):
        layer = nn.Linear(D, 16)
        with torch.no_grad():
            layer.weight.copy_(bank.weight[k].T)
            layer.bias.copy_(bank.bias[k])
        expected = bank.body(torch.relu(layer(z[k])))
        torch.testing.assert_close(out[k], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [8, 32])
def test_dcgan_bank_equals_each_generator_alone_in_eval_mode(size: int) -> None:
    torch.manual_seed(0)
    bank = DCGAN(width=4).generator_bank(K, D, (3, size, size))
    # Move the running statistics away from their (0, 1) defaults so eval mode matters.
    bank.train()
    with torch.no_grad():
        for _ in range(3):
            bank(torch.randn(K, 16, D) * 2 + 1)
    bank.eval()
    z = torch.randn(K, B, D)
    out = bank(z)
    assert out.shape == (K, B, 3, size, size)
    for k in range(K):
        torch.testing.assert_close(out[k], bank.forward_one(k, z[k]), rtol=1e-4, atol=1e-5)


def _scaled_bank(batch_norm: bool) -> GeneratorBank:
    """A bank whose identity body exposes the per-generator layer, and whose generator k
    multiplies its input by 10**k and shifts it by 100*k: very different scales."""
    bank = GeneratorBank(K, D, D, nn.Identity(), batch_norm=batch_norm)
    with torch.no_grad():
        for k in range(K):
            bank.weight[k] = torch.eye(D) * 10.0**k
            bank.bias[k] = 100.0 * k
    return bank


def test_per_generator_bn_normalises_each_generator_over_its_own_samples() -> None:
    torch.manual_seed(0)
    bank = _scaled_bank(batch_norm=True).train()
    n = 256
    z = torch.randn(K, n, D)
    h = bank.input_layer(z)  # relu(BN(.)); BN weight 1, bias 0 at initialisation
    pre = bank.norm(torch.einsum("kbd,kdh->kbh", z, bank.weight) + bank.bias[:, None, :])
    for k in range(K):
        # Normalised over generator k's samples only: z[k] standardised, whatever the scale.
        x = z[k]
        expected = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + bank.norm.norm.eps)
        torch.testing.assert_close(pre[k], expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(h[k], torch.relu(expected), rtol=1e-4, atol=1e-4)
        assert pre[k].mean(0).abs().max() < 1e-4
        assert (pre[k].std(0, unbiased=False) - 1).abs().max() < 1e-3


def test_per_generator_bn_equals_forward_one_in_train_mode() -> None:
    torch.manual_seed(0)
    bank = _scaled_bank(batch_norm=True).train()
    with torch.no_grad():  # non-trivial BN scale and shift per feature
        bank.norm.norm.weight.uniform_(0.5, 2.0)
        bank.norm.norm.bias.uniform_(-1.0, 1.0)
    z = torch.randn(K, B, D)
    out = bank(z)
    for k in range(K):
        torch.testing.assert_close(out[k], bank.forward_one(k, z[k]), rtol=1e-4, atol=1e-4)


def test_per_generator_bn_running_statistics_are_per_generator() -> None:
    torch.manual_seed(0)
    norm = PerGeneratorBatchNorm(K, 3)
    scales = torch.tensor([1.0, 10.0, 100.0, 1000.0])
    shifts = torch.tensor([0.0, -5.0, 50.0, 7.0])
    x = torch.randn(K, 64, 3) * scales[:, None, None] + shifts[:, None, None]
    norm.train()(x)
    m = norm.norm.momentum
    running_mean = norm.norm.running_mean.reshape(K, 3)
    running_var = norm.norm.running_var.reshape(K, 3)
    torch.testing.assert_close(running_mean, m * x.mean(1), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(
        running_var, (1 - m) + m * x.var(1, unbiased=True), rtol=1e-4, atol=1e-4
    )
    # In eval mode each generator uses its own running statistics.
    norm.eval()
    y = norm(x)
    expected = (x - running_mean[:, None]) / torch.sqrt(running_var[:, None] + norm.norm.eps)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-4)
    for k in range(K):
        torch.testing.assert_close(y[k], norm.forward_one(k, x[k]), rtol=1e-4, atol=1e-4)


def test_one_generator_does_not_affect_another() -> None:
    """Changing generator 0's noise leaves generators 1..K-1 unchanged (train-mode BN
    included), so the batched computation does not leak between generators."""
    torch.manual_seed(0)
    bank = MLP(g_hidden=8).generator_bank(K, D, (2,))
    bank.norm = PerGeneratorBatchNorm(K, 8)
    bank.train()
    z = torch.randn(K, B, D)
    z2 = z.clone()
    z2[0] = z2[0] * 50 + 3
    a, b = bank(z), bank(z2)
    assert not torch.allclose(a[0], b[0])
    torch.testing.assert_close(a[1:], b[1:])


def test_bank_with_one_generator_is_an_ordinary_generator() -> None:
    torch.manual_seed(0)
    bank = MLP(g_hidden=8).generator_bank(1, D, (2,))
    z = torch.randn(B, D)
    assert bank(z).shape == (1, B, 2)
    torch.testing.assert_close(bank(z)[0], bank.forward_one(0, z))


def test_invalid_num_generators() -> None:
    with pytest.raises(ValueError, match="num_generators"):
        GeneratorBank(0, D, 4, nn.Identity())
