"""K generators that share all but their input layer, run as one batched computation."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PerGeneratorBatchNorm(nn.Module):
    """Batch norm with separate statistics and scales for each of K generators.

    Input ``(K, B, H)``. Implemented as one ``BatchNorm1d(K*H)`` over the ``(B, K*H)`` view,
    so generator k's features are normalised over its own B samples only.
    ``offset=False`` fixes the BN shift at zero (MGAN's generator setting).
    """

    def __init__(self, num_generators: int, features: int, offset: bool = True) -> None:
        super().__init__()
        self.k, self.h = num_generators, features
        self.norm = nn.BatchNorm1d(num_generators * features)
        if not offset:
            self.norm.register_parameter("bias", None)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Batch-normalise ``(K, B, F)`` activations per generator and feature."""
        k, b, f = h.shape
        flat = h.transpose(0, 1).reshape(b, k * f)
        return self.norm(flat).reshape(b, k, f).transpose(0, 1)

    def forward_one(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Normalise ``(B, H)`` features of generator ``k`` alone (for tests and inspection)."""
        sl = slice(k * self.h, (k + 1) * self.h)
        n = self.norm
        bias = n.bias[sl] if n.bias is not None else None
        use_batch = n.training or n.running_mean is None
        return F.batch_norm(
            h,
            None if n.running_mean is None else n.running_mean[sl].clone(),
            None if n.running_var is None else n.running_var[sl].clone(),
            n.weight[sl],
            bias,
            use_batch,
            0.0,
            n.eps,
        )


class GeneratorBank(nn.Module):
    """K generators ``G_k(z) = body(act(norm(W_k z + b_k)))`` (MGAN, Hoang et al. 2018, sec. 3.1).

    Only the input layer ``(W_k, b_k)`` (and its batch norm) belongs to generator k; the
    ``body`` is shared. All K input layers run as one ``bmm``; the body then sees one
    batch of ``K * B`` samples. With K = 1 this is an ordinary generator.

    Args:
        num_generators: K.
        latent_dim: size of z.
        hidden_dim: output size of the per-generator layer (input size of ``body``).
        body: shared network mapping ``(N, hidden_dim)`` to ``(N, *sample_shape)``.
        batch_norm: batch-normalise the per-generator layer (per generator).
        bn_offset: learn the BN shift (``False`` fixes it at zero).
    """

    def __init__(
        self,
        num_generators: int,
        latent_dim: int,
        hidden_dim: int,
        body: nn.Module,
        batch_norm: bool = False,
        bn_offset: bool = True,
    ) -> None:
        super().__init__()
        if num_generators < 1:
            raise ValueError(f"num_generators must be >= 1, got {num_generators}")
        self.num_generators = num_generators
        self.latent_dim = latent_dim
        self.hidden_dim = hidden_dim
        self.weight = nn.Parameter(torch.empty(num_generators, latent_dim, hidden_dim))
        self.bias = nn.Parameter(torch.empty(num_generators, hidden_dim))
        bound = 1.0 / math.sqrt(latent_dim)  # nn.Linear's default initialisation
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        self.norm = (
            PerGeneratorBatchNorm(num_generators, hidden_dim, bn_offset) if batch_norm else None
        )
        self.body = body

    def input_layer(self, z: torch.Tensor) -> torch.Tensor:
        """``(K, B, latent)`` or a shared ``(B, latent)`` -> ``(K, B, hidden)``."""
        if z.dim() == 2:
            # (B, d) @ (K, d, h) broadcasts to (K, B, h) without copying the K weight
            # matrices (an einsum here rearranged the whole bank twice a step).
            h = torch.matmul(z, self.weight)
        elif z.dim() == 3 and z.shape[0] == self.num_generators:
            h = torch.bmm(z, self.weight)
        else:
            raise ValueError(
                f"z must be (B, {self.latent_dim}) or ({self.num_generators}, B, "
                f"{self.latent_dim}), got {tuple(z.shape)}"
            )
        h = h + self.bias[:, None, :]
        if self.norm is not None:
            h = self.norm(h)
        return torch.relu(h)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Samples of all K generators, ``(K, B, *sample_shape)``.

        ``z`` is either ``(K, B, latent)`` (independent noise per generator) or
        ``(B, latent)`` (the same noise fed to every generator)."""
        h = self.input_layer(z)
        k, b, _ = h.shape
        x = self.body(h.reshape(k * b, -1))
        return x.reshape(k, b, *x.shape[1:])

    def forward_one(self, k: int, z: torch.Tensor) -> torch.Tensor:
        """Generator ``k`` run alone on ``(B, latent)``: ``(B, *sample_shape)``."""
        h = z @ self.weight[k] + self.bias[k]
        if self.norm is not None:
            h = self.norm.forward_one(k, h)
        return self.body(torch.relu(h))
