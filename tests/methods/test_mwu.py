"""The multiplicative-weights mixture: its update rule on hand-made D outputs, weighted draws
that follow the weights (chi-square), the round life cycle (fresh D and optimizer state,
frozen generators, the mixture's weights), and a short run in which reweighting sends the
later rounds to the modes round 1 missed. Mid-round exact resume is checked in
test_exact_resume.py, and the weights on 2 DDP processes in test_ddp_fit.py."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything

from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.methods import MWU
from mgan_lightning.methods.mwu import multiplicative_weights_update
from mgan_lightning.metrics.mode_coverage import ModeCoverage, assign_modes
from mgan_lightning.nets import MLP
from mgan_lightning.schedules import LinearDecay


def test_update_rule_on_hand_made_scores() -> None:
    # equal weights: term_i = a_i = 1/c_i - 1; doubled where below 0.25 (c_i > 0.8)
    weights = torch.ones(4, dtype=torch.float64)
    scores = torch.tensor([0.5, 0.9, 0.1, 0.99])
    new, term = multiplicative_weights_update(weights, scores, delta=0.25)
    expected_term = torch.tensor([1.0, 1 / 9, 9.0, 1 / 99], dtype=torch.float64)
    assert torch.allclose(term, expected_term, rtol=1e-6)
    assert new.tolist() == [1.0, 2.0, 1.0, 2.0]
    assert new.dtype == torch.float64

    # unequal weights enter through w_i / sum(w) * n: w = (1, 3), n = 2, c = (0.5, 0.5)
    new, term = multiplicative_weights_update(
        torch.tensor([1.0, 3.0], dtype=torch.float64), torch.tensor([0.5, 0.5]), delta=0.6
    )
    assert torch.allclose(term, torch.tensor([0.5, 1.5], dtype=torch.float64))
    assert new.tolist() == [2.0, 3.0]
    # D = 0 exactly stays finite (the 1e-8 of the authors' code), and never doubles
    _, term = multiplicative_weights_update(torch.ones(1), torch.zeros(1))
    assert math.isfinite(float(term)) and float(term) > 1e7


def test_weights_stay_exact_after_many_doublings() -> None:
    weights = torch.ones(3, dtype=torch.float64)
    for _ in range(60):  # point 0 always under-covered: 2^60
        weights, _ = multiplicative_weights_update(weights, torch.tensor([0.999, 0.5, 0.5]))
    assert weights[0] == 2.0**60  # exact in float64, never renormalised
    exponents = torch.log2(weights)
    assert torch.equal(exponents, exponents.round())  # the others: exact powers of two too


def test_weighted_draws_follow_the_weights() -> None:
    """Chi-square goodness of fit, fixed seed: 20,000 draws over 10 points weighted 1..10 (and
    one point with weight 2^50). Critical value for 9 degrees of freedom at p = 0.001:
    27.88."""
    data = GaussianMixture2D(preset="ring", num_train=10, num_test=1, batch_size=2)
    data.setup("fit")
    data.example_weights = torch.arange(1, 11, dtype=torch.float64)
    rows = data.train_set.tensors[0]
    drawn = data.draw_weighted(20_000, torch.Generator().manual_seed(0))
    index = (drawn[:, None, :] == rows[None, :, :]).all(-1).float().argmax(1)
    observed = torch.bincount(index, minlength=10).double()
    expected = 20_000 * data.example_weights / data.example_weights.sum()
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 27.88, chi2
    # huge weights do not overflow the draw
    data.example_weights = torch.ones(10, dtype=torch.float64)
    data.example_weights[3] = 2.0**50
    drawn = data.draw_weighted(100, torch.Generator().manual_seed(1))
    assert torch.equal(drawn, rows[3].expand(100, 2))


class WeightsAfterRound(Callback):
    """The data weights right after round ``after`` ends."""

    def __init__(self, after: int) -> None:
        self.after, self.weights = after, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.generator_steps_done == self.after * pl_module.steps_per_round:
            self.weights = trainer.datamodule.example_weights.clone()


FOUR_MODES = [[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0], [0.0, -3.0]]


def train_mwu(seed: int, rounds: int, steps: int, callbacks=()) -> tuple[MWU, GaussianMixture2D]:
    seed_everything(seed, verbose=False)
    adam = lambda p: torch.optim.Adam(p, lr=1e-3, betas=(0.5, 0.999))  # noqa: E731
    model = MWU(
        sample_shape=(2,),
        num_rounds=rounds,
        steps_per_round=steps,
        latent_dim=2,
        architecture=MLP(32, 2, 32, 2),
        coverage_samples=1000,
        optimizer_g=adam,
        optimizer_d=adam,
    )
    data = GaussianMixture2D(means=FOUR_MODES, std=0.1, num_train=2000, batch_size=128, seed=seed)
    Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=list(callbacks),
    ).fit(model, datamodule=data)
    return model, data


@pytest.mark.slow
def test_later_rounds_cover_what_round_one_missed() -> None:
    """Four modes far apart, 3 rounds of 500 steps, seed 1: round 1's generator alone covers
    2 modes; the weights then grow on the points of the modes it missed, and the mixture of
    the 3 rounds covers all 4."""
    after_round_one = WeightsAfterRound(1)
    model, data = train_mwu(1, 3, 500, [after_round_one])
    round_one_modes = model.round_history[0]["mwu/new_generator_modes"]

    mixture = ModeCoverage(data.modes, data.mode_std)
    mixture.update(model.sample(3000, generator=torch.Generator().manual_seed(0))[0])
    assert float(mixture.compute()["modes"]) > round_one_modes

    # the reweighting is what did it: round 1 doubled the points of modes G_1 does not make
    z = model.prior.sample(2000, model.latent_dim, torch.Generator().manual_seed(1))
    with torch.no_grad():
        g1 = model.bank.eval().forward_one(0, z)
    nearest, good = assign_modes(g1, data.modes, data.mode_std, 3.0)
    made = torch.bincount(nearest[good], minlength=4) > 0.05 * len(g1)
    point_mode, _ = assign_modes(data.train_set.tensors[0], data.modes, data.mode_std, 3.0)
    w = after_round_one.weights
    assert made.any() and not made.all()
    assert w[~made[point_mode]].mean() > 1.5 * w[made[point_mode]].mean()


def test_round_life_cycle(tmp_path) -> None:
    """After each round: the next slot trains alone, D was re-drawn, the optimizers start
    from empty state, the finished generators no longer move, the mixture is uniform over
    the rounds so far."""
    model, data = train_mwu(0, 3, 4)
    assert model.current_round == 2 and len(model.round_history) == 3
    assert model.bank.trainable.tolist() == [False, False, True]
    assert torch.allclose(model.mixture_weights(), torch.full((3,), 1 / 3))
    samples, index = model.sample(300, generator=torch.Generator().manual_seed(0))
    assert set(index.tolist()) == {0, 1, 2}
    assert data.example_weights is not None and len(data.example_weights) == 2000


def test_only_the_current_generator_moves(tmp_path) -> None:
    seed_everything(0, verbose=False)
    model = MWU(sample_shape=(2,), num_rounds=3, steps_per_round=5, latent_dim=2,
                architecture=MLP(8, 1, 8, 1), max_generator_steps=8)  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.bank.named_parameters()}
    data = GaussianMixture2D(preset="ring", num_train=500, batch_size=32)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    for name, p in model.bank.named_parameters():
        assert not torch.equal(p[0], before[name][0])  # round 1 trained (steps 1-5)
        assert not torch.equal(p[1], before[name][1])  # round 2 trained (steps 6-8)
        assert torch.equal(p[2], before[name][2])  # round 3 never started


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="num_rounds"):
        MWU(sample_shape=(2,), num_rounds=0)
    with pytest.raises(ValueError, match="not num_generators"):
        MWU(sample_shape=(2,), num_rounds=3, num_generators=4)
    with pytest.raises(ValueError, match="delta"):
        MWU(sample_shape=(2,), delta=0.0)


class RoundBoundaryProbe(Callback):
    """The learning rates after every step, and both banks right after round 1 ends."""

    def __init__(self, steps_per_round: int) -> None:
        self.steps_per_round, self.lrs, self.at_round_end = steps_per_round, [], None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        if pl_module.generator_steps_done == self.steps_per_round and self.at_round_end is None:
            self.at_round_end = (
                {n: p.detach().clone() for n, p in pl_module.bank.named_parameters()},
                {n: p.detach().clone() for n, p in pl_module.generators_ema.named_parameters()},
            )


def test_training_aids_restart_every_round() -> None:
    """With a periodic LinearDecay the learning rate decays to 0 within each round and is
    back at its initial value when the next round starts; the moving average restarts at
    each round (ema_start counts steps into it) and becomes the frozen G_t at its end, so a
    finished slot no longer moves in either bank."""
    seed_everything(0, verbose=False)
    steps = 6
    model = MWU(
        sample_shape=(2,), num_rounds=2, steps_per_round=steps, latent_dim=2,
        architecture=MLP(8, 1, 8, 1), ema_decay=0.5, ema_start=2,
        optimizer_g=lambda p: torch.optim.Adam(p, lr=0.01),
        scheduler_g=lambda opt: LinearDecay(opt, start=3, end=6, period=steps),
    )  # fmt: skip
    probe = RoundBoundaryProbe(steps)
    data = GaussianMixture2D(preset="ring", num_train=500, batch_size=32)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[probe],
                      enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    # the rate for the next step, read after steps 1..12 (step s + 1 uses factor(s % 6))
    expected = [0.01 * f for f in (1, 1, 1, 2 / 3, 1 / 3, 1)] * 2
    assert probe.lrs == pytest.approx(expected)
    live, ema = probe.at_round_end
    for name in live:
        assert torch.equal(live[name][0], ema[name][0])  # G_1 is its average
        assert torch.equal(model.bank.get_parameter(name)[0], live[name][0])  # and stays
        assert torch.equal(model.generators_ema.get_parameter(name)[0], live[name][0])
    # the average of round 2 restarted: it copies until 2 steps into the round
    model.generator_steps_done = steps + 2
    assert model.ema_decay_now() == 0.0
    model.generator_steps_done = steps + 3
    assert model.ema_decay_now() == 0.5


def test_a_schedule_that_ignores_rounds_is_flagged() -> None:
    model = MWU(sample_shape=(2,), num_rounds=2, steps_per_round=5, latent_dim=2,
                architecture=MLP(8, 1, 8, 1), max_generator_steps=2,
                scheduler_g=lambda opt: LinearDecay(opt, start=0, end=10))  # fmt: skip
    data = GaussianMixture2D(preset="ring", num_train=200, batch_size=32)
    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False)  # fmt: skip
    with pytest.warns(UserWarning, match="set its period to steps_per_round"):
        trainer.fit(model, datamodule=data)
