"""DCGAN networks (Radford et al. 2016) for square images of 32, 48 or 64 px."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from mgan_lightning.nets.architecture import Architecture
from mgan_lightning.nets.critic import Critic
from mgan_lightning.nets.generator_bank import GeneratorBank
from mgan_lightning.nets.mixture_norm import MixtureNorm, MixtureNorm2d


def upsampling_plan(size: int) -> tuple[int, int]:
    """``(start_size, n_doublings)``: the most doublings with ``start_size >= 4``.

    32 -> (4, 3), 48 -> (6, 3), 64 -> (4, 4), 28 -> (7, 2)."""
    n = 0
    while size % 2 ** (n + 1) == 0 and size // 2 ** (n + 1) >= 4:
        n += 1
    if n == 0:
        raise ValueError(
            f"DCGAN cannot build {size} x {size} px images: the size must be even and at least "
            f"8 (halved down to a start of >= 4 px), e.g. 28, 32, 48 or 64; got {size}. "
            f"Set the data's image_size (data.init_args.image_size) to one of these"
        )
    return size // 2**n, n


def dcgan_init(module: nn.Module) -> None:
    """Weights ~ N(0, 0.02); BN (and mixture-norm) scales ~ N(1, 0.02), shifts 0 (DCGAN
    paper, sec. 4)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, MixtureNorm)):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if isinstance(module, GeneratorBank):
        nn.init.normal_(module.weight, 0.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGAN(Architecture):
    """G: per-generator ``Linear(z -> C0*s*s) + BN + ReLU``, then shared
    ``ConvTranspose(4, 2, 1) + BN + ReLU`` blocks halving the channels, and a last
    ``ConvTranspose -> Tanh``. D/C: ``Conv(4, 2, 1) + [BN] + LeakyReLU(0.2)`` blocks
    doubling the channels, flattened into the heads.

    Choices where the DCGAN paper (Radford et al. 2016) and the MGAN authors' code
    (Hoang et al. 2018) differ:

    - G's BN shift. ``bn_offset=False`` (MGAN's fixed BN offset) fixes the shift at zero
      in the *shared* layers only, as the MGAN authors do. The per-generator first layer
      keeps its learnable BN shift whatever ``bn_offset`` says: BN subtracts the batch
      mean, so the bias ``b_k`` of ``W_k z + b_k`` cancels, and without a BN shift the
      generators would differ only in ``W_k``. (:class:`GeneratorBank` keeps its own
      ``bn_offset`` for other callers.)
    - D's input layer. The DCGAN paper leaves D's first convolution without BN
      (``d_input_batch_norm=False``, our default); the MGAN authors' code normalises every
      D convolution but the output (``d_input_batch_norm=True``, with ``d_batch_norm``).
    - Kernels. Our convolutions are 4x4 with stride 2 (exact halving/doubling); the MGAN
      authors use 5x5 with stride 2. Stated here, not changed.

    G's normalisation. ``g_norm="mixture"`` replaces batch norm in the shared up-convolution
    blocks (all of them, or those listed in ``g_norm_layers``) by
    :class:`~mgan_lightning.nets.mixture_norm.MixtureNorm2d` with ``g_norm_components``
    Gaussians per channel (Kalayeh & Shah 2019, who report a faster and better DCGAN
    generator on CIFAR-10 with it). The per-generator first layer keeps its batch norm (it
    belongs to :class:`GeneratorBank`). The default (``"batch"``) builds the same modules
    and parameter names as before, so existing checkpoints load.

    Args:
        width: channels of the last G block / first D block (C0 = width * 2^(n-1)).
        d_width: channels of D's first block when D should differ from G; ``None`` uses
            ``width``. Shrinking D (``d_width = width // 4``) is the weak-discriminator
            regime of the Unrolled GAN / VEEGAN / PacGAN Stacked MNIST tables, where a
            single DCGAN drops most of the 1,000 modes.
        bn_offset: learn the BN shift of G's shared layers; ``False`` fixes it at zero
            there (MGAN's setting). The per-generator first layer always learns its shift.
        d_batch_norm: batch norm in D's inner blocks.
        d_input_batch_norm: batch norm after D's first convolution too (its bias is then
            dropped), as in the MGAN authors' code; ``False`` follows the DCGAN paper.
        g_norm: normalisation of G's shared blocks: ``"batch"`` or ``"mixture"``.
        g_norm_components: Gaussians per channel of mixture normalization (K; 1 is BN).
        g_norm_layers: which shared blocks (0 = the first up-convolution) use mixture
            normalization; ``None`` means all of them. Only with ``g_norm="mixture"``.
    """

    def __init__(
        self,
        width: int = 64,
        d_width: int | None = None,
        bn_offset: bool = True,
        d_batch_norm: bool = True,
        d_input_batch_norm: bool = False,
        g_norm: Literal["batch", "mixture"] = "batch",
        g_norm_components: int = 2,
        g_norm_layers: list[int] | None = None,
    ) -> None:
        if width < 1:
            raise ValueError(f"DCGAN.width must be >= 1, got {width}")
        if d_width is not None and d_width < 1:
            raise ValueError(f"DCGAN.d_width must be >= 1 or null, got {d_width}")
        self.width = width
        self.d_width = width if d_width is None else d_width
        self.bn_offset = bn_offset
        self.d_batch_norm = d_batch_norm
        self.d_input_batch_norm = d_input_batch_norm
        if g_norm not in ("batch", "mixture"):
            raise ValueError(f"DCGAN.g_norm must be 'batch' or 'mixture', got {g_norm!r}")
        if g_norm_components < 1:
            raise ValueError(f"DCGAN.g_norm_components must be >= 1, got {g_norm_components}")
        if g_norm_layers is not None and g_norm != "mixture":
            raise ValueError("DCGAN.g_norm_layers needs g_norm='mixture'")
        self.g_norm = g_norm
        self.g_norm_components = g_norm_components
        self.g_norm_layers = None if g_norm_layers is None else list(g_norm_layers)

    @staticmethod
    def _image_shape(sample_shape: Sequence[int]) -> tuple[int, int]:
        if len(sample_shape) != 3 or sample_shape[1] != sample_shape[2]:
            raise ValueError(f"DCGAN needs square images (C, S, S), got {tuple(sample_shape)}")
        return sample_shape[0], sample_shape[1]

    def _mixture_layers(self, num_blocks: int) -> set[int]:
        """Indices of the shared G blocks that use mixture normalization."""
        if self.g_norm == "batch":
            return set()
        if self.g_norm_layers is None:
            return set(range(num_blocks))
        bad = [i for i in self.g_norm_layers if not 0 <= i < num_blocks]
        if bad:
            raise ValueError(
                f"DCGAN.g_norm_layers {bad} out of range: this generator has {num_blocks} "
                f"shared normalised block(s), numbered 0 to {num_blocks - 1}"
            )
        return set(self.g_norm_layers)

    def generator_bank(
        self, num_generators: int, latent_dim: int, sample_shape: Sequence[int]
    ) -> GeneratorBank:
        """K DCGAN generators: a per-generator ``Linear + BN + ReLU`` input layer, shared
        up-convolutions."""
        channels, size = self._image_shape(sample_shape)
        start, n = upsampling_plan(size)
        c = self.width * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.Unflatten(1, (c, start, start))]
        mixture = self._mixture_layers(n - 1)
        for i in range(n - 1):
            bn: nn.Module = (
                MixtureNorm2d(c // 2, self.g_norm_components)
                if i in mixture
                else nn.BatchNorm2d(c // 2)
            )
            if not self.bn_offset:
                bn.register_parameter("bias", None)
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), bn, nn.ReLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1), nn.Tanh()]
        bank = GeneratorBank(
            num_generators,
            latent_dim,
            self.width * 2 ** (n - 1) * start * start,
            nn.Sequential(*layers),
            batch_norm=True,
            bn_offset=True,  # b_k needs a BN shift to matter: see the class docstring
        )
        dcgan_init(bank)
        return bank

    def critic(self, sample_shape: Sequence[int], num_classes: int = 0) -> Critic:
        """The DCGAN critic for images of ``sample_shape``, with a classifier head when
        ``num_classes > 0``."""
        channels, size = self._image_shape(sample_shape)
        start, n = upsampling_plan(size)
        c = self.d_width
        layers: list[nn.Module] = [
            nn.Conv2d(channels, c, 4, 2, 1, bias=not self.d_input_batch_norm)
        ]
        if self.d_input_batch_norm:
            layers.append(nn.BatchNorm2d(c))
        layers.append(nn.LeakyReLU(0.2))
        for _ in range(n - 1):
            block: list[nn.Module] = [nn.Conv2d(c, c * 2, 4, 2, 1, bias=not self.d_batch_norm)]
            if self.d_batch_norm:
                block.append(nn.BatchNorm2d(c * 2))
            layers += [*block, nn.LeakyReLU(0.2)]
            c *= 2
        layers.append(nn.Flatten())
        critic = Critic(nn.Sequential(*layers), c * start * start, num_classes)
        dcgan_init(critic.body)
        dcgan_init(critic.real_fake)
        if critic.classifier is not None:
            with torch.random.fork_rng(devices=[]):  # see Critic: the head costs no draws
                dcgan_init(critic.classifier)
        return critic
