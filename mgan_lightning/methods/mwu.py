"""The multiplicative-weights generator mixture (Zhong, Mo, Xiao, Chen, Zheng; NeurIPS 2019,
"Rethinking Generative Mode Coverage: A Pointwise Guaranteed Approach")."""

from __future__ import annotations

import torch
from lightning.pytorch.utilities import rank_zero_warn

from mgan_lightning.methods.gan import GAN
from mgan_lightning.methods.mwu_report import report_round, start_report
from mgan_lightning.methods.rounds import GeneratorPerRound, rounds_length
from mgan_lightning.methods.weighted_data import WeightedData
from mgan_lightning.nets.modes import eval_mode


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


class MWU(GeneratorPerRound, WeightedData, GAN):
    """Multiplicative-weights mixture of T generators (Zhong et al. 2019, Algorithm 1) in one
    ``mgan fit``, each round a fresh GAN with a generator of its own
    (:class:`~mgan_lightning.methods.rounds.GeneratorPerRound`):

        w_i = 1 for every training point                              (DataModule weights)
        for t = 1..T, each a round of ``steps_per_round`` generator steps:
            G_t, D_t fresh: new weights, empty optimizer state            (GeneratorPerRound)
            train the GAN (G_t, D_t) on x ~ w / sum(w)                    (WeightedData)
                D: BCE(D(x), 1) + BCE(D(G_t(z)), 0);  G: BCE(D(G_t(z)), 1)
            c_i = D_t(x_i) for every training point            (:meth:`score_training_points`)
            w_i <- 2 w_i where term_i < delta            (:func:`multiplicative_weights_update`)
            G_t joins the mixture, frozen                                 (GeneratorPerRound)
        model: the uniform mixture of G_1..G_T

    The mixture keeps the raw G_t that D_t was trained against and scored, as the paper and
    the authors' code do; ``ema_decay`` only smooths evaluation samples of the round in
    progress (on the ring, seed 3, the EMA of G_1 covered 1 mode while D_1 doubled no
    point). Each round logs ``mwu/...`` (:mod:`~mgan_lightning.methods.mwu_report`).

    Args:
        num_rounds: T, generators in the mixture.
        steps_per_round: generator steps of each round (the run has T times as many).
        delta: threshold below which a point's weight doubles (paper: 0.25).
        score_batch_size: training points scored at once at a round's end.
        coverage_samples: samples of the new generator scored for mode coverage (0: off).
        max_generator_steps: the run's length, at most (and by default) T x
            ``steps_per_round``; a run that stops inside a round is warned about once.

    ``num_generators`` (= T) and ``independent_generators`` (true) follow; the other
    arguments are :class:`GANMethod`'s, passed through ``**kwargs``.
    """

    ratio_sum: torch.Tensor  # sum of term_i over the finished rounds (mwu_report)
    round_history: list[dict[str, float]]  # one row of mwu/... per finished round
    round_stream, data_stream = "mwu", "mwu-data"
    unfinished_round = "that round's generator is never scored"

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
        if score_batch_size < 1:
            raise ValueError(f"model.score_batch_size must be >= 1, got {score_batch_size}")
        if not delta > 0:
            raise ValueError(f"model.delta must be > 0, got {delta}")
        # One generator per round; a checkpoint's hyperparameters bring these back (equal).
        if kwargs.pop("num_generators", num_rounds) != num_rounds:
            raise ValueError("MWU has one generator per round: set num_rounds, not num_generators")
        if kwargs.pop("independent_generators", True) is not True:
            raise ValueError("MWU's generators are independent (independent_generators: true)")
        # the saved hyperparameters hold the length (Lightning reads this frame's value)
        max_generator_steps = rounds_length("MWU", num_rounds, steps_per_round, max_generator_steps)
        super().__init__(
            num_generators=num_rounds,
            independent_generators=True,
            max_generator_steps=max_generator_steps,
            **kwargs,
        )
        self.start_rounds(num_rounds, steps_per_round)
        self.delta, self.score_batch_size = float(delta), score_batch_size
        self.coverage_samples = coverage_samples
        start_report(self)

    def end_round(self, t: int) -> None:
        """Score every point with D_t, reweight, log; G_t joins the mixture as D_t scored it."""
        datamodule = self.weighted_data()
        weights, term = multiplicative_weights_update(
            datamodule.enable_example_weights(), self.score_training_points(), self.delta
        )
        datamodule.example_weights = weights
        report_round(self, t, weights, term)
        super().end_round(t)  # frozen

    def score_training_points(self) -> torch.Tensor:
        """c_i = D_t(x_i) for every training point (float64, on every process), in eval mode."""
        with eval_mode(self.critic):
            d_t = lambda x: torch.sigmoid(self.critic(x)[0])  # noqa: E731
            return self.on_every_training_point(d_t, self.score_batch_size)

    def setup(self, stage: str) -> None:
        """:meth:`GANMethod.setup`, then at ``fit`` one warning when ``ema_decay`` is set: the
        mixture keeps each round's raw G_t, so the average only smooths evaluation samples of the
        round in progress."""
        super().setup(stage)
        if stage == "fit" and self.ema_decay is not None:
            rank_zero_warn(
                "MWU keeps each round's raw G_t, the generator its D scored: model.ema_decay "
                "only smooths evaluation samples of the round in progress (drop it to silence)"
            )
