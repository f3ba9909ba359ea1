"""Methods trained in rounds: each round a GAN of its own, begun from fresh networks.

A method with rounds (MWU, Zhong et al. 2019) runs ``num_rounds`` rounds of
``steps_per_round`` generator steps in one fit. :class:`Rounds` is the life cycle::

    for t = 0 .. num_rounds - 1:
        train steps_per_round generator steps                  (the skeleton's step)
        end_round(t)                                           (the method: score, reweight, ...)
        if t is not the last:
            fresh critic (weights drawn from a seed of (run seed, t)); empty optimizer state
            start_round(t + 1)                                 (the method: what trains now)

Schedules and the moving average restart by their own clocks: a schedule's ``period`` is the
round (set when none is given), fractions (``ema_start: 0.5``) are of a round, and the
moving average counts its ``ema_start`` from the round's start.

The restart happens inside the fit, on the Trainer's own optimizers (their state is emptied,
not replaced): Lightning configures optimizers once per fit, and the checkpoint saves and
restores the same objects, so a run stopped inside a round resumes exactly.
"""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn

from mgan_lightning.methods.base import GANMethod
from mgan_lightning.nets.independent import IndependentGenerators
from mgan_lightning.private_api import clear_optimizer_state
from mgan_lightning.rng import derive_seed


def rounds_length(
    method: str, num_rounds: int, steps_per_round: int, max_generator_steps: int | None
) -> int:
    """The run's length in generator steps: ``max_generator_steps``, at most (and by default)
    ``num_rounds * steps_per_round``; a ``ValueError`` naming the field otherwise."""
    for name, value in (("num_rounds", num_rounds), ("steps_per_round", steps_per_round)):
        if value < 1:
            raise ValueError(f"model.{name} must be >= 1, got {value}")
    total = num_rounds * steps_per_round
    if max_generator_steps is None:
        return total
    if max_generator_steps > total:
        raise ValueError(
            f"model.max_generator_steps ({max_generator_steps}) is more than num_rounds x "
            f"steps_per_round ({num_rounds} x {steps_per_round} = {total}) and {method} has no "
            f"round after the last: raise model.num_rounds or model.steps_per_round"
        )
    return max_generator_steps


class Rounds(GANMethod):
    """The life cycle of rounds (see the module's text), for a method listed before its
    losses' class: ``class Restarting(Rounds, GAN)``. Its constructor calls :meth:`start_rounds`;
    it overrides :meth:`end_round` and, if a round starts more than fresh networks,
    :meth:`start_round`."""

    round_index: torch.Tensor
    #: names the seeds of the fresh critics: (run seed, "<round_stream>-critic", round)
    round_stream = "rounds"
    #: what a run that stops inside a round misses (its warning says so)
    unfinished_round = "that round never ends"

    def start_rounds(self, num_rounds: int, steps_per_round: int) -> None:
        """In the constructor: round 0 of ``num_rounds``."""
        self.num_rounds = num_rounds
        self.steps_per_round = steps_per_round
        self.register_buffer("round_index", torch.zeros((), dtype=torch.long))

    @property
    def current_round(self) -> int:
        """t, the round in progress (from 0; the checkpoint keeps it as ``round_index``)."""
        return int(self.round_index)

    # ------------------------------------------------------------------ hooks
    def end_round(self, t: int) -> None:
        """After the last generator step of round ``t``."""

    def start_round(self, t: int) -> None:
        """Round ``t`` begins (its critic and optimizer state are fresh already)."""

    # -------------------------------------------------------------- life cycle
    def end_generator_step(self) -> None:
        """After each G update (schedules, clock, average): at the last step of round t,
        :meth:`end_round` (t); then, unless t is the last round, a fresh critic, emptied optimizer
        state and :meth:`start_round` (t + 1)."""
        super().end_generator_step()
        if self.generator_steps_done % self.steps_per_round == 0:
            t = self.current_round
            self.end_round(t)
            if t + 1 < self.num_rounds:
                self.round_index += 1
                self.fresh_critic(t + 1)
                for optimizer in self.trainer.optimizers:
                    clear_optimizer_state(optimizer)  # fresh Adam moments for fresh networks
                self.start_round(t + 1)

    def fresh_critic(self, t: int) -> None:
        """New weights for D, drawn from a seed of (run seed, round): resumes exactly."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(
                derive_seed(self.resolved_run_seed(), f"{self.round_stream}-critic", t)
            )
            fresh = self.architecture.critic(self.sample_shape, self.classifier_outputs)
        self.critic.load_state_dict(fresh.state_dict())

    # ------------------------------------------- clocks that restart each round
    def ema_clock(self) -> int:
        """The moving average restarts every round: ``ema_start`` counts steps into it."""
        return self.generator_steps_done - self.current_round * self.steps_per_round

    def schedule_length(self) -> int:
        """Fractions (``ema_start: 0.5``, a schedule's ``start``) are of a round."""
        return self.steps_per_round

    def configure_optimizers(self):
        """A schedule without a ``period`` restarts every round; one with another period is
        flagged (one line)."""
        optimizers, schedulers = super().configure_optimizers()
        for config in schedulers:
            scheduler = config["scheduler"]
            if getattr(scheduler, "period", False) is None:  # a LinearDecay: once per round
                scheduler.period = self.steps_per_round
                scheduler.set_run_length(self.steps_per_round)
            period = getattr(scheduler, "period", self.steps_per_round)
            if period != self.steps_per_round:
                rank_zero_warn(
                    f"{type(self).__name__} restarts its networks every {self.steps_per_round} "
                    f"steps, but the schedule {config['name']} has period {period}: set its "
                    f"period to steps_per_round ({self.steps_per_round}) to decay once per round"
                )
        return optimizers, schedulers

    def setup(self, stage: str) -> None:
        """:meth:`GANMethod.setup`, then at ``fit`` one warning when the run stops inside a round
        (:meth:`warn_if_a_round_is_cut`)."""
        super().setup(stage)
        if stage == "fit":
            self.warn_if_a_round_is_cut()

    def warn_if_a_round_is_cut(self) -> None:
        """One line when the run stops inside a round, naming whole-round lengths."""
        stop, spr = self.planned_generator_steps(), self.steps_per_round
        total = self.num_rounds * spr
        if stop is None or not stop % spr:
            return
        rounds = stop // spr
        whole = [r * spr for r in (rounds, rounds + 1) if r > 0]
        choices = " or ".join(map(str, whole))
        if total not in whole:
            choices += f", or {total} for all {self.num_rounds} rounds"
        rank_zero_warn(
            f"{type(self).__name__}: the run stops at generator step {stop}, inside round "
            f"{rounds + 1} of {self.num_rounds} ({self.num_rounds} x {spr} = {total} steps), so "
            f"{self.unfinished_round}: set model.max_generator_steps to a whole number of "
            f"rounds ({choices})"
        )


class GeneratorPerRound(Rounds):
    """Rounds that each train a generator of their own: T generators that share no layer
    (:class:`~mgan_lightning.nets.IndependentGenerators`, all allocated up front, so
    checkpoint shapes never change); in round t, G_t alone trains and makes the fakes, and
    at its end it joins the mixture, frozen. The model is the uniform mixture of the
    generators trained so far. Built with ``num_generators=num_rounds`` and
    ``independent_generators=True``."""

    def start_rounds(self, num_rounds: int, steps_per_round: int) -> None:
        """Round 0 of ``num_rounds`` (:meth:`Rounds.start_rounds`), with G_0 alone trainable."""
        super().start_rounds(num_rounds, steps_per_round)
        self.bank.set_trainable([0])

    @property
    def bank(self) -> IndependentGenerators:
        """The T generators (independent, one slot per round)."""
        assert isinstance(self.generators, IndependentGenerators)
        return self.generators

    def mixture_weights(self) -> torch.Tensor:
        """Uniform over the generators trained so far: the finished ones and the current one
        once it has made a step (at a round's boundary, the finished ones only)."""
        t = self.current_round
        active = max(t + int(self.generator_steps_done > t * self.steps_per_round), 1)
        weights = torch.zeros(self.num_rounds, device=self.device)
        weights[:active] = 1.0 / active
        return weights

    def fake_batch(self, real_batch_size, generator=None):
        """Only G_t makes fakes: ``fake_per_generator`` (default: the real batch's size)."""
        t, n = self.current_round, self.fake_per_generator or real_batch_size
        z = self.prior.sample(n, self.latent_dim, generator)
        fake = self.bank.forward_one(t, z)
        return fake, torch.full((n,), t, dtype=torch.long, device=fake.device), z

    def end_round(self, t: int) -> None:
        """G_t joins the mixture: it stops training when round t + 1 starts, and a moving
        average's slot t takes its raw weights, so sampling and evaluation (which read the
        average) use the generator the round trained."""
        if isinstance(self.generators_ema, IndependentGenerators):
            self.generators_ema.copy_slot(t, self.bank)

    def start_round(self, t: int) -> None:
        """G_t alone trains."""
        self.bank.set_trainable([t])
