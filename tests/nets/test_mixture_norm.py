"""Mixture normalization: K = 1 is batch norm (outputs, gradients, running statistics, eval),
K = 2 separates the modes of a bimodal channel, the computation is batched over K, safe in
float32 and bf16, draws nothing from the global RNG, and the DCGAN generator can use it in
both generator containers without changing its default modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from mgan_lightning.nets import DCGAN, MixtureNorm1d, MixtureNorm2d
from mgan_lightning.nets.mixture_norm import MixtureNorm

SHAPES = [
    pytest.param(MixtureNorm1d, nn.BatchNorm1d, (16, 3), id="1d-NC"),
    pytest.param(MixtureNorm1d, nn.BatchNorm1d, (8, 3, 7), id="1d-NCL"),
    pytest.param(MixtureNorm2d, nn.BatchNorm2d, (8, 3, 5, 5), id="2d"),
]


def _twins(mixture_cls, batch_cls, momentum, affine: bool):
    torch.manual_seed(0)
    mn = mixture_cls(3, num_components=1, momentum=momentum, affine=affine)
    bn = batch_cls(3, momentum=momentum, affine=affine)
    if affine:
        with torch.no_grad():
            bn.weight.normal_()
            bn.bias.normal_()
            mn.weight.copy_(bn.weight)
            mn.bias.copy_(bn.bias)
    return mn, bn


@pytest.mark.parametrize(("mixture_cls", "batch_cls", "shape"), SHAPES)
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
def test_one_component_is_batch_norm(mixture_cls, batch_cls, shape, momentum, affine) -> None:
    mn, bn = _twins(mixture_cls, batch_cls, momentum, affine)
    for _ in range(5):  # training: batch statistics, gradients, running estimates
        x = torch.randn(shape) * 3 + 2
        x_mn, x_bn = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_mn, y_bn = mn(x_mn), bn(x_bn)
        torch.testing.assert_close(y_mn, y_bn, rtol=1e-5, atol=1e-5)
        upstream = torch.randn(shape)
        (y_mn * upstream).sum().backward()
        (y_bn * upstream).sum().backward()
        torch.testing.assert_close(x_mn.grad, x_bn.grad, rtol=1e-5, atol=1e-5)
        if affine:
            torch.testing.assert_close(mn.weight.grad, bn.weight.grad, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(mn.bias.grad, bn.bias.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mn.running_mean[:, 0], bn.running_mean, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(mn.running_var[:, 0], bn.running_var, rtol=1e-6, atol=1e-6)
    assert int(mn.num_batches_tracked) == int(bn.num_batches_tracked) == 5
    mn.eval()
    bn.eval()
    x = torch.randn(shape) * 3 + 2
    torch.testing.assert_close(mn(x), bn(x), rtol=1e-6, atol=1e-6)


def _bimodal(n: int = 2000, channels: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel, half the values ~ N(-4, 1) and half ~ N(6, 0.5^2); and the mode labels."""
    gen = torch.Generator().manual_seed(1)
    low = torch.randn(n // 2, channels, generator=gen) - 4
    high = torch.randn(n // 2, channels, generator=gen) * 0.5 + 6
    labels = torch.arange(n) >= n // 2
    return torch.cat([low, high]), labels


def test_two_components_normalise_each_mode_of_a_bimodal_channel() -> None:
    x, high = _bimodal()
    mn = MixtureNorm1d(4, num_components=2, affine=False)
    y = mn(x)
    for mode in (~high, high):
        assert y[mode].mean(0).abs().max() < 0.05
        assert (y[mode].std(0) - 1).abs().max() < 0.05
    # batch norm (K = 1) cannot: it maps the modes to about -1 and +1
    assert (MixtureNorm1d(4, num_components=1, affine=False)(x)[high].mean(0) > 0.9).all()


def test_modes_on_alternating_columns_survive_the_estimators_subsample() -> None:
    """Up-convolutions make even and odd positions differ: the gradient-free EM rounds read a
    subsample (64 * 16 * 16 values per channel here is more than it reads), which must not
    see one parity only."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, 3, 16, 16, generator=gen) - 4
    x[..., 1::2] = torch.randn(64, 3, 16, 8, generator=gen) * 0.5 + 6
    y = MixtureNorm2d(3, num_components=2, affine=False)(x)
    for mode in (y[..., 0::2], y[..., 1::2]):
        assert mode.mean(dim=(0, 2, 3)).abs().max() < 0.05
        assert (mode.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


def test_running_mixture_finds_the_modes_and_normalises_in_eval() -> None:
    x, high = _bimodal()
    mn = MixtureNorm2d(4, num_components=2, momentum=None, affine=False)
    for i in range(4):  # the modes, in four shuffled batches of (N, C, 1, 1)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(i))
        mn(x[order][:, :, None, None])
    # components sorted by mean: the k-th running component follows one mode
    torch.testing.assert_close(mn.running_mean[:, 0], torch.full((4,), -4.0), atol=0.1, rtol=0)
    torch.testing.assert_close(mn.running_mean[:, 1], torch.full((4,), 6.0), atol=0.1, rtol=0)
    torch.testing.assert_close(mn.running_var[:, 0], torch.full((4,), 1.0), atol=0.1, rtol=0)
    torch.testing.assert_close(mn.running_var[:, 1], torch.full((4,), 0.25), atol=0.03, rtol=0)
    torch.testing.assert_close(mn.running_weight, torch.full((4, 2), 0.5), atol=0.02, rtol=0)
    mn.eval()
    y = mn(x[:, :, None, None]).flatten(1)
    for mode in (~high, high):
        assert y[mode].mean(0).abs().max() < 0.1
        assert (y[mode].std(0) - 1).abs().max() < 0.1


@pytest.mark.parametrize("k", [2, 3, 8])
def test_gradients_flow_and_are_finite(k: int) -> None:
    torch.manual_seed(0)
    mn = MixtureNorm2d(6, num_components=k)
    x = (torch.randn(16, 6, 8, 8) * torch.rand(6)[:, None, None] * 4).requires_grad_()
    y = mn(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    assert mn.weight is not None and mn.bias is not None
    for grad in (x.grad, mn.weight.grad, mn.bias.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_eight_components_cost_the_same_operations_as_two() -> None:
    """No Python loop over K: the number of operators run does not grow with K."""

    def ops(k: int) -> int:
        mn = MixtureNorm2d(4, num_components=k)
        x = torch.randn(8, 4, 4, 4, requires_grad=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            mn(x).sum().backward()
        return sum(event.count for event in prof.key_averages())

    assert ops(8) == ops(2)


@pytest.mark.parametrize(
    "x",
    [
        pytest.param(torch.zeros(16, 3, 4, 4), id="constant"),
        pytest.param(torch.randn(16, 3, 4, 4).round(), id="few-values"),
        pytest.param(torch.randn(16, 3, 4, 4) + 1e4, id="large-offset"),
        pytest.param(torch.randn(16, 3, 4, 4) * 1e-4, id="tiny-scale"),
        pytest.param(
            torch.cat([torch.zeros(15, 3, 4, 4), torch.full((1, 3, 4, 4), 100.0)]), id="outlier"
        ),
    ],
)
def test_degenerate_batches_stay_finite(x: torch.Tensor) -> None:
    mn = MixtureNorm2d(3, num_components=4)
    x = x.clone().requires_grad_()
    y = mn(x)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and torch.isfinite(y).all()
    for buffer in (mn.running_mean, mn.running_var, mn.running_weight):
        assert torch.isfinite(buffer).all()
    mn.eval()
    assert torch.isfinite(mn(x)).all()


def test_deterministic_and_draws_nothing_from_the_global_rng() -> None:
    x = torch.randn(32, 5, 3, 3)
    state = torch.random.get_rng_state()
    first, second = MixtureNorm2d(5, 3)(x), MixtureNorm2d(5, 3)(x)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(first, second)


def test_bf16_autocast_computes_in_float32() -> None:
    torch.manual_seed(0)
    mn = MixtureNorm2d(4, num_components=2)
    x = torch.randn(8, 4, 6, 6)
    reference = mn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = mn(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), reference, atol=0.1, rtol=0.05)
    assert mn.running_mean.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_autocast() -> None:
    mn = MixtureNorm2d(4, num_components=3).cuda()
    x = torch.randn(8, 4, 6, 6, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = mn(nn.functional.conv2d(x, torch.eye(4, device="cuda")[:, :, None, None]))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    y.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_arguments_and_shapes_are_checked() -> None:
    for bad in (dict(num_components=0), dict(em_iterations=0), dict(momentum=2.0)):
        with pytest.raises(ValueError):
            MixtureNorm(3, **bad)
    with pytest.raises(ValueError, match="MixtureNorm2d expects"):
        MixtureNorm2d(3)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="MixtureNorm1d expects"):
        MixtureNorm1d(3)(torch.randn(4, 3, 2, 2))
    with pytest.raises(ValueError, match="channels"):
        MixtureNorm1d(3)(torch.randn(4, 5))
    with pytest.raises(ValueError, match="more than 1 value"):
        MixtureNorm1d(3)(torch.randn(1, 3))


# ---------------------------------------------------------------------------- DCGAN
SHAPE = (3, 32, 32)
# the 32 px DCGAN generator's state_dict as batch norm builds it (checkpoints rely on it)
DEFAULT_G_KEYS = [
    "weight",
    "bias",
    "norm.norm.weight",
    "norm.norm.bias",
    "norm.norm.running_mean",
    "norm.norm.running_var",
    "norm.norm.num_batches_tracked",
    "body.1.weight",
    "body.2.weight",
    "body.2.bias",
    "body.2.running_mean",
    "body.2.running_var",
    "body.2.num_batches_tracked",
    "body.4.weight",
    "body.5.weight",
    "body.5.bias",
    "body.5.running_mean",
    "body.5.running_var",
    "body.5.num_batches_tracked",
    "body.7.weight",
    "body.7.bias",
]


def test_default_dcgan_generator_is_unchanged() -> None:
    for arch in (DCGAN(width=4), DCGAN(width=4, g_norm="batch")):
        bank = arch.generator_bank(2, 8, SHAPE)
        assert list(bank.state_dict()) == DEFAULT_G_KEYS
        assert not any(isinstance(m, MixtureNorm) for m in bank.modules())
        assert sum(isinstance(m, nn.BatchNorm2d) for m in bank.body.children()) == 2


def test_mixture_dcgan_keeps_the_batch_norm_generator_weights() -> None:
    """Same seed, same draws: the networks differ only in the normalisation layers."""
    torch.manual_seed(0)
    batch = DCGAN(width=4).generator_bank(2, 8, SHAPE).state_dict()
    torch.manual_seed(0)
    mixture = DCGAN(width=4, g_norm="mixture").generator_bank(2, 8, SHAPE).state_dict()
    for name, value in batch.items():
        if "running" not in name and "num_batches" not in name:
            assert torch.equal(mixture[name], value), name
    assert mixture["body.2.running_mean"].shape == (8, 2)  # (C, K)


@pytest.mark.parametrize(("layers", "expected"), [(None, [0, 1]), ([1], [1]), ([0], [0])])
def test_g_norm_layers_picks_the_blocks(layers, expected) -> None:
    arch = DCGAN(width=4, g_norm="mixture", g_norm_components=3, g_norm_layers=layers)
    norms = [
        m for m in arch.generator_bank(1, 8, SHAPE).body.children() if "Norm" in type(m).__name__
    ]
    assert [i for i, m in enumerate(norms) if isinstance(m, MixtureNorm2d)] == expected
    assert all(m.num_components == 3 for m in norms if isinstance(m, MixtureNorm2d))


def test_dcgan_norm_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="g_norm must be"):
        DCGAN(g_norm="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="g_norm_components"):
        DCGAN(g_norm="mixture", g_norm_components=0)
    with pytest.raises(ValueError, match="needs g_norm='mixture'"):
        DCGAN(g_norm_layers=[0])
    with pytest.raises(ValueError, match="out of range"):
        DCGAN(width=4, g_norm="mixture", g_norm_layers=[2]).generator_bank(1, 8, SHAPE)


@pytest.mark.parametrize("container", ["shared", "independent"])
def test_mixture_dcgan_generates_and_trains_in_both_containers(container: str) -> None:
    torch.manual_seed(0)
    arch = DCGAN(width=4, g_norm="mixture", g_norm_components=2, bn_offset=False)
    k, n, latent = 3, 6, 8
    gens = (
        arch.generator_bank(k, latent, SHAPE)
        if container == "shared"
        else arch.independent_generators(k, latent, SHAPE)
    )
    critic = arch.critic(SHAPE)
    opt_g = torch.optim.Adam(gens.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(critic.parameters(), 1e-3, betas=(0.5, 0.999))
    real = torch.rand(k * n, *SHAPE) * 2 - 1
    bce = nn.functional.binary_cross_entropy_with_logits
    before = [p.detach().clone() for p in gens.parameters()]
    for _ in range(2):  # D step, then G step (non-saturating loss)
        fake = gens(torch.randn(k, n, latent))
        assert fake.shape == (k, n, *SHAPE)
        d_real = critic(real)[0]
        d_fake = critic(fake.detach().flatten(0, 1))[0]
        loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d_fake = critic(gens(torch.randn(n, latent)).flatten(0, 1))[0]
        loss_g = bce(d_fake, torch.ones_like(d_fake))
        opt_g.zero_grad()
        loss_g.backward()
        assert all(torch.isfinite(p.grad).all() for p in gens.parameters() if p.grad is not None)
        opt_g.step()
        assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    assert all(not torch.equal(b, p) for b, p in zip(before, gens.parameters()))
    gens.eval()
    samples = gens(torch.randn(n, latent))
    assert samples.shape == (k, n, *SHAPE) and torch.isfinite(samples).all()


def test_independent_slots_with_mixture_norm_compute_what_their_own_network_computes() -> None:
    """vmap over the data-dependent EM gives each slot its own network's output and
    running mixture."""
    torch.manual_seed(0)
    arch = DCGAN(width=4, g_norm="mixture", g_norm_components=3)
    gens = arch.independent_generators(2, 8, SHAPE)
    nets = []
    for k in range(2):
        net = gens.make()
        names = gens.param_names + gens.buffer_names
        net.load_state_dict({n: getattr(gens, n.replace(".", "__"))[k].clone() for n in names})
        nets.append(net)
    z = torch.randn(2, 5, 8)
    for mode in (True, False, True):
        gens.train(mode)
        out = gens(z)
        for k, net in enumerate(nets):
            net.train(mode)
            torch.testing.assert_close(out[k], net(z[k])[0], atol=1e-5, rtol=1e-4)
    for name in gens.buffer_names:
        for k, net in enumerate(nets):
            mine = getattr(gens, name.replace(".", "__"))[k]
            torch.testing.assert_close(mine, net.state_dict()[name], atol=1e-5, rtol=1e-4)
