"""BourGAN: one training step against the same step written out by hand (and the check
failing when the distance term is dropped or its second batch is the first); the prior
built once at fit start, kept through checkpoints, not rebuilt on resume (exact resume is
checked in test_exact_resume.py);
a short run of the grid config through the CLI."""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer

from mgan_lightning.cli import build_cli
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.latent import GaussianMixturePrior
from mgan_lightning.methods import BourGAN
from mgan_lightning.nets import MLP
from tests.methods.test_training_step import BETAS, EPS, LR, adam_step, bce, mismatched, train

ROOT = Path(__file__).resolve().parents[2]
POINTS = 64  # embedded examples: 5 * ceil(log2 64) = 30 latent dimensions
ALPHA = 5.0  # large, so that a dropped distance term shows in one Adam step


def build(k: int = 1, steps: int = 1, alpha: float = ALPHA) -> BourGAN:
    torch.manual_seed(0)
    adam = partial(torch.optim.Adam, lr=LR, betas=BETAS, eps=EPS)
    model = BourGAN(
        sample_shape=(2,),
        num_generators=k,
        alpha=alpha,
        num_embedding_points=POINTS,
        architecture=MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1),
        max_generator_steps=steps,
        optimizer_g=adam,
        optimizer_d=adam,
    )
    model.run_seed = 2024
    return model


def mixture_draw(prior: GaussianMixturePrior, n: int, rng: torch.Generator) -> torch.Tensor:
    """Pick a centre uniformly, add N(0, sigma^2 I), in the order the prior draws them."""
    index = torch.randint(len(prior.centres), (n,), generator=rng)
    return prior.centres[index] + prior.sigma * torch.randn(n, prior.dim, generator=rng)


def reference(init: BourGAN, batches: list, steps: int) -> BourGAN:
    """The algorithm box of ``BourGAN`` written out with torch.nn.functional."""
    ref = copy.deepcopy(init)
    gen_params, critic_params = list(ref.generators.parameters()), list(ref.critic.parameters())
    opt_g = torch.optim.Adam(gen_params, lr=LR, betas=BETAS, eps=EPS)
    opt_d = torch.optim.Adam(critic_params, lr=LR, betas=BETAS, eps=EPS)
    k, s = ref.num_generators, float(ref.prior.scale)
    for t in range(steps):
        real = batches[t][0]
        n = -(-len(real) // k)
        ref.generator_steps_done = t
        # independent latents per generator (GAN's default), K*n draws reshaped
        z1 = mixture_draw(ref.prior, k * n, ref.training_generator()).reshape(k, n, -1)
        fake = ref.generators(z1)  # (K, n, 2)
        d_loss = bce(ref.critic(real)[0], 1.0) + bce(
            ref.critic(fake.reshape(-1, 2).detach())[0], 0.0
        )
        adam_step(opt_d, d_loss, critic_params)

        z2 = mixture_draw(ref.prior, k * n, ref.training_generator("bourgan-pairs"))
        z2 = z2.reshape(k, n, -1)
        fake_2 = ref.generators(z2)
        sample_gap = (fake - fake_2).norm(dim=-1)  # (K, n): pair i of generator k
        latent_gap = (z1 - z2).norm(dim=-1)
        distance = F.mse_loss((sample_gap + 1e-8).log(), (s * latent_gap + 1e-8).log())
        g_loss = bce(ref.critic(fake.reshape(-1, 2))[0], 1.0) + ref.alpha * distance
        adam_step(opt_g, g_loss, gen_params)
    return ref


def with_trained_prior(init: BourGAN, trained: BourGAN) -> BourGAN:
    """``init`` with the prior the run built at fit start (the reference starts there)."""
    ref = copy.deepcopy(init)
    ref.prior.load_state_dict(trained.prior.state_dict())
    return ref


@pytest.mark.parametrize(("k", "steps"), [(1, 1), (3, 2)])
def test_step_matches_the_hand_written_step(tmp_path: Path, k: int, steps: int) -> None:
    init = build(k, steps)
    assert not init.prior.prepared
    trained, batches, trainer = train(init, tmp_path)
    assert trained.prior.prepared and trained.prior.centres.shape == (POINTS, 30)
    expected = reference(with_trained_prior(init, trained), batches, steps)
    assert not mismatched(trained, expected)
    assert "loss/g_distance" in trainer.callback_metrics


FAULTS = {
    "distance_term_dropped": ("losses.distance_preserving_loss", lambda *a, **kw: torch.zeros(())),
    "second_batch_is_the_first": ("BourGAN.second_latents", lambda self, z: z),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_comparison_fails_on_a_faulty_step(tmp_path: Path, monkeypatch, fault: str) -> None:
    target, replacement = FAULTS[fault]
    monkeypatch.setattr(f"mgan_lightning.methods.bourgan.{target}", replacement)
    init = build(1, 1)
    trained, batches, _ = train(init, tmp_path)
    expected = reference(with_trained_prior(init, trained), batches, 1)
    assert any(name.startswith("generators") for name in mismatched(trained, expected))


def test_distance_term_is_zero_when_distances_are_in_proportion() -> None:
    from mgan_lightning.losses import distance_preserving_loss

    z1, z2 = torch.randn(10, 4), torch.randn(10, 4)
    x1, x2 = 3.0 * z1, 3.0 * z2  # sample distances = 3 x latent distances
    assert distance_preserving_loss(x1, x2, z1, z2, 3.0, eps=0.0) < 1e-10
    assert distance_preserving_loss(x1, x2, z1, z2, 1.0, eps=0.0) > 1.0  # log 3 squared
    same = distance_preserving_loss(x1, x1, z1, z1, 1.0)  # coinciding: finite with eps
    assert torch.isfinite(same)


# ------------------------------------------------------------ the prior's life cycle
def fit_small(tmp: Path, steps: int, ckpt: Path | None = None, model: BourGAN | None = None):
    data = GaussianMixture2D(preset="grid", num_train=300, num_test=50, batch_size=32)
    model = model or BourGAN(
        sample_shape=(2,),
        architecture=MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1),
        max_generator_steps=steps,
    )
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp,
    )
    trainer.fit(model, datamodule=data, ckpt_path=ckpt)
    return model, trainer


def test_prior_of_all_points_survives_save_and_load(tmp_path: Path) -> None:
    """No ``num_embedding_points``: all 300 training points, so the latent dimension
    (5 * 9 = 45) is known only at fit start; load_from_checkpoint and a Trainer restoring
    into a freshly built model both get it back."""
    model, trainer = fit_small(tmp_path, 3)
    assert model.latent_dim == 45 and model.prior.centres.shape == (300, 45)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)

    loaded = BourGAN.load_from_checkpoint(path)
    assert torch.equal(loaded.prior.centres, model.prior.centres)
    assert torch.equal(loaded.prior.scale, model.prior.scale)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(loaded.sample(50, generator=g1)[0], model.sample(50, generator=g2)[0])

    fresh = BourGAN(
        sample_shape=(2,), architecture=MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1)
    )
    assert not fresh.prior.prepared
    Trainer(accelerator="cpu", logger=False, enable_progress_bar=False).test(
        fresh, datamodule=GaussianMixture2D(preset="grid", num_test=50), ckpt_path=path
    )
    assert torch.equal(fresh.prior.centres, model.prior.centres)


def test_unprepared_model_says_how_to_get_a_prior() -> None:
    model = BourGAN(sample_shape=(2,))
    with pytest.raises(RuntimeError, match="no centres yet"):
        model.sample(4)


def test_resume_does_not_rebuild_the_prior(tmp_path: Path, monkeypatch) -> None:
    calls = []
    original = GaussianMixturePrior.fit

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GaussianMixturePrior, "fit", counted)
    model, trainer = fit_small(tmp_path, 3)
    assert len(calls) == 1
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    resumed, _ = fit_small(tmp_path, 6, ckpt=path)
    assert len(calls) == 1  # restored from the checkpoint, not recomputed
    assert torch.equal(resumed.prior.centres, model.prior.centres)
    assert resumed.generator_steps_done == 6


def test_loading_rejects_a_conflicting_latent_dim() -> None:
    with pytest.raises(ValueError, match="leave model.latent_dim unset"):
        BourGAN(sample_shape=(2,), num_embedding_points=64, latent_dim=8)


# ------------------------------------------------------------ through the CLI
def test_grid_config_trains_through_the_cli(tmp_path: Path) -> None:
    cli = build_cli(
        [
            "fit",
            "--config", str(ROOT / "configs" / "grid" / "bourgan.yaml"),
            "--model.init_args.max_generator_steps=20",
            "--model.init_args.num_embedding_points=100",
            "--data.init_args.num_train=1000",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ],
    )  # fmt: skip
    model = cli.model
    assert model.generator_steps_done == 20
    assert model.prior.centres.shape == (100, 35) and model.latent_dim == 35
    assert torch.isfinite(model.prior.scale)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["state_dict"]["prior.centres"].shape == (100, 35)
    assert "test/modes" not in cli.trainer.callback_metrics  # fit only
    assert cli.trainer.callback_metrics["coverage/modes"] >= 1
