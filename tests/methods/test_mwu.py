"""The multiplicative-weights mixture: its update rule on hand-made D outputs, weighted draws
that follow the weights (chi-square), a round's scoring against a fixed generator that
covers half the modes, the round life cycle (what a round resets and what it freezes, and
that the frozen generator is the one its D scored), the run's length in rounds, and a short
run in which reweighting sends the later rounds to the modes round 1 missed. Mid-round
exact resume is checked in test_exact_resume.py, and the weights on 2 DDP processes in
test_ddp_fit.py."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from torch import nn

from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.methods import MWU
from mgan_lightning.methods.mwu import multiplicative_weights_update
from mgan_lightning.metrics.mode_coverage import ModeCoverage, assign_modes
from mgan_lightning.nets import MLP
from mgan_lightning.nets.independent import IndependentGenerators
from mgan_lightning.rng import derive_seed
from mgan_lightning.schedules import LinearDecay


def points_of(data: GaussianMixture2D) -> torch.Tensor:
    """The training points, in order."""
    return data.examples(torch.arange(data.num_train_examples()))


def modes_of(data: GaussianMixture2D) -> tuple[torch.Tensor, float]:
    assert data.modes is not None and data.mode_std is not None
    return data.modes, data.mode_std


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
    rows = points_of(data)
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
        self.after = after
        self.weights: torch.Tensor | None = None

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

    mixture = ModeCoverage(*modes_of(data))
    mixture.update(model.sample(3000, generator=torch.Generator().manual_seed(0))[0])
    assert float(mixture.compute()["modes"]) > round_one_modes

    # the reweighting is what did it: round 1 doubled the points of modes G_1 does not make
    z = model.prior.sample(2000, model.latent_dim, torch.Generator().manual_seed(1))
    with torch.no_grad():
        g1 = model.bank.eval().forward_one(0, z)
    nearest, good = assign_modes(g1, *modes_of(data), 3.0)
    made = torch.bincount(nearest[good], minlength=4) > 0.05 * len(g1)
    point_mode, _ = assign_modes(points_of(data), *modes_of(data), 3.0)
    w = after_round_one.weights
    assert w is not None
    assert made.any() and not made.all()
    assert w[~made[point_mode]].mean() > 1.5 * w[made[point_mode]].mean()


def quiet_trainer(**kwargs) -> Trainer:
    return Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False, **kwargs,
    )  # fmt: skip


# ------------------------------------------------- a round's scoring, by hand
class FirstHalfOfTheModes(nn.Module):
    """A fixed generator: ``z -> mean_k + std * z[1:3]`` with ``k = floor(4 Phi(z_0))``, so
    each of the first four means gets a quarter of the samples, spread like the data. Its one
    parameter (a unit scale) is never trained."""

    means: torch.Tensor

    def __init__(self, means: torch.Tensor, std: float) -> None:
        super().__init__()
        self.register_buffer("means", means.float())
        self.std = std
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = (torch.special.ndtr(z[:, 0]) * len(self.means)).long().clamp(max=len(self.means) - 1)
        one_hot = nn.functional.one_hot(k, len(self.means)).to(z.dtype)
        return self.scale * (one_hot @ self.means + self.std * z[:, 1:3])


class HalfRing(MLP):
    """The MLP critic, and generators that make modes 0..3 of the ring only."""

    def independent_generators(self, num_generators, latent_dim, sample_shape):
        means, std = GaussianMixture2D(preset="ring").modes[:4], 0.01
        return IndependentGenerators(lambda: FirstHalfOfTheModes(means, std), num_generators)


def half_ring_round() -> MWU:
    """One 150-step round of the half-ring generator (never trained: G's learning rate 0)
    against a D that learns."""
    return MWU(
        sample_shape=(2,), num_rounds=1, steps_per_round=150, latent_dim=3,
        architecture=HalfRing(d_hidden=32), coverage_samples=400,
        optimizer_g=lambda p: torch.optim.SGD(p, lr=0.0),
        optimizer_d=lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.5, 0.999)),
    )  # fmt: skip


def test_a_round_doubles_the_points_of_the_modes_its_generator_misses() -> None:
    """G covers modes 0..3 of the 8-mode ring; D trains against it for one round (G's
    learning rate 0). D_t's optimum is 1/3 on the covered modes (data 1/8, G 1/4: term_i = 2)
    and 1 on the missed ones (term_i = 0), so after the round's scoring every point of
    modes 4..7 has doubled and no point of modes 0..3 has."""
    seed_everything(0, verbose=False)
    model = half_ring_round()
    data = GaussianMixture2D(preset="ring", num_train=800, batch_size=64, seed=0)
    quiet_trainer().fit(model, datamodule=data)

    mode, _ = assign_modes(points_of(data), *modes_of(data), 3.0)
    weights = data.example_weights
    assert weights is not None
    per_mode = {k: sorted(set(weights[mode == k].tolist())) for k in range(8)}
    assert per_mode == {k: [1.0] if k < 4 else [2.0] for k in range(8)}
    row = model.round_history[0]
    assert row["mwu/new_generator_modes"] == 4  # the generator scored is the one kept
    assert row["mwu/doubled_share"] == pytest.approx(float((mode >= 4).double().mean()))


def test_the_weight_gathered_on_rare_modes_is_reported() -> None:
    """The half-ring generator against a ring whose mode 6 (missed) and mode 1 (covered) are
    rare: mode 6's points double and mode 1's do not, so ``mwu/rare_weight_gain`` is the mean
    weight of both modes' points over the mean weight of all (not 1: modes 4, 5 and 7 double
    too); and G_t alone covers one of the two rare modes. On a ring without rare modes
    neither figure is logged."""
    seed_everything(0, verbose=False)
    model = half_ring_round()
    weights = [10, 1, 10, 10, 10, 10, 1, 10]
    data = GaussianMixture2D(preset="ring", weights=weights, num_train=1600, batch_size=64, seed=0)
    quiet_trainer().fit(model, datamodule=data)

    mode, _ = assign_modes(points_of(data), *modes_of(data), 3.0)
    w = data.example_weights
    assert w is not None
    assert set(w[mode == 6].tolist()) == {2.0} and set(w[mode == 1].tolist()) == {1.0}
    near_rare = (mode == 1) | (mode == 6)
    row = model.round_history[0]
    assert row["mwu/rare_weight_gain"] == pytest.approx(float(w[near_rare].mean() / w.mean()))
    assert row["mwu/new_generator_rare_modes"] == 1

    uniform = MWU(sample_shape=(2,), num_rounds=1, steps_per_round=10, latent_dim=3,
                  architecture=HalfRing(d_hidden=8), coverage_samples=100)  # fmt: skip
    ring = GaussianMixture2D(preset="ring", num_train=400, batch_size=64, seed=0)
    quiet_trainer().fit(uniform, datamodule=ring)
    assert "mwu/rare_weight_gain" not in uniform.round_history[0]
    assert "mwu/new_generator_rare_modes" not in uniform.round_history[0]


# ------------------------------------------------------------ the round life cycle
def test_the_mixture_after_the_rounds() -> None:
    """After each round: the next slot trains alone; at the end the mixture is uniform over
    the rounds and samples every generator."""
    model, data = train_mwu(0, 3, 4)
    assert model.current_round == 2 and len(model.round_history) == 3
    assert model.bank.trainable.tolist() == [False, False, True]
    assert torch.allclose(model.mixture_weights(), torch.full((3,), 1 / 3))
    samples, index = model.sample(300, generator=torch.Generator().manual_seed(0))
    assert set(index.tolist()) == {0, 1, 2}
    assert data.example_weights is not None and len(data.example_weights) == 2000


def test_only_the_current_generator_moves() -> None:
    seed_everything(0, verbose=False)
    model = MWU(sample_shape=(2,), num_rounds=3, steps_per_round=5, latent_dim=2,
                architecture=MLP(8, 1, 8, 1), max_generator_steps=10)  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.bank.named_parameters()}
    data = GaussianMixture2D(preset="ring", num_train=500, batch_size=32)
    quiet_trainer().fit(model, datamodule=data)
    for name, p in model.bank.named_parameters():
        assert not torch.equal(p[0], before[name][0])  # round 1 trained (steps 1-5)
        assert not torch.equal(p[1], before[name][1])  # round 2 trained (steps 6-10)
        assert torch.equal(p[2], before[name][2])  # round 3 never started


def slot(bank: nn.Module | None, k: int) -> dict[str, torch.Tensor]:
    """Slot ``k`` of an :class:`IndependentGenerators` bank (the generators or their EMA)."""
    assert bank is not None
    return {n: p[k].detach().clone() for n, p in bank.named_parameters()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


class ScoredMWU(MWU):
    """Records what each round's scoring sees: G_t raw and averaged, and D_t."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scored: list[dict] = []

    def score_training_points(self) -> torch.Tensor:
        t = self.current_round
        self.scored.append(
            {
                "raw": slot(self.bank, t),
                "ema": slot(self.generators_ema, t),
                "critic": {k: v.clone() for k, v in self.critic.state_dict().items()},
            }
        )
        return super().score_training_points()


class AfterEveryStep(Callback):
    """After every generator step: learning rates, optimizer state, D and both banks."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        opts = trainer.optimizers
        k = pl_module.num_generators
        self.rows.append(
            {
                "lr": [o.param_groups[0]["lr"] for o in opts],
                "state": [len(o.state) for o in opts],
                "adam_step": [sorted({int(s["step"]) for s in o.state.values()}) for o in opts],
                "critic": {n: v.clone() for n, v in pl_module.critic.state_dict().items()},
                "raw": [slot(pl_module.bank, t) for t in range(k)],
                "ema": [slot(pl_module.generators_ema, t) for t in range(k)],
            }
        )


def test_what_a_round_resets_and_what_it_freezes() -> None:
    """Three rounds of 6 steps, with a per-round LinearDecay of both learning rates and an
    EMA (decay 0.5, starting 2 steps into each round). At each round's end:
    - resets: D takes the weights drawn from the next round's seed; both optimizers' state
      is emptied (Adam counts from 1 again); both learning rates are back at their initial
      value; the average of the new generator copies it for 2 steps, then averages;
    - freezes: G_t as it was when D_t scored the training points, the raw generator D_t was
      trained against, not its average (they differ then); later rounds change it in
      neither bank."""
    seed_everything(0, verbose=False)
    spr, rounds = 6, 3
    model = ScoredMWU(
        sample_shape=(2,), num_rounds=rounds, steps_per_round=spr, latent_dim=2,
        architecture=MLP(8, 1, 8, 1), ema_decay=0.5, ema_start=2,
        optimizer_g=lambda p: torch.optim.Adam(p, lr=0.01),
        optimizer_d=lambda p: torch.optim.Adam(p, lr=0.02),
        scheduler_g=lambda opt: LinearDecay(opt, start=3, end=6, period=spr),
        scheduler_d=lambda opt: LinearDecay(opt, start=3, end=6, period=spr),
    )  # fmt: skip
    probe = AfterEveryStep()
    data = GaussianMixture2D(preset="ring", num_train=500, batch_size=32)
    with pytest.warns(UserWarning, match="only smooths evaluation samples"):
        quiet_trainer(callbacks=[probe]).fit(model, datamodule=data)
    rows = probe.rows  # rows[s - 1]: after generator step s
    assert len(rows) == rounds * spr and len(model.scored) == rounds

    # the learning rates for the next step restart with each round (factor(s % 6))
    factors = [1, 1, 1, 2 / 3, 1 / 3, 1] * rounds
    assert [r["lr"][0] for r in rows] == pytest.approx([0.01 * f for f in factors])
    assert [r["lr"][1] for r in rows] == pytest.approx([0.02 * f for f in factors])
    for t in range(rounds):
        end = rows[(t + 1) * spr - 1]
        # optimizer state: Adam's count runs through the round ...
        assert rows[t * spr + 4]["adam_step"] == [[5], [5]]
        if t + 1 < rounds:
            # ... and is emptied at its end; the next round's first step counts 1
            assert end["state"] == [0, 0]
            assert rows[(t + 1) * spr]["adam_step"] == [[1], [1]]
            # D: re-drawn from the next round's seed, not D_t
            assert not same(end["critic"], model.scored[t]["critic"])
            torch.manual_seed(derive_seed(model.resolved_run_seed(), "mwu-critic", t + 1))
            fresh = model.architecture.critic(model.sample_shape)
            assert same(end["critic"], fresh.state_dict())
        # the average of G_t restarts: it copies for ema_start steps, then averages
        first, second, third = rows[t * spr : t * spr + 3]
        assert same(first["ema"][t], first["raw"][t]) and same(second["ema"][t], second["raw"][t])
        assert not same(third["ema"][t], third["raw"][t])

        # what the round freezes: the G_t that D_t scored, raw (its average differed then)
        scored = model.scored[t]
        assert not same(scored["raw"], scored["ema"])
        for row in rows[(t + 1) * spr - 1 :]:
            assert same(row["raw"][t], scored["raw"]) and same(row["ema"][t], scored["raw"])
        assert same(slot(model.bank, t), scored["raw"])
        assert same(slot(model.generators_ema, t), scored["raw"])


def test_fractions_are_of_a_round() -> None:
    """``ema_start: 0.5`` is half a round: the average copies for 3 steps into each round."""
    model = MWU(sample_shape=(2,), num_rounds=2, steps_per_round=6, latent_dim=2,
                architecture=MLP(8, 1, 8, 1), ema_decay=0.5, ema_start=0.5)  # fmt: skip
    for done, decay in ((3, 0.0), (4, 0.5), (6, 0.5)):
        model.generator_steps_done = done
        assert model.ema_decay_now() == decay
    model.round_index.fill_(1)  # round 2
    for done, decay in ((9, 0.0), (10, 0.5)):
        model.generator_steps_done = done
        assert model.ema_decay_now() == decay


# ------------------------------------------------------------- the run's length
def test_a_run_that_stops_inside_a_round_is_flagged_once(recwarn) -> None:
    seed_everything(0, verbose=False)
    model = MWU(sample_shape=(2,), num_rounds=6, steps_per_round=5, latent_dim=2,
                architecture=MLP(8, 1, 8, 1), max_generator_steps=13)  # fmt: skip
    data = GaussianMixture2D(preset="ring", num_train=200, batch_size=32)
    quiet_trainer().fit(model, datamodule=data)
    flagged = [str(w.message) for w in recwarn if "inside round" in str(w.message)]
    assert flagged == [
        "MWU: the run stops at generator step 13, inside round 3 of 6 (6 x 5 = 30 steps), so "
        "that round's generator is never scored: set model.max_generator_steps to a whole "
        "number of rounds (10 or 15, or 30 for all 6 rounds)"
    ]
    assert len(model.round_history) == 2  # rounds 1 and 2 were scored, round 3 was not


def test_a_run_of_whole_rounds_is_not_flagged(recwarn) -> None:
    seed_everything(0, verbose=False)
    model = MWU(sample_shape=(2,), num_rounds=3, steps_per_round=4, latent_dim=2,
                architecture=MLP(8, 1, 8, 1), max_generator_steps=8)  # fmt: skip
    data = GaussianMixture2D(preset="ring", num_train=200, batch_size=32)
    quiet_trainer().fit(model, datamodule=data)
    assert not [w for w in recwarn if "MWU" in str(w.message)]
    assert len(model.round_history) == 2


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="num_rounds"):
        MWU(sample_shape=(2,), num_rounds=0)
    with pytest.raises(ValueError, match="not num_generators"):
        MWU(sample_shape=(2,), num_rounds=3, num_generators=4)
    with pytest.raises(ValueError, match="delta"):
        MWU(sample_shape=(2,), delta=0.0)
    # longer than its rounds: refused, in one line that names both numbers and the fix
    with pytest.raises(ValueError) as error:
        MWU(sample_shape=(2,), num_rounds=4, steps_per_round=5000, max_generator_steps=25000)
    assert str(error.value) == (
        "model.max_generator_steps (25000) is more than num_rounds x steps_per_round "
        "(4 x 5000 = 20000) and MWU has no round after the last: raise model.num_rounds or "
        "model.steps_per_round"
    )


def test_a_schedule_that_ignores_rounds_is_flagged() -> None:
    model = MWU(sample_shape=(2,), num_rounds=2, steps_per_round=5, latent_dim=2,
                architecture=MLP(8, 1, 8, 1), max_generator_steps=5,
                scheduler_g=lambda opt: LinearDecay(opt, start=0, end=10, period=10))  # fmt: skip
    data = GaussianMixture2D(preset="ring", num_train=200, batch_size=32)
    with pytest.warns(UserWarning, match="set its period to steps_per_round"):
        quiet_trainer().fit(model, datamodule=data)


def test_a_schedule_without_period_restarts_every_round() -> None:
    """No period given: MWU makes it the round, and fractions are of the round."""
    model = MWU(sample_shape=(2,), num_rounds=2, steps_per_round=8, latent_dim=2,
                architecture=MLP(8, 1, 8, 1), max_generator_steps=16,
                scheduler_g=lambda opt: LinearDecay(opt, start=0.5, end=1.0))  # fmt: skip
    data = GaussianMixture2D(preset="ring", num_train=200, batch_size=32)
    trainer = quiet_trainer()
    trainer.fit(model, datamodule=data)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert (scheduler.period, scheduler.start, scheduler.end) == (8, 4, 8)
