"""Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020):
k-nearest-neighbour estimates of how much of the generated distribution lies on the real
manifold, and how much of the real manifold it reaches.

Real features ``X`` (N points), fake features ``Y`` (M points), ``k`` = ``nearest_k`` (5, as
in Naeem et al.'s reference code; Kynkäänniemi et al. use 3). ``r(p)`` is the distance from
``p`` to its k-th nearest neighbour in its own set, ``p`` itself excluded. With strict
inequalities:

- precision = (1/M) sum_j 1[exists i: ||Y_j - X_i|| < r(X_i)]
  (share of fakes inside the real manifold, the union of real balls; Kynkäänniemi eq. 1-2);
- recall    = (1/N) sum_i 1[exists j: ||X_i - Y_j|| < r(Y_j)]
  (share of reals inside the fake manifold);
- density   = (1/(kM)) sum_j sum_i 1[||Y_j - X_i|| < r(X_i)]
  (real balls per fake, over k; about 1 when fakes follow the real distribution, and above
  1 where they crowd on dense real regions; Naeem eq. 3);
- coverage  = (1/N) sum_i 1[min_j ||X_i - Y_j|| < r(X_i)]
  (share of real balls that hold at least one fake; Naeem eq. 4).

Density and coverage use only real balls, so they are not fooled by fake outliers (which
inflate fake balls and hence recall) or by real outliers (whose large balls inflate
precision) the way precision and recall are.

Per generator (a multi-generator GAN, with the index of the generator that made each fake):
each generator's precision and density over its own samples, its coverage (share of real
balls holding a sample of that generator), and the share of real balls reached by exactly
one generator, by several, and by none (``= 1 - coverage``).

Features: the metric takes any ``nn.Module`` as ``feature`` (raw coordinates without one);
:mod:`mgan_lightning.metrics.prdc_features` has the digit classifier's and Inception's.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mgan_lightning.metrics.knn import (
    MAX_BLOCK,
    as_float64_points,
    ball_membership,
    centred,
    knn_radii,
)

SHARES = ("covered_by_one", "covered_by_several", "covered_by_none")


def prdc(
    real: torch.Tensor,
    fake: torch.Tensor,
    nearest_k: int = 5,
    generator_index: torch.Tensor | None = None,
    num_generators: int | None = None,
    max_block: int = MAX_BLOCK,
) -> dict[str, torch.Tensor]:
    """Precision, recall, density and coverage of ``fake`` ``(M, ...)`` against ``real``
    ``(N, ...)`` (rows flattened to vectors), float64 scalars, computed block by block
    (:mod:`mgan_lightning.metrics.knn`).

    With ``generator_index`` ``(M,)`` also ``precision_per_generator``,
    ``density_per_generator``, ``coverage_per_generator`` and ``samples_per_generator``
    (``(G,)``, G = ``num_generators`` or the largest index + 1; NaN precision and density
    for a generator without samples) and the shares ``covered_by_one``,
    ``covered_by_several``, ``covered_by_none`` of the real balls."""
    if min(len(real), len(fake)) <= nearest_k:
        raise ValueError(
            f"PRDC with nearest_k={nearest_k} needs more than {nearest_k} real and fake "
            f"samples, got {len(real)} real and {len(fake)} fake"
        )
    # Distances are translation invariant; about the real mean, |x|^2 stays small.
    centre = real.reshape(len(real), -1).mean(dim=0, dtype=torch.float64)
    x, y = centred(real, centre), centred(fake, centre)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"real and fake points differ in width: {x.shape[1]} != {y.shape[1]}")
    real_radii = knn_radii(x, nearest_k, max_block)
    fake_radii = knn_radii(y, nearest_k, max_block)
    groups = None
    if generator_index is not None:
        groups = generator_index.reshape(-1).to(device=x.device, dtype=torch.long)
        if len(groups) != len(y):
            raise ValueError(f"generator_index has {len(groups)} entries for {len(y)} fakes")
        if len(groups) and int(groups.min()) < 0:
            raise ValueError("generator_index must be >= 0")
        largest = int(groups.max()) + 1
        if num_generators is None:
            num_generators = largest
        elif largest > num_generators:
            raise ValueError(f"generator_index {largest - 1} >= num_generators {num_generators}")
    member = ball_membership(x, y, real_radii, fake_radii, groups, num_generators, max_block)
    in_real = member.real_balls_per_fake > 0
    out = {
        "precision": in_real.double().mean(),
        "recall": member.real_in_fake_ball.double().mean(),
        "density": member.real_balls_per_fake.double().mean() / nearest_k,
        "coverage": member.real_ball_hit.double().mean(),
    }
    if groups is not None and member.real_ball_hit_by_group is not None:
        count = member.real_ball_hit_by_group.shape[1]
        samples = torch.bincount(groups, minlength=count).double()
        inside = torch.zeros(count, dtype=torch.float64, device=x.device)
        inside.index_add_(0, groups, in_real.double())
        balls = torch.zeros(count, dtype=torch.float64, device=x.device)
        balls.index_add_(0, groups, member.real_balls_per_fake.double())
        reached = member.real_ball_hit_by_group.sum(dim=1)
        out["precision_per_generator"] = inside / samples  # NaN for a generator with none
        out["density_per_generator"] = balls / (nearest_k * samples)
        out["coverage_per_generator"] = member.real_ball_hit_by_group.double().mean(dim=0)
        out["samples_per_generator"] = samples
        out["covered_by_one"] = (reached == 1).double().mean()
        out["covered_by_several"] = (reached > 1).double().mean()
        out["covered_by_none"] = (reached == 0).double().mean()
    return out


def flat_scores(scores: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Scalars for loggers: ``<name>_per_generator`` ``(G,)`` becomes ``<name>_g0`` ..
    ``<name>_g{G-1}``; ``samples_per_generator`` is left out."""
    flat: dict[str, float] = {}
    for name, value in scores.items():
        if name == "samples_per_generator":
            continue
        if name.endswith("_per_generator"):
            base = name[: -len("_per_generator")]
            flat.update(
                {f"{base}_g{g}": float(v) for g, v in enumerate(value.reshape(-1).tolist())}
            )
        else:
            flat[name] = float(value)
    return flat


def _joined(state: list[torch.Tensor] | torch.Tensor) -> torch.Tensor | None:
    """A list state as one tensor (a tensor already after a DDP sync); ``None`` if empty."""
    if isinstance(state, list):
        if not state:
            return None
        state = state[0] if len(state) == 1 else dim_zero_cat(state)  # one batch: no copy
    return state if state.numel() else None


class PRDC(Metric):
    """Precision, recall, density and coverage as a torchmetrics ``Metric`` (definitions in
    the module docstring).

    Feed real and generated samples with ``update(samples, real=True / False)`` or
    ``update(real_features=..., fake_features=...)``; ``generator_index`` (``(M,)``, one per
    fake) adds the per-generator results. ``feature`` maps the inputs to features before they
    are stored (raw coordinates, flattened, without it). ``compute()`` returns the dict of
    :func:`prdc` (float64); :meth:`per_generator` just its per-generator part.

    The states are lists of features (and generator indices) reduced by concatenation, so
    under DDP ``compute()`` (call it on every process) sees the samples of all processes and
    gives what one process with all of them gives. Memory: the stored features (float64)
    plus one block of distances (``max_block`` entries).

    Args:
        nearest_k: k of the k-NN radii (5: Naeem et al.; 3: Kynkäänniemi et al.).
        feature: module applied to the inputs of ``update`` (no gradients, autocast off).
        num_generators: G for the per-generator results (default: largest index + 1).
        reset_real_features: ``False`` keeps the real features through :meth:`reset` (the
            reference set is processed once; only generated samples are forgotten).
        max_block: entries of the largest distance block held at once.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    real_features: list[torch.Tensor]
    fake_features: list[torch.Tensor]
    fake_generators: list[torch.Tensor]

    def __init__(
        self,
        nearest_k: int = 5,
        feature: nn.Module | None = None,
        num_generators: int | None = None,
        reset_real_features: bool = True,
        max_block: int = MAX_BLOCK,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if nearest_k < 1:
            raise ValueError(f"nearest_k must be >= 1, got {nearest_k}")
        if num_generators is not None and num_generators < 1:
            raise ValueError(f"num_generators must be >= 1, got {num_generators}")
        self.nearest_k = nearest_k
        self.feature = feature
        self.num_generators = num_generators
        self.reset_real_features = reset_real_features
        self.max_block = max_block
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")
        self.add_state("fake_generators", [], dist_reduce_fx="cat")

    @torch.no_grad()
    def _features(self, inputs: torch.Tensor) -> torch.Tensor:
        if self.feature is not None:
            with torch.autocast(inputs.device.type, enabled=False):
                inputs = self.feature(inputs)
            if isinstance(inputs, (tuple, list)):
                inputs = inputs[0]
        return as_float64_points(inputs.detach())

    def update(
        self,
        features: torch.Tensor | None = None,
        real: bool | None = None,
        *,
        real_features: torch.Tensor | None = None,
        fake_features: torch.Tensor | None = None,
        generator_index: torch.Tensor | None = None,
    ) -> None:
        """Add samples: ``features`` with ``real``, and/or ``real_features`` /
        ``fake_features``; ``generator_index`` gives the generator of each fake sample
        (give it with every fake batch or with none)."""
        if (features is None) != (real is None):
            raise ValueError("PRDC.update(features, real): give both, or use the keywords "
                             "real_features= / fake_features=")  # fmt: skip
        fake = fake_features
        if features is not None:
            if real:
                if real_features is not None:
                    raise ValueError("PRDC.update got real samples twice")
                real_features = features
            else:
                if fake is not None:
                    raise ValueError("PRDC.update got fake samples twice")
                fake = features
        if real_features is None and fake is None:
            raise ValueError("PRDC.update needs real or fake samples")
        if generator_index is not None and fake is None:
            raise ValueError("generator_index belongs to fake samples; none were given")
        if real_features is not None:
            self.real_features.append(self._features(real_features))
        if fake is not None:
            stored = self._features(fake)
            if generator_index is not None:
                index = generator_index.reshape(-1).to(device=stored.device, dtype=torch.long)
                if len(index) != len(stored):
                    raise ValueError(
                        f"generator_index has {len(index)} entries for {len(stored)} fakes"
                    )
                self.fake_generators.append(index)
            self.fake_features.append(stored)

    def compute(self) -> dict[str, torch.Tensor]:
        """Precision, recall, density and coverage (and, with generator indices, per generator
        and the shares of real balls reached by one, several or no generator)."""
        real, fake = _joined(self.real_features), _joined(self.fake_features)
        if real is None or fake is None:
            raise ValueError("PRDC.compute needs real and fake samples; update() with both")
        index = _joined(self.fake_generators)  # None: no index on any process
        if index is not None and len(index) != len(fake):
            raise ValueError(
                f"generator_index was given for {len(index)} of {len(fake)} fake samples; "
                "give it with every fake batch or with none"
            )
        if index is not None:
            index = index.long()
        return prdc(real, fake, self.nearest_k, index, self.num_generators, self.max_block)

    def per_generator(self) -> dict[str, torch.Tensor]:
        """The per-generator part of :meth:`compute` (``*_per_generator`` and the
        ``covered_by_*`` shares and ``samples_per_generator``); empty when no generator index
        was given."""
        scores = self.compute()
        return {k: v for k, v in scores.items() if k.endswith("_per_generator") or k in SHARES}

    def reset(self) -> None:
        """Forget the samples (the real ones only if ``reset_real_features``)."""
        kept = None if self.reset_real_features else list(self.real_features)
        super().reset()
        if kept is not None:
            self.real_features.extend(kept)
