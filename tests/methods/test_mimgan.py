"""MIM-GAN: the mutual-information estimator, the generator penalty, and a CLI run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mgan_lightning import losses
from mgan_lightning.callbacks import ModeCoverageEvaluation
from mgan_lightning.cli import build_cli
from mgan_lightning.methods import MGAN, MIMGAN
from mgan_lightning.nets import MLP

ROOT = Path(__file__).resolve().parents[2]


def _np_mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    joint = np.zeros((a.shape[1], b.shape[1]))
    for row_a, row_b in zip(a, b):
        joint += np.outer(row_a, row_b)
    joint /= len(a)
    p, q = joint.sum(1), joint.sum(0)
    total = 0.0
    for i in range(len(p)):
        for j in range(len(q)):
            if joint[i, j] > 0:
                total += joint[i, j] * math.log(joint[i, j] / (p[i] * q[j]))
    return total


# --------------------------------------------------------------- the estimator
@pytest.mark.parametrize("k", [2, 3, 7])
def test_identical_one_hot_predictions_spread_uniformly_give_log_k(k):
    a = torch.eye(k).repeat(5, 1)
    assert losses.mutual_information(a, a).item() == pytest.approx(math.log(k), rel=1e-5)


def test_independent_predictions_give_zero():
    # Every (category of a, category of b) combination exactly once: the joint factorises.
    k = 4
    a = torch.eye(k).repeat_interleave(k, dim=0)
    b = torch.eye(k).repeat(k, 1)
    assert abs(losses.mutual_information(a, b).item()) < 1e-6
    # Soft but independent: b's prediction is the same whatever a says.
    soft = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]).repeat_interleave(3, dim=0)
    other = torch.tensor([[0.3, 0.3, 0.4], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]).repeat(2, 1)
    assert abs(losses.mutual_information(soft, other).item()) < 1e-6


def test_constant_predictions_give_zero():
    varied = torch.softmax(torch.randn(50, 5), -1)
    constant = torch.tensor([0.1, 0.2, 0.3, 0.2, 0.2]).expand(50, 5)
    assert abs(losses.mutual_information(varied, constant).item()) < 1e-6
    one_hot = torch.eye(5)[torch.full((50,), 3)]
    assert abs(losses.mutual_information(one_hot, one_hot).item()) < 1e-6


def test_soft_predictions_match_numpy():
    gen = torch.Generator().manual_seed(0)
    a = torch.softmax(torch.randn(40, 4, generator=gen, dtype=torch.float64) * 2, -1)
    b = torch.softmax(a.log() + torch.randn(40, 4, generator=gen, dtype=torch.float64), -1)
    expected = _np_mutual_information(a.numpy(), b.numpy())
    assert expected > 0.05
    got = losses.mutual_information(a, b, eps=1e-15).item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_batched_pairs_equal_one_call_per_pair():
    a = torch.softmax(torch.randn(6, 30, 3), -1)
    b = torch.softmax(torch.randn(6, 30, 3), -1)
    batched = losses.mutual_information(a, b)
    assert batched.shape == (6,)
    for i in range(6):
        assert torch.allclose(batched[i], losses.mutual_information(a[i], b[i]), atol=1e-7)


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.eye(3).repeat(4, 1),  # one-hot, spread
        lambda: torch.eye(3)[torch.zeros(12, dtype=torch.long)],  # one-hot, constant
        lambda: torch.full((12, 3), 1 / 3),  # uniform
    ],
)
def test_no_nan_and_finite_gradient_at_degenerate_inputs(make):
    a = make().requires_grad_()
    b = make().requires_grad_()
    value = losses.mutual_information(a, b)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    # ... and through a softmax at saturated logits, as in training.
    logits = (make() * 40).requires_grad_()
    losses.mutual_information(logits.softmax(-1), logits.softmax(-1)).backward()
    assert torch.isfinite(logits.grad).all()


def test_penalty_pushes_a_generator_away_from_an_identical_one():
    """Two identical linear generators seen by a fixed classifier that splits the plane
    at x = 0: their categories agree on every z, so I(Y_a; Y_b) is high. A few gradient
    steps on the MI alone (moving G_a only) separate G_a's outputs from G_b's."""
    torch.manual_seed(0)
    z = torch.randn(512, 2)
    classifier = torch.tensor([[20.0, -20.0], [0.0, 0.0]])  # logits of "x > 0", "x < 0"

    def categories(out: torch.Tensor) -> torch.Tensor:
        return torch.softmax(out @ classifier, -1)

    weight = torch.eye(2, requires_grad=True)
    bias = torch.zeros(2, requires_grad=True)
    fixed = z @ torch.eye(2)  # G_b(z) = z
    y_b = categories(fixed)
    opt = torch.optim.Adam([weight, bias], lr=0.05)
    start = losses.mutual_information(categories(z @ weight + bias), y_b).item()
    for _ in range(60):
        mi = losses.mutual_information(categories(z @ weight + bias), y_b)
        opt.zero_grad()
        mi.backward()
        opt.step()
    out = (z @ weight + bias).detach()
    end = losses.mutual_information(categories(out), y_b).item()
    assert start > 0.4  # log 2 = 0.69 for hard, agreeing categories
    assert end < 0.1 * start, (start, end)
    agreement = (categories(out).argmax(1) == y_b.argmax(1)).float().mean()
    assert agreement < 0.8
    assert (out - fixed).norm(dim=1).mean() > 0.3


# ------------------------------------------------------------------ the method
def test_arguments_are_checked():
    with pytest.raises(ValueError, match="model.same_latent"):
        MIMGAN(same_latent=False)
    with pytest.raises(ValueError, match="model.lam"):
        MIMGAN(lam=-1.0)
    with pytest.raises(ValueError, match="model.mi_estimator"):
        MIMGAN(mi_estimator="not a function")
    model = MIMGAN(num_generators=3)
    assert isinstance(model, MGAN) and model.critic.classifier.out_features == 3


def _model(k: int = 3, **kwargs) -> MIMGAN:
    """A small MIMGAN whose classifier has an opinion: its logits are centred and scaled on
    the untrained generators' samples, so C's categories vary with z and the MI is not 0."""
    torch.manual_seed(0)
    model = MIMGAN(
        num_generators=k, latent_dim=2, architecture=MLP(g_hidden=16, d_hidden=16), **kwargs
    )
    head = model.critic.classifier
    with torch.no_grad():
        features = model.critic.body(model.fake_batch(300)[0])
        head.weight.mul_(3 / head(features).std(0)[:, None])
        head.bias.copy_(-(features.mean(0) @ head.weight.T))
    return model


def test_pairwise_mi_is_symmetric_with_zero_diagonal_and_matches_direct_calls():
    model = _model(k=4)
    fake, index, _ = model.fake_batch(64)
    _, class_logits = model.critic(fake)
    mi = model.pairwise_mutual_information(class_logits, index)
    probs = class_logits.softmax(-1).reshape(4, 16, 4)
    assert mi.shape == (4, 4)
    assert torch.equal(mi.diagonal(), torch.zeros(4))
    assert torch.allclose(mi, mi.T, atol=1e-6)
    direct = losses.mutual_information(probs[1], probs[3])
    assert torch.allclose(mi[1, 3], direct) and direct > 1e-3


def test_pairwise_mi_rejects_a_batch_in_another_layout():
    model = _model(k=2)
    fake, index, _ = model.fake_batch(8)
    _, class_logits = model.critic(fake)
    with pytest.raises(ValueError, match="generator-major"):
        model.pairwise_mutual_information(class_logits, index.flip(0))


@pytest.mark.parametrize("keep", [False, True])
def test_generator_loss_is_adversarial_plus_mi_penalty(keep):
    model = _model(k=3, lam=0.7, beta=0.2, keep_classifier_term=keep)
    fake, index, z = model.fake_batch(30)
    loss, logs = model.generator_loss(fake, index, z)
    fake_logits, class_logits = model.critic(fake)
    probs = class_logits.softmax(-1).reshape(3, 10, 3)
    pairs = [
        losses.mutual_information(probs[k], probs[j]) for k in range(3) for j in range(3) if j != k
    ]
    penalty = torch.stack(pairs).sum() / 3  # mean over k of sum over j != k
    expected = losses.generator_loss_nonsaturating(fake_logits) + 0.7 * penalty
    if keep:
        expected = expected + 0.2 * losses.classifier_loss_general(class_logits, index)
    assert torch.allclose(loss, expected, atol=1e-6)
    assert torch.allclose(logs["loss/g_mi"], penalty, atol=1e-6)
    assert ("loss/g_diversity" in logs) == keep


def test_mi_estimator_is_replaceable():
    calls = []

    def estimator(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls.append((a.shape, b.shape))
        return torch.ones(a.shape[0])

    model = _model(k=4, mi_estimator=estimator, lam=2.0)
    fake, index, z = model.fake_batch(20)
    _, logs = model.generator_loss(fake, index, z)
    assert calls == [((12, 5, 4), (12, 5, 4))]  # K(K-1) ordered pairs, n = 5, K = 4
    assert logs["loss/g_mi"].item() == pytest.approx(3.0)  # (1/K) * 12 pairs * 1


def test_penalty_steps_lower_the_generators_mutual_information():
    model = _model(k=3)
    with torch.no_grad():  # identical generators: identical samples from the same z
        model.generators.weight.copy_(
            model.generators.weight[:1].expand_as(model.generators.weight)
        )
        model.generators.bias.copy_(model.generators.bias[:1].expand_as(model.generators.bias))
    opt = torch.optim.Adam(model.generator_parameters(), lr=1e-2)
    torch.manual_seed(1)
    z = model.sample_latent(256)

    def penalty() -> torch.Tensor:
        fake = model.generate(z)
        index = torch.arange(3).repeat_interleave(256)
        _, class_logits = model.critic(fake.reshape(-1, 2))
        return model.pairwise_mutual_information(class_logits, index).sum() / 3

    start = penalty().item()
    for _ in range(40):
        value = penalty()
        opt.zero_grad()
        value.backward()
        opt.step()
    end = penalty().item()
    assert start > 0.05
    assert end < 0.5 * start, (start, end)


# ------------------------------------------------------------------ CLI run
def test_ring_config_trains_through_the_cli(tmp_path):
    cli = build_cli(
        [
            "fit",
            "--config",
            str(ROOT / "configs/ring/mimgan.yaml"),
            "--trainer.max_steps=100",  # generator steps
            f"--trainer.default_root_dir={tmp_path}",
            "--data.init_args.num_train=5000",
            "--model.init_args.mi_estimator=mgan_lightning.losses.mutual_information",
        ]
    )
    model = cli.model
    assert isinstance(model, MIMGAN) and int(model.generator_step) == 100
    assert model.mi_estimator is losses.mutual_information
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    coverage = next(c for c in cli.trainer.callbacks if isinstance(c, ModeCoverageEvaluation))
    end_of_fit = {"modes", "high_quality", "reverse_kl", "spread", "spread_max"}
    assert set(coverage.last) == end_of_fit
    logged = cli.trainer.callback_metrics
    assert torch.isfinite(logged["loss/g_mi"]) and torch.isfinite(logged["loss/c"])
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_without_its_mi_term_mimgan_trains_bitwise_as_mgan(tmp_path):
    """lam = 0 leaves MGAN's objective, its random draws and its updates: the ablation 'MI
    off' is the MGAN row of the same K and beta (benchmarks/results/coverage.md)."""
    states = {}
    for name, extra in (("mgan", []), ("mimgan", ["--model.init_args.lam=0"])):
        cli = build_cli(
            [
                "fit", "--config", str(ROOT / f"configs/ring/{name}.yaml"),
                "--seed_everything=3", "--model.init_args.num_generators=4",
                "--trainer.max_steps=40", f"--trainer.default_root_dir={tmp_path / name}",
                "--data.init_args.num_train=5000", "--trainer.enable_progress_bar=false", *extra,
            ]
        )  # fmt: skip
        states[name] = cli.model.state_dict()
    assert states["mgan"].keys() == states["mimgan"].keys()
    for key, value in states["mgan"].items():
        assert torch.equal(value, states["mimgan"][key]), key


@pytest.mark.parametrize("with_architecture", [True, False])
def test_checkpoint_stores_the_estimator_by_import_path(tmp_path, with_architecture):
    """A function in the hyperparameters would need ``weights_only=False`` to unpickle."""
    from lightning.pytorch import Trainer

    from mgan_lightning.data import GaussianMixture2D

    arch = MLP(g_hidden=8, d_hidden=8) if with_architecture else None
    model = MIMGAN(num_generators=2, architecture=arch)
    trainer = Trainer(
        max_steps=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=GaussianMixture2D(num_train=256, batch_size=32))
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["mi_estimator"] == "mgan_lightning.losses.mutual_information"
    loaded = MIMGAN.load_from_checkpoint(path)
    assert loaded.mi_estimator is losses.mutual_information
    for (name, p), q in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p, q), name
