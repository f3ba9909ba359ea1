"""MLP and DCGAN architectures: shapes of the generator bank and the critic, BN options,
and the errors for image sizes DCGAN cannot build."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mgan_lightning.nets import DCGAN, MLP, Critic, GeneratorBank
from mgan_lightning.nets.dcgan import upsampling_plan

K, B, D = 3, 5, 8

ARCHES = [
    pytest.param(MLP(g_hidden=16, d_hidden=16), (2,), id="mlp-2d"),
    pytest.param(MLP(g_hidden=16, g_layers=3, d_hidden=16, d_layers=1), (1, 4, 4), id="mlp-img"),
    pytest.param(DCGAN(width=4), (1, 32, 32), id="dcgan-1x32"),
    pytest.param(DCGAN(width=4), (3, 32, 32), id="dcgan-3x32"),
    pytest.param(DCGAN(width=4), (1, 48, 48), id="dcgan-1x48"),
    pytest.param(DCGAN(width=4), (3, 48, 48), id="dcgan-3x48"),
    pytest.param(DCGAN(width=4), (1, 64, 64), id="dcgan-1x64"),
    pytest.param(DCGAN(width=4), (3, 64, 64), id="dcgan-3x64"),
]


@pytest.mark.parametrize("arch, shape", ARCHES)
def test_generator_bank_output_shape_for_both_z_layouts(arch, shape) -> None:
    torch.manual_seed(0)
    bank = arch.generator_bank(K, D, shape)
    assert isinstance(bank, GeneratorBank)
    shared = bank(torch.randn(B, D))
    independent = bank(torch.randn(K, B, D))
    assert shared.shape == (K, B, *shape)
    assert independent.shape == (K, B, *shape)
    assert torch.isfinite(shared).all() and torch.isfinite(independent).all()


@pytest.mark.parametrize("arch, shape", ARCHES)
def test_shared_z_gives_each_generator_a_different_output(arch, shape) -> None:
    torch.manual_seed(0)
    bank = arch.generator_bank(K, D, shape)
    out = bank(torch.randn(B, D))
    for i in range(K):
        for j in range(i + 1, K):
            assert not torch.allclose(out[i], out[j]), f"generators {i} and {j} coincide"


def test_z_of_wrong_shape_is_rejected() -> None:
    bank = MLP(g_hidden=8).generator_bank(K, D, (2,))
    with pytest.raises(ValueError, match="z must be"):
        bank(torch.randn(K + 1, B, D))
    with pytest.raises(ValueError, match="z must be"):
        bank(torch.randn(B))


@pytest.mark.parametrize("arch, shape", ARCHES)
@pytest.mark.parametrize("num_classes", [0, 4])
def test_critic_output_shapes(arch, shape, num_classes: int) -> None:
    torch.manual_seed(0)
    critic = arch.critic(shape, num_classes)
    assert isinstance(critic, Critic)
    d_logits, c_logits = critic(torch.randn(B, *shape))
    assert d_logits.shape == (B,)
    if num_classes:
        assert c_logits is not None and c_logits.shape == (B, num_classes)
    else:
        assert c_logits is None


def test_classifier_head_does_not_change_the_body_or_d_head() -> None:
    """The classifier head is created last: same seed -> same body and D head."""
    torch.manual_seed(1)
    plain = MLP(d_hidden=16).critic((2,), 0)
    torch.manual_seed(1)
    with_head = MLP(d_hidden=16).critic((2,), 5)
    x = torch.randn(B, 2)
    assert torch.allclose(plain(x)[0], with_head(x)[0])


def _bn_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("size", [8, 32, 48, 64])
def test_dcgan_bn_offset_false_fixes_the_shift_in_the_shared_layers_only(size: int) -> None:
    bank = DCGAN(width=4, bn_offset=False).generator_bank(K, D, (3, size, size))
    shared = _bn_modules(bank.body)
    if size > 8:  # an 8 px image has a single (output) block: no shared BN
        assert shared, "the DCGAN generator's shared blocks should use batch norm"
    for bn in shared:
        assert bn.bias is None
        assert bn.weight is not None  # the scale is still learned
    assert not any("norm.bias" in name for name, _ in bank.body.named_parameters())
    # The per-generator first layer keeps its learnable shift (otherwise b_k would be dead).
    assert bank.norm is not None and isinstance(bank.norm.norm.bias, nn.Parameter)
    # Shared BN without a shift: its features have zero batch mean (train mode).
    bank.train()
    z = torch.randn(K, 16, D) * 3 + 2
    h = bank.input_layer(z).reshape(K * 16, -1)
    for layer in bank.body:
        h = layer(h)
        if isinstance(layer, nn.BatchNorm2d):
            mean = h.mean(dim=(0, 2, 3))
            assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)


@pytest.mark.parametrize("size", [8, 32])
def test_dcgan_bn_offset_true_learns_a_bn_shift(size: int) -> None:
    bank = DCGAN(width=4, bn_offset=True).generator_bank(K, D, (1, size, size))
    assert all(bn.bias is not None for bn in _bn_modules(bank))


@pytest.mark.parametrize("shape", [(3, 32, 48), (3, 48, 32), (32, 32), (1, 32)])
def test_dcgan_rejects_non_square_images(shape) -> None:
    arch = DCGAN(width=4)
    with pytest.raises(ValueError, match="square"):
        arch.generator_bank(K, D, shape)
    with pytest.raises(ValueError, match="square"):
        arch.critic(shape)


@pytest.mark.parametrize("size", [2, 3, 4, 6, 7])
def test_dcgan_rejects_tiny_sizes(size: int) -> None:
    arch = DCGAN(width=4)
    with pytest.raises(ValueError, match=f"cannot build {size} x {size} px images.*got {size}"):
        arch.generator_bank(K, D, (1, size, size))
    with pytest.raises(ValueError, match=f"got {size}"):
        arch.critic((1, size, size))


@pytest.mark.parametrize(
    "size, plan",
    [
        (8, (4, 1)),
        (16, (4, 2)),
        (28, (7, 2)),
        (32, (4, 3)),
        (48, (6, 3)),
        (64, (4, 4)),
        (96, (6, 4)),
        (12, (6, 1)),
    ],
)
def test_upsampling_plan(size: int, plan: tuple[int, int]) -> None:
    start, n = upsampling_plan(size)
    assert (start, n) == plan
    assert start * 2**n == size and start >= 4


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, 9, 15])
def test_upsampling_plan_rejects_sizes_without_a_halving(size: int) -> None:
    with pytest.raises(ValueError, match=str(size)):
        upsampling_plan(size)


def test_dcgan_d_width_shrinks_d_only() -> None:
    """The weak-discriminator regime: D's channels follow d_width, G's follow width."""
    full, weak = DCGAN(width=16), DCGAN(width=16, d_width=4)
    convs = [m for m in weak.critic((3, 32, 32)).modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16]
    full_convs = [m for m in full.critic((3, 32, 32)).modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in full_convs] == [16, 32, 64]
    g_full = sum(p.numel() for p in full.generator_bank(K, D, (3, 32, 32)).parameters())
    g_weak = sum(p.numel() for p in weak.generator_bank(K, D, (3, 32, 32)).parameters())
    assert g_full == g_weak
    out = weak.critic((3, 32, 32), num_classes=K)(torch.randn(5, 3, 32, 32))
    assert out[0].shape == (5,) and out[1].shape == (5, K)


def test_invalid_architecture_arguments() -> None:
    with pytest.raises(ValueError, match="width"):
        DCGAN(width=0)
    with pytest.raises(ValueError, match="d_width"):
        DCGAN(width=4, d_width=0)
    for field in ("g_hidden", "g_layers", "d_hidden", "d_layers"):
        with pytest.raises(ValueError, match=rf"architecture\.{field}\) must be >= 1"):
            MLP(**{field: 0})


def test_mlp_layer_counts() -> None:
    arch = MLP(g_hidden=16, g_layers=3, d_hidden=8, d_layers=4)
    bank = arch.generator_bank(2, D, (2,))
    # One per-generator layer in the bank, g_layers - 1 hidden + 1 output Linear in the body.
    assert sum(isinstance(m, nn.Linear) for m in bank.body.modules()) == 3
    critic = arch.critic((2,), 0)
    assert sum(isinstance(m, nn.Linear) for m in critic.body.modules()) == 4
