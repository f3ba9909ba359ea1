"""Latent priors. Every prior is an ``nn.Module`` (so any state it has is checkpointed)
with one contract: ``sample(n, dim, generator) -> Tensor[n, dim]`` on the prior's device.

Training passes the method's own ``torch.Generator`` (see :mod:`mgan_lightning.rng`), so a
prior must draw from ``generator`` and never from the global RNG when one is given.

A prior built from the training data (BourGAN's Gaussian mixture) says so with ``needs_data``;
the method then calls its ``fit`` once before the first step (see
``GANMethod.prepare_from_data``) and the checkpoint carries what it learned."""

from __future__ import annotations

import math

import torch
from torch import nn

from mgan_lightning.embedding import Metric, bourgain_embedding, embedding_dim
from mgan_lightning.nets.buffers import take_saved_shapes
from mgan_lightning.private_api import register_load_state_dict_pre_hook


class LatentPrior(nn.Module):
    """Base class. A subclass overrides :meth:`sample`."""

    _device_anchor: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        # An empty buffer tells the prior which device it lives on.
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        """The device the prior's samples are made on (the model's: it moves with ``.to()``)."""
        return self._device_anchor.device

    needs_data = False
    """Whether the prior must see training data (``fit``) before it can be sampled."""

    @property
    def prepared(self) -> bool:
        """Whether the prior can be sampled (always, unless it is built from data)."""
        return True

    @property
    def dim(self) -> int | None:
        """The latent dimension the prior imposes (``None``: any ``dim`` it is asked for)."""
        return None

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, dim)`` latent vectors on :attr:`device`, drawn from ``generator`` (the global RNG
        only when it is ``None``)."""
        raise NotImplementedError

    # A prior with ``needs_data`` implements these three.
    def points_to_embed(self, sample_shape: tuple[int, ...], available: int) -> int:
        """How many training examples :meth:`fit` should get."""
        raise NotImplementedError

    def dim_for(self, sample_shape: tuple[int, ...], available: int) -> int:
        """The latent dimension :meth:`fit` will give, for data of this shape and size."""
        raise NotImplementedError

    def fit(self, examples: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Build the prior from training examples."""
        raise NotImplementedError


class NormalPrior(LatentPrior):
    """z ~ N(0, std^2 I)."""

    def __init__(self, std: float = 1.0) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"NormalPrior.std must be > 0, got {std}")
        self.std = std

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, dim)`` draws of N(0, std^2 I) from ``generator``."""
        return torch.randn(n, dim, device=self.device, generator=generator) * self.std


class UniformPrior(LatentPrior):
    """z ~ U[low, high]^dim (MGAN uses U[-1, 1])."""

    def __init__(self, low: float = -1.0, high: float = 1.0) -> None:
        super().__init__()
        if not high > low:
            raise ValueError(f"UniformPrior needs high > low, got low={low}, high={high}")
        self.low = low
        self.high = high

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, dim)`` draws of U[low, high]^dim from ``generator``."""
        z = torch.empty(n, dim, device=self.device)
        return z.uniform_(self.low, self.high, generator=generator)


class GaussianMixturePrior(LatentPrior):
    """BourGAN's latent prior (Xiao et al. 2018, sec. 3.2): an equal-weight mixture of
    Gaussians N(f(y_i), sigma^2 I) centred at the Bourgain embedding f(y_1..y_n) of training
    examples (:mod:`mgan_lightning.embedding`); to sample, pick a centre uniformly and add
    noise. The latent dimension is the embedding's, m * ceil(log2 n).

    The centres and the embedding's scale ``s`` are buffers: they are saved in checkpoints and
    restored (whatever their shape) by ``load_from_checkpoint``, ``mgan test`` and resume. A
    freshly built prior has no centres until :meth:`fit`.

    Args:
        sigma: standard deviation of each component (paper and code: 0.01).
        num_points: training examples to embed (``None``: all of them for vector data,
            20,000 for images).
        p / repeats: the embedding's subset probability base and repeats (0.5 and 5).
        metric: distance between examples (default Euclidean on the flattened examples).
        feature_extractor: embed by Euclidean distance between its outputs instead (images);
            it is used once, in :meth:`fit`, and is not saved with the prior.
    """

    needs_data = True
    IMAGE_POINTS = 20_000
    centres: torch.Tensor
    scale: torch.Tensor
    feature_extractor: nn.Module | None

    def __init__(
        self,
        sigma: float = 0.01,
        num_points: int | None = None,
        p: float = 0.5,
        repeats: int = 5,
        metric: Metric | None = None,
        feature_extractor: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"GaussianMixturePrior.sigma must be > 0, got {sigma}")
        if num_points is not None and num_points < 2:
            raise ValueError(f"GaussianMixturePrior.num_points must be >= 2, got {num_points}")
        if not 0 < p < 1:
            raise ValueError(f"GaussianMixturePrior.p must be in (0, 1), got {p}")
        if repeats < 1:
            raise ValueError(f"GaussianMixturePrior.repeats must be >= 1, got {repeats}")
        self.sigma, self.num_points, self.p, self.repeats = sigma, num_points, p, repeats
        self.metric = metric
        # kept out of the module tree: not moved, not saved (it may be a large network)
        self.__dict__["feature_extractor"] = feature_extractor
        self.register_buffer("centres", torch.empty(0, 0))
        self.register_buffer("scale", torch.tensor(math.nan))
        # a fresh prior has no centres: loading takes the saved ones whatever their shape
        register_load_state_dict_pre_hook(self, _take_saved_centres)

    @property
    def prepared(self) -> bool:
        """Whether the centres exist: built by :meth:`fit` or restored from a checkpoint."""
        return self.centres.numel() > 0

    @property
    def dim(self) -> int | None:
        """The embedding's dimension once the centres exist (``None`` before :meth:`fit`)."""
        return self.centres.shape[1] if self.prepared else None

    def points_to_embed(self, sample_shape: tuple[int, ...], available: int) -> int:
        """``num_points``, or by default every example for vector data and at most
        ``IMAGE_POINTS`` (20,000) for images; a ``ValueError`` naming the option when that is not
        between 2 and ``available``."""
        if self.num_points is None:
            wanted = available if len(sample_shape) == 1 else min(self.IMAGE_POINTS, available)
        else:
            wanted = self.num_points
        if not 2 <= wanted <= available:
            raise ValueError(
                f"the Gaussian-mixture prior embeds {wanted} training examples but the data "
                f"has {available}; set prior.num_points (model.num_embedding_points for "
                f"BourGAN) between 2 and {available}"
            )
        return wanted

    def dim_for(self, sample_shape: tuple[int, ...], available: int) -> int:
        """m * ceil(log2 n) for the n examples :meth:`points_to_embed` chooses (m = ``repeats``),
        known before any is embedded: the generators are sized with it."""
        return embedding_dim(self.points_to_embed(sample_shape, available), self.repeats)

    @torch.no_grad()
    def fit(self, examples: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Embed ``examples`` (on their device) and keep the embedding as the centres."""
        embedding = bourgain_embedding(
            examples,
            metric=self.metric,
            feature_extractor=self.feature_extractor,
            p=self.p,
            repeats=self.repeats,
            generator=generator,
        )
        self.centres = embedding.points.to(self.scale.device, torch.float32)
        self.scale = torch.tensor(embedding.scale, device=self.scale.device)

    def sample(self, n: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` times: pick a centre f(y_i) uniformly and add N(0, sigma^2 I) noise. A
        ``RuntimeError`` before :meth:`fit` (to sample a trained model, load its checkpoint), a
        ``ValueError`` when ``dim`` is not the embedding's."""
        if not self.prepared:
            raise RuntimeError(
                "the Gaussian-mixture prior has no centres yet: it is built from the training "
                "data when `mgan fit` starts; to sample a trained model, load its checkpoint "
                "(--ckpt_path or load_from_checkpoint)"
            )
        if dim != self.centres.shape[1]:
            raise ValueError(
                f"the Gaussian-mixture prior has {self.centres.shape[1]} dimensions (its "
                f"embedding's), but {dim} were asked for"
            )
        index = torch.randint(len(self.centres), (n,), device=self.device, generator=generator)
        noise = torch.randn(n, dim, device=self.device, generator=generator)
        return self.centres[index] + self.sigma * noise


def _take_saved_centres(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    take_saved_shapes(module, state_dict, prefix, ["centres"])
