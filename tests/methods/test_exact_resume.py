"""Exact training: a run stopped at generator step N and resumed from its checkpoint ends
bitwise identical to the uninterrupted run, for every method and variant, with evaluation
callbacks on; and evaluation never changes what is trained.

The stop falls in the middle of an epoch and the run crosses epoch boundaries, so the data
order, the latents, optimizer states, schedules and the EMA all have to resume exactly.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer, seed_everything

from mgan_lightning.callbacks import GeneratorStepCheckpoint, ModeCoverageEvaluation
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.latent import GaussianMixturePrior
from mgan_lightning.methods import GAN, MGAN, MIMGAN, MWU, BourGAN
from mgan_lightning.methods.base import GANMethod
from mgan_lightning.nets import MLP
from mgan_lightning.schedules import LinearDecay

TOTAL, STOP = 30, 13  # generator steps; 1,000 points / batch 64 = 15 batches an epoch

METHODS = {
    "gan": (GAN, {}),
    "mgan_general": (MGAN, {"diversity": "general", "beta": 0.5}),
    "mgan_one_vs_all": (MGAN, {"diversity": "one_vs_all", "beta": 0.5}),
    "mgan_pairwise": (MGAN, {"diversity": "pairwise", "beta": 0.5}),
    "mimgan": (MIMGAN, {"lam": 1.0}),
    # schedules, EMA and n_critic > 1 on one method: their state must resume too
    "mgan_aids": (
        MGAN,
        {
            "n_critic": 2,
            "ema_decay": 0.9,
            "ema_start": 5,
            "scheduler_g": lambda opt: LinearDecay(opt, start=5, end=40),
            "scheduler_d": lambda opt: LinearDecay(opt, start=0, end=60),
        },
    ),
    # generators that share no layer (vmap over stacked parameters)
    "mgan_independent": (MGAN, {"independent_generators": True, "beta": 0.5}),
    # a prior built from the data at fit start: its centres must come back, not be rebuilt
    "bourgan": (BourGAN, {"num_embedding_points": 100, "alpha": 0.5}),
    "mgan_gmm_prior": (MGAN, {"prior": GaussianMixturePrior(num_points=100), "beta": 0.5}),
    # rounds of 10 steps: the stop at 13 falls inside round 2, after one reweighting
    # (delta 1.0 doubles about half the points), with a fresh D and optimizer state
    "mwu": (MWU, {"num_rounds": 6, "steps_per_round": 5, "delta": 1.0}),
    # with the per-round schedule and moving average (both restart every round)
    "mwu_aids": (
        MWU,
        {
            "num_rounds": 6,
            "steps_per_round": 5,
            "delta": 1.0,
            "ema_decay": 0.9,
            "ema_start": 1,
            "scheduler_g": lambda opt: LinearDecay(opt, start=2, end=5, period=5),
            "scheduler_d": lambda opt: LinearDecay(opt, start=2, end=5, period=5),
        },
    ),
}


def build(name: str, steps: int) -> GANMethod:
    cls, extra = METHODS[name]
    k = extra.get("num_rounds", 1 if cls in (GAN, BourGAN) else 3)  # MWU: one per round
    latent = {} if cls is BourGAN else {"latent_dim": 4}  # BourGAN's is its embedding's
    extra = {k: copy.deepcopy(v) if isinstance(v, torch.nn.Module) else v for k, v in extra.items()}
    return cls(
        sample_shape=(2,),
        num_generators=k,
        **latent,
        architecture=MLP(g_hidden=16, g_layers=2, d_hidden=16, d_layers=2),
        max_generator_steps=steps,
        **extra,
    )


def fit(
    tmp: Path, name: str, steps: int, ckpt: Path | None = None, evaluate_every: int = 4
) -> tuple[GANMethod, Trainer]:
    """Seed, build and train like ``mgan fit`` does (seed first, then the objects)."""
    seed_everything(7, verbose=False)
    data = GaussianMixture2D(preset="ring", num_train=1000, num_test=100, batch_size=64)
    model = build(name, steps)
    callbacks: list = [GeneratorStepCheckpoint(dirpath=tmp / "ckpt", save_last=True)]
    if evaluate_every:
        callbacks.append(
            ModeCoverageEvaluation(every_n_steps=evaluate_every, num_samples=64, plot=False)
        )
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=tmp,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        trainer.fit(model, datamodule=data, ckpt_path=ckpt)
    return model, trainer


def full_state(model: GANMethod, trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every parameter, buffer, optimizer and scheduler tensor, flattened by name."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    for i, opt in enumerate(trainer.optimizers):
        for pid, s in opt.state_dict()["state"].items():
            for key, value in s.items():
                state[f"opt{i}.{pid}.{key}"] = torch.as_tensor(value)
    for i, config in enumerate(trainer.lr_scheduler_configs):
        state[f"sched{i}.lr"] = torch.tensor(config.scheduler.get_last_lr())
    weights = getattr(trainer.datamodule, "example_weights", None)
    if weights is not None:
        state["data.example_weights"] = weights
    return state


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"differs after resume: {different[:5]}"


@pytest.mark.parametrize("name", list(METHODS))
def test_resumed_run_is_bitwise_identical(tmp_path: Path, name: str) -> None:
    whole, whole_trainer = fit(tmp_path / "whole", name, TOTAL)
    fit(tmp_path / "part", name, STOP)
    ckpt = tmp_path / "part" / "ckpt" / "last.ckpt"
    assert int(torch.load(ckpt, weights_only=True)["state_dict"]["generator_step"]) == STOP
    resumed, resumed_trainer = fit(tmp_path / "part", name, TOTAL, ckpt=ckpt)
    assert resumed.generator_steps_done == whole.generator_steps_done == TOTAL
    assert_bitwise_equal(full_state(whole, whole_trainer), full_state(resumed, resumed_trainer))


def test_evaluation_does_not_change_training(tmp_path: Path) -> None:
    """Turning the evaluation callback on, or changing its cadence, trains the same weights."""
    off, off_trainer = fit(tmp_path / "off", "mgan_general", 12, evaluate_every=0)
    on, on_trainer = fit(tmp_path / "on", "mgan_general", 12, evaluate_every=1)
    assert_bitwise_equal(full_state(off, off_trainer), full_state(on, on_trainer))


ABLATIONS = {
    # the data order restarts at the epoch's first batch, as a non-resumable loader does
    "data_position": (GaussianMixture2D, "_consumed_this_epoch", lambda self: 0),
    # latents come from the global RNG, which a resume does not restore
    "training_rng": (GANMethod, "training_generator", lambda self: None),
}


@pytest.mark.parametrize("ablation", list(ABLATIONS))
def test_resume_differs_without_the_rng_handling(
    tmp_path: Path, ablation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above can fail: without either piece of the RNG handling, the resumed run
    ends with other weights."""
    monkeypatch.setattr(*ABLATIONS[ablation])
    whole, whole_trainer = fit(tmp_path / "whole", "gan", TOTAL, evaluate_every=0)
    fit(tmp_path / "part", "gan", STOP, evaluate_every=0)
    ckpt = tmp_path / "part" / "ckpt" / "last.ckpt"
    resumed, resumed_trainer = fit(tmp_path / "part", "gan", TOTAL, ckpt=ckpt, evaluate_every=0)
    a, b = full_state(whole, whole_trainer), full_state(resumed, resumed_trainer)
    assert any(not torch.equal(a[k], b[k]) for k in a)
