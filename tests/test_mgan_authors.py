"""MGAN as its authors built it (Hoang et al., ICLR 2018) and MIM-GAN's default:

- ``DCGAN(bn_offset=False)`` fixes the BN shift in G's shared layers only; the
  per-generator first layer keeps a learnable shift, without which b_k is dead;
- ``DCGAN(d_input_batch_norm=True)`` normalises D's first convolution too;
- the one-vs-all and pairwise classifier losses sum their classifiers' terms (the paper's
  equations) unless ``reduction="mean"`` / ``MGAN(diversity_reduction="mean")``;
- MIM-GAN keeps MGAN's classifier term by default, because the MI penalty is 0, with a
  0 gradient, for generators that have collapsed together.
"""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn

from mgan_lightning import losses
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.methods import MGAN, MIMGAN
from mgan_lightning.nets import DCGAN, MLP, GeneratorBank

K, B, D = 3, 8, 6


def _bn(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


# ------------------------------------------------------------- G's BN offset
def test_bn_offset_false_fixes_shared_shifts_and_keeps_the_per_generator_shift():
    torch.manual_seed(0)
    bank = DCGAN(width=4, bn_offset=False).generator_bank(K, D, (3, 32, 32))
    shared = _bn(bank.body)
    assert len(shared) == 2  # 32 px: two shared ConvTranspose + BN blocks
    assert all(bn.bias is None and bn.weight is not None for bn in shared)
    assert bank.norm is not None
    shift = bank.norm.norm.bias
    assert isinstance(shift, nn.Parameter) and shift.shape == (K * bank.hidden_dim,)
    bank.train()
    out = bank(torch.randn(B, D))
    (out * torch.randn_like(out)).sum().backward()
    assert shift.grad is not None and shift.grad.abs().sum() > 0
    # ... and it reaches every generator's slice.
    per_generator = shift.grad.reshape(K, -1).abs().sum(1)
    assert (per_generator > 0).all()


def test_bn_offset_true_learns_every_shift():
    bank = DCGAN(width=4, bn_offset=True).generator_bank(K, D, (3, 32, 32))
    assert all(isinstance(bn.bias, nn.Parameter) for bn in _bn(bank))


def _twins(bank: GeneratorBank) -> None:
    """Generators 0 and 1 get the same W_k, b_k and BN scale."""
    with torch.no_grad():
        bank.weight[1].copy_(bank.weight[0])
        bank.bias[1].copy_(bank.bias[0])
        h = bank.hidden_dim
        bank.norm.norm.weight[h : 2 * h].copy_(bank.norm.norm.weight[:h])


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_identical_w_k_with_different_bn_shift_give_different_generators(mode):
    torch.manual_seed(0)
    bank = DCGAN(width=4, bn_offset=False).generator_bank(K, D, (1, 32, 32))
    _twins(bank)
    bank.train(mode == "train")
    z = torch.randn(B, D)
    with torch.no_grad():
        same = bank(z)
        assert (same[0] - same[1]).norm() <= 1e-5 * same[0].norm()  # true twins coincide
        h = bank.hidden_dim
        bank.norm.norm.bias[h : 2 * h].uniform_(-0.5, 0.5)  # generator 1's own shift
        out = bank(z)
    # (relative: in eval mode an untrained DCGAN's outputs are tiny)
    assert (out[0] - out[1]).norm() > 0.1 * out[0].norm() > 0
    if mode == "eval":  # (in train mode the shared BN's batch statistics mix generators)
        assert torch.allclose(out[0], same[0], atol=1e-6)  # generator 0 untouched


def test_without_a_per_generator_bn_shift_b_k_is_dead():
    """Why the per-generator layer keeps its shift: BN subtracts the batch mean, so b_k
    cancels (train mode) and the generators could differ only in W_k."""
    torch.manual_seed(0)
    body = nn.Linear(5, 2)
    bank = GeneratorBank(K, D, 5, body, batch_norm=True, bn_offset=False)
    z = torch.randn(16, D)
    before = bank(z)
    with torch.no_grad():
        bank.bias.uniform_(-3, 3)
    assert torch.allclose(bank(z), before, atol=1e-5)


# ------------------------------------------------------------- D's input BN
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("input_bn", [False, True])
def test_d_input_batch_norm(size, input_bn):
    torch.manual_seed(0)
    arch = DCGAN(width=4, d_input_batch_norm=input_bn)
    critic = arch.critic((3, size, size), num_classes=K)
    layers = list(critic.body)
    first = layers[0]
    assert isinstance(first, nn.Conv2d) and first.kernel_size == (4, 4) and first.stride == (2, 2)
    n_doublings = {32: 3, 64: 4}[size]
    assert len(_bn(critic.body)) == n_doublings - 1 + int(input_bn)
    if input_bn:
        assert first.bias is None
        assert isinstance(layers[1], nn.BatchNorm2d) and layers[1].num_features == 4
    else:
        assert first.bias is not None
        assert isinstance(layers[1], nn.LeakyReLU)
    d_logits, c_logits = critic(torch.randn(B, 3, size, size))
    assert d_logits.shape == (B,) and c_logits.shape == (B, K)
    assert torch.isfinite(d_logits).all() and torch.isfinite(c_logits).all()


def test_d_input_batch_norm_is_stored_in_the_hyperparameters():
    model = MGAN(
        sample_shape=(3, 32, 32),
        num_generators=2,
        architecture=DCGAN(width=4, bn_offset=False, d_input_batch_norm=True),
    )
    init_args = model.hparams["architecture"]["init_args"]
    assert init_args["d_input_batch_norm"] is True and init_args["bn_offset"] is False


# ------------------------------------------------------------- sum vs mean
def _logits(k: int, width: int, n: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(10 + k)
    logits = torch.randn(k * n, width, generator=gen, dtype=torch.float64) * 2
    return logits, torch.arange(k).repeat_interleave(n)


def _old_one_vs_all(logits: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """The averaged form this library used before ``reduction``, written out."""
    terms = []
    for c in range(k):
        mine = nn.functional.softplus(-logits[index == c, c]).mean()
        others = [nn.functional.softplus(logits[index == j, c]).mean() for j in range(k) if j != c]
        terms.append(mine + sum(others) / (k - 1))
    return sum(terms) / k


def _old_pairwise(logits: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    terms = []
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            terms.append(
                nn.functional.softplus(-logits[index == i, p]).mean()
                + nn.functional.softplus(logits[index == j, p]).mean()
            )
            p += 1
    return sum(terms) / len(terms)


@pytest.mark.parametrize("k", [2, 4])
def test_mgan_mean_reproduces_the_old_value_and_sum_is_the_paper_scale(k):
    p = k * (k - 1) // 2
    for diversity, width, old, factor in (
        ("one_vs_all", k, _old_one_vs_all, k),
        ("pairwise", p, _old_pairwise, p),
    ):
        logits, index = _logits(k, width)
        mean = MGAN(num_generators=k, diversity=diversity, diversity_reduction="mean")
        paper = MGAN(num_generators=k, diversity=diversity)
        assert paper.diversity_reduction == "sum"
        expected = old(logits, index, k)
        assert torch.allclose(mean.classifier_loss(logits, index), expected, rtol=1e-12)
        got = paper.classifier_loss(logits, index)
        assert torch.allclose(got, factor * expected, rtol=1e-12), diversity


def test_general_diversity_ignores_the_reduction():
    logits, index = _logits(3, 3)
    expected = losses.classifier_loss_general(logits, index)
    for reduction in ("sum", "mean"):
        model = MGAN(num_generators=3, diversity="general", diversity_reduction=reduction)
        assert torch.equal(model.classifier_loss(logits, index), expected)


@pytest.mark.parametrize("bad", ["none", "SUM", "avg", None])
def test_bad_diversity_reduction_names_the_field(bad):
    with pytest.raises(ValueError, match="model.diversity_reduction"):
        MGAN(num_generators=3, diversity="one_vs_all", diversity_reduction=bad)


def _fit_and_reload(model, tmp_path):
    trainer = Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=GaussianMixture2D(num_train=256, batch_size=32))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    return hparams, type(model).load_from_checkpoint(path)


def test_mgan_checkpoint_keeps_the_diversity_reduction(tmp_path):
    model = MGAN(
        num_generators=3,
        diversity="pairwise",
        diversity_reduction="mean",
        architecture=MLP(g_hidden=8, d_hidden=8),
    )
    assert model.hparams["diversity_reduction"] == "mean"
    hparams, loaded = _fit_and_reload(model, tmp_path)
    assert hparams["diversity_reduction"] == "mean"
    assert loaded.diversity_reduction == "mean" and loaded.diversity == "pairwise"


# ------------------------------------------------------------- MIM-GAN's default
def test_mimgan_keeps_the_classifier_term_by_default_and_takes_no_reduction(tmp_path):
    model = MIMGAN(num_generators=2, architecture=MLP(g_hidden=8, d_hidden=8))
    assert model.keep_classifier_term is True
    assert model.hparams["keep_classifier_term"] is True
    assert "diversity" not in model.hparams and "diversity_reduction" not in model.hparams
    with pytest.raises(TypeError, match="diversity_reduction"):
        MIMGAN(num_generators=2, diversity_reduction="mean")
    hparams, loaded = _fit_and_reload(model, tmp_path)
    assert "diversity_reduction" not in hparams and hparams["keep_classifier_term"] is True
    assert loaded.keep_classifier_term is True and loaded.diversity == "general"


@pytest.mark.parametrize("k", [2, 4])
def test_mi_penalty_is_zero_and_flat_when_c_cannot_tell_generators_apart(k):
    """The motivating fact, on C's logits: collapsed generators, C's answer the same on
    every sample (Y_k = Y_j = y for every z), so P = y y^T = p q^T and I = 0 with a 0
    gradient; MGAN's L_C is log K there, with a gradient that is not 0."""
    n = 16
    model = MIMGAN(num_generators=k)
    index = torch.arange(k).repeat_interleave(n)
    row = torch.randn(k) * 0.1  # about uniform, not exactly
    logits = row.expand(k * n, k).clone().requires_grad_()
    mi = model.pairwise_mutual_information(logits, index)
    (grad,) = torch.autograd.grad(mi.sum(), logits)
    assert mi.abs().max() < 1e-6
    assert grad.abs().max() < 1e-6
    uniform = torch.zeros(k * n, k, requires_grad=True)
    l_c = model.classifier_loss(uniform, index)
    (grad_c,) = torch.autograd.grad(l_c, uniform)
    assert l_c.item() == pytest.approx(math.log(k), rel=1e-6)
    assert grad_c.abs().min() > 1e-3  # every logit is pushed: (softmax - onehot) / N


@pytest.mark.parametrize("keep", [False, True])
def test_collapsed_generators_get_a_push_only_from_the_classifier_term(keep):
    """The same fact through the whole model: all K generators output the same point
    (equal b_k, W_k = 0) and C, which cannot tell them apart, answers uniformly there
    while still reacting to its input. The MI penalty is 0 and sends the generators no
    gradient; with ``keep_classifier_term`` (the default) G's loss holds beta * log K and
    its gradient pushes the generators apart."""
    torch.manual_seed(0)
    beta = 0.5
    model = MIMGAN(
        num_generators=K,
        latent_dim=2,
        architecture=MLP(g_hidden=8, d_hidden=8),
        beta=beta,
        lam=1.0,
        keep_classifier_term=keep,
    )
    with torch.no_grad():
        model.generators.weight.zero_()
        model.generators.bias.copy_(model.generators.bias[:1].expand_as(model.generators.bias))
    fake, index, z = model.fake_batch(30)
    assert torch.allclose(fake, fake[:1].expand_as(fake))  # collapsed to one point
    head = model.critic.classifier
    with torch.no_grad():  # C answers uniformly on that point; its weights stay non-zero
        features = model.critic.body(fake[:1])
        head.bias.copy_(-(features @ head.weight.T)[0])
    loss, logs = model.generator_loss(fake, index, z)
    assert abs(logs["loss/g_mi"].item()) < 1e-6
    params = [model.generators.weight, model.generators.bias]
    mi_grads = torch.autograd.grad(logs["loss/g_mi"], params, retain_graph=True)
    assert all(g.abs().max() < 1e-6 for g in mi_grads)
    assert ("loss/g_diversity" in logs) == keep
    adversarial = logs["loss/g"]
    if not keep:
        assert torch.allclose(loss, adversarial + logs["loss/g_mi"])
        return
    assert logs["loss/g_diversity"].item() == pytest.approx(math.log(K), rel=1e-5)
    assert torch.allclose(loss, adversarial + model.lam * logs["loss/g_mi"] + beta * math.log(K))
    _, bias_grad = torch.autograd.grad(beta * logs["loss/g_diversity"], params)
    assert bias_grad.abs().max() > 1e-6
    # Each generator is pushed its own way, so the twins come apart.
    for i in range(K):
        for j in range(i + 1, K):
            assert not torch.allclose(bias_grad[i], bias_grad[j], atol=1e-7), (i, j)
