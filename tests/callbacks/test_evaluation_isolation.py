"""``SampleEvaluation.evaluate`` must not touch what training depends on.

Evaluations run in the middle of training, so scoring a model has to leave it as it was:
its batch-norm statistics (sampling in train mode would update them), the train/eval mode
of the module and of every submodule, and torch's global RNG. During ``score`` the model
must be in eval mode, so that samples come from the running statistics.

The model is a small DCGAN bank (batch norm in the per-generator input layers and in the
shared body); a probe subclass of ``SampleEvaluation`` records the modes it sees and draws
from the global RNG on purpose, as scoring code that ignores the evaluation's generator
would. Each property is also shown to be observable: sampling in train mode does move the
statistics, and the probe's global draw does happen.
"""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from torch import nn

from mgan_lightning.callbacks import SampleEvaluation
from mgan_lightning.methods import GAN
from mgan_lightning.nets import DCGAN


class Probe(SampleEvaluation):
    """Sums its samples; records every module's mode and a draw from the global RNG."""

    def score(self, trainer, pl_module) -> dict[str, float]:
        self.modes_seen = {name: m.training for name, m in pl_module.named_modules()}
        total = sum(float(s.sum()) for s in self.generated(trainer, pl_module))
        self.global_draw = torch.rand(3)
        return {"sum": total}


def bn_model(ema: bool) -> GAN:
    torch.manual_seed(0)
    return GAN(
        sample_shape=(1, 16, 16),
        num_generators=3,
        latent_dim=8,
        architecture=DCGAN(width=4),
        ema_decay=0.9 if ema else None,
    )


def buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.clone() for name, b in model.named_buffers()}


def modes(model: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    return Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False)


@pytest.mark.parametrize("ema", [False, True], ids=["generators", "ema_generators"])
@pytest.mark.parametrize("training", [True, False], ids=["train_mode", "eval_mode"])
def test_evaluate_leaves_the_model_and_the_global_rng_alone(trainer, ema, training) -> None:
    model = bn_model(ema).train(training)
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.generators.modules())
    probe = Probe(num_samples=40, batch_size=16)
    stats, mode, rng = buffers(model), modes(model), torch.get_rng_state()

    result = probe.evaluate(trainer, model)

    # (d) score ran in eval mode, every submodule included
    assert not any(probe.modes_seen.values())
    # (a) batch-norm statistics (and every other buffer) unchanged
    after = buffers(model)
    assert all(torch.equal(stats[name], after[name]) for name in stats)
    # (b) the train mode of every module is back
    assert modes(model) == mode
    # (c) the global RNG is where it was, although score drew from it
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(probe.global_draw, torch.rand(3))  # score's draw, replayed: it happened
    # the evaluation's own stream: the same samples every time, whatever the global RNG
    torch.manual_seed(123)
    assert probe.evaluate(trainer, model) == result

    # (a) could fail: sampling in train mode moves the running statistics
    model.train()
    model.sample(16)
    moved = buffers(model)
    assert any(not torch.equal(stats[n], moved[n]) for n in stats if "running_mean" in n)


def test_evaluate_restores_mixed_submodule_modes(trainer) -> None:
    model = bn_model(ema=False).train()
    model.generators.norm.eval()  # batch norm frozen by the user, the rest training
    mode = modes(model)
    Probe(num_samples=8, batch_size=8).evaluate(trainer, model)
    changed = sorted(name for name, m in model.named_modules() if m.training != mode[name])
    assert not changed, changed
