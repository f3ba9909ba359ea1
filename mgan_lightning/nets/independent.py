"""K generators that share no layer, run in one vectorised call.

The shared-body :class:`GeneratorBank` (MGAN) ties the generators together except for their
first layer. The multiplicative-weights mixture (Zhong et al. 2019) needs the opposite: every
round trains a freshly initialised generator of its own. :class:`IndependentGenerators` keeps
K copies of one generator network with their parameters stacked along a leading K axis and
runs them with ``torch.func.vmap`` over ``functional_call``: no Python loop over generators,
and all K slots exist from the start, so checkpoint shapes never change. The contract is
``GeneratorBank``'s: ``(n, latent)`` shared or ``(K, n, latent)`` -> ``(K, n, *sample_shape)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def _flat(name: str) -> str:
    """A parameter name usable as an attribute (``body.0.weight`` -> ``body__0__weight``)."""
    return name.replace(".", "__")


class IndependentGenerators(nn.Module):
    """K independent generators built by ``make()`` (each maps ``(n, latent)`` to
    ``(n, *sample_shape)``, or to ``(1, n, *sample_shape)`` as a one-generator bank does).

    Batch norm inside a generator keeps per-generator running statistics (stacked buffers).
    ``trainable`` is a per-slot mask: frozen slots still generate but send no gradient to
    their parameters. :meth:`reset` re-initialises one slot from a fresh ``make()``.
    """

    trainable: torch.Tensor

    def __init__(self, make: Callable[[], nn.Module], num_generators: int) -> None:
        super().__init__()
        if num_generators < 1:
            raise ValueError(f"num_generators must be >= 1, got {num_generators}")
        self.num_generators = num_generators
        self.make = make
        modules = [make() for _ in range(num_generators)]
        params, buffers = stack_module_state(modules)  # type: ignore[arg-type]
        self.param_names = list(params)
        self.buffer_names = list(buffers)
        for name, value in params.items():
            self.register_parameter(_flat(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_flat(name), value.clone())
        self.register_buffer("trainable", torch.ones(num_generators, dtype=torch.bool))
        # The network's structure, without storage: not a submodule (kept in a list).
        self._template = [copy.deepcopy(modules[0]).to("meta")]
        # a one-generator bank returns (1, n, ...): drop that axis
        self._squeeze = getattr(modules[0], "num_generators", None) == 1

    # ------------------------------------------------------------------ state
    def stacked(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Parameters (frozen slots detached) and buffers, each ``(K, ...)``."""
        mask = self.trainable
        params = {}
        for name in self.param_names:
            p = getattr(self, _flat(name))
            if not bool(mask.all()):
                m = mask.view(-1, *([1] * (p.dim() - 1)))
                p = torch.where(m, p, p.detach())
            params[name] = p
        buffers = {name: getattr(self, _flat(name)) for name in self.buffer_names}
        return params, buffers

    @torch.no_grad()
    def reset(self, k: int) -> None:
        """Slot ``k`` takes the weights of a freshly built generator (``make()``; global RNG)."""
        fresh = self.make().to(self.trainable.device)
        state = dict(fresh.named_parameters()) | dict(fresh.named_buffers())
        for name in self.param_names + self.buffer_names:
            getattr(self, _flat(name))[k].copy_(state[name])

    @torch.no_grad()
    def copy_slot(self, k: int, source: IndependentGenerators) -> None:
        """Slot ``k`` takes the weights and buffers of ``source``'s slot ``k`` (e.g. its
        moving average)."""
        for name in self.param_names + self.buffer_names:
            getattr(self, _flat(name))[k].copy_(getattr(source, _flat(name))[k])

    def set_trainable(self, slots: torch.Tensor | list[int] | None) -> None:
        """Only these slots receive gradients (``None``: all)."""
        mask = torch.zeros_like(self.trainable)
        mask[slice(None) if slots is None else torch.as_tensor(slots, dtype=torch.long)] = True
        self.trainable.copy_(mask)

    def train(self, mode: bool = True) -> IndependentGenerators:
        """Set the mode of every slot (batch norm uses batch statistics in train mode)."""
        super().train(mode)
        self._template[0].train(mode)  # batch norm: batch statistics in train mode
        return self

    # ---------------------------------------------------------------- forward
    def functional_forward(self, params: dict, buffers: dict, z: torch.Tensor) -> torch.Tensor:
        """One generator with the given parameters and buffers (one slot's, or a batch of
        slots' under ``vmap``) on ``(n, latent)``: ``(n, *sample_shape)``."""
        out = functional_call(self._template[0], (params, buffers), (z,))
        return out[0] if self._squeeze else out

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``(K, n, *sample_shape)`` from ``(n, latent)`` (shared) or ``(K, n, latent)``."""
        if z.dim() == 3 and z.shape[0] != self.num_generators:
            k = self.num_generators
            raise ValueError(f"z must be (n, d) or ({k}, n, d), got {tuple(z.shape)}")
        params, buffers = self.stacked()
        z_dim = 0 if z.dim() == 3 else None
        run = vmap(self.functional_forward, in_dims=(0, 0, z_dim), randomness="different")
        return run(params, buffers, z)

    def forward_one(self, k: int, z: torch.Tensor) -> torch.Tensor:
        """Generator ``k`` alone on ``(n, latent)``: ``(n, *sample_shape)``; gradients reach
        only slot ``k`` of the stacked parameters (and its batch-norm statistics update)."""
        params, buffers = self.stacked()
        slot_params = {name: p[k] for name, p in params.items()}
        slot_buffers = {name: b[k] for name, b in buffers.items()}  # views: updates land in place
        return self.functional_forward(slot_params, slot_buffers, z)
