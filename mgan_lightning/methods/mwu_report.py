"""What MWU reports when a round ends (``mwu/...`` in the loggers, one line on the console).

The weights' largest share, entropy and the share of points doubled; the new generator's mode
coverage on data with known modes, and on data with rare modes how much of the weight their
points have gathered; and the pointwise quantity the paper guarantees: the
smallest, over training points, of the mixture's estimated generation probability as a
multiple of 1/n, the mean over the finished rounds of term_i (``mwu/min_generation_ratio``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from mgan_lightning.metrics.mode_coverage import ModeCoverage, nearest_modes, rare_modes
from mgan_lightning.nets.buffers import take_saved_shapes
from mgan_lightning.nets.modes import eval_mode
from mgan_lightning.private_api import register_load_state_dict_pre_hook
from mgan_lightning.reporting import publish_metrics, report
from mgan_lightning.rng import derive_seed

if TYPE_CHECKING:
    from mgan_lightning.methods.mwu import MWU


def start_report(model: MWU) -> None:
    """In the constructor: ``model.ratio_sum``, the sum over finished rounds of term_i per
    training point (a buffer, sized when the data is seen: loading takes the saved size),
    and ``model.round_history``, one row per round."""
    model.register_buffer("ratio_sum", torch.zeros(0, dtype=torch.float64))
    register_load_state_dict_pre_hook(model, _take_saved_ratio_sum)
    model.round_history = []


def _take_saved_ratio_sum(module, state_dict: dict, prefix: str, *args) -> None:
    take_saved_shapes(module, state_dict, prefix, ["ratio_sum"])


def report_round(model: MWU, t: int, weights: torch.Tensor, term: torch.Tensor) -> None:
    """Round ``t`` (0-based) is done: add its ``term`` to ``model.ratio_sum``, append its
    row to ``model.round_history``, send it to the loggers and print it."""
    if model.ratio_sum.shape != term.shape:
        model.ratio_sum = torch.zeros_like(term, device=model.ratio_sum.device)
    model.ratio_sum += term.to(model.ratio_sum.device)
    row = round_row(t, weights, term, model.ratio_sum, model.delta)
    datamodule = model.weighted_data()
    modes = getattr(datamodule, "modes", None)
    if modes is not None and model.coverage_samples >= 1 and model.global_rank == 0:
        row.update(generator_coverage(new_generator_samples(model, t), datamodule))
    mode_weights = getattr(datamodule, "mode_weights", None)
    if modes is not None and mode_weights is not None:
        points = datamodule.examples(torch.arange(len(weights)))
        row.update(rare_weight_gain(weights, points, modes, mode_weights))
    model.round_history.append(row)
    step = model.generator_steps_done
    publish_metrics(model.trainer, row, step)
    text = ", ".join(f"{k.split('/')[1]} {v:.4g}" for k, v in row.items())
    report(
        model.trainer, f"MWU round {t + 1}/{model.num_rounds} done at generator step {step}: {text}"
    )


@torch.no_grad()
def new_generator_samples(model: MWU, t: int) -> torch.Tensor:
    """``coverage_samples`` samples of G_t alone, from a seed of (run seed, t)."""
    seed = derive_seed(model.resolved_run_seed(), "mwu-round-coverage", t)
    generator = torch.Generator(device=model.device).manual_seed(seed)
    z = model.prior.sample(model.coverage_samples, model.latent_dim, generator)
    with eval_mode(model.generators):
        return model.bank.forward_one(t, z)


def round_row(
    t: int, weights: torch.Tensor, term: torch.Tensor, term_sum: torch.Tensor, delta: float
) -> dict[str, float]:
    """The numbers of round ``t`` (0-based): ``weights`` after its update, its ``term``, and
    ``term_sum``, the sum of term over rounds 0..t."""
    share = weights / weights.sum()
    return {
        "mwu/round": float(t + 1),
        "mwu/weight_max_share": float(share.max()),
        "mwu/weight_entropy": float(-(share * share.clamp_min(1e-300).log()).sum()),
        "mwu/weight_entropy_max": math.log(len(share)),
        "mwu/doubled_share": float((term < delta).double().mean()),
        "mwu/min_generation_ratio": float((term_sum / (t + 1)).min()),
        "mwu/min_round_ratio": float(term.min()),
    }


def generator_coverage(samples: torch.Tensor, datamodule) -> dict[str, float]:
    """Mode coverage of one generator's ``samples`` (on process 0 alone: no synchronisation
    with the others)."""
    metric = ModeCoverage(
        datamodule.modes, datamodule.mode_std, datamodule.mode_weights, sync_on_compute=False
    )
    metric.update(samples.cpu())
    result = metric.compute()
    row = {
        "mwu/new_generator_modes": float(result["modes"]),
        "mwu/new_generator_high_quality": float(result["high_quality"]),
    }
    if "rare_modes" in result:
        row["mwu/new_generator_rare_modes"] = float(result["rare_modes"])
    return row


def rare_weight_gain(
    weights: torch.Tensor, points: torch.Tensor, modes: torch.Tensor, mode_weights: torch.Tensor
) -> dict[str, float]:
    """Where the data has rare modes (:func:`~mgan_lightning.metrics.mode_coverage.rare_modes`):
    ``mwu/rare_weight_gain``, the mean weight of the training points nearest a rare mode over
    the mean weight of all points, ``mean_{i near R} w_i / mean_i w_i``: 1 while the weights
    are uniform, at most 2^t after t rounds. Empty where no mode is rare."""
    rare = rare_modes(mode_weights.to(torch.float64))
    if not rare.any():
        return {}
    nearest, _ = nearest_modes(points, modes)
    near_rare = rare.to(nearest.device)[nearest]
    if not near_rare.any():
        return {}
    w = weights.to(torch.float64).cpu()
    near_rare = near_rare.cpu()
    return {"mwu/rare_weight_gain": float(w[near_rare].mean() / w.mean())}
