"""Each use of a private name in :mod:`mgan_lightning.private_api`, checked against the installed
Lightning / jsonargparse / torch: the name exists with the signature relied on, and the adapter
does its job on a real object. A release that renames or changes one fails here, by name,
instead of somewhere deep in a training run."""

from __future__ import annotations

import ast
import copy
import inspect
from pathlib import Path

import pytest
import torch
from jsonargparse import ArgumentParser
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy, StrategyRegistry

from mgan_lightning import private_api
from mgan_lightning.private_api import (
    LIGHTNING_MERGES_CHECKPOINT_HPARAMS,
    TORCH_HAS_PUBLIC_LOAD_PRE_HOOK,
    LightningCLIHooks,
    ModelCheckpointHooks,
    argument_names,
    attached_trainer,
    batches_done_this_epoch,
    clear_optimizer_state,
    finds_unused_parameters,
    is_last_batch_of_epoch,
    is_local_path,
    last_saved_checkpoint,
    lift_default_epoch_limit,
    loggers_update_now,
    option_actions,
    register_load_state_dict_pre_hook,
    set_max_steps,
    subclass_paths,
    tensor_norms,
    tolerate_unused_parameters,
)

PACKAGE = Path(__file__).resolve().parents[1] / "mgan_lightning"
LIBRARIES = {"lightning", "lightning_fabric", "pytorch_lightning", "jsonargparse", "torchmetrics"}


def quiet_trainer(tmp_path: Path, **kwargs) -> Trainer:
    options = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )  # fmt: skip
    options.update(kwargs)
    return Trainer(**options)


def boring_model() -> LightningModule:
    """Lightning's BoringModel, imported only when a test runs: importing its module at
    collection would add its LightningModules to the class lists that the CLI's "known: ..."
    messages print, for every test of the session (``test_bad_input``)."""
    from lightning.pytorch.demos.boring_classes import BoringModel

    return BoringModel()


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


# ------------------------------------------------------------------ only here
def test_no_other_module_imports_a_private_name_of_the_libraries() -> None:
    """``from lightning.x._y import z`` or ``from jsonargparse import _z`` appear only in the
    adapter (attribute access is checked by review and the tests below)."""
    offenders = []
    for file in sorted(PACKAGE.rglob("*.py")):
        if file.name == "private_api.py":
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                parts, names = [], []
                for alias in node.names:
                    if alias.name.split(".")[0] in LIBRARIES and "._" in f".{alias.name}":
                        offenders.append(f"{file.relative_to(PACKAGE)}: import {alias.name}")
                continue
            else:
                continue
            if parts[0] in LIBRARIES and (
                any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names)
            ):
                offenders.append(f"{file.relative_to(PACKAGE)}: from {node.module} import ...")
    assert offenders == []


# ------------------------------------------------------------------ the Trainer's loops
class LoopProbe(Callback):
    """Records what the adapter reads at each training batch of a BoringModel fit."""

    def __init__(self) -> None:
        self.logs, self.last, self.done, self.trainers = [], [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.logs.append(loggers_update_now(trainer))
        self.last.append(is_last_batch_of_epoch(trainer))
        self.done.append(batches_done_this_epoch(trainer))
        self.trainers.append(attached_trainer(pl_module) is trainer)


def test_loop_readers_on_a_real_fit(tmp_path: Path) -> None:
    """``_logger_connector.should_update_logs`` (every ``log_every_n_steps`` batches),
    ``fit_loop.epoch_loop.batch_progress`` (``is_last_batch``, ``current.ready``)."""
    probe = LoopProbe()
    trainer = quiet_trainer(
        tmp_path, max_epochs=1, limit_train_batches=4, log_every_n_steps=2, callbacks=[probe]
    )
    trainer.fit(boring_model())
    assert probe.logs == [False, True, False, True]
    assert probe.last == [False, False, False, True]
    assert probe.done == [1, 2, 3, 4]  # counted as started when the batch starts
    assert all(probe.trainers)
    assert loggers_update_now(object()) is True  # no connector: nothing to save by skipping


def test_attached_trainer_is_none_before_fit() -> None:
    assert attached_trainer(boring_model()) is None


class StepLimiter(Callback):
    """Does at ``setup`` what a GAN method does: set the step limit, lift the epoch limit."""

    def setup(self, trainer, pl_module, stage) -> None:
        self.epochs_before = trainer.max_epochs
        set_max_steps(trainer, 3)
        lift_default_epoch_limit(trainer)
        self.epochs_after, self.steps_after = trainer.max_epochs, trainer.max_steps


def test_set_max_steps_and_lift_default_epoch_limit(tmp_path: Path) -> None:
    """``fit_loop.epoch_loop.max_steps`` is the limit the loop obeys; Lightning's implicit
    ``max_epochs`` is still 1000 (``fit_loop.max_epochs`` assignable)."""
    limiter = StepLimiter()
    trainer = quiet_trainer(tmp_path, callbacks=[limiter])  # neither max_epochs nor max_steps
    trainer.fit(boring_model())
    assert limiter.epochs_before == private_api.LIGHTNING_DEFAULT_MAX_EPOCHS == 1000
    assert (limiter.epochs_after, limiter.steps_after) == (-1, 3)
    assert trainer.global_step == 3
    kept = quiet_trainer(tmp_path, max_epochs=5)
    lift_default_epoch_limit(kept)
    assert kept.max_epochs == 5


# ------------------------------------------------------------------ DDP and optimizers
def test_ddp_unused_parameters() -> None:
    """``DDPStrategy._ddp_kwargs`` holds what DDP is built with (``_setup_model`` passes it)."""
    assert "_ddp_kwargs" in inspect.getsource(DDPStrategy._setup_model)
    plain = DDPStrategy()
    assert not finds_unused_parameters(plain)
    tolerate_unused_parameters(plain)
    assert finds_unused_parameters(plain)
    refused = DDPStrategy(find_unused_parameters=False)
    tolerate_unused_parameters(refused)  # the user's explicit choice stays
    assert not finds_unused_parameters(refused)
    named = StrategyRegistry.get("ddp_find_unused_parameters_true")
    assert finds_unused_parameters(named)
    single = SingleDeviceStrategy(device=torch.device("cpu"))
    tolerate_unused_parameters(single)
    assert not finds_unused_parameters(single)


def test_clear_optimizer_state_makes_the_next_step_a_fresh_one() -> None:
    def adam(weight):
        return torch.optim.Adam([weight], lr=0.1, betas=(0.5, 0.9))

    torch.manual_seed(0)
    start = torch.randn(5)
    used = torch.nn.Parameter(start.clone())
    optimizer = adam(used)
    for _ in range(3):
        used.grad = torch.randn(5)
        optimizer.step()
    clear_optimizer_state(LightningOptimizer(optimizer))  # as a method's optimizers() gives it
    assert len(optimizer.state) == 0 and optimizer.param_groups[0]["lr"] == 0.1
    fresh = torch.nn.Parameter(used.detach().clone())
    grad = torch.randn(5)
    used.grad, fresh.grad = grad.clone(), grad.clone()
    optimizer.step()
    adam(fresh).step()
    assert torch.equal(used, fresh)


def test_tensor_norms_are_each_tensors_vector_norm() -> None:
    """``torch._foreach_norm``: one 2-norm per tensor, the value ``vector_norm`` gives (bit
    for bit on the CPU), for mixed shapes and dtypes."""
    torch.manual_seed(0)
    tensors = [torch.randn(3, 4), torch.randn(7), torch.randn(2, 2, 2).double(), torch.zeros(5)]
    norms = tensor_norms(tensors)
    assert len(norms) == len(tensors)
    for norm, tensor in zip(norms, tensors):
        assert norm.shape == () and norm.dtype == tensor.dtype
        assert torch.equal(norm, torch.linalg.vector_norm(tensor))


# ------------------------------------------------------------------ checkpoints
class GrowingBuffer(torch.nn.Module):
    """A buffer whose size is known only from what is loaded into it."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("values", torch.zeros(0))
        self.calls: list[str] = []
        register_load_state_dict_pre_hook(self, self.take_saved_size)

    @staticmethod
    def take_saved_size(module, state_dict, prefix, *args) -> None:
        module.calls.append(prefix)
        module.values = torch.empty_like(state_dict[prefix + "values"])


def test_load_state_dict_pre_hook_runs_before_the_module_loads() -> None:
    """The public hook (torch >= 2.5) or ``_register_load_state_dict_pre_hook(with_module=True)``
    (2.4): called with the module and its prefix before its entries are copied, also inside a
    parent and in a deep copy."""
    assert bool(TORCH_HAS_PUBLIC_LOAD_PRE_HOOK) == hasattr(
        torch.nn.Module, "register_load_state_dict_pre_hook"
    )
    saved = {"values": torch.arange(4.0)}
    module = GrowingBuffer()
    module.load_state_dict(saved)
    assert module.calls == [""] and torch.equal(module.values, saved["values"])
    parent = torch.nn.Sequential(GrowingBuffer())
    parent.load_state_dict({"0.values": torch.ones(2)})
    assert parent[0].calls == ["0."] and torch.equal(parent[0].values, torch.ones(2))
    copied = copy.deepcopy(GrowingBuffer())
    copied.load_state_dict(saved)
    assert copied.calls == [""] and torch.equal(copied.values, saved["values"])


def test_is_local_path() -> None:
    assert is_local_path("/tmp/run/last.ckpt") and is_local_path(Path("runs"))
    assert not is_local_path("s3://bucket/last.ckpt")


class Recorder(ModelCheckpointHooks):
    """Every public-named hook, recorded, with Lightning's behaviour kept."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.calls: dict[str, int] = {}
        self.saved: list[str] = []

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def checkpoint_saved(self, trainer, filepath) -> None:
        self._count("saved")
        self.saved.append(filepath)

    def link_checkpoint(self, trainer, filepath, linkpath) -> None:
        self._count("link")
        super().link_checkpoint(trainer, filepath, linkpath)

    def remove_checkpoint(self, trainer, filepath) -> None:
        self._count("remove")
        super().remove_checkpoint(trainer, filepath)

    def save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        self._count("last")
        super().save_last_checkpoint(trainer, monitor_candidates)

    def monitor_candidates(self, trainer) -> dict:
        self._count("candidates")
        candidates = super().monitor_candidates(trainer)
        candidates["mine"] = torch.tensor(7)
        return candidates


def test_model_checkpoint_private_steps_exist_with_their_signatures() -> None:
    assert parameters(ModelCheckpoint._save_checkpoint) == ["self", "trainer", "filepath"]
    assert isinstance(inspect.getattr_static(ModelCheckpoint, "_link_checkpoint"), staticmethod)
    assert parameters(ModelCheckpoint._link_checkpoint) == ["trainer", "filepath", "linkpath"]
    assert parameters(ModelCheckpoint._remove_checkpoint) == ["self", "trainer", "filepath"]
    for name in ("_save_last_checkpoint", "_save_topk_checkpoint"):
        assert parameters(getattr(ModelCheckpoint, name)) == [
            "self", "trainer", "monitor_candidates",
        ]  # fmt: skip
    assert parameters(ModelCheckpoint._monitor_candidates) == ["self", "trainer"]
    assert parameters(ModelCheckpoint._should_skip_saving_checkpoint) == ["self", "trainer"]
    assert ModelCheckpoint(every_n_train_steps=3)._every_n_train_steps == 3
    assert hasattr(ModelCheckpoint(), "_last_checkpoint_saved")
    public = {n for n in vars(ModelCheckpointHooks) if not n.startswith("_")}
    assert not public & set(dir(ModelCheckpoint)), "a hook name now clashes with Lightning's"


@pytest.mark.parametrize("save_last", [True, "link"])
def test_model_checkpoint_hooks_on_a_real_fit(tmp_path: Path, save_last) -> None:
    """Saves every 2 optimizer steps (set after ``__init__``), keeps one top-k file (the
    older ones removed through the hook), writes or links ``last.ckpt``; the file names see
    the extra candidate."""
    callback = Recorder(dirpath=tmp_path / "ckpt", filename="{mine}-{step}", save_last=save_last)
    callback.set_every_n_train_steps(2)
    trainer = quiet_trainer(tmp_path, max_steps=6, enable_checkpointing=True, callbacks=[callback])
    assert last_saved_checkpoint(callback) == ""
    trainer.fit(boring_model())
    topk = [p for p in callback.saved if "last" not in Path(p).name]
    assert [Path(p).name for p in topk] == ["mine=7-step=2.ckpt", "mine=7-step=4.ckpt",
                                            "mine=7-step=6.ckpt"]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "last.ckpt", "mine=7-step=6.ckpt",
    ]  # fmt: skip
    assert callback.calls["remove"] >= 2 and callback.calls["last"] >= 3
    assert callback.calls["candidates"] >= 3
    assert callback.calls.get("link", 0) == (3 if save_last == "link" else 0)
    if save_last == "link":
        assert (tmp_path / "ckpt" / "last.ckpt").is_symlink()
    assert last_saved_checkpoint(callback) in callback.saved
    assert callback.should_skip_saving_checkpoint(trainer)  # this step is saved already


def test_model_checkpoint_hooks_save_topk_directly(tmp_path: Path) -> None:
    callback = ModelCheckpointHooks(dirpath=tmp_path / "ckpt", filename="{step}", every_n_epochs=0)
    trainer = quiet_trainer(tmp_path, max_steps=1, enable_checkpointing=True, callbacks=[callback])
    trainer.fit(boring_model())
    assert not (tmp_path / "ckpt").exists()  # no cadence: nothing saved by itself
    callback.save_topk_checkpoint(trainer, callback.monitor_candidates(trainer))
    assert (tmp_path / "ckpt" / "step=1.ckpt").is_file()


# ------------------------------------------------------------------ the command line
def widths_module() -> type[LightningModule]:
    """A model with one argument, defined locally: a module-level subclass would join the
    class lists that the CLI's "known: ..." messages print (``test_bad_input``)."""

    class Widths(LightningModule):
        def __init__(self, width: int = 2) -> None:
            super().__init__()
            self.save_hyperparameters()

    return Widths


class ProbeCLI(LightningCLIHooks):
    """Records the routed steps; runs nothing."""

    def prepare_subcommand_parser(self, klass, subcommand, **kwargs):
        self.prepared = [*getattr(self, "prepared", []), subcommand]
        return super().prepare_subcommand_parser(klass, subcommand, **kwargs)

    def run_subcommand(self, subcommand: str) -> None:
        self.ran = subcommand


class LightningsOwn(LightningCLI):
    def _run_subcommand(self, subcommand: str) -> None:  # run nothing
        pass


def cli_args(tmp_path: Path, *more: str) -> dict:
    return dict(
        args=["validate", f"--trainer.default_root_dir={tmp_path}", *more],
        save_config_callback=None,
        trainer_defaults={"logger": False, "enable_progress_bar": False},
    )


def test_lightning_cli_private_steps_exist_with_their_signatures() -> None:
    assert parameters(LightningCLI._run_subcommand) == ["self", "subcommand"]
    assert parameters(LightningCLI._prepare_subcommand_parser) == [
        "self", "klass", "subcommand", "kwargs",
    ]  # fmt: skip
    # The version switch answers whether Lightning reads a checkpoint's hyperparameters.
    assert hasattr(LightningCLI, "_parse_ckpt_path") == bool(LIGHTNING_MERGES_CHECKPOINT_HPARAMS)
    public = {n for n in vars(LightningCLIHooks) if not n.startswith("_")}
    assert not public & set(dir(LightningCLI)), "a hook name now clashes with Lightning's"


def test_lightning_cli_hooks_on_a_real_cli(tmp_path: Path) -> None:
    cli = ProbeCLI(widths_module(), **cli_args(tmp_path))
    assert cli.ran == "validate"
    assert set(cli.prepared) == {"fit", "validate", "test", "predict"}
    assert isinstance(cli.subcommand_parser("validate"), ArgumentParser)
    assert cli.subcommand_parser(None) is None and cli.subcommand_parser("nope") is None


def test_checkpoint_hyperparameters_do_not_replace_the_given_config(tmp_path: Path) -> None:
    """Lightning >= 2.5.5 replaces ``width`` by the checkpoint's; the hooks keep the value
    given now (on older releases both keep it)."""
    ckpt = tmp_path / "saved.ckpt"
    torch.save({"hyper_parameters": {"width": 5}}, ckpt)
    given = ["--model.width=3", f"--ckpt_path={ckpt}"]
    ours = ProbeCLI(widths_module(), **cli_args(tmp_path, *given))
    assert ours.config.validate.model.width == 3
    lightning = LightningsOwn(widths_module(), **cli_args(tmp_path, *given))
    merged = 5 if LIGHTNING_MERGES_CHECKPOINT_HPARAMS else 3
    assert lightning.config.validate.model.width == merged


def test_parser_internals() -> None:
    """argparse's ``_actions`` / ``_option_string_actions``, jsonargparse's
    ``_subcommands_action`` and argparse's ``_name_parser_map``."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--top", type=int, default=0)
    subcommands = parser.add_subcommands()
    fit = ArgumentParser(exit_on_error=False)
    fit.add_argument("--steps", type=int, default=1)
    subcommands.add_subcommand("fit", fit)
    options = option_actions(parser)
    assert {"--top", "--steps", "--help"} <= set(options)
    assert options["--steps"].dest == "steps"
    assert "top" in argument_names(parser)


def test_subclass_paths_are_the_shortest_public_import_paths() -> None:
    """jsonargparse's ``_typehints.get_all_subclass_paths``: what ``class_path`` accepts."""
    import mgan_lightning.data  # noqa: F401  (defines the subclasses)

    paths = subclass_paths(LightningDataModule)
    assert "mgan_lightning.data.GaussianMixture2D" in paths
    assert not any(".<locals>." in p or "._" in p for p in paths)
