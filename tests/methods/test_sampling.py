"""The training step's random streams, and sampling by slot with generators assigned to
samples (``generate_assigned``); mixture sampling itself is in test_base.py."""

from __future__ import annotations

import torch

from mgan_lightning.methods import GAN, MGAN
from mgan_lightning.methods.sampling import generate_assigned
from mgan_lightning.nets import MLP


def test_generate_assigned_runs_each_latent_through_its_generator() -> None:
    """Generator k adds 10 k: each output is its latent plus its generator's shift, in the
    order of the input, with uneven counts (generator 2 gets none)."""
    latent = torch.arange(12.0).reshape(6, 2)
    index = torch.tensor([3, 0, 3, 1, 3, 0])
    calls = []

    def shifted(z: torch.Tensor) -> torch.Tensor:  # (K, m, d) -> (K, m, d)
        calls.append(tuple(z.shape))
        return z + 10.0 * torch.arange(4.0)[:, None, None]

    out = generate_assigned(shifted, latent, index, 4)
    assert calls == [(4, 3, 2)]  # one call, as wide as the busiest generator
    assert torch.equal(out, latent + 10.0 * index[:, None].float())
    assert generate_assigned(shifted, latent[:0], index[:0], 4).shape == (0, 2)


def test_training_streams_depend_on_seed_stream_and_step_only() -> None:
    model = GAN(sample_shape=(2,), latent_dim=2, architecture=MLP(8, 1, 8, 1))
    model.run_seed = 5

    def draw(stream: str = "train") -> torch.Tensor:
        return torch.rand(3, generator=model.training_generator(stream))

    first = draw()
    assert torch.equal(first, draw())  # re-seeded at every call within a step
    assert not torch.equal(first, draw("other"))
    model.advance_clock()
    assert not torch.equal(first, draw())
    model.generator_steps_done = 0
    assert torch.equal(first, draw())
    model.run_seed = 6
    assert not torch.equal(first, draw())


def test_a_slot_is_the_same_in_any_batch() -> None:
    torch.manual_seed(0)
    model = MGAN(sample_shape=(2,), num_generators=3, latent_dim=2, architecture=MLP(8, 1, 8, 1))
    model.eval()
    samples, index, latent = model.sample_slots(torch.arange(10), 7)
    part, part_index, part_latent = model.sample_slots(torch.tensor([8, 3]), 7)
    assert torch.equal(part, samples[[8, 3]]) and torch.equal(part_index, index[[8, 3]])
    assert torch.equal(part_latent, latent[[8, 3]])
    assert set(index.tolist()) <= {0, 1, 2}
