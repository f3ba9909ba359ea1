"""Divergence caught (mgan_lightning/divergence.py): a loss, the weights or the samples that
blow up stop the run within the generator step, with a message naming the step, the quantity
and its value; no checkpoint of the failing state is written, the last one resumes; the
``mgan`` command prints the message alone (exit code 1); ``on_divergence: skip`` drops
non-finite updates exactly; coverage summaries never print ``nan``."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer

from mgan_lightning.callbacks import GeneratorStepCheckpoint, ModeCoverageEvaluation
from mgan_lightning.callbacks.stacked_mnist import StackedMNISTEvaluation
from mgan_lightning.cli import build_cli
from mgan_lightning.data import GaussianMixture2D
from mgan_lightning.divergence import (
    MAX_CONSECUTIVE_SKIPS,
    DivergenceError,
    NonFiniteLossError,
    group_norms,
)
from mgan_lightning.methods import GAN
from mgan_lightning.metrics import ModeCoverage, StackedMNISTModes
from mgan_lightning.nets import MLP

pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")

ROOT = Path(__file__).resolve().parents[1]
RING = str(ROOT / "configs" / "ring" / "gan.yaml")
BAD_STEP = 4  # the generator step (1-based) in which the tests make training diverge
IN_BAD_STEP = f"generator step {BAD_STEP} (the update after generator step {BAD_STEP - 1})"
TINY_CLI = [
    "--model.init_args.architecture.init_args.g_hidden=16",
    "--model.init_args.architecture.init_args.d_hidden=16",
    "--data.init_args.num_train=2000",
    "--trainer.enable_progress_bar=false",
]


def tiny(cls=GAN, **kwargs) -> GAN:
    arch = MLP(g_hidden=8, g_layers=1, d_hidden=8, d_layers=1)
    return cls(sample_shape=(2,), latent_dim=2, architecture=arch, **kwargs)


def data() -> GaussianMixture2D:
    return GaussianMixture2D(num_train=512, num_test=64, batch_size=32)


def hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.ckpt")}


class Snapshot(Callback):
    """Before each generator step, the hashes of every checkpoint file; ``at_bad_step`` runs
    before step ``BAD_STEP`` (``after_step`` after step ``BAD_STEP - 1``, before its saves)."""

    def __init__(self, folder: Path, at_bad_step=None, after_step=None) -> None:
        self.folder, self.at_bad_step, self.after_step = folder, at_bad_step, after_step
        self.before: dict[str, str] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.before = hashes(self.folder)
        if pl_module.generator_steps_done == BAD_STEP - 1 and self.at_bad_step:
            self.at_bad_step(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.generator_steps_done == BAD_STEP - 1 and self.after_step:
            self.after_step(trainer, pl_module)


def fit(tmp_path: Path, model: GAN, steps: int = 8, ckpt_path=None, snapshot=None, **ckpt):
    """Fit ``model`` on the CPU, checkpointing every generator step (``last.ckpt`` too)."""
    folder = tmp_path / "ckpt"
    checkpoint = GeneratorStepCheckpoint(
        dirpath=folder, every_n_generator_steps=1, save_top_k=-1, save_last=True, **ckpt
    )
    model.max_generator_steps = steps
    trainer = Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path,
        callbacks=[checkpoint, *([snapshot] if snapshot else [])],
    )  # fmt: skip
    trainer.fit(model, datamodule=data(), ckpt_path=ckpt_path)
    return trainer


def assert_stopped_cleanly(tmp_path: Path, snapshot: Snapshot, model: GAN) -> None:
    """Nothing written or rewritten since the step began; the last checkpoint holds the step
    before and is finite."""
    folder = tmp_path / "ckpt"
    assert snapshot.before, "no checkpoint had been written before the divergence"
    assert hashes(folder) == snapshot.before
    state = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(state["state_dict"]["generator_step"]) == BAD_STEP - 1
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    assert model.divergence_guard.error is not None


class Poisoned(GAN):
    """A GAN whose ``which`` loss is NaN in generator steps ``bad`` (1-based); ``how``:
    ``"loss"`` (a NaN loss) or ``"grad"`` (a finite loss whose gradient is NaN)."""

    def __init__(self, which="discriminator", bad=(BAD_STEP,), how="loss", **kwargs):
        super().__init__(**kwargs)
        self.which, self.bad, self.how = which, tuple(bad), how

    def _poison(self, loss, net):
        if self.generator_steps_done + 1 not in self.bad:
            return loss
        if self.how == "loss":
            return loss * float("nan")
        p = next(net.parameters())  # sqrt'(0) = inf: d/dp sqrt(0 * sum(p)) = 0 * inf = NaN
        return loss + torch.sqrt(0 * p.sum())

    def discriminator_loss(self, real, fake, generator_index):
        loss, logs = super().discriminator_loss(real, fake, generator_index)
        return (self._poison(loss, self.critic) if self.which == "discriminator" else loss), logs

    def generator_loss(self, fake, generator_index, z):
        loss, logs = super().generator_loss(fake, generator_index, z)
        return (self._poison(loss, self.generators) if self.which == "generator" else loss), logs


# ------------------------------------------------------------- stop on each quantity
@pytest.mark.parametrize("which", ["discriminator", "generator"])
def test_nan_loss_stops_before_its_update_and_the_last_checkpoint_resumes(
    tmp_path: Path, which: str
) -> None:
    torch.manual_seed(0)
    snapshot = Snapshot(tmp_path / "ckpt")
    model = tiny(Poisoned, which=which)
    with pytest.raises(NonFiniteLossError) as info:
        fit(tmp_path, model, snapshot=snapshot)
    message = str(info.value)
    assert f"{IN_BAD_STEP}: the {which} loss is nan" in message
    assert "model.init_args.optimizer_g.init_args.lr is 0.0002" in message
    assert "last.ckpt" in message
    assert_stopped_cleanly(tmp_path, snapshot, model)
    # Stopped before the update: the weights in memory are still finite.
    assert all(torch.isfinite(p).all() for p in model.parameters())

    # The last checkpoint resumes, and the resumed run equals one never interrupted.
    torch.manual_seed(0)
    resumed = tiny()
    fit(tmp_path / "resume", resumed, steps=6, ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    torch.manual_seed(0)
    straight = tiny()
    fit(tmp_path / "straight", straight, steps=6)
    assert resumed.generator_steps_done == 6
    for (name, a), b in zip(resumed.state_dict().items(), straight.state_dict().values()):
        assert torch.equal(a, b), name


def set_lr(lr: float, which: int = 0):
    def apply(trainer, pl_module) -> None:
        for group in trainer.optimizers[which].param_groups:
            group["lr"] = lr

    return apply


@pytest.mark.parametrize("which, name", [(0, "generators'"), (1, "critic's")])
def test_exploding_weights_stop_within_the_step(tmp_path: Path, which: int, name: str) -> None:
    torch.manual_seed(0)
    snapshot = Snapshot(tmp_path / "ckpt", at_bad_step=set_lr(1e9, which))
    model = tiny()
    with pytest.raises(DivergenceError) as info:
        fit(tmp_path, model, snapshot=snapshot)
    message = str(info.value)
    found = re.search(
        rf"{re.escape(IN_BAD_STEP)}: the {name} weight norm is (\S+) \(bound", message
    )
    assert found, message
    assert float(found.group(1)) > 1e6
    assert "model.init_args.max_weight_norm" in message
    key = "optimizer_g" if which == 0 else "optimizer_d"
    assert f"model.init_args.{key}.init_args.lr is 1e+09" in message
    assert_stopped_cleanly(tmp_path, snapshot, model)


def test_without_the_bounds_the_same_blow_up_trains_to_the_end(tmp_path: Path) -> None:
    """The bounds are what stops the run above: turned off, it goes on silently."""
    torch.manual_seed(0)
    snapshot = Snapshot(tmp_path / "ckpt", at_bad_step=set_lr(1e9, 0))
    model = tiny(max_weight_norm=None, max_sample_ratio=None)
    fit(tmp_path, model, steps=6, snapshot=snapshot)
    assert model.generator_steps_done == 6
    assert group_norms([list(model.generators.parameters())]).item() > 1e6


def blow_up_output(trainer, pl_module) -> None:
    """Samples near 1e4 while the weight norm stays far below its bound."""
    with torch.no_grad():
        pl_module.generators.body[0].bias.fill_(1e4)


def test_samples_out_of_range_stop_within_the_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    snapshot = Snapshot(tmp_path / "ckpt", at_bad_step=blow_up_output)
    model = tiny()
    with pytest.raises(DivergenceError) as info:
        fit(tmp_path, model, snapshot=snapshot)
    message = str(info.value)
    assert f"{IN_BAD_STEP}: the samples it trained on" in message, message
    found = re.search(r"reach max \|x\| = (\S+), (\S+) times the data's scale", message)
    assert found and float(found.group(1)) > 5e3 and float(found.group(2)) > 100, message
    assert "model.init_args.max_sample_ratio" in message
    assert_stopped_cleanly(tmp_path, snapshot, model)


@pytest.mark.parametrize("save_on_exception", [False, True])
def test_a_checkpoint_of_bad_samples_is_refused(tmp_path: Path, save_on_exception: bool) -> None:
    """The generators blow up between a step's check and its checkpoint: the save samples
    them first and refuses; ``save_on_exception`` does not write the state either."""
    torch.manual_seed(0)
    folder = tmp_path / "ckpt"
    snapshot = Snapshot(folder, after_step=blow_up_output)
    model = tiny()
    with pytest.raises(DivergenceError) as info:
        fit(tmp_path, model, snapshot=snapshot, save_on_exception=save_on_exception)
    message = str(info.value)
    assert f"not saving a checkpoint after generator step {BAD_STEP - 1}" in message.lower()
    assert "samples reach max |x|" in message
    assert hashes(folder) == snapshot.before  # step BAD_STEP - 1's files never written
    state = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert int(state["state_dict"]["generator_step"]) == BAD_STEP - 2
    # And the diverged model refuses any later save.
    with pytest.raises(DivergenceError, match="Not saving a checkpoint of a diverged model"):
        model.on_save_checkpoint({})


def test_non_finite_gradients_stop_on_the_weights(tmp_path: Path) -> None:
    """A finite loss with NaN gradients: the update makes the weights NaN, caught at the end
    of the same step, before any save."""
    torch.manual_seed(0)
    snapshot = Snapshot(tmp_path / "ckpt")
    model = tiny(Poisoned, which="generator", how="grad")
    with pytest.raises(DivergenceError) as info:
        fit(tmp_path, model, snapshot=snapshot)
    assert f"{IN_BAD_STEP}: the generators' weights include NaN" in str(info.value)
    assert_stopped_cleanly(tmp_path, snapshot, model)


def test_detect_nan_false_turns_every_check_off(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny(Poisoned, which="generator", bad=(2, 3, 4), detect_nan=False)
    fit(tmp_path, model, steps=5)
    assert model.generator_steps_done == 5


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_weight_norm": 0}, "model.max_weight_norm"),
        ({"max_sample_ratio": -1.0}, "model.max_sample_ratio"),
        ({"max_sample_ratio": math.nan}, "model.max_sample_ratio"),
        ({"on_divergence": "ignore"}, "model.on_divergence"),
    ],
)
def test_invalid_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        tiny(**kwargs)


# ------------------------------------------------------------------------- skip
class CriticState(Callback):
    """The critic's weights and optimizer state before and after generator step ``BAD_STEP``."""

    def __init__(self) -> None:
        self.before: dict | None = None
        self.after: dict | None = None

    @staticmethod
    def state(trainer, pl_module) -> dict:
        opt_d = trainer.optimizers[1]
        return {
            "weights": {k: v.clone() for k, v in pl_module.critic.state_dict().items()},
            "generators": {k: v.clone() for k, v in pl_module.generators.state_dict().items()},
            "optimizer": [
                {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
                for s in opt_d.state.values()
            ],
        }

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.generator_steps_done == BAD_STEP - 1:
            self.before = self.state(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.generator_steps_done == BAD_STEP:
            self.after = self.state(trainer, pl_module)


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return torch.equal(a, b) if torch.is_tensor(a) else a == b


@pytest.mark.parametrize("how", ["loss", "grad"])
def test_skip_drops_the_non_finite_update_exactly_and_goes_on(
    tmp_path: Path, how: str, caplog
) -> None:
    torch.manual_seed(0)
    probe = CriticState()
    model = tiny(Poisoned, which="discriminator", how=how, on_divergence="skip")
    with caplog.at_level(logging.WARNING, logger="mgan_lightning.divergence"):
        trainer = Trainer(
            accelerator="cpu", devices=1, max_steps=12, logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
            callbacks=[probe],
        )  # fmt: skip
        trainer.fit(model, datamodule=data())
    assert model.generator_steps_done == 6  # the skipped update still counted
    assert trainer.global_step == 12
    assert model.divergence_guard.skipped_updates == 1
    assert probe.before is not None and probe.after is not None
    assert same(probe.before["weights"], probe.after["weights"])  # bitwise unchanged
    assert same(probe.before["optimizer"], probe.after["optimizer"])  # moments, step count
    assert not same(probe.before["generators"], probe.after["generators"])  # G step was kept
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(
        f"generator step {BAD_STEP}: the discriminator update was skipped" in r.getMessage()
        for r in caplog.records
    )


def test_skip_stops_after_too_many_steps_in_a_row(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = tiny(Poisoned, which="generator", bad=tuple(range(2, 100)), on_divergence="skip")
    with pytest.raises(DivergenceError) as info:
        fit(tmp_path, model, steps=20)
    assert model.generator_steps_done == MAX_CONSECUTIVE_SKIPS  # steps 2..11 skipped
    message = str(info.value)
    assert f"generator step {MAX_CONSECUTIVE_SKIPS + 1} (the update after" in message
    assert f"skipped in {MAX_CONSECUTIVE_SKIPS} generator steps in a row" in message


# -------------------------------------------------------------------------- CLI
def test_the_users_reproduction_stops_with_a_short_message(tmp_path: Path, capsys) -> None:
    """``mgan fit --config configs/ring/gan.yaml --model.init_args.optimizer_g.init_args.
    lr=1e9 --model.init_args.max_generator_steps=20`` (smaller networks and data)."""
    root = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        build_cli([
            "fit", "--config", RING, "--model.init_args.optimizer_g.init_args.lr=1e9",
            "--model.init_args.max_generator_steps=20", f"--trainer.default_root_dir={root}",
            *TINY_CLI,
        ])  # fmt: skip
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert (
        "mgan fit: error: Training diverged in generator step 1 (the first update): the "
        "generators' weight norm is " in err
    ), err
    assert "model.init_args.optimizer_g.init_args.lr is 1e+09" in err
    assert "Traceback" not in err
    assert not list(root.rglob("*.ckpt"))  # nothing saved


def test_without_checks_the_reproduction_trains_and_prints_undefined_not_nan(
    tmp_path: Path, caplog
) -> None:
    """The issue as it was (checks off): a useless model, but the coverage summary says the
    reverse KL is undefined instead of printing nan."""
    with caplog.at_level(logging.INFO):
        build_cli([
            "fit", "--config", RING, "--model.init_args.optimizer_g.init_args.lr=1e9",
            "--model.init_args.max_generator_steps=20", "--model.init_args.detect_nan=false",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            *TINY_CLI,
        ])  # fmt: skip
    text = "\n".join(r.getMessage() for r in caplog.records if "Mode coverage" in r.getMessage())
    assert "modes covered 0/8" in text, text
    assert "reverse KL undefined (no high-quality samples)" in text
    assert "nan" not in text.lower()


@pytest.mark.slow
def test_two_processes_stop_together(tmp_path: Path) -> None:
    """DDP (2 CPU processes, gloo): every process takes the same decision, both exit with the
    message, none waits for the other."""
    exe = shutil.which("mgan") or str(Path(sys.executable).with_name("mgan"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    proc = subprocess.run(
        [
            exe, "fit", "--config", RING, "--trainer.devices=2", "--trainer.accelerator=cpu",
            "--model.init_args.optimizer_g.init_args.lr=1e9",
            "--model.init_args.max_generator_steps=20",
            f"--trainer.default_root_dir={tmp_path / 'run'}", *TINY_CLI,
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Training diverged in generator step 1" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


# ------------------------------------------------------------------- printing
def test_coverage_summary_says_undefined_instead_of_nan() -> None:
    metric = ModeCoverage([[1.0, 0.0], [-1.0, 0.0]], std=0.01)
    metric.update(torch.full((50, 2), 1e6))  # nowhere near a mode
    result = {k: float(v) for k, v in metric.compute().items()}
    assert math.isnan(result["reverse_kl"])  # the logged value stays NaN (a gap in plots)
    callback = ModeCoverageEvaluation(num_samples=50)
    callback.num_modes = 2
    text = callback.summary(result, 20)
    assert "reverse KL undefined (no high-quality samples)" in text
    assert "nan" not in text.lower()
    result["reverse_kl"] = 0.01234
    assert "reverse KL 0.0123" in callback.summary(result, 20)


def test_stacked_mnist_summary_says_undefined_instead_of_nan() -> None:
    callback = StackedMNISTEvaluation(num_samples=10, rules=("confident",))
    callback.metrics = {"confident": StackedMNISTModes(None, "confident", 0.95)}
    metric = callback.metrics["confident"]
    metric.update(torch.full((10, 3, 10), 0.1))  # no digit confident: nothing counted
    result = {f"confident/{k}": float(v) for k, v in metric.compute().items()}
    assert math.isnan(result["confident/kl"])
    text = callback.summary(result, 5)
    assert "KL undefined (no sample counted)" in text and "nan" not in text.lower()


# ------------------------------------------------------- the checks change nothing
@pytest.mark.parametrize("name", ["gan", "mgan_aids", "bourgan", "mwu_aids"])
def test_checks_and_checkpoint_sampling_do_not_change_training(tmp_path: Path, name: str) -> None:
    """With every check on and a checkpoint (so a save-time sample) after every generator
    step, training ends bitwise where it ends with no check and no checkpoint."""
    from lightning.pytorch import seed_everything

    from tests.methods.test_exact_resume import build, full_state

    states = []
    for checks in (False, True):
        seed_everything(7, verbose=False)
        data = GaussianMixture2D(preset="ring", num_train=1000, num_test=100, batch_size=64)
        model = build(name, 12)
        model.divergence_guard.enabled = checks
        every_step = GeneratorStepCheckpoint(
            dirpath=tmp_path / str(checks), save_top_k=-1, every_n_generator_steps=1
        )
        callbacks = [every_step] if checks else []
        trainer = Trainer(
            accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=checks, callbacks=callbacks,
            default_root_dir=tmp_path,
        )  # fmt: skip
        trainer.fit(model, datamodule=data)
        assert model.generator_steps_done == 12
        states.append(full_state(model, trainer))
    assert len(list((tmp_path / "True").glob("*.ckpt"))) == 12
    off, on = states
    assert off.keys() == on.keys()
    assert not [k for k in off if not torch.equal(off[k], on[k])]
