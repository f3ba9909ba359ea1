"""Mixture Normalization (Kalayeh & Shah, "Training Faster by Separating Modes of Variation in
Batch-normalized Models", TPAMI 2019): batch norm over a per-channel Gaussian mixture.

Batch norm reads each channel's activations as one Gaussian. Mixture normalization fits K
Gaussians ``(pi_k, mu_k, var_k)`` to the channel's activations in the batch (over the batch and
spatial positions) and normalises every activation by each component, weighted by that
component's posterior:

    x_hat = sum_k p(k | x) (x - mu_k) / sqrt(var_k + eps),     y = gamma * x_hat + beta

with ``p(k | x) = pi_k N(x; mu_k, var_k) / sum_j pi_j N(x; mu_j, var_j)`` and BN's per-channel
affine ``(gamma, beta)``. With K = 1 the posterior is 1 and this is batch norm.

Our reading of the parts the formula leaves open (the paper seeds with k-means++ and runs EM):

- **Seeding, deterministic.** k-means++ draws its seeds at random; training code here reads no
  global RNG, so the K seeds of a channel are its batch quantiles at ``(k + 1/2) / K``: like
  k-means++, spread over the data's mass. Every value then goes to its nearest seed (one hard
  k-means step), which gives the first ``(pi, mu, var)``.
- **EM.** ``em_iterations`` rounds of E-step (posteriors by log-sum-exp) and M-step (weighted
  counts, means and variances). The seeding and all rounds but the last are the estimator,
  as k-means is: they run without gradient, on at most 2,048 values per channel (a fixed odd
  stride through the batch and positions). The last round is one EM step on every value,
  differentiable in ``x`` under the previous round's parameters: its posteriors and moments
  normalise the batch, and the gradient is that of the output computed from them (batch
  norm's gradient when K = 1).
- **Safety.** Posteriors by softmax over log-densities; a component's variance is floored at
  ``1e-3`` of its channel's batch variance (K > 1 only), its mixing weight at ``1e-12``, and
  an empty component's mean stays finite. Computation is in float32 with autocast off
  (float64 stays float64); the output has the input's dtype.
- **Running estimates.** Per channel and component: mean, variance (unbiased by the
  component's effective count ``n_k / (n_k - 1)``, as BN's ``n / (n - 1)``) and mixing weight,
  each an exponential moving average with BN's ``momentum`` (``None``: the cumulative
  average). Components are sorted by mean before they are averaged, so that the k-th running
  component follows the same mode from batch to batch. Evaluation computes the posteriors
  under this running mixture and normalises with it.

Everything is batched over components (no Python loop over K) and uses no data-dependent
Python control flow, so the layer also runs under ``torch.func.vmap`` (as
:class:`~mgan_lightning.nets.IndependentGenerators` runs generators).
"""

from __future__ import annotations

import torch
from torch import nn

_FIT_SAMPLE = 2048  # values per channel the seeding and the gradient-free EM rounds read
_VAR_FLOOR = 1e-3  # a component's variance >= this fraction of its channel's batch variance
_TINY = 1e-12


def _posteriors(
    x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """E-step for ``x`` of shape ``(C, M)`` under ``(C, K)`` parameters: ``p(k | x)``,
    ``d = x - mu_k`` and ``d ** 2``, each ``(C, K, M)``.

    ``log p(k | x) = log pi_k - log(var_k + eps) / 2 - d^2 / (2 (var_k + eps)) - logsumexp``.
    """
    d = x[:, None, :] - mean[:, :, None]
    d2 = d.square()
    v = var + eps
    log_prior = weight.clamp_min(_TINY).log() - 0.5 * v.log()
    log_joint = torch.addcmul(log_prior[:, :, None], d2, (-0.5 / v)[:, :, None])
    return torch.softmax(log_joint, dim=1), d, d2  # softmax: log-sum-exp inside


def _moments(
    post: torch.Tensor, d: torch.Tensor, d2: torch.Tensor, shift: torch.Tensor, floor: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """M-step from posteriors and ``d = x - shift`` (``(C, K, M)``): mixing weights, means,
    floored variances and effective counts, each ``(C, K)``.

    Shifted sums (``mu = shift + E_k[d]``, ``var = E_k[d^2] - E_k[d]^2``) reuse the E-step's
    ``d`` and stay accurate as long as ``shift`` is near ``mu``, as the previous round's means
    are."""
    count = post.sum(dim=-1)
    safe = count.clamp_min(_TINY)
    delta = (post * d).sum(dim=-1) / safe
    var = (post * d2).sum(dim=-1) / safe - delta.square()
    return count / post.shape[-1], shift + delta, var.clamp_min(floor[:, None]), count


def _subsample(x: torch.Tensor) -> torch.Tensor:
    """At most ``_FIT_SAMPLE`` values of each row of ``x`` (``(C, M)``), a fixed odd stride
    apart: odd, so that it does not alias with the even-sized grids of up-convolutions."""
    stride = -(-x.shape[1] // _FIT_SAMPLE)
    if stride > 1 and stride % 2 == 0:
        stride += 1
    return x[:, ::stride]


def _quantile_seeds(x: torch.Tensor, k: int) -> torch.Tensor:
    """Each row's quantiles at ``(j + 1/2) / K``, ascending, ``(C, K)``, for ``x`` ``(C, M)``."""
    values = x.sort(dim=1).values
    m = values.shape[1]
    at = ((torch.arange(k, device=x.device) + 0.5) * (m / k)).long().clamp_(max=m - 1)
    return values[:, at]


def _nearest_seed(x: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """One-hot ``(C, K, M)`` assignment of every value to its nearest seed (seeds ascending:
    the label is the number of midpoints between neighbouring seeds below the value)."""
    k = seeds.shape[1]
    midpoints = (seeds[:, 1:] + seeds[:, :-1]) / 2
    labels = (x[:, None, :] > midpoints[:, :, None]).sum(dim=1)  # (C, M)
    components = torch.arange(k, device=x.device)[None, :, None]
    return (labels[:, None, :] == components).to(x.dtype)


def _mix(post: torch.Tensor, d: torch.Tensor, var: torch.Tensor, eps: float) -> torch.Tensor:
    """``sum_k p(k|x) (x - mu_k) / sqrt(var_k + eps)`` as ``(C, M)``, from ``d = x - mu_k``."""
    return (post * d * torch.rsqrt(var + eps)[:, :, None]).sum(dim=1)


class MixtureNorm(nn.Module):
    """Mixture normalization over dimension 1 of ``(N, C, *)`` inputs; see the module doc.
    :class:`MixtureNorm1d` and :class:`MixtureNorm2d` only check the input's shape.

    Args:
        num_features: C, the channels.
        num_components: K, Gaussians per channel; 1 is batch norm.
        eps: added to every variance, as in batch norm.
        momentum: weight of the batch in the running estimates; ``None`` for the cumulative
            average, as in batch norm.
        affine: learn BN's per-channel scale and shift.
        em_iterations: EM rounds after the seeding (>= 1; unused when K = 1).
    """

    running_mean: torch.Tensor
    running_var: torch.Tensor
    running_weight: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(
        self,
        num_features: int,
        num_components: int = 2,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        em_iterations: int = 2,
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise ValueError(f"num_features must be >= 1, got {num_features}")
        if num_components < 1:
            raise ValueError(f"num_components must be >= 1, got {num_components}")
        if em_iterations < 1:
            raise ValueError(f"em_iterations must be >= 1, got {em_iterations}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        self.num_features = num_features
        self.num_components = num_components
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.em_iterations = em_iterations
        if affine:
            self.weight: nn.Parameter | None = nn.Parameter(torch.ones(num_features))
            self.bias: nn.Parameter | None = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        shape = (num_features, num_components)  # per channel, per component
        self.register_buffer("running_mean", torch.zeros(shape))
        self.register_buffer("running_var", torch.ones(shape))
        self.register_buffer("running_weight", torch.full(shape, 1.0 / num_components))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        """The layer's settings, as ``print(module)`` shows them."""
        return (
            f"{self.num_features}, num_components={self.num_components}, eps={self.eps}, "
            f"momentum={self.momentum}, affine={self.affine}, "
            f"em_iterations={self.em_iterations}"
        )

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"MixtureNorm expects (N, C, *), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``(N, C, *)`` inputs by the channel's mixture (the batch's in training,
        the running estimates in eval mode), then apply the affine transform."""
        self._check_input_dim(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got input {tuple(x.shape)}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            dtype = torch.promote_types(x.dtype, torch.float32)  # bf16/fp16 -> fp32
            flat = x.to(dtype).reshape(x.shape[0], x.shape[1], -1)  # (N, C, L)
            normalise = self._normalise_batch if self.training else self._normalise_running
            x_hat = normalise(flat)
            shape = (1, -1, 1)
            if self.weight is not None:
                x_hat = x_hat * self.weight.to(dtype).view(shape)
            if self.bias is not None:
                x_hat = x_hat + self.bias.to(dtype).view(shape)
        return x_hat.reshape(x.shape).to(x.dtype)

    # ------------------------------------------------------------------ training
    def _normalise_batch(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0] * x.shape[2]
        if n <= 1:
            raise ValueError(
                f"mixture norm needs more than 1 value per channel when training, got input "
                f"of shape {tuple(x.shape)}"
            )
        if self.num_components == 1:  # batch norm, with BN's arithmetic
            mean = x.mean(dim=(0, 2))
            centred = x - mean[None, :, None]
            var = centred.square().mean(dim=(0, 2))
            x_hat = centred * torch.rsqrt(var + self.eps)[None, :, None]
            one = torch.ones_like(mean)[:, None]
            self._update_running(one, mean[:, None], var[:, None], torch.full_like(one, n))
            return x_hat
        xt = x.transpose(0, 1).reshape(x.shape[1], n)  # (C, M): one row per channel
        with torch.no_grad():  # seeding and all EM rounds but the last: the estimator
            xs = _subsample(xt)
            floor = _VAR_FLOOR * xs.var(dim=1, unbiased=False)
            mean = _quantile_seeds(xs, self.num_components)
            d = xs[:, None, :] - mean[:, :, None]
            post = _nearest_seed(xs, mean)
            weight, mean, var, _ = _moments(post, d, d.square(), mean, floor)
            for _ in range(self.em_iterations - 1):
                post, d, d2 = _posteriors(xs, weight, mean, var, self.eps)
                weight, mean, var, _ = _moments(post, d, d2, mean, floor)
        # the last round, differentiable in x (under the previous round's parameters)
        post, d, d2 = _posteriors(xt, weight, mean, var, self.eps)
        weight, new_mean, var, count = _moments(post, d, d2, mean, floor)
        self._update_running(weight, new_mean, var, count)
        x_hat = _mix(post, d - (new_mean - mean)[:, :, None], var, self.eps)
        return x_hat.view(x.shape[1], x.shape[0], x.shape[2]).transpose(0, 1)

    @torch.no_grad()
    def _update_running(
        self, weight: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor
    ) -> None:
        """Moving averages of the batch mixture, components ordered by mean."""
        if self.num_components > 1:
            order = mean.argsort(dim=1)
            weight, mean, var, count = (t.gather(1, order) for t in (weight, mean, var, count))
        unbiased = var * count / torch.maximum(count - 1, count / 2)
        self.num_batches_tracked.add_(1)
        if self.momentum is None:
            factor: torch.Tensor | float = 1.0 / self.num_batches_tracked.float()
        else:
            factor = self.momentum
        for running, batch in (
            (self.running_mean, mean),
            (self.running_var, unbiased),
            (self.running_weight, weight),
        ):
            running.mul_(1 - factor).add_(factor * batch)

    # ---------------------------------------------------------------- evaluation
    def _normalise_running(self, x: torch.Tensor) -> torch.Tensor:
        mean, var = self.running_mean.to(x.dtype), self.running_var.to(x.dtype)
        if self.num_components == 1:
            return (x - mean[:, 0, None]) * torch.rsqrt(var[:, 0, None] + self.eps)
        c, n = x.shape[1], x.shape[0] * x.shape[2]
        xt = x.transpose(0, 1).reshape(c, n)
        post, d, _ = _posteriors(xt, self.running_weight.to(x.dtype), mean, var, self.eps)
        x_hat = _mix(post, d, var, self.eps)
        return x_hat.view(c, x.shape[0], x.shape[2]).transpose(0, 1)


class MixtureNorm1d(MixtureNorm):
    """Mixture normalization of ``(N, C)`` or ``(N, C, L)`` inputs (cf. ``nn.BatchNorm1d``)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3):
            raise ValueError(f"MixtureNorm1d expects (N, C) or (N, C, L), got {tuple(x.shape)}")


class MixtureNorm2d(MixtureNorm):
    """Mixture normalization of ``(N, C, H, W)`` inputs (cf. ``nn.BatchNorm2d``)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"MixtureNorm2d expects (N, C, H, W), got {tuple(x.shape)}")
