"""PMGAN (our reading of Xiao & Rajasekaran 2018): the pairwise adjustment classifiers'
targets, the shrinkage schedule, the decay factor's averages and the balance weights, both
losses against a hand computation on a tiny fixed network, where gradients go, a short run,
an exact resume, and the parallel generators: the slot computation, the exchange, the real
batch's order, and two DDP processes on CPU against one process, bit for bit."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer, seed_everything

from mgan_lightning import losses, losses_pmgan
from mgan_lightning.callbacks import GeneratorStepCheckpoint
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.data.sampler import EpochBatchSampler
from mgan_lightning.methods import PMGAN
from mgan_lightning.nets import DCGAN, MLP
from tests.pmgan_probe import BatchNormMLP

ROOT = Path(__file__).resolve().parents[2]


def tiny(**kwargs) -> PMGAN:
    torch.manual_seed(0)
    args: dict[str, Any] = dict(
        num_generators=3,
        latent_dim=2,
        architecture=MLP(g_hidden=4, g_layers=1, d_hidden=4, d_layers=1),
        max_generator_steps=1000,
    )
    return PMGAN(**(args | kwargs))


def quiet_trainer(**kwargs) -> Trainer:
    settings: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return Trainer(**(settings | kwargs))


def ring(batch_size: int = 64, num_train: int = 1024) -> GaussianMixture2D:
    return GaussianMixture2D(preset="ring", batch_size=batch_size, num_train=num_train, seed=0)


# ------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_generators": 1}, "model.num_generators"),
        ({"independent_generators": False}, "model.independent_generators"),
        ({"adjust_weight": -1.0}, "model.adjust_weight"),
        ({"adjust_margin": float("nan")}, "model.adjust_margin"),
        ({"shrink": "step"}, "model.shrink"),
        ({"shrink": "exponential", "shrink_to": 0.0}, "model.shrink_to"),
        ({"shrink_start": 0.8, "shrink_end": 0.2}, "model.shrink_start"),
        ({"shrink_end": 1.5}, "model.shrink_end"),
        ({"decay": 1.0}, "model.decay"),
        ({"balance": "gradnorm"}, "model.balance"),
        ({"balance_min": 2.0, "balance_max": 1.0}, "model.balance_min"),
        ({"embrace_gamma": -1.0}, "model.embrace_gamma"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        tiny(**kwargs)


def test_disjoint_generators_and_one_classifier_per_pair():
    model = tiny(num_generators=5)
    assert type(model.generators).__name__ == "IndependentGenerators"
    assert model.critic.classifier is not None
    assert model.critic.classifier.out_features == 10
    assert model.hparams["independent_generators"] is True


# --------------------------------------------------------------------- the pairs
def test_pair_orientation_and_targets_by_hand():
    """Pairs of K = 3 in triu order: (0, 1), (0, 2), (1, 2)."""
    s = losses_pmgan.pair_orientation(3)
    assert torch.equal(s, torch.tensor([[1.0, 1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, -1.0, -1.0]]))
    targets, mask = losses_pmgan.pair_targets(torch.tensor([2, 0, 1]), 3)
    assert torch.equal(mask, torch.tensor([[0, 1, 1], [1, 1, 0], [1, 0, 1]]).bool())
    assert torch.equal(targets[mask], torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 1.0]))


def test_adjustment_errors_by_hand():
    torch.manual_seed(1)
    k, n = 4, 5
    index = torch.arange(k).repeat_interleave(n)
    logits = torch.randn(k * n, k * (k - 1) // 2)
    pairs = list(zip(*torch.triu_indices(k, k, 1).tolist()))
    for margin in (0.0, 0.7):
        errors = losses_pmgan.adjustment_errors(logits, index, k, margin=margin)
        for g in range(k):
            total = 0.0
            for row in (index == g).nonzero().flatten().tolist():
                for p, (i, j) in enumerate(pairs):
                    if g in (i, j):
                        own_logit = logits[row, p] if g == i else -logits[row, p]
                        total += -math.log(torch.sigmoid(own_logit - margin).item())
            assert errors[g].item() == pytest.approx(total / (n * (k - 1)), rel=1e-5)
    # C's loss is half of MGAN's pairwise loss averaged over pairs (log 2 at chance).
    c = losses_pmgan.adjustment_classifier_loss(logits, index, k)
    mgan = losses.classifier_loss_pairwise(logits, index, k, reduction="mean")
    assert c.item() == pytest.approx(mgan.item() / 2, rel=1e-6)
    zero = losses_pmgan.adjustment_classifier_loss(torch.zeros_like(logits), index, k)
    assert zero.item() == pytest.approx(math.log(2))


def test_adjustment_errors_check_their_input():
    with pytest.raises(ValueError, match="at least 2 generators"):
        losses_pmgan.adjustment_errors(torch.zeros(3, 0), torch.zeros(3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="K\\(K-1\\)/2 = 3 columns"):
        losses_pmgan.adjustment_errors(torch.zeros(3, 2), torch.tensor([0, 1, 2]), 3)


# ------------------------------------------------------------------ the schedules
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("linear", [1.0, 1.0, 0.775, 0.55, 0.1, 0.1]),
        ("exponential", [1.0, 1.0, 0.1**0.25, 0.1**0.5, 0.1, 0.1]),
        ("cosine", [1.0, 1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 0.55, 0.1, 0.1]),
        ("none", [1.0] * 6),
    ],
)
def test_shrink_factor_values(kind, expected):
    steps = [0, 100, 250, 400, 700, 900]  # start 100, end 700
    got = [losses_pmgan.shrink_factor(t, 100, 700, 0.1, kind) for t in steps]
    assert got == pytest.approx(expected)


def test_shrinkage_takes_fractions_of_the_run():
    model = tiny(shrink_start=0.1, shrink_end=0.7, shrink_to=0.1, adjust_weight=0.4)
    model.adjust_margin = 2.0
    for step, factor in ((0, 1.0), (100, 1.0), (250, 0.775), (400, 0.55), (700, 0.1)):
        model.generator_steps_done = step
        assert model.shrinkage() == pytest.approx(factor)
        assert model.adjust_weight_now() == pytest.approx(0.4 * factor)
        assert model.adjust_margin_now() == pytest.approx(2.0 * factor)
    model.max_generator_steps = 2000  # a longer run stretches the window
    model.generator_steps_done = 500
    assert model.shrinkage() == pytest.approx(0.775)
    assert tiny(shrink="none").shrinkage(999) == 1.0


# ------------------------------------------------------ decay factor and balance
def test_running_average_and_balance_weights():
    avg = torch.zeros(2)
    value = torch.tensor([1.2, 0.3])
    first = losses_pmgan.running_average(avg, value, 0.9, True)
    assert torch.equal(first, value)
    second = losses_pmgan.running_average(first, torch.tensor([0.2, 0.8]), 0.9, False)
    assert torch.allclose(second, torch.tensor([1.1, 0.35]))
    w_d, w_c = losses_pmgan.balance_weights(second[0], second[1], "ratio", 0.1, 10.0)
    assert w_d.item() == 1.0 and w_c.item() == pytest.approx(1.1 / 0.35)
    _, low = losses_pmgan.balance_weights(torch.tensor(0.01), torch.tensor(1.0), "ratio", 0.1)
    _, high = losses_pmgan.balance_weights(torch.tensor(5.0), torch.tensor(0.0), "ratio", 0.1)
    assert low.item() == pytest.approx(0.1) and high.item() == pytest.approx(10.0)
    none = losses_pmgan.balance_weights(torch.tensor(5.0), torch.tensor(0.1), "none")
    assert [w.item() for w in none] == [1.0, 1.0]


def test_averages_skip_non_finite_losses():
    model = tiny(decay=0.5)
    model.update_averages(torch.tensor(1.0), torch.tensor(0.5))
    model.update_averages(torch.tensor(float("nan")), torch.tensor(0.1))
    assert torch.equal(model.loss_average, torch.tensor([1.0, 0.5]))
    assert int(model.average_count) == 1
    model.update_averages(torch.tensor(3.0), torch.tensor(1.5))
    assert torch.allclose(model.loss_average, torch.tensor([2.0, 1.0]))


# ------------------------------------------------- the losses, by hand
def _critic_by_hand(model: PMGAN, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    linear = model.critic.body[1]  # type: ignore[index]
    classifier = model.critic.classifier
    assert classifier is not None
    h = F.leaky_relu(x @ linear.weight.T + linear.bias, 0.2)
    d = h @ model.critic.real_fake.weight.T + model.critic.real_fake.bias
    c = h @ classifier.weight.T + classifier.bias
    return d.squeeze(-1), c


def test_critic_loss_equals_a_hand_computation():
    model = tiny(decay=0.9, balance_min=0.01, balance_max=100.0)
    real = torch.randn(6, 2)
    pairs = [(0, 1), (0, 2), (1, 2)]
    averages = None
    for _ in range(2):
        fake, index, _ = model.fake_batch(6)
        total, logs = model.discriminator_loss(real, fake.detach(), index)
        d_real, _ = _critic_by_hand(model, real)
        d_fake, c = _critic_by_hand(model, fake.detach())
        l_d = -torch.log(torch.sigmoid(d_real)).mean() - torch.log(1 - torch.sigmoid(d_fake)).mean()
        # each pair: -log C_ij on G_i's samples, -log(1 - C_ij) on G_j's, halved; mean of pairs
        l_c = 0.0
        for p, (i, j) in enumerate(pairs):
            own_i = -torch.log(torch.sigmoid(c[index == i, p])).mean()
            own_j = -torch.log(1 - torch.sigmoid(c[index == j, p])).mean()
            l_c = l_c + (own_i + own_j) / 2
        l_c = l_c / len(pairs)
        value = torch.stack([l_d, l_c]).detach()
        averages = value if averages is None else 0.9 * averages + 0.1 * value
        w_c = averages[0] / averages[1]
        assert logs["loss/d"].item() == pytest.approx(l_d.item(), rel=1e-5)
        assert logs["loss/c"].item() == pytest.approx(l_c.item(), rel=1e-5)
        assert logs["balance/w_c"].item() == pytest.approx(w_c.item(), rel=1e-5)
        assert total.item() == pytest.approx((l_d + w_c * l_c).item(), rel=1e-5)
        assert torch.allclose(model.loss_average, averages)


@pytest.mark.parametrize("normalise", [False, True])
def test_generator_loss_equals_a_hand_computation(normalise):
    gamma, eta, lam, m0 = 2.0, 0.5, 0.4, 0.3
    model = tiny(
        adjust_weight=lam,
        adjust_margin=m0,
        embrace_weight=eta,
        embrace_gamma=gamma,
        normalise_adjustment=normalise,
    )
    model.generator_steps_done = 250  # linear shrinkage over the run: s = 1 - 0.9/4
    model.loss_average.copy_(torch.tensor([1.3, 0.4]))
    s = 0.775
    fake, index, z = model.fake_batch(6)
    loss, logs = model.generator_loss(fake, index, z)
    d, c = _critic_by_hand(model, fake)
    pairs = [(0, 1), (0, 2), (1, 2)]
    weight = lam * s / (0.4 if normalise else 1.0)
    per_generator = []
    for g in range(3):
        rows = (index == g).nonzero().flatten().tolist()
        terms = []
        for r in rows:
            p_real = torch.sigmoid(d[r])
            adversarial = -torch.log(p_real)
            embrace = (1 - p_real) ** gamma * -torch.log(p_real)
            error = 0.0
            for p, (i, j) in enumerate(pairs):
                if g in (i, j):
                    own = c[r, p] if g == i else -c[r, p]
                    error = error - torch.log(torch.sigmoid(own - m0 * s))
            terms.append(adversarial + eta * embrace + weight * error / 2)
        per_generator.append(sum(terms) / len(rows))
    expected = sum(per_generator) / 3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert logs["adjust/weight"].item() == pytest.approx(weight, rel=1e-6)
    assert logs["adjust/shrink"].item() == pytest.approx(s)


def test_each_generators_gradient_depends_on_its_own_samples_only():
    """Changing generator 1's samples changes no gradient of another generator's samples:
    the property that lets generators train on separate processes."""
    model = tiny(num_generators=4, adjust_margin=0.5, normalise_adjustment=True)
    model.loss_average.copy_(torch.tensor([1.0, 0.5]))
    fake, index, z = model.fake_batch(16)
    first = fake.detach().requires_grad_()
    grad_first = torch.autograd.grad(model.generator_loss(first, index, z)[0], first)[0]
    moved = fake.detach().clone()
    moved[index == 1] = torch.randn_like(moved[index == 1]) * 3
    moved.requires_grad_()
    grad_moved = torch.autograd.grad(model.generator_loss(moved, index, z)[0], moved)[0]
    others = index != 1
    assert torch.allclose(grad_first[others], grad_moved[others], rtol=1e-6, atol=1e-9)
    assert not torch.allclose(grad_first[~others], grad_moved[~others])


# ------------------------------------------------------- a real training step
class GradientRecorder(Callback):
    """The gradients each optimizer is about to apply, in the first generator step."""

    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor | None]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if pl_module.generator_steps_done == 0:
            self.seen.append(
                {
                    n: None if p.grad is None else p.grad.clone()
                    for n, p in pl_module.named_parameters()
                }
            )


def test_a_step_sends_gradients_only_where_they_belong():
    """D/C step: every critic parameter (body, D head, the pair classifiers) gets a gradient,
    no generator does. G step: every generator slot gets one, and the critic's gradients are
    the D step's, untouched (the critic is frozen while the generators move)."""
    model = tiny(num_generators=3, max_generator_steps=1)
    recorder = GradientRecorder()
    quiet_trainer(callbacks=[recorder]).fit(model, datamodule=ring(batch_size=12))
    d_step, g_step = recorder.seen
    critic = [n for n in d_step if n.startswith("critic.")]
    generators = [n for n in d_step if n.startswith("generators.")]
    assert {n.split(".")[1] for n in critic} == {"body", "real_fake", "classifier"}
    assert generators and len(critic) + len(generators) == len(d_step)
    for n in critic:
        assert d_step[n] is not None and d_step[n].abs().sum() > 0, n
        assert torch.equal(d_step[n], g_step[n]), f"the G step touched {n}"
    for n in generators:
        assert d_step[n] is None, n
        grad = g_step[n]
        assert grad is not None and (grad.flatten(1).abs().sum(1) > 0).all(), n
    opt_g, opt_d = [o.param_groups[0]["params"] for o in model.trainer.optimizers]
    assert {id(p) for p in opt_g} == {id(p) for p in model.generators.parameters()}
    assert {id(p) for p in opt_d} == {id(p) for p in model.critic.parameters()}


def test_short_training_run_on_the_ring():
    seed_everything(0, verbose=False)
    model = PMGAN(
        num_generators=4,
        latent_dim=2,
        architecture=MLP(g_hidden=32, d_hidden=32),
        max_generator_steps=30,
    )
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = quiet_trainer()
    trainer.fit(model, datamodule=ring())
    assert model.generator_steps_done == 30 and int(model.average_count) == 30
    metrics = trainer.callback_metrics
    for key in ("loss/d", "loss/c", "balance/w_c", "loss/g", "loss/g_adjust", "loss/g_embrace"):
        assert torch.isfinite(metrics[key]), key
    assert metrics["adjust/shrink"].item() == pytest.approx(1 - 0.9 * 29 / 30)
    for n, p in model.named_parameters():
        assert not torch.equal(p, initial[n]), f"{n} did not train"
    samples, index = model.sample(40)
    assert samples.shape == (40, 2) and set(index.tolist()) <= {0, 1, 2, 3}


def _fit_for_resume(root: Path, steps: int, ckpt: Path | None = None) -> tuple[PMGAN, Trainer]:
    seed_everything(7, verbose=False)
    model = PMGAN(
        num_generators=3,
        latent_dim=2,
        architecture=MLP(g_hidden=16, d_hidden=16),
        max_generator_steps=steps,
        shrink_start=0,
        shrink_end=40,  # steps, not fractions: the stopped run is shorter
        adjust_margin=0.5,
        normalise_adjustment=True,
    )
    trainer = quiet_trainer(
        callbacks=[GeneratorStepCheckpoint(dirpath=root / "ckpt", save_last=True)],
        enable_checkpointing=True,
        default_root_dir=root,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        trainer.fit(model, datamodule=ring(num_train=1000), ckpt_path=ckpt)
    return model, trainer


def test_resumed_run_is_bitwise_identical(tmp_path: Path):
    """The decay factor's averages are checkpointed: a resumed run ends as the whole one."""
    whole, whole_trainer = _fit_for_resume(tmp_path / "whole", 20)
    _fit_for_resume(tmp_path / "part", 9)
    resumed, resumed_trainer = _fit_for_resume(
        tmp_path / "part", 20, ckpt=tmp_path / "part" / "ckpt" / "last.ckpt"
    )
    assert whole.generator_steps_done == resumed.generator_steps_done == 20
    a, b = whole.state_dict(), resumed.state_dict()
    assert "loss_average" in a and "average_count" in a
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------ parallel generators
def same(a: torch.Tensor, b: torch.Tensor, exact: bool, what: str, scale: float) -> None:
    """Bitwise, or (``exact=False``) within 1e-5 of ``scale``, the largest value of its kind."""
    if exact:
        assert torch.equal(a, b), what
    else:
        assert (a - b).abs().max() <= 1e-5 * scale, what


@pytest.fixture
def one_thread():
    """torch at one thread for the test, as the 2-process tests run each process."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("arch", "shape"),
    [
        (MLP(g_hidden=32), (2,)),
        (BatchNormMLP(g_hidden=32), (2,)),
        (DCGAN(width=4), (3, 32, 32)),
    ],
    ids=["mlp", "batchnorm_mlp", "dcgan"],
)
@pytest.mark.parametrize("same_latent", [True, False])
def test_a_slot_computes_what_it_computes_in_the_whole_bank(arch, shape, same_latent, one_thread):
    """Generators ``r::W`` run alone give the same bits as inside the K-slot call: samples,
    gradients (only in those slots) and batch-norm statistics (only those slots move). With
    one thread, as each process of the parallel tests runs (a thread pool may split a smaller
    batch's reductions otherwise)."""
    torch.manual_seed(0)
    k, n = 5, 6
    model = PMGAN(
        num_generators=k, latent_dim=3, sample_shape=shape, architecture=arch,
        same_latent=same_latent,
    )  # fmt: skip
    bank = model.generators
    start = {name: b.clone() for name, b in bank.named_buffers()}
    z = model.sample_latent(n, torch.Generator().manual_seed(1))
    whole = bank(z)
    whole.square().sum().backward()
    grads = {name: p.grad.clone() for name, p in bank.named_parameters()}
    largest = max(g.abs().max().item() for g in grads.values())
    buffers = {name: b.clone() for name, b in bank.named_buffers()}
    for world in (2, 3):
        for rank in range(world):
            slots = slice(rank, k, world)
            # A batch of one convolutional generator takes another kernel (documented).
            exact = not (isinstance(arch, DCGAN) and len(range(k)[slots]) == 1)
            others = torch.ones(k, dtype=torch.bool)
            others[slots] = False
            with torch.no_grad():
                for name, b in bank.named_buffers():
                    b.copy_(start[name])
            bank.zero_grad(set_to_none=True)
            part = model.generate_slots(z, slots)
            same(part, whole[slots].detach(), exact, "samples", whole.abs().max().item())
            part.square().sum().backward()
            for name, p in bank.named_parameters():
                same(p.grad[slots], grads[name][slots], exact, name, largest)
                assert (p.grad[others] == 0).all(), name
            for name, b in bank.named_buffers():
                if name == "trainable":
                    continue
                scale = buffers[name].abs().max().item()
                same(b[slots], buffers[name][slots], exact, name, scale)
                assert torch.equal(b[others], start[name][others]), name


def _as_process(model: PMGAN, world: int, rank: int, gather) -> None:
    model.parallel_world = lambda: (world, rank)  # type: ignore[method-assign]
    model.gather = gather  # type: ignore[method-assign]


@pytest.mark.parametrize(("k", "world"), [(5, 2), (8, 2), (7, 3)])
def test_share_slots_puts_each_slot_where_it_belongs(k, world):
    """An ``all_gather`` played out by hand: each process gives its slots of two quantities
    of different dtypes; every process gets the whole quantities back."""
    model = tiny(num_generators=k)
    whole = [torch.randn(k, 3, 2), torch.arange(k * 4).reshape(k, 4)]
    sent: dict[int, list[torch.Tensor]] = {}

    def record(rank):
        def gather(t):
            sent.setdefault(rank, []).append(t)
            return torch.stack([t] * world)

        return gather

    for rank in range(world):
        _as_process(model, world, rank, record(rank))
        model.share_slots([w[rank::world] for w in whole])
    for rank in range(world):
        calls = iter(range(2))

        def gather(t, call=calls, rank=rank):
            i = next(call)
            assert torch.equal(t, sent[rank][i])
            return torch.stack([sent[q][i] for q in range(world)])

        _as_process(model, world, rank, gather)
        got = model.share_slots([w[rank::world] for w in whole])
        assert all(torch.equal(g, w) for g, w in zip(got, whole))


def test_gathered_real_batches_are_one_process_batch():
    """Process r of W reads rows r, r + W, ... of the batch one process reads with W times
    the batch size: interleaving the gathered batches gives that batch back exactly."""
    for world, b in ((2, 8), (3, 5)):
        one = list(EpochBatchSampler(100, world * b, seed=3))
        shares = [
            list(EpochBatchSampler(100, b, seed=3, rank=r, world_size=world)) for r in range(world)
        ]
        assert len(one) == len(shares[0])
        for i, batch in enumerate(one):
            gathered = torch.tensor([shares[r][i] for r in range(world)])  # (W, b)
            assert gathered.T.reshape(-1).tolist() == batch


def test_latents_do_not_depend_on_the_process():
    model = tiny(parallel_generators=True)
    seeds = []
    for rank in (0, 1):
        model._trainer = SimpleNamespace(global_rank=rank, world_size=2)  # type: ignore[assignment]
        seeds.append(model.step_seed("train"))
    assert seeds[0] == seeds[1]
    plain = tiny()
    plain._trainer = SimpleNamespace(global_rank=1, world_size=2)  # type: ignore[assignment]
    assert plain.step_seed("train") != seeds[0]
    model._trainer = plain._trainer = None


def test_the_critic_is_broadcast_off_the_cpu_unless_told():
    assert not tiny(parallel_generators=True).critic_is_synced()  # CPU kernels: the same bits
    assert tiny(parallel_generators=True, sync_critic=True).critic_is_synced()
    model = tiny(parallel_generators=True)
    model.to("meta")  # any device but the CPU
    assert model.critic_is_synced()


def test_parallel_generators_refuse_what_they_cannot_do():
    model = tiny(num_generators=3, parallel_generators=True)
    model._trainer = SimpleNamespace(strategy=object(), world_size=2, global_rank=0)  # type: ignore[assignment]
    with pytest.raises(ValueError, match="needs the DDP strategy"):
        model.setup("validate")
    from lightning.pytorch.strategies import DDPStrategy

    model._trainer.strategy = DDPStrategy()  # type: ignore[union-attr]
    model._trainer.world_size = 4  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="at most as many processes as generators"):
        model.setup("validate")
    model._trainer = None


# ------------------------------------------------------ two processes, for real
SMALL = [
    "--trainer.enable_progress_bar=false",
    "--trainer.accelerator=cpu",
    "--trainer.logger=false",
    "--trainer.callbacks+=tests.pmgan_probe.StepRecorder",
    "--data.init_args.num_train=4000",
    "--model.init_args.architecture.init_args.g_hidden=32",
    "--model.init_args.architecture.init_args.d_hidden=32",
]
CASES = {  # K, steps, extra arguments
    # the ring config as it is (K = 8, the same z for every generator), smaller networks
    "ring": (8, 12, []),
    # uneven split (3 + 2), batch-normalised generators, two D steps a G step, a z each,
    # and the critic broadcast from process 0 (the default off the CPU)
    "uneven_bn_ncritic2": (
        5,
        8,
        [
            "--model.init_args.architecture=tests.pmgan_probe.BatchNormMLP",
            "--model.init_args.architecture.init_args.g_hidden=32",
            "--model.init_args.architecture.init_args.d_hidden=32",
            "--model.init_args.n_critic=2",
            "--model.init_args.same_latent=false",
            "--model.init_args.adjust_margin=0.5",
            "--model.init_args.normalise_adjustment=true",
            "--model.init_args.sync_critic=true",  # broadcasting equal values changes no bit
        ],
    ),
}


def _mgan_fit(tmp: Path, world: int, batch: int, k: int, steps: int, extra: list[str]) -> None:
    exe = shutil.which("mgan") or str(Path(sys.executable).with_name("mgan"))
    env = {
        **os.environ,
        "MGAN_PROBE_DIR": str(tmp),
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "PL_DISABLE_FORK": "1",
    }
    command = [
        exe, "fit", "--config", str(ROOT / "configs" / "ring" / "pmgan.yaml"),
        f"--trainer.devices={world}", f"--trainer.default_root_dir={tmp / f'w{world}'}",
        f"--data.init_args.batch_size={batch}", f"--model.init_args.num_generators={k}",
        f"--model.init_args.max_generator_steps={steps}",
        "--model.init_args.parallel_generators=true", *SMALL, *extra,
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _optimizer_tensors(states: list[dict]) -> list[torch.Tensor]:
    return [torch.as_tensor(v) for s in states for p in s["state"].values() for v in p.values()]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_train_bitwise_as_one(tmp_path: Path, case: str):
    """``--trainer.devices=2`` with parallel generators and batch b per process ends, on both
    processes, with the weights, batch-norm statistics, balance averages and Adam states of
    one process with batch 2b, bit for bit; each process ran only its own generators."""
    k, steps, extra = CASES[case]
    _mgan_fit(tmp_path, 1, 64, k, steps, extra)
    _mgan_fit(tmp_path, 2, 32, k, steps, extra)
    one = torch.load(tmp_path / "w1_rank0.pt", weights_only=False)
    two = [torch.load(tmp_path / f"w2_rank{r}.pt", weights_only=False) for r in (0, 1)]
    reference = one["state_dict"]
    assert any(not torch.equal(reference[n], one["initial"][n]) for n in reference)
    n_critic = 2 if "--model.init_args.n_critic=2" in extra else 1
    assert one["slots"] == [] and one["whole_bank_calls"] == steps * n_critic
    for rank, run in enumerate(two):
        assert run["generator_steps"] == steps
        assert run["whole_bank_calls"] == 0
        assert run["slots"] == [(rank, k, 2)] * (steps * n_critic)
        state = run["state_dict"]
        assert state.keys() == reference.keys()
        different = [n for n in reference if not torch.equal(state[n], reference[n])]
        assert not different, f"process {rank} differs from one process in {different[:5]}"
        a, b = _optimizer_tensors(one["optimizers"]), _optimizer_tensors(run["optimizers"])
        assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# ------------------------------------------------------------------- configs
@pytest.mark.parametrize(
    ("name", "k", "prior"),
    [
        ("ring/pmgan", 8, "NormalPrior"),
        ("grid/pmgan", 25, "NormalPrior"),
        ("stacked_mnist/pmgan", 10, "NormalPrior"),
        ("cifar10/pmgan", 10, "UniformPrior"),
    ],
)
def test_config_builds_the_matched_k_model(name, k, prior, tmp_path, monkeypatch):
    """K as the other methods' matched-K rows; the same budget as their MGAN config."""
    import yaml

    from mgan_lightning.cli import build_cli

    monkeypatch.setenv("PL_GLOBAL_SEED", "0")
    args = ["--config", str(ROOT / "configs" / f"{name}.yaml")]
    cli = build_cli([*args, f"--trainer.default_root_dir={tmp_path}"], run=False)
    model = cli.model
    assert isinstance(model, PMGAN) and model.num_generators == k
    assert type(model.prior).__name__ == prior and model.same_latent
    assert not model.parallel_generators
    mgan = yaml.safe_load((ROOT / "configs" / f"{name.removesuffix('pmgan')}mgan.yaml").read_text())
    ours = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    for section in ("data", "trainer"):
        mine, theirs = dict(ours[section]), dict(mgan[section])
        mine.pop("default_root_dir", None), theirs.pop("default_root_dir", None)
        assert mine == theirs, section
    for key in ("max_generator_steps", "latent_dim", "optimizer_g", "optimizer_d", "ema_decay"):
        assert ours["model"]["init_args"].get(key) == mgan["model"]["init_args"].get(key), key
