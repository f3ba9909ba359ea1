"""The multiplicative-weights generator mixture (Zhong, Mo, Xiao, Chen, Zheng; NeurIPS 2019,
"Rethinking Generative Mode Coverage: A Pointwise Guaranteed Approach")."""

from __future__ import annotations

import math

import torch
from lightning.pytorch.utilities import rank_zero_warn

from mgan_lightning.methods.gan import GAN
from mgan_lightning.metrics.mode_coverage import ModeCoverage
from mgan_lightning.nets.buffers import take_saved_shapes
from mgan_lightning.nets.independent import IndependentGenerators
from mgan_lightning.nets.modes import eval_mode
from mgan_lightning.private_api import clear_optimizer_state
from mgan_lightning.reporting import publish_metrics, report
from mgan_lightning.rng import derive_seed


def multiplicative_weights_update(
    weights: torch.Tensor, d_real: torch.Tensor, delta: float = 0.25, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """One round's update (Algorithm 1 of the paper, as the authors' code computes it).

    With c_i = D_t(x_i) (a probability) for every training point,

        a_i    = 1 / (c_i + eps) - 1             estimates P_Gt(x_i) / P_data_t(x_i)
        term_i = a_i * (w_i / sum_j w_j) * n     estimates n * P_Gt(x_i): 1 = as likely as
                                                 under the uniform empirical distribution
        w_i   <- 2 w_i  where term_i < delta     points the new generator under-covers

    Weights are never renormalised (float64). Returns ``(new_weights, term)``."""
    w = weights.to(torch.float64)
    a = 1.0 / (d_real.to(torch.float64) + eps) - 1.0
    term = a * (w / w.sum()) * len(w)
    return torch.where(term < delta, 2.0 * w, w), term


class MWU(GAN):
    """Multiplicative-weights mixture of T generators (Zhong et al. 2019, Algorithm 1), in one
    ``mgan fit``:

        w_i = 1 for every training point                              (DataModule weights)
        for t = 1..T, each a round of ``steps_per_round`` generator steps:
            G_t, D_t fresh: new weights, empty optimizer state         (:meth:`start_round`)
            train the GAN (G_t, D_t) on x ~ w / sum(w), with replacement
                D: BCE(D(x), 1) + BCE(D(G_t(z)), 0);  G: BCE(D(G_t(z)), 1)
            c_i = D_t(x_i) for every training point            (:meth:`score_training_points`)
            w_i <- 2 w_i where term_i < delta            (:func:`multiplicative_weights_update`)
            G_t joins the mixture, frozen                          (:meth:`freeze_generator`)
        model: the uniform mixture of G_1..G_T

    **The mixture keeps the G_t that D_t judged.** The update reads D_t as the discriminator
    of the round's data against G_t (a_i estimates P_Gt / P_data_t), so the generator frozen
    into the mixture is the raw G_t that D_t was trained against and scored, as in the paper
    and the authors' code, which keep no moving average. With ``ema_decay`` the average is
    not what joins the mixture: at the round's end its slot takes the raw weights, so it
    only smooths what evaluation samples of the round in progress (a one-line warning says
    so; it never enters training, so it changes no score and no weight). Freezing the
    average instead would need D refitted against it before scoring (more D steps, an
    optimizer of their own, a gradient sync outside the step under DDP), and an average of a
    round is not a generator its D has seen: on the ring (seed 3, rounds of 5,000 steps) the
    EMA of G_1 covered 1 mode with 0.2% high-quality samples while D_1, trained against the
    raw G_1, doubled no point. Not cheap, so not offered as a switch.

    Training aids apply per round, as each round is a GAN of its own: a
    :class:`~mgan_lightning.schedules.LinearDecay` restarts the learning rates every round (MWU
    sets its ``period`` to ``steps_per_round`` when none is given, and its fractions are of a
    round; ours: the authors train at a constant rate).

    The authors' settings: 2-D scripts train every round for 20,000 iterations at a constant
    rate without an average (helix 25 rounds, outliers 20, sine 10, their Gaussian-mixture
    script 5); Stacked MNIST 50 rounds of 2,000 iterations.

    The generators share no layer (:class:`~mgan_lightning.nets.IndependentGenerators`, all
    T slots allocated up front); only the current one trains, and sampling or evaluation
    during training mixes the finished ones and the current one uniformly. The weights live
    in the DataModule (``example_weights``, float64, in checkpoints); each real batch is drawn
    in the step from this process's own stream, so DDP processes draw different batches with
    the same weights, and a resumed run draws the same ones. Every round logs the weights'
    largest share, entropy and the share doubled, the new generator's mode coverage (data
    with known modes), and the pointwise quantity the paper guarantees: the smallest, over
    training points, of the mixture's estimated generation probability, as a multiple of
    1/n (``mwu/min_generation_ratio``: the mean of the rounds' term_i).

    Args:
        num_rounds: T, generators in the mixture.
        steps_per_round: generator steps of each round (the run has T times as many).
        delta: threshold below which a point's weight doubles (paper: 0.25).
        score_batch_size: training points scored at once at a round's end.
        coverage_samples: samples of the new generator scored for mode coverage (0: off).
        max_generator_steps: the run's length, at most (and by default)
            ``num_rounds * steps_per_round``; a run that stops inside a round (to be resumed,
            or a smoke test) is warned about once, as its last generator is never scored.

    ``num_generators`` (= T) and ``independent_generators`` (true) follow from these; the
    other arguments (``latent_dim``, ``architecture``, optimizers, ...) are
    :class:`GANMethod`'s, passed through ``**kwargs``.
    """

    round_index: torch.Tensor
    ratio_sum: torch.Tensor

    def __init__(
        self,
        num_rounds: int = 5,
        steps_per_round: int = 5000,
        delta: float = 0.25,
        score_batch_size: int = 4096,
        coverage_samples: int = 2500,
        max_generator_steps: int | None = None,
        **kwargs,
    ) -> None:
        for name, value in (
            ("num_rounds", num_rounds),
            ("steps_per_round", steps_per_round),
            ("score_batch_size", score_batch_size),
        ):
            if value < 1:
                raise ValueError(f"model.{name} must be >= 1, got {value}")
        if not delta > 0:
            raise ValueError(f"model.delta must be > 0, got {delta}")
        # Derived here; a checkpoint's hyperparameters bring them back, so accept equal values.
        if kwargs.pop("num_generators", num_rounds) != num_rounds:
            raise ValueError(
                "MWU has one generator per round: set model.num_rounds, not num_generators"
            )
        if kwargs.pop("independent_generators", True) is not True:
            raise ValueError("MWU's generators are independent (independent_generators: true)")
        total = num_rounds * steps_per_round
        if max_generator_steps is None:
            max_generator_steps = total
        elif max_generator_steps > total:
            raise ValueError(
                f"model.max_generator_steps ({max_generator_steps}) is more than num_rounds x "
                f"steps_per_round ({num_rounds} x {steps_per_round} = {total}) and MWU has no "
                f"round after the last: raise model.num_rounds or model.steps_per_round"
            )
        super().__init__(
            num_generators=num_rounds,
            independent_generators=True,
            max_generator_steps=max_generator_steps,
            **kwargs,
        )
        self.num_rounds = num_rounds
        self.steps_per_round = steps_per_round
        self.delta = float(delta)
        self.score_batch_size = score_batch_size
        self.coverage_samples = coverage_samples
        self.register_buffer("round_index", torch.zeros((), dtype=torch.long))
        # sum over finished rounds of term_i, per training point (sized when data is seen)
        self.register_buffer("ratio_sum", torch.zeros(0, dtype=torch.float64))
        self.bank.set_trainable([0])
        self.round_history: list[dict[str, float]] = []

    # ------------------------------------------------------------ the mixture
    @property
    def bank(self) -> IndependentGenerators:
        """The T generators (independent, one slot per round)."""
        assert isinstance(self.generators, IndependentGenerators)
        return self.generators

    @property
    def current_round(self) -> int:
        return int(self.round_index)

    def mixture_weights(self) -> torch.Tensor:
        """Uniform over the generators trained so far: the finished ones and the current one
        once it has made a step (at a round's boundary, the finished ones only)."""
        t = self.current_round
        started = self.generator_steps_done > t * self.steps_per_round
        active = max(t + int(started), 1)
        weights = torch.zeros(self.num_rounds, device=self.device)
        weights[:active] = 1.0 / active
        return weights

    def fake_batch(self, real_batch_size, generator=None):
        """Only the current round's generator makes fakes."""
        t = self.current_round
        n = self.fake_per_generator or real_batch_size
        z = self.prior.sample(n, self.latent_dim, generator)
        fake = self.bank.forward_one(t, z)
        index = torch.full((n,), t, dtype=torch.long, device=fake.device)
        return fake, index, z

    # ---------------------------------------------------------- training aids
    def configure_optimizers(self):
        optimizers, schedulers = super().configure_optimizers()
        for config in schedulers:
            scheduler = config["scheduler"]
            if getattr(scheduler, "period", False) is None:  # a LinearDecay: once per round
                scheduler.period = self.steps_per_round
                scheduler.set_run_length(self.steps_per_round)
            period = getattr(scheduler, "period", self.steps_per_round)
            if period != self.steps_per_round:
                rank_zero_warn(
                    f"MWU restarts its networks every {self.steps_per_round} steps, but the "
                    f"schedule {config['name']} has period {period}: set its period to "
                    f"steps_per_round ({self.steps_per_round}) to decay once per round"
                )
        return optimizers, schedulers

    def ema_clock(self) -> int:
        """The moving average restarts every round: ``ema_start`` counts steps into it."""
        return self.generator_steps_done - self.current_round * self.steps_per_round

    def schedule_length(self) -> int:
        """Fractions (``ema_start: 0.5``) are of a round, which restarts the average."""
        return self.steps_per_round

    # ------------------------------------------------------------------ data
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage != "fit":
            return
        self._datamodule().enable_example_weights()  # a checkpoint's replace them later
        self.warn_about_settings()

    def warn_about_settings(self) -> None:
        """One line each: a run that stops inside a round; an average that the mixture does
        not keep."""
        stop = self.planned_generator_steps()
        total = self.num_rounds * self.steps_per_round
        if stop is not None and stop % self.steps_per_round:
            rounds = stop // self.steps_per_round
            whole = [r * self.steps_per_round for r in (rounds, rounds + 1) if r > 0]
            choices = " or ".join(map(str, whole))
            if total not in whole:
                choices += f", or {total} for all {self.num_rounds} rounds"
            rank_zero_warn(
                f"MWU: the run stops at generator step {stop}, inside round {rounds + 1} of "
                f"{self.num_rounds} ({self.num_rounds} x {self.steps_per_round} = {total} "
                f"steps), so that round's generator is never scored: set "
                f"model.max_generator_steps to a whole number of rounds ({choices})"
            )
        if self.ema_decay is not None:
            rank_zero_warn(
                "MWU keeps each round's raw G_t, the generator its D scored: model.ema_decay "
                "only smooths evaluation samples of the round in progress (drop it to silence)"
            )

    def _datamodule(self):
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "draw_weighted"):
            raise RuntimeError(
                "MWU reweights the training data: train it with a GANDataModule "
                "(mgan fit --data ...)"
            )
        return datamodule

    def real_samples(self, batch) -> torch.Tensor:  # type: ignore[override]
        """The step's real batch, drawn with probability proportional to the weights (the
        loader's batch only gives its size)."""
        n = len(super().real_samples(batch))
        # on the CPU, where the weights are
        generator = torch.Generator().manual_seed(self.step_seed("mwu-data"))
        return self._datamodule().draw_weighted(n, generator).to(self.device)

    # ---------------------------------------------------------------- rounds
    def end_generator_step(self) -> None:
        super().end_generator_step()
        if self.generator_steps_done % self.steps_per_round == 0:
            self.finish_round()

    def finish_round(self) -> None:
        """The end of round t: score every point with D_t, reweight, freeze the G_t that D_t
        scored, log; then start round t + 1."""
        t = self.current_round
        datamodule = self._datamodule()
        weights, term = multiplicative_weights_update(
            datamodule.enable_example_weights(), self.score_training_points(), self.delta
        )
        datamodule.example_weights = weights
        self.freeze_generator(t)
        self.log_round(t, weights, term)
        if t + 1 < self.num_rounds:
            self.start_round(t + 1)

    @torch.no_grad()
    def score_training_points(self) -> torch.Tensor:
        """D_t(x_i) for every training point (probabilities, float64, on every process):
        each process scores its share ``i = rank, rank + W, ...`` in eval mode, in chunks."""
        datamodule = self._datamodule()
        n = datamodule.num_train_examples()
        rank, world = self.global_rank, self.trainer.world_size
        mine = torch.arange(rank, n, world)
        with eval_mode(self.critic):
            scores = [
                torch.sigmoid(self.critic(datamodule.examples(chunk).to(self.device))[0]).flatten()
                for chunk in mine.split(self.score_batch_size)
            ]
        share = torch.cat(scores).to(torch.float64)
        if world == 1:
            return share.cpu()
        padded = torch.zeros(-(-n // world), dtype=torch.float64, device=self.device)
        padded[: len(share)] = share
        gathered = self.trainer.strategy.all_gather(padded)  # (world, ceil(n / world))
        full = torch.empty(n, dtype=torch.float64)
        for r in range(world):
            count = len(range(r, n, world))
            full[r::world] = gathered[r, :count].cpu()
        return full

    def freeze_generator(self, t: int) -> None:
        """G_t joins the mixture as D_t judged it: the raw slot t, which stops training when
        the next round starts. A moving average's slot t takes the same weights, so sampling
        and evaluation (which read the average) use it too."""
        if isinstance(self.generators_ema, IndependentGenerators):
            self.generators_ema.copy_slot(t, self.bank)

    def start_round(self, t: int) -> None:
        """A new GAN: slot t trains alone, D re-drawn, both optimizers' state emptied (the
        schedules and the average restart by their own clocks: ``period``, :meth:`ema_clock`)."""
        self.round_index += 1
        self.bank.set_trainable([t])
        self.fresh_critic(t)
        for optimizer in self.trainer.optimizers:
            clear_optimizer_state(optimizer)  # fresh Adam moments for the new networks

    def fresh_critic(self, t: int) -> None:
        """New weights for D, drawn from a seed of (run seed, round): resumes exactly."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.resolved_run_seed(), "mwu-critic", t))
            fresh = self.architecture.critic(self.sample_shape, self.classifier_outputs())
        self.critic.load_state_dict(fresh.state_dict())

    # --------------------------------------------------------------- logging
    def log_round(self, t: int, weights: torch.Tensor, term: torch.Tensor) -> None:
        if self.ratio_sum.shape != term.shape:
            self.ratio_sum = torch.zeros_like(term, device=self.ratio_sum.device)
        self.ratio_sum += term.to(self.ratio_sum.device)
        share = weights / weights.sum()
        row = {
            "mwu/round": float(t + 1),
            "mwu/weight_max_share": float(share.max()),
            "mwu/weight_entropy": float(-(share * share.clamp_min(1e-300).log()).sum()),
            "mwu/weight_entropy_max": math.log(len(share)),
            "mwu/doubled_share": float((term < self.delta).double().mean()),
            "mwu/min_generation_ratio": float((self.ratio_sum / (t + 1)).min()),
            "mwu/min_round_ratio": float(term.min()),
        }
        row.update(self.new_generator_coverage(t))
        self.round_history.append(row)
        step = self.generator_steps_done
        publish_metrics(self.trainer, row, step)
        text = ", ".join(f"{k.split('/')[1]} {v:.4g}" for k, v in row.items())
        done = f"MWU round {t + 1}/{self.num_rounds} done at generator step {step}"
        report(self.trainer, f"{done}: {text}")

    @torch.no_grad()
    def new_generator_coverage(self, t: int) -> dict[str, float]:
        """Mode coverage of G_t alone, on data with known modes (Gaussian mixtures)."""
        datamodule = self._datamodule()
        modes = getattr(datamodule, "modes", None)
        if modes is None or self.coverage_samples < 1 or self.global_rank != 0:
            return {}
        generator = torch.Generator(device=self.device).manual_seed(
            derive_seed(self.resolved_run_seed(), "mwu-round-coverage", t)
        )
        z = self.prior.sample(self.coverage_samples, self.latent_dim, generator)
        with eval_mode(self.generators):
            samples = self.bank.forward_one(t, z)
        # process 0 alone: no synchronisation with the others
        metric = ModeCoverage(
            modes, datamodule.mode_std, datamodule.mode_weights, sync_on_compute=False
        )
        metric.update(samples.cpu())
        result = metric.compute()
        return {
            "mwu/new_generator_modes": float(result["modes"]),
            "mwu/new_generator_high_quality": float(result["high_quality"]),
        }

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """The per-point ratio sums take their saved size (unknown before data is seen)."""
        take_saved_shapes(self, state_dict, prefix, ["ratio_sum"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
