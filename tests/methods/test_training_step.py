"""One real training step, checked against the same step written out by hand.

For GAN, the three MGAN diversity variants (the binary ones with both reductions) and
MIM-GAN (with and without MGAN's classifier term), a Lightning ``Trainer`` runs a
step (two of them, or ``n_critic=2``, for some cases) of a small MLP model. The test redoes
it from a copy of the initial model: the real batches the Trainer read, the latents drawn
from the step's seeded generator, the losses written with ``torch.nn.functional`` from the
formulas in the methods' docstrings (never the methods' own loss functions), gradients from
``torch.autograd.grad`` and fresh ``torch.optim.Adam`` steps. Every parameter, and the
gradient the last update left in it, must agree; the logged classifier losses must be the
variant's own formula.

Adam's first step is about ``lr * sign(grad)``, blind to the size of a gradient, so both
sides use a large ``eps``: updates then scale with the gradient and a missing or extra loss
term moves the weights. The fault tests show that the comparison fails when the diversity
or MI term is detached from the generators, a variant is routed to another variant's loss,
the G step sends the critic gradient, or gradients pile up across D or G updates (no
``zero_grad``). The last test pins each variant's classifier loss to its function in
``mgan_lightning.losses`` and apart from the other variants'.
"""

from __future__ import annotations

import copy
import itertools
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer

from mgan_lightning import losses
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.methods import GAN, MGAN, MIMGAN
from mgan_lightning.methods.base import GANMethod
from mgan_lightning.nets import MLP

LR, BETAS, EPS = 1e-2, (0.5, 0.999), 0.1
K, LATENT = 3, 4

CASES = {  # name: (class, K, steps, method arguments)
    "gan": (GAN, 1, 1, {}),
    "mgan_general": (MGAN, K, 1, {"diversity": "general", "beta": 0.5}),
    "mgan_one_vs_all": (MGAN, K, 1, {"diversity": "one_vs_all", "beta": 0.5}),
    "mgan_pairwise": (MGAN, K, 1, {"diversity": "pairwise", "beta": 0.5}),
    "mimgan": (MIMGAN, K, 1, {"lam": 100.0}),
    "mimgan_mi_only": (MIMGAN, K, 1, {"lam": 100.0, "keep_classifier_term": False}),
    "mgan_one_vs_all_mean": (
        MGAN,
        K,
        1,
        {"diversity": "one_vs_all", "diversity_reduction": "mean", "beta": 0.5},
    ),
    "mgan_pairwise_mean": (
        MGAN,
        K,
        1,
        {"diversity": "pairwise", "diversity_reduction": "mean", "beta": 0.5},
    ),
    "mgan_one_vs_all_n_critic_2": (
        MGAN,
        K,
        1,
        {"diversity": "one_vs_all", "beta": 0.5, "n_critic": 2},
    ),
    "mgan_pairwise_two_steps": (MGAN, K, 2, {"diversity": "pairwise", "beta": 0.5}),
}


# ------------------------------------------------------------ the formulas, by hand
def bce(logits: torch.Tensor, label: float) -> torch.Tensor:
    """Mean of ``-log sigmoid(l)`` (label 1) or ``-log(1 - sigmoid(l))`` (label 0)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def classifier_general(logits, index, k, reduction="sum"):
    """Cross-entropy of the K-way softmax with the generator index (already the paper's
    pi-weighted sum: ``reduction`` does not apply)."""
    return -logits.log_softmax(-1).gather(1, index[:, None]).mean()


def classifier_one_vs_all(logits, index, k, reduction="sum"):
    """sum_k (E_{G_k}[-log C_k] + 1/(K-1) sum_{j != k} E_{G_j}[-log(1 - C_k)]) (the
    paper's); divided by K for ``reduction="mean"``."""
    total = 0.0
    for c in range(k):
        others = sum(bce(logits[index == j, c], 0.0) for j in range(k) if j != c)
        total = total + bce(logits[index == c, c], 1.0) + others / (k - 1)
    return total if reduction == "sum" else total / k


def classifier_pairwise(logits, index, k, reduction="sum"):
    """sum_{i<j} (E_{G_i}[-log C_ij] + E_{G_j}[-log(1 - C_ij)]), pairs in row order (the
    paper's); divided by P = K(K-1)/2 for ``reduction="mean"``."""
    pairs = list(itertools.combinations(range(k), 2))
    total = sum(
        bce(logits[index == i, p], 1.0) + bce(logits[index == j, p], 0.0)
        for p, (i, j) in enumerate(pairs)
    )
    return total if reduction == "sum" else total / len(pairs)


CLASSIFIER = {
    "general": classifier_general,
    "one_vs_all": classifier_one_vs_all,
    "pairwise": classifier_pairwise,
}


def mutual_information(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Plug-in I(Y_a; Y_b) of paired soft predictions ``(n, K)``."""
    joint = torch.einsum("ni,nj->ij", a, b) / len(a)
    independent = torch.outer(joint.sum(1), joint.sum(0))
    return (joint * ((joint + eps).log() - (independent + eps).log())).sum()


def mi_penalty(logits: torch.Tensor, k: int) -> torch.Tensor:
    """(1/K) sum_k sum_{j != k} I(Y_k; Y_j) with Y_k = softmax(C(G_k(z)))."""
    probs = logits.softmax(-1).reshape(k, -1, logits.shape[1])
    pairs = [(a, b) for a in range(k) for b in range(k) if a != b]
    return sum(mutual_information(probs[a], probs[b]) for a, b in pairs) / k


# ------------------------------------------------------------ the step, by hand
def adam_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list) -> None:
    for p, g in zip(params, torch.autograd.grad(loss, params)):
        p.grad = g
    optimizer.step()


def reference(init: GANMethod, batches: list, steps: int) -> tuple[GANMethod, dict]:
    """``steps`` generator steps of ``init`` (copied) on ``batches``, written out."""
    ref = copy.deepcopy(init)
    gen_params, critic_params = list(ref.generators.parameters()), list(ref.critic.parameters())
    opt_g = torch.optim.Adam(gen_params, lr=LR, betas=BETAS, eps=EPS)
    opt_d = torch.optim.Adam(critic_params, lr=LR, betas=BETAS, eps=EPS)
    k, mgan = ref.num_generators, isinstance(ref, MGAN)
    classifier = (
        partial(CLASSIFIER[ref.diversity], reduction=ref.diversity_reduction) if mgan else None
    )
    logs: dict[str, torch.Tensor] = {}
    for t in range(steps):
        real = batches[t][0]
        ref.generator_steps_done = t
        rng = ref.training_generator()
        n = -(-len(real) // k)
        index = torch.arange(k).repeat_interleave(n)
        for _ in range(ref.n_critic):
            if ref.same_latent:
                z = torch.randn(n, LATENT, generator=rng)
            else:
                z = torch.randn(k * n, LATENT, generator=rng).reshape(k, n, LATENT)
            fake = ref.generators(z).reshape(k * n, 2)
            real_logits, _ = ref.critic(real)
            fake_logits, class_logits = ref.critic(fake.detach())
            d_loss = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
            if mgan:
                logs["loss/c"] = classifier(class_logits, index, k)
                d_loss = d_loss + logs["loss/c"]
            adam_step(opt_d, d_loss, critic_params)
        fake_logits, class_logits = ref.critic(fake)
        g_loss = bce(fake_logits, 1.0)
        if isinstance(ref, MIMGAN):
            g_loss = g_loss + ref.lam * mi_penalty(class_logits, k)
        if mgan and (not isinstance(ref, MIMGAN) or ref.keep_classifier_term):
            logs["loss/g_diversity"] = classifier(class_logits, index, k)
            g_loss = g_loss + ref.beta * logs["loss/g_diversity"]
        adam_step(opt_g, g_loss, gen_params)
    return ref, logs


# ------------------------------------------------------------ the real step
class RecordBatches(Callback):
    def __init__(self) -> None:
        self.batches: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.batches.append(tuple(t.clone() for t in batch))


def build(name: str, **optimizers) -> GANMethod:
    cls, k, steps, kwargs = CASES[name]
    torch.manual_seed(0)
    adam = partial(torch.optim.Adam, lr=LR, betas=BETAS, eps=EPS)
    model = cls(
        sample_shape=(2,),
        num_generators=k,
        latent_dim=LATENT,
        architecture=MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1),
        max_generator_steps=steps,
        **{"optimizer_g": adam, "optimizer_d": adam, **optimizers},
        **kwargs,
    )
    if model.critic.classifier is not None:
        # A confident classifier: near-uniform predictions leave MIM-GAN's penalty (about
        # quadratic around them) too flat for a dropped term to show in the weights.
        with torch.no_grad():
            model.critic.classifier.weight.mul_(10.0)
    model.run_seed = 2024  # fixed here, so the run does not read the environment
    return model


def train(model: GANMethod, tmp_path) -> tuple[GANMethod, list, Trainer]:
    """``model`` (copied) after its ``max_generator_steps`` in a real Trainer, the batches
    it read and the trainer."""
    trained = copy.deepcopy(model)
    recorder = RecordBatches()
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[recorder],
        default_root_dir=tmp_path,
    )
    data = GaussianMixture2D(preset="ring", num_train=256, num_test=16, batch_size=32)
    trainer.fit(trained, datamodule=data)
    assert trained.generator_steps_done == len(recorder.batches) == model.max_generator_steps
    return trained, recorder.batches, trainer


def mismatched(a: GANMethod, b: GANMethod) -> list[str]:
    """Parameters of ``a`` that differ from ``b``'s, and gradients left in them that differ
    (``<name>.grad``): the generators' from the G step, the critic's from the last D step
    alone, as the G step must send the critic none."""
    params = dict(b.named_parameters())
    wrong = []
    for name, p in a.named_parameters():
        q = params[name]
        if not torch.allclose(p, q, rtol=1e-5, atol=1e-7):
            wrong.append(name)
        # float32 rounding, relative to the largest entry: MIM-GAN's lam * MI gradient is
        # a difference of near-equal logarithms (both sides agree to 1e-13 in float64); since
        # the bank's input layer became a broadcast matmul the worst entry sits at 1.1e-4 of
        # the largest (a detached or missing term moves it by about 1)
        scale = 3e-4 * float(q.grad.abs().max()) + 1e-9
        if p.grad is None or not torch.allclose(p.grad, q.grad, rtol=1e-5, atol=scale):
            wrong.append(f"{name}.grad")
    return wrong


@pytest.mark.parametrize("name", list(CASES))
def test_step_matches_the_hand_written_step(tmp_path, name: str) -> None:
    init = build(name)
    trained, batches, trainer = train(init, tmp_path)
    expected, logs = reference(init, batches, init.max_generator_steps)
    assert not mismatched(trained, expected)
    # every parameter moved, so the comparison above is not between two untouched copies
    before = dict(init.named_parameters())
    assert all(not torch.equal(p, before[n]) for n, p in trained.named_parameters())
    # the logged classifier losses (of the last D and G updates) are the variant's own
    for key, value in logs.items():
        assert torch.allclose(trainer.callback_metrics[key], value, rtol=1e-5), key


# ------------------------------------------------------------ the check can fail
def detached_diversity(self, fake, generator_index, z):
    fake_logits, class_logits = self.critic(fake)
    adversarial = losses.generator_loss_nonsaturating(fake_logits)
    diversity = self.classifier_loss(class_logits.detach(), generator_index)
    return adversarial + self.beta * diversity, {}


_pairwise_mi = MIMGAN.pairwise_mutual_information


class AdamWithoutZeroGrad(torch.optim.Adam):
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Gradients pile up: the fault the step's ``zero_grad`` calls prevent."""


FAULTS = {  # name: (case, what is broken, parameters that must then differ)
    "diversity_detached": ("mgan_general", (MGAN, "generator_loss", detached_diversity), "gen"),
    "mi_penalty_detached": (
        "mimgan",
        (MIMGAN, "pairwise_mutual_information", lambda s, c, i: _pairwise_mi(s, c.detach(), i)),
        "gen",
    ),
    "one_vs_all_routed_to_general": (
        "mgan_one_vs_all",
        (MGAN, "classifier_loss", lambda s, c, i: losses.classifier_loss_general(c, i)),
        "critic.classifier",
    ),
    "pairwise_routed_to_one_vs_all": (
        "mgan_pairwise",
        (MGAN, "classifier_loss", lambda s, c, i: losses.classifier_loss_one_vs_all(c, i)),
        "critic.classifier",
    ),
    "generator_step_sends_critic_gradient": (
        "gan",
        (GANMethod, "toggle_optimizer", lambda self, optimizer: None),
        "critic",
    ),
    "critic_gradients_pile_up": ("mgan_one_vs_all_n_critic_2", "optimizer_d", "critic"),
    "generator_gradients_pile_up": ("mgan_pairwise_two_steps", "optimizer_g", "gen"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_comparison_fails_on_a_faulty_step(tmp_path, monkeypatch, fault: str) -> None:
    name, broken, prefix = FAULTS[fault]
    optimizers = {}
    if isinstance(broken, str):
        optimizers[broken] = partial(AdamWithoutZeroGrad, lr=LR, betas=BETAS, eps=EPS)
    else:
        monkeypatch.setattr(*broken)
    init = build(name, **optimizers)
    trained, batches, _ = train(init, tmp_path)
    expected, _ = reference(init, batches, init.max_generator_steps)
    assert any(n.startswith(prefix) for n in mismatched(trained, expected))


# ------------------------------------------------------------ variant routing
@pytest.mark.parametrize("diversity", list(CLASSIFIER))
def test_each_variant_uses_its_own_classifier_loss(diversity: str) -> None:
    """With K = 3 all three variants' losses take (N, 3) logits, so a variant routed to
    another's loss would run silently: the values tell them apart."""
    model = MGAN(sample_shape=(2,), num_generators=K, latent_dim=LATENT, diversity=diversity)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 3, generator=g)
    index = torch.arange(K).repeat_interleave(4)
    functions = {
        "general": lambda: losses.classifier_loss_general(logits, index),
        "one_vs_all": lambda: losses.classifier_loss_one_vs_all(logits, index),
        "pairwise": lambda: losses.classifier_loss_pairwise(logits, index, K),
    }
    used = model.classifier_loss(logits, index)
    assert torch.allclose(used, CLASSIFIER[diversity](logits, index, K), rtol=1e-6)
    for other, function in functions.items():
        assert torch.allclose(used, function()) == (other == diversity), other
