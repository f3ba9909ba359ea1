"""A method with rounds is one short subclass: the life cycle (end_round, a fresh critic from
the round's seed, empty optimizer state, start_round), the clocks that restart each round,
the run's length in rounds, and reweighted data with a value for every training point."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.methods.gan import GAN
from mgan_lightning.methods.rounds import GeneratorPerRound, Rounds, rounds_length
from mgan_lightning.methods.weighted_data import WeightedData
from mgan_lightning.nets import MLP
from mgan_lightning.rng import derive_seed


class Restarting(Rounds, WeightedData, GAN):
    """A GAN restarted every round; each round's end records the first coordinate of every
    training point and doubles the weight of the points right of the origin."""

    def __init__(
        self, num_rounds: int = 3, steps_per_round: int = 2, max_generator_steps=None, **kwargs
    ) -> None:
        steps = rounds_length("Restarting", num_rounds, steps_per_round, max_generator_steps)
        super().__init__(max_generator_steps=steps, **kwargs)
        self.start_rounds(num_rounds, steps_per_round)
        self.events: list[tuple] = []

    def end_round(self, t: int) -> None:
        values = self.on_every_training_point(lambda x: x[:, 0], batch_size=7)
        data = self.weighted_data()
        data.example_weights = torch.where(values > 0, 2.0, 1.0) * data.example_weights
        self.events.append(("end", t, self.generator_steps_done, values))

    def start_round(self, t: int) -> None:
        critic = {k: v.clone() for k, v in self.critic.state_dict().items()}
        self.events.append(("start", t, critic, len(self.trainer.optimizers[1].state)))


def fit(model: Restarting, data: GaussianMixture2D) -> Trainer:
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    return trainer


def test_the_life_cycle_of_rounds() -> None:
    seed_everything(0, verbose=False)
    model = Restarting(sample_shape=(2,), latent_dim=2, architecture=MLP(8, 1, 8, 1))
    data = GaussianMixture2D(preset="ring", num_train=50, batch_size=16)
    fit(model, data)
    ends = [e for e in model.events if e[0] == "end"]
    starts = [e for e in model.events if e[0] == "start"]
    assert [(t, step) for _, t, step, _ in ends] == [(0, 2), (1, 4), (2, 6)]
    assert [t for _, t, _, _ in starts] == [1, 2] and model.current_round == 2
    for _, t, critic, adam_state in starts:
        assert adam_state == 0  # the critic's optimizer forgot its moments
        torch.manual_seed(derive_seed(model.resolved_run_seed(), "rounds-critic", t))
        fresh = model.architecture.critic(model.sample_shape).state_dict()
        assert all(torch.equal(critic[k], fresh[k]) for k in fresh)
    # a value for every training point, in order; the weights they set were used
    points = data.examples(torch.arange(50))
    assert torch.equal(ends[0][3], points[:, 0].double())
    right = points[:, 0] > 0
    assert torch.equal(data.example_weights, torch.where(right, 8.0, 1.0).double())


def test_clocks_restart_with_each_round() -> None:
    model = Restarting(
        num_rounds=2, steps_per_round=6, sample_shape=(2,), latent_dim=2,
        architecture=MLP(8, 1, 8, 1), ema_decay=0.5, ema_start=0.5,
    )  # fmt: skip
    assert model.schedule_length() == 6
    for done, decay in ((3, 0.0), (4, 0.5)):
        model.generator_steps_done = done
        assert model.ema_clock() == done and model.ema_decay_now() == decay
    model.round_index.fill_(1)
    model.generator_steps_done = 10
    assert model.ema_clock() == 4 and model.ema_decay_now() == 0.5


def test_the_run_length_in_rounds() -> None:
    assert rounds_length("R", 3, 5, None) == 15 and rounds_length("R", 3, 5, 10) == 10
    with pytest.raises(ValueError, match="model.steps_per_round must be >= 1"):
        rounds_length("R", 3, 0, None)
    with pytest.raises(ValueError, match=r"\(16\) is more than .* R has no round after"):
        rounds_length("R", 3, 5, 16)


def test_a_run_cut_inside_a_round_is_flagged_once(recwarn) -> None:
    model = Restarting(num_rounds=3, steps_per_round=4, sample_shape=(2,), latent_dim=2,
                       architecture=MLP(8, 1, 8, 1), max_generator_steps=6)  # fmt: skip
    fit(model, GaussianMixture2D(num_train=50, batch_size=16))
    flagged = [str(w.message) for w in recwarn if "inside round" in str(w.message)]
    assert flagged == [
        "Restarting: the run stops at generator step 6, inside round 2 of 3 (3 x 4 = 12 "
        "steps), so that round never ends: set model.max_generator_steps to a whole number "
        "of rounds (4 or 8, or 12 for all 3 rounds)"
    ]


class Ensemble(GeneratorPerRound, GAN):
    """T GANs trained one after the other, each with a fresh critic: a mixture of rounds in
    a few lines."""

    def __init__(self, num_rounds: int = 3, steps_per_round: int = 2, **kwargs) -> None:
        steps = rounds_length("Ensemble", num_rounds, steps_per_round, None)
        super().__init__(
            num_generators=num_rounds, independent_generators=True, max_generator_steps=steps,
            **kwargs,
        )  # fmt: skip
        self.start_rounds(num_rounds, steps_per_round)


def test_a_generator_per_round_trains_in_its_round_only() -> None:
    seed_everything(0, verbose=False)
    model = Ensemble(sample_shape=(2,), latent_dim=2, architecture=MLP(8, 1, 8, 1), ema_decay=0.5)
    before = {n: p.detach().clone() for n, p in model.bank.named_parameters()}
    assert model.bank.trainable.tolist() == [True, False, False]
    assert torch.equal(model.mixture_weights(), torch.tensor([1.0, 0.0, 0.0]))

    class Snapshot(Callback):
        def __init__(self) -> None:
            self.rows: list[tuple] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            bank = {n: p.detach().clone() for n, p in pl_module.bank.named_parameters()}
            self.rows.append((pl_module.current_round, bank, pl_module.mixture_weights()))

    snapshot = Snapshot()
    Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[snapshot],
    ).fit(model, datamodule=GaussianMixture2D(num_train=50, batch_size=16))  # fmt: skip
    # after steps 2 and 4 the next round began; slot k moved in round k only
    rounds = [r for r, _, _ in snapshot.rows]
    assert rounds == [0, 1, 1, 2, 2, 2]
    for step, (_, bank, _) in enumerate(snapshot.rows, start=1):
        for k in range(3):
            moved = any(not torch.equal(bank[n][k], before[n][k]) for n in bank)
            assert moved == (step > 2 * k), (step, k)
    assert torch.allclose(model.mixture_weights(), torch.full((3,), 1 / 3))
    # each finished generator is in the average as it was trained, not averaged
    for n, p in model.generators_ema.named_parameters():
        assert torch.equal(p, dict(model.bank.named_parameters())[n])
