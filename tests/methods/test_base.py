"""The shared GAN skeleton: sampling, latent sharing, NaN detection, step counters,
checkpoint round trips and validation of the constructor's arguments."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.latent import UniformPrior
from mgan_lightning.methods import GAN, NonFiniteLossError
from mgan_lightning.nets import MLP, Architecture, GeneratorBank

K = 4


class Tagged(Architecture):
    """Generator k outputs ``z + 10 k`` (identity input layer, shift 10 k, identity body),
    so every sample tells which generator made it and which z it came from."""

    def generator_bank(self, num_generators, latent_dim, sample_shape):
        bank = GeneratorBank(num_generators, latent_dim, latent_dim, nn.Identity())
        with torch.no_grad():
            bank.weight.copy_(torch.eye(latent_dim).expand(num_generators, -1, -1))
            bank.bias.copy_(10.0 * torch.arange(num_generators)[:, None].expand(-1, latent_dim))
        return bank

    def critic(self, sample_shape, num_classes=0):
        return MLP(d_hidden=4, d_layers=1).critic(sample_shape, num_classes)


def tagged_gan(**kwargs) -> GAN:
    # U[0.1, 0.9] keeps z positive, so the ReLU after the input layer is the identity.
    return GAN(
        sample_shape=(3,),
        num_generators=K,
        latent_dim=3,
        architecture=Tagged(),
        prior=UniformPrior(0.1, 0.9),
        **kwargs,
    )


def generator_of(samples: torch.Tensor) -> torch.Tensor:
    return torch.div(samples[:, 0], 10, rounding_mode="floor").long()


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_sample_returns_n_samples_and_their_generators(n: int) -> None:
    torch.manual_seed(0)
    samples, index = tagged_gan().sample(n)
    assert samples.shape == (n, 3) and index.shape == (n,)
    assert index.dtype == torch.long
    if n:
        assert int(index.min()) >= 0 and int(index.max()) < K
    assert torch.equal(generator_of(samples), index)


def test_sample_frequencies_are_uniform() -> None:
    torch.manual_seed(0)
    n = 20_000
    _, index = tagged_gan().sample(n)
    freq = torch.bincount(index, minlength=K).double() / n
    tol = 5 * math.sqrt(0.25 * 0.75 / n)
    assert (freq - 1 / K).abs().max() < tol


def test_sample_frequencies_follow_weights() -> None:
    torch.manual_seed(0)
    n = 20_000
    weights = torch.tensor([0.6, 0.3, 0.1, 0.0])
    samples, index = tagged_gan().sample(n, weights=weights)
    assert torch.equal(generator_of(samples), index)
    freq = torch.bincount(index, minlength=K).double() / n
    for f, p in zip(freq.tolist(), weights.tolist()):
        assert abs(f - p) <= 5 * math.sqrt(p * (1 - p) / n)
    assert freq[3] == 0


def test_unnormalised_weights_are_accepted() -> None:
    torch.manual_seed(0)
    _, index = tagged_gan().sample(2000, weights=torch.tensor([0.0, 5.0, 0.0, 5.0]))
    assert set(index.tolist()) == {1, 3}


def test_samples_are_shuffled_and_distinct() -> None:
    torch.manual_seed(0)
    samples, index = tagged_gan().sample(400)
    # Not sorted by generator, and no z reused within a generator.
    assert not torch.equal(index, index.sort().values)
    assert len(torch.unique(samples, dim=0)) == 400


def test_same_latent_feeds_one_z_to_every_generator() -> None:
    torch.manual_seed(0)
    model = tagged_gan(same_latent=True)
    z = model.sample_latent(5)
    assert z.shape == (5, 3)
    out = model.generate(z)
    shifts = 10.0 * torch.arange(K)[:, None, None]
    for k in range(K):
        torch.testing.assert_close(out[k] - shifts[k], z)
    # The fake batch of one training step: every generator saw the same z.
    fake, index, z = model.fake_batch(8)
    per_gen = fake.reshape(K, 2, 3) - shifts
    assert torch.equal(index, torch.arange(K).repeat_interleave(2))
    for k in range(1, K):
        torch.testing.assert_close(per_gen[k], per_gen[0])


def test_independent_latents_by_default() -> None:
    torch.manual_seed(0)
    model = tagged_gan()
    z = model.sample_latent(5)
    assert z.shape == (K, 5, 3)
    out = model.generate(z) - 10.0 * torch.arange(K)[:, None, None]
    for k in range(1, K):
        assert not torch.allclose(out[k], out[0])


def test_fake_batch_size_rounds_up_or_follows_fake_per_generator() -> None:
    model = tagged_gan()
    fake, index, _ = model.fake_batch(10)  # ceil(10 / 4) = 3 per generator
    assert fake.shape == (12, 3) and torch.equal(torch.bincount(index), torch.full((K,), 3))
    fake, index, _ = tagged_gan(fake_per_generator=5).fake_batch(10)
    assert fake.shape == (20, 3) and torch.equal(torch.bincount(index), torch.full((K,), 5))


# ------------------------------------------------------------------ training


def small_gan(**kwargs) -> GAN:
    arch = MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1)
    return GAN(sample_shape=(2,), num_generators=2, latent_dim=2, architecture=arch, **kwargs)


def small_data() -> GaussianMixture2D:
    return GaussianMixture2D(num_train=512, num_test=64, batch_size=32)


def trainer(tmp_path: Path, max_steps: int, **kwargs) -> Trainer:
    options = dict(
        accelerator="cpu",
        devices=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    options.update(kwargs)
    return Trainer(**options)


@pytest.mark.parametrize("n_critic, max_steps, g_steps", [(1, 6, 3), (2, 6, 2), (3, 8, 2)])
def test_generator_step_counts_g_updates_global_step_counts_all(
    tmp_path: Path, n_critic: int, max_steps: int, g_steps: int
) -> None:
    torch.manual_seed(0)
    model = small_gan(n_critic=n_critic)
    t = trainer(tmp_path, max_steps)
    t.fit(model, datamodule=small_data())
    assert int(model.generator_step) == g_steps
    assert t.global_step == g_steps * (n_critic + 1)
    assert t.fit_loop.total_batch_idx + 1 == g_steps  # one batch per G step


def test_generator_step_survives_a_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_gan(n_critic=2)
    t = trainer(tmp_path, 9)
    t.fit(model, datamodule=small_data())
    assert int(model.generator_step) == 3
    path = tmp_path / "a.ckpt"
    t.save_checkpoint(path)

    # torch's default weights_only=True loading works: the architecture is stored as a
    # class_path config, rebuilt with its own sizes (not the defaults).
    loaded = GAN.load_from_checkpoint(path)
    assert int(loaded.generator_step) == 3
    assert loaded.n_critic == 2
    assert loaded.generators.hidden_dim == 8 and isinstance(loaded.architecture, MLP)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value)

    # Resuming continues both counters where they stopped.
    resumed = small_gan(n_critic=2)
    t2 = trainer(tmp_path, 15)
    t2.fit(resumed, datamodule=small_data(), ckpt_path=path)
    assert int(resumed.generator_step) == 5
    assert t2.global_step == 15


def test_prior_and_architecture_are_rebuilt_from_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_gan(prior=UniformPrior(-2.0, 3.0))
    t = trainer(tmp_path, 2)
    t.fit(model, datamodule=small_data())
    t.save_checkpoint(tmp_path / "p.ckpt")
    loaded = GAN.load_from_checkpoint(tmp_path / "p.ckpt")
    assert isinstance(loaded.prior, UniformPrior)
    assert (loaded.prior.low, loaded.prior.high) == (-2.0, 3.0)
    assert loaded.architecture.g_layers == 1 and loaded.architecture.d_hidden == 8


class NaNAt(GAN):
    """A GAN whose generator (or discriminator) loss becomes NaN at a given generator step.
    Just before, it records the checkpoints on disk, to compare with what is left after."""

    def __init__(self, nan_at: int = 3, which: str = "generator", ckpt_dir: str = "", **kw):
        super().__init__(**kw)
        self.nan_at, self.which, self.ckpt_dir = nan_at, which, ckpt_dir
        self.before: dict[str, str] = {}

    def _poison(self, loss: torch.Tensor) -> torch.Tensor:
        if int(self.generator_step) == self.nan_at:
            self.before = _hashes(Path(self.ckpt_dir))
            return loss * float("nan")
        return loss

    def discriminator_loss(self, real, fake, generator_index):
        loss, logs = super().discriminator_loss(real, fake, generator_index)
        return (self._poison(loss) if self.which == "discriminator" else loss), logs

    def generator_loss(self, fake, generator_index, z):
        loss, logs = super().generator_loss(fake, generator_index, z)
        return (self._poison(loss) if self.which == "generator" else loss), logs


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ckpt"))
    }


@pytest.mark.parametrize("which", ["generator", "discriminator"])
def test_nan_loss_raises_and_leaves_earlier_checkpoints_untouched(
    tmp_path: Path, which: str
) -> None:
    torch.manual_seed(0)
    ckpt_dir = tmp_path / "ckpt"
    arch = MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1)
    model = NaNAt(nan_at=3, which=which, ckpt_dir=str(ckpt_dir), sample_shape=(2,),
                  latent_dim=2, architecture=arch)  # fmt: skip
    # Checkpoints every 2 global steps: after G steps 1, 2 and 3; the 4th G step (counter
    # at 3) makes the NaN.
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=2, save_top_k=-1,
                                 save_last=True)  # fmt: skip
    t = trainer(tmp_path, 100, enable_checkpointing=True, callbacks=[checkpoint])
    with pytest.raises(NonFiniteLossError) as info:
        t.fit(model, datamodule=small_data())
    message = str(info.value)
    assert "learning rate" in message
    assert which in message and "nan" in message.lower()
    assert "generator step 3" in message

    assert model.before, "no checkpoint had been written before the NaN"
    assert _hashes(ckpt_dir) == model.before  # nothing rewritten, nothing added
    # The weights were not updated with the NaN loss.
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # The last checkpoint written before is complete and loadable.
    state = torch.load(ckpt_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(state["state_dict"]["generator_step"]) == 3
    assert all(
        torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point()
    )


def test_detect_nan_false_does_not_raise(tmp_path: Path) -> None:
    torch.manual_seed(0)
    arch = MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1)
    model = NaNAt(nan_at=1, ckpt_dir=str(tmp_path), detect_nan=False, sample_shape=(2,),
                  latent_dim=2, architecture=arch)  # fmt: skip
    trainer(tmp_path, 6).fit(model, datamodule=small_data())
    assert int(model.generator_step) == 3


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_generators": 0}, "model.num_generators"),
        ({"latent_dim": 0}, "model.latent_dim"),
        ({"n_critic": 0}, "model.n_critic"),
        ({"n_critic": -1}, "model.n_critic"),
        ({"fake_per_generator": 0}, "model.fake_per_generator"),
        ({"sample_shape": ()}, "model.sample_shape"),
        ({"sample_shape": (3, 0, 4)}, "model.sample_shape"),
    ],
)
def test_invalid_init_values_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        GAN(**kwargs)


def test_hyperparameters_are_saved() -> None:
    model = small_gan(n_critic=2, same_latent=True)
    assert model.hparams.n_critic == 2
    assert model.hparams.same_latent is True
    assert tuple(model.hparams.sample_shape) == (2,)
