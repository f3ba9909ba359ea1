"""A method's latents and samples: the hooks that draw latents and run the generators, the
training step's random streams, and sampling the trained mixture.

Training: every draw of a generator step comes from :meth:`MixtureSampling.training_generator`,
seeded from (run seed, stream, process rank, generator step), so a resumed run redraws the
same numbers and each DDP process draws its own. No training code reads the global RNG
(Lightning's ``seed_everything`` seeds it, but a resume does not restore it).

Sampling a trained model: :meth:`~MixtureSampling.sample` draws each sample's generator from
the mixture weights and runs all generators once; :meth:`~MixtureSampling.sample_slots` draws
sample ``i`` from ``(seed, i)`` alone, so ``mgan predict`` gives the same samples on one
process or several.
"""

from __future__ import annotations

import torch
from lightning.pytorch import LightningModule
from torch import nn

from mgan_lightning.data.slots import slots_of
from mgan_lightning.latent import LatentPrior
from mgan_lightning.rng import derive_seed, run_seed, seeded_generator


def generate_assigned(
    generate, latent: torch.Tensor, index: torch.Tensor, num_generators: int
) -> torch.Tensor:
    """Sample ``i`` made by generator ``index[i]`` from ``latent[i]``: ``(n, latent)`` and
    ``(n,)`` -> ``(n, *sample_shape)``, with ``generate`` mapping ``(K, m, latent)`` to
    ``(K, m, ...)``. All generators run once, together, each on its own latents (zero-padded
    to the busiest one's count)."""
    k, n = num_generators, len(index)
    counts = torch.bincount(index, minlength=k)
    order = torch.argsort(index, stable=True)
    starts = torch.cumsum(counts, 0) - counts  # first position of each generator
    position = torch.arange(n, device=index.device) - starts[index[order]]
    width = max(int(counts.max()) if n else 0, 1)
    z = latent.new_zeros(k, width, latent.shape[-1])
    z[index[order], position] = latent[order]
    fake = generate(z)
    samples = torch.empty((n, *fake.shape[2:]), dtype=fake.dtype, device=fake.device)
    samples[order] = fake[index[order], position]
    return samples


class MixtureSampling(LightningModule):
    """The hooks that draw latents and run the generators, the training step's random
    streams, and samples of the model's mixture."""

    num_generators: int
    latent_dim: int
    same_latent: bool
    fake_per_generator: int | None
    prior: LatentPrior
    generators: nn.Module
    generators_ema: nn.Module | None
    run_seed: int | None
    generator_steps_done: int
    _training_rngs: dict[str, torch.Generator]

    # ------------------------------------------------------------------ hooks
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, latent)`` shared by all generators, or ``(K, n, latent)`` independent,
        drawn from ``generator``."""
        if self.same_latent:
            return self.prior.sample(n, self.latent_dim, generator)
        z = self.prior.sample(self.num_generators * n, self.latent_dim, generator)
        return z.reshape(self.num_generators, n, self.latent_dim)

    def generate(self, z: torch.Tensor, averaged: bool = False) -> torch.Tensor:
        """Samples of every generator, ``(K, n, *sample_shape)``; ``averaged`` runs the EMA
        generators (when the method keeps them)."""
        bank = self.generators_ema if averaged and self.generators_ema is not None else None
        return (bank or self.generators)(z)

    def fake_batch(
        self, real_batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(fake[K*n, ...], generator_index[K*n], z)`` for one step: ``n`` samples of
        each generator (``fake_per_generator``, else the real batch over K, rounded up)."""
        k = self.num_generators
        n = self.fake_per_generator or -(-real_batch_size // k)
        z = self.sample_latent(n, generator)
        fake = self.generate(z)
        index = torch.arange(k, device=fake.device).repeat_interleave(n)
        return fake.reshape(k * n, *fake.shape[2:]), index, z

    def mixture_weights(self) -> torch.Tensor | None:
        """Probability of each generator in the model's mixture (``None``: uniform)."""
        return None

    # ----------------------------------------------------------- training draws
    def training_generator(self, stream: str = "train") -> torch.Generator:
        """The generator every draw of this training step uses, seeded from (run seed,
        ``stream``, process rank, generator step): a resumed run redraws the same numbers,
        and each DDP process draws its own. A loss that needs draws of its own (BourGAN's
        second latent batch) asks for another ``stream``."""
        rng = self._training_rngs.get(stream)
        if rng is None or rng.device != self.device:
            rng = self._training_rngs[stream] = torch.Generator(device=self.device)
        rng.manual_seed(self.step_seed(stream))
        return rng

    def resolved_run_seed(self) -> int:
        """The run's seed (set at fit start or restored), else the environment's."""
        return self.run_seed if self.run_seed is not None else run_seed()

    def step_seed(self, stream: str) -> int:
        """Seed of ``stream``'s draws in this generator step on this process."""
        return derive_seed(
            self.resolved_run_seed(), stream, self.global_rank, self.generator_steps_done
        )

    # ------------------------------------------------------- the model's mixture
    @torch.no_grad()
    def sample(
        self,
        n: int,
        weights: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples of the mixture and the generator that made each.

        Each sample's generator is drawn from ``weights`` (default: :meth:`mixture_weights`,
        uniform unless a method says otherwise), then all generators run once in one
        batched call on as many z as the busiest one needs. The EMA generators are used when
        the method keeps them. Draws come from ``generator`` (on the model's device) when
        given, else from the global RNG.
        """
        k = self.num_generators
        weights = self.mixture_weights() if weights is None else weights
        if weights is None:
            index = torch.randint(k, (n,), device=self.device, generator=generator)
        else:
            probs = weights.to(self.device, torch.float)
            index = torch.multinomial(probs, n, replacement=True, generator=generator)
        counts = torch.bincount(index, minlength=k)
        most = int(counts.max()) if n > 0 else 0
        z = self.sample_latent(max(most, 1), generator)
        fake = self.generate(z, averaged=True)
        keep = torch.arange(fake.shape[1], device=self.device)[None, :] < counts[:, None]
        samples = fake[keep]
        index = torch.arange(k, device=self.device).repeat_interleave(counts)
        order = torch.randperm(n, device=self.device, generator=generator)
        return samples[order], index[order]

    @torch.no_grad()
    def sample_slots(
        self, slots: torch.Tensor, seeds: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(samples, generator_index, latent)`` of sample slots ``slots`` (``(n,)`` ints).

        Slot ``i``'s generator and latent are drawn by :meth:`draw_slot` from ``(seed, i)``
        alone, so the result for a slot does not depend on the batch or the process it is
        drawn in: ``mgan predict`` gives the same ``N`` samples on one process or several.
        Generators follow :meth:`mixture_weights`; the EMA generators are used when kept.
        Call in eval mode (``predict`` is), so batch norm does not mix the slots.
        """
        slots = torch.as_tensor(slots).reshape(-1)
        seeds = torch.as_tensor(seeds).expand_as(slots)
        weights = self.mixture_weights()
        draws = [self.draw_slot(s, i, weights) for s, i in zip(seeds.tolist(), slots.tolist())]
        index = torch.tensor([k for k, _ in draws], dtype=torch.long, device=self.device)
        if draws:
            latent = torch.stack([z for _, z in draws])
        else:
            latent = torch.empty(0, self.latent_dim, device=self.device)
        return self.generate_assigned(latent, index, averaged=True), index, latent

    def validation_step(self, batch, batch_idx: int) -> None:
        """Nothing per batch: evaluation callbacks sample the model (``mgan validate``)."""

    def test_step(self, batch, batch_idx: int) -> None:
        """Nothing per batch: evaluation callbacks sample the model at test end."""

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """The samples of a batch of sample slots (:func:`mgan_lightning.data.
        sample_slot_loader`), with their slot, generator and latent."""
        slots, seeds = slots_of(batch)
        samples, index, latent = self.sample_slots(slots, seeds)
        return {"slot": slots, "samples": samples, "generator": index, "latent": latent}

    def draw_slot(
        self, seed: int, slot: int, weights: torch.Tensor | None = None
    ) -> tuple[int, torch.Tensor]:
        """Generator (drawn from ``weights``, uniform when ``None``) and latent ``(latent,)``
        of one sample slot, from a random generator seeded with ``(seed, slot)`` only."""
        rng = seeded_generator(derive_seed(seed, "sample-slot", slot), self.device)
        if weights is None:
            k = int(torch.randint(self.num_generators, (1,), device=self.device, generator=rng))
        else:
            probs = weights.to(self.device, torch.float)
            k = int(torch.multinomial(probs, 1, generator=rng))
        z = self.sample_latent(1, rng)  # (1, latent) or (K, 1, latent)
        return k, (z[0] if z.ndim == 2 else z[k, 0])

    def generate_assigned(
        self, latent: torch.Tensor, index: torch.Tensor, averaged: bool = False
    ) -> torch.Tensor:
        """Sample ``i`` made by generator ``index[i]`` from ``latent[i]`` (see
        :func:`generate_assigned`); ``averaged`` runs the EMA generators when kept."""
        return generate_assigned(
            lambda z: self.generate(z, averaged=averaged), latent, index, self.num_generators
        )
