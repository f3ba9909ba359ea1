"""The ``mgan`` command: LightningCLI over every method and DataModule.

``mgan fit --config configs/ring/gan.yaml`` trains; ``mgan test --config ... --ckpt_path ...``
evaluates; ``mgan predict --config ... --ckpt_path ... --num_samples N`` writes samples
(:mod:`mgan_lightning.cli_predict`). Any field can be overridden
(``--model.init_args.num_generators=4``), and YAML values may use omegaconf interpolation
(``${data.init_args.batch_size}``).
"""

from __future__ import annotations

import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, NoReturn

import lightning.pytorch as pl
import torch
import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace, set_parsing_settings
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, WandbLogger

import mgan_lightning.data  # noqa: F401  (registers the DataModules for short names)
import mgan_lightning.methods  # noqa: F401  (registers the methods for short names)
from mgan_lightning import __version__, console
from mgan_lightning.callbacks.checkpoint import GeneratorStepCheckpoint
from mgan_lightning.callbacks.evaluation import SampleEvaluation
from mgan_lightning.callbacks.mode_coverage import ModeCoverageEvaluation
from mgan_lightning.callbacks.progress import GeneratorStepProgressBar
from mgan_lightning.cli_checks import (
    accelerator_problem,
    devices_problem,
    gan_strategy,
    unwritable_folder,
)
from mgan_lightning.cli_predict import (
    PREDICT_DESCRIPTION,
    PredictOptions,
    add_predict_arguments,
    predict_options,
    predict_problem,
    sample_writer,
)
from mgan_lightning.cli_resume import (
    CONFIG_KEY,
    compare_hparams,
    plain,
    run_sections,
    with_stored_config,
)
from mgan_lightning.data.base import GANDataModule, fingerprint_mismatch
from mgan_lightning.data.slots import sample_slot_loader
from mgan_lightning.errors import DivergenceError, InputError, load_error_summary
from mgan_lightning.methods.base import GANMethod
from mgan_lightning.peer_failure import (
    is_peer_failure,
    peer_failure_message,
    watch_parent_process,
)
from mgan_lightning.private_api import LightningCLIHooks, option_actions
from mgan_lightning.validation import checkpoint_mismatch, distil_parse_error, import_class

# Our checkpoints are meant to hold the state after a whole D+G step; Lightning's
# warning about manual optimisation and every_n_train_steps says exactly that.
warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")


def checkpoint_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a checkpoint (``None`` if it can, or is not a local file
    path such as ``last``/``best`` or a URL). Memory-maps the file: cheap even when large."""
    if path in ("last", "best", "hpc") or path.startswith("registry") or "://" in path:
        return None
    file = Path(path)
    if not file.is_file():
        return f"no checkpoint file at {file}"
    if not zipfile.is_zipfile(file):
        return (
            f"{file} is not a checkpoint: torch.save writes zip archives and this is none "
            f"(truncated by a run killed while saving, or another kind of file)"
        )
    try:
        torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # any failure means the same to the user
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        unsafe = [line for line in lines if "Unsupported global" in line]
        if unsafe:
            return (
                f"{file} holds Python objects that torch.load(weights_only=True) refuses "
                f"({unsafe[0]}); load it in Python with weights_only=False if you trust it"
            )
        # Skip torch's preamble about weights_only: the unpickler's own words come after it.
        marker = next((i for i, line in enumerate(lines) if "WeightsUnpickler error" in line), -1)
        detail = lines[marker + 1] if 0 <= marker < len(lines) - 1 else (lines or [""])[0]
        return f"{file} is damaged: torch.load said: {detail or type(error).__name__}"
    return None


def _debug() -> bool:
    """Tracebacks wanted instead of one-line errors (``JSONARGPARSE_DEBUG``/``MGAN_DEBUG``)."""
    return bool(os.environ.get("JSONARGPARSE_DEBUG") or os.environ.get("MGAN_DEBUG"))


def _jsonargparse_debug() -> bool:
    """jsonargparse's debug mode (``JSONARGPARSE_DEBUG``): it raises instead of exiting."""
    return os.environ.get("JSONARGPARSE_DEBUG", "").lower() not in ("", "false")


class MGANArgumentParser(LightningArgumentParser):
    """Lightning's parser, whose errors are one short message, ``mgan fit: error: <message>``,
    then exit status 2. jsonargparse prints the whole usage (about 50 lines) first and nests a
    bad ``model``/``data`` value in union errors; this prints only the key, the value and
    what is accepted (:func:`mgan_lightning.validation.distil_parse_error`).
    ``JSONARGPARSE_DEBUG=1`` restores jsonargparse's behaviour (it raises)."""

    given_args: list[str] = []  # the command line, for "unrecognized arguments" (set by MGANCLI)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """Print ``<prog>: error: <message>`` with the message distilled to the key, the value and
        what is accepted (no usage), and exit with status 2; a missing model gets a hint
        (``--config FILE`` or ``--ckpt_path X`` alone). A parser that does not exit on errors, or
        ``JSONARGPARSE_DEBUG``, gets jsonargparse's own error (it raises)."""
        if not self.exit_on_error or _jsonargparse_debug():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        options = option_actions(self)
        short = distil_parse_error(message, options, self._unknown_given(options))
        if "required" in short and ".model" in short:
            short += "; give --config FILE, or --ckpt_path X alone to use the run X was saved by"
        self.refuse(short, parser)

    def refuse(self, message: str, parser: ArgumentParser | None = None) -> NoReturn:
        """Print ``<prog>: error: <message>`` on stderr and exit with status 2."""
        prog = (parser or self).prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {message}\n")
        self.exit(2)

    def _unknown_given(self, actions: dict[str, Any]) -> list[str]:
        """Options on the command line that no parser knows (``--model.init_args.x`` counts as
        known: ``--model`` takes nested keys; ``--trainer`` only a config file)."""
        unknown = []
        for token in self.given_args:
            name = token.split("=", 1)[0] if token.startswith("--") else None
            if name is None or name in actions:
                continue
            nested = [
                o for o, a in actions.items()
                if name.startswith(o + ".") and "ConfigLoad" not in type(a).__name__
            ]  # fmt: skip
            if not nested:
                unknown.append(name)
        return unknown


class SaveAndLogConfig(SaveConfigCallback):
    """Lightning's ``config.yaml`` in the log folder, and the same resolved config (every
    default filled in, interpolations applied, command-line overrides included) as the W&B
    run's config, one section per top-level key (``trainer``, ``model``, ``data``, ...)."""

    _run_config: dict | None = None

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict
    ) -> None:
        """Keep the run's configuration in every checkpoint (``mgan test --ckpt_path X``
        alone reads it back: :func:`mgan_lightning.cli_resume.stored_config`)."""
        if self._run_config is None:
            self._run_config = run_sections(yaml.safe_load(self.parser.dump(self.config)))
        checkpoint[CONFIG_KEY] = self._run_config

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Beside Lightning's ``config.yaml``: the resolved config (``None`` values included) as
        the run config of every W&B logger, one section per top-level key; nothing without one."""
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in loggers:
            logger.experiment.config.update(resolved, allow_val_change=True)


class MGANCLI(LightningCLIHooks):
    """LightningCLI in subclass mode; the data tells the model its sample shape.

    Any LightningModule whose ``__init__`` takes ``sample_shape`` can be trained: the GAN
    methods, and helpers such as the Stacked-MNIST digit classifier."""

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Lightning's parser (with its ``--config``) as :class:`MGANArgumentParser`, whose
        errors are one line (Lightning >= 2.5.5 also takes ``parser_class``; this serves
        every release)."""
        kwargs.setdefault("dump_header", [f"lightning.pytorch=={pl.__version__}"])
        parser = MGANArgumentParser(**kwargs)
        parser.add_argument(
            "-c", "--config", action=ActionConfigFile,
            help="Path to a configuration file in json or yaml format.",
        )  # fmt: skip
        return parser

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse, then check ``--ckpt_path`` before Lightning unpickles it, so a damaged file
        gives one clear line instead of torch's unpickling traceback, and a checkpoint of
        another method or of data of another shape is refused naming both; then the
        arguments given at resume against the checkpoint's (:meth:`check_resume_arguments`)."""
        given = sys.argv[1:] if args is None else args
        if isinstance(parser, MGANArgumentParser) and isinstance(given, (list, tuple)):
            parser.given_args = [str(a) for a in given]
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        # errors name the subcommand ("mgan test: error: ...")
        fail = (self.subcommand_parser(subcommand) or parser).error
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        problem = checkpoint_problem(str(ckpt_path)) if ckpt_path else None
        if problem:
            fail(f"--ckpt_path: {problem}")
        if subcommand == "predict":
            problem = predict_problem(self.config["predict"])
            if problem:
                fail(problem)
        if ckpt_path and Path(str(ckpt_path)).is_file():
            problem = self._checkpoint_mismatch(
                str(ckpt_path), self.config[subcommand], subcommand != "fit"
            )
            if problem:
                fail(f"--ckpt_path: {problem}")
        self.check_resume_arguments()

    @staticmethod
    def _checkpoint_mismatch(path: str, config: Namespace, evaluating: bool) -> str | None:
        """:func:`mgan_lightning.validation.checkpoint_mismatch` for the configured model
        class and the configured data's sample shape (the data are instantiated alone,
        which reads no file; if that fails the check is left to the normal path); when
        ``evaluating`` (test, validate, predict), data of other modes are refused too."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        model = config.get("model")
        model_class = model.get("class_path") if isinstance(model, Namespace) else None
        data_shape, data_name, fingerprint = None, None, None
        data = config.get("data")
        if isinstance(data, Namespace) and data.get("class_path"):
            try:
                init_args = data.get("init_args")
                kwargs = init_args.as_dict() if isinstance(init_args, Namespace) else {}
                datamodule = import_class(data.class_path)(**kwargs)
                data_shape = getattr(datamodule, "sample_shape", None)
                data_name = type(datamodule).__name__
                fingerprint = getattr(datamodule, "fingerprint", lambda: None)()
            except Exception:
                pass
        problem = checkpoint_mismatch(checkpoint, path, model_class, data_shape, data_name)
        trained = checkpoint.get("mgan_data")
        if problem is None and evaluating and isinstance(trained, dict) and fingerprint:
            difference = fingerprint_mismatch(trained, fingerprint)
            if difference:
                problem = (
                    f"{path} was trained on other data than the config's: {difference}; "
                    f"use the data it was trained on (or --ckpt_path alone: its own config)"
                )
        return problem

    def check_resume_arguments(self) -> None:
        """Lightning (>= 2.5.5) replaces the model's configuration by the checkpoint's
        hyperparameters, dropping every ``--model.*`` given at resume; here the configuration
        given now wins (:mod:`mgan_lightning.cli_resume`; Lightning's replacement is not done:
        :class:`~mgan_lightning.private_api.LightningCLIHooks`): fields that shape the
        networks must match the checkpoint (refused otherwise, naming both values) and, at
        ``fit``, the fields that changed are listed in one line."""
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        ckpt_path = config.get("ckpt_path") if config else None
        if config is None or not ckpt_path or not Path(str(ckpt_path)).is_file():
            return
        checkpoint = torch.load(str(ckpt_path), map_location="cpu", weights_only=True, mmap=True)
        saved = checkpoint.get("hyper_parameters") or {}
        model = config.get("model")
        if not isinstance(model, Namespace) or not isinstance(model.get("init_args"), Namespace):
            return
        method = import_class(model.class_path)
        fixed = tuple(getattr(method, "fixed_hparams", ()))
        refused, changed = compare_hparams(saved, model.init_args.as_dict(), fixed)
        if refused:
            self._refuse(
                f"--ckpt_path: {ckpt_path} was trained with model.{refused[0]} given now; "
                f"it cannot change under a checkpoint (give the value it was trained with)"
            )
        if subcommand == "fit":  # the folder holds this run's own checkpoints
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
        if changed and subcommand == "fit":
            step = plain(checkpoint.get("state_dict", {}).get("generator_step"))
            at = f" at generator step {int(step)}" if step is not None else ""
            print(
                f"mgan fit: resuming{at} with changed model arguments: {'; '.join(changed)}",
                file=sys.stderr,
                flush=True,
            )

    def _refuse(self, message: str) -> NoReturn:
        """End the command with ``mgan <subcommand>: error: <message>`` and status 2."""
        subcommand = getattr(self, "subcommand", None) or self.config.get("subcommand")
        parser = self.subcommand_parser(subcommand)
        if isinstance(self.parser, MGANArgumentParser):
            self.parser.refuse(message, parser)
        (parser or self.parser).error(message)
        raise AssertionError("unreachable")  # error() exits

    def instantiate_classes(self) -> None:
        """Instantiate; a constructor's ``ValueError`` (a wrong config value such as
        ``model.num_generators must be >= 1``) ends the command with that message, like a
        parsing error, instead of a traceback through jsonargparse's union matching.
        Set ``JSONARGPARSE_DEBUG=1`` to get the traceback."""
        try:
            super().instantiate_classes()
        except ValueError as error:
            if os.environ.get("JSONARGPARSE_DEBUG"):
                raise
            cause: BaseException | None = error
            innermost: BaseException = error
            while cause is not None:  # the constructor's own error is the innermost ValueError
                if isinstance(cause, ValueError):
                    innermost = cause
                cause = cause.__cause__ or cause.__context__
            self._refuse(str(innermost))

    def run_subcommand(self, subcommand: str) -> None:
        """Run; training that diverged (:class:`~mgan_lightning.divergence.DivergenceError`)
        ends the command with its message alone and exit code 1, not a traceback. Set
        ``MGAN_DEBUG=1`` to get the traceback."""
        try:
            super().run_subcommand(subcommand)
        except DivergenceError as error:
            if _debug():
                raise
            print(f"mgan {subcommand}: error: {error}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        except InputError as error:  # missing data files, a weights file of another network
            if _debug():
                raise
            self._refuse(str(error))
        except RuntimeError as error:  # a checkpoint whose tensors do not fit the model
            if is_peer_failure(error) and not _debug():  # another DDP process died
                if not getattr(error, "mgan_reported", False):
                    message = peer_failure_message(error)
                    print(f"mgan {subcommand}: error: {message}", file=sys.stderr, flush=True)
                raise SystemExit(1) from None
            summary = load_error_summary(error)
            ckpt_path = self.config[subcommand].get("ckpt_path")
            if summary is None or not ckpt_path or _debug():
                raise
            self._refuse(f"--ckpt_path: {ckpt_path} does not fit the model: {summary}")

    def before_instantiate_classes(self) -> None:
        """Check the Trainer's settings (one line each, nothing built yet); a GAN run on
        several devices or nodes gets DDP that looks for unused parameters
        (:func:`~mgan_lightning.cli_checks.gan_strategy`); put the length on the
        generator-step clock: ``trainer.max_steps`` counts generator steps here, as
        everything else a user reads does; the model gets it as ``max_generator_steps`` (the
        smaller of the two when both are given)."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        trainer = config.get("trainer")
        if not isinstance(trainer, Namespace):
            return
        for problem in (
            accelerator_problem(trainer.get("accelerator")),
            devices_problem(trainer.get("accelerator"), trainer.get("devices")),
            unwritable_folder(config),
        ):
            if problem:
                self._refuse(problem)
        if self._is_gan_method(config):
            trainer.strategy = gan_strategy(
                trainer.get("strategy"), trainer.get("devices"), trainer.get("num_nodes")
            )
            if subcommand == "fit":
                self._length_in_generator_steps(config)

    @staticmethod
    def _is_gan_method(config: Namespace) -> bool:
        model = config.get("model")
        if not isinstance(model, Namespace) or not model.get("class_path"):
            return False
        try:
            return issubclass(import_class(model.class_path), GANMethod)
        except Exception:
            return False

    def _length_in_generator_steps(self, config: Namespace) -> None:
        max_steps = config.trainer.get("max_steps")
        init_args = config.model.get("init_args")
        steps = init_args.get("max_generator_steps") if isinstance(init_args, Namespace) else None
        if steps is not None and steps < 1:
            self._refuse(f"model.init_args.max_generator_steps must be >= 1, got {steps}")
        if max_steps in (None, -1):
            return
        if max_steps < 1:
            self._refuse(
                f"trainer.max_steps must be >= 1 (it counts generator steps), got {max_steps}; "
                f"or set the length with --model.init_args.max_generator_steps=N"
            )
        init_args.max_generator_steps = max_steps if steps is None else min(steps, max_steps)
        config.trainer.max_steps = -1

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer, with what a run needs when its config does not say, after the
        config's own callbacks: for a GAN, the mode-coverage evaluation where the data know
        their modes and generator-step checkpoints (:meth:`_default_callbacks`); the
        generator-step progress bar; a CSV logger in the run's folder. Every checkpoint keeps
        the run's configuration (:class:`SaveAndLogConfig`)."""
        subcommand = self.subcommand
        # build_cli(run=False) has no subcommand: the trainer section is at the top then
        config = (self.config_init[subcommand] if subcommand else self.config_init)["trainer"]
        listed = config.get("callbacks") or []
        callbacks = list(listed) if isinstance(listed, list) else [listed]
        root = config.get("default_root_dir") or self._default_root()
        kwargs.setdefault("default_root_dir", root)
        if config.get("logger") is None:
            kwargs.setdefault("logger", CSVLogger(save_dir=root, name="logs"))
        if isinstance(self.model, GANMethod):
            callbacks += self._default_callbacks(config, callbacks, root)
        if config.get("enable_progress_bar") is not False and not _has(callbacks, ProgressBar):
            callbacks.append(GeneratorStepProgressBar())
        if subcommand == "predict":  # the callback that writes the samples
            self.predict_options = predict_options(self.config["predict"])
            callbacks.append(sample_writer(self.predict_options))
        return super().instantiate_trainer(callbacks=callbacks, **kwargs)

    def _default_root(self) -> str:
        """``runs/<method>`` when the config names no folder."""
        return str(Path("runs") / type(self.model).__name__.lower())

    def _default_callbacks(self, config: dict, callbacks: list, root: str) -> list:
        """What a GAN run gets unless its config brings its own: for data with known modes,
        the mode-coverage evaluation four times a run (and at its end); a generator-step
        checkpoint whenever the first evaluation runs (the config's or this one; four times a
        run without any), so that every evaluated point can be tested again."""
        model = self.model
        assert isinstance(model, GANMethod)
        quarter = max((model.max_generator_steps or 0) // 4, 0)
        added: list = []
        known_modes = getattr(self.datamodule, "modes", None) is not None
        if known_modes and not _has(callbacks, SampleEvaluation):
            added.append(ModeCoverageEvaluation(every_n_steps=quarter, num_samples=2500))
        if config.get("enable_checkpointing") is not False and not _has(callbacks, ModelCheckpoint):
            cadences = [c.every_n_steps for c in callbacks + added if _evaluation(c)]
            added.append(
                GeneratorStepCheckpoint(
                    dirpath=str(Path(root) / "checkpoints"),
                    save_last=True,
                    every_n_generator_steps=cadences[0] if cadences else quarter,
                )
            )
        return added

    def fit(self, model: LightningModule, **kwargs: Any) -> None:
        """``mgan fit``; ends with one line in generator steps (Lightning's own stop line
        counts optimizer steps, D and G together)."""
        self.trainer.fit(model, **kwargs)
        if isinstance(model, GANMethod) and self.trainer.is_global_zero:
            planned = model.planned_generator_steps()
            of = f" of {planned}" if planned else ""
            print(
                f"mgan fit: stopped at generator step {model.generator_steps_done}{of}; "
                f"checkpoints in {self._checkpoint_folder()}",
                flush=True,
            )

    def _checkpoint_folder(self) -> str:
        """The checkpoint callback's folder, as :func:`_shown_folder` prints it."""
        callback = self.trainer.checkpoint_callback
        folder = getattr(callback, "dirpath", None)
        return _shown_folder(str(folder)) if folder else "(none)"

    def test(self, model: LightningModule, verbose: bool = True, **kwargs: Any) -> None:
        """``mgan test``: Lightning's test, its results as a table of 4 significant figures."""
        results = self.trainer.test(model, verbose=False, **kwargs)
        if verbose and self.trainer.is_global_zero:
            print(console.results_table(results, "test metric"), flush=True)

    def validate(self, model: LightningModule, verbose: bool = True, **kwargs: Any) -> None:
        """``mgan validate``: as :meth:`test`, logged under ``val/``."""
        results = self.trainer.validate(model, verbose=False, **kwargs)
        if verbose and self.trainer.is_global_zero:
            print(console.results_table(results, "validation metric"), flush=True)

    def prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs):
        """Lightning's parser of ``subcommand``; ``predict`` gets its own flags
        (:mod:`mgan_lightning.cli_predict`), the other subcommands stay as they are."""
        if subcommand == "predict":
            kwargs["description"] = PREDICT_DESCRIPTION
        parser = super().prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "predict":
            add_predict_arguments(parser)
        return parser

    def predict(self, model: LightningModule, datamodule=None, ckpt_path=None, **kwargs) -> None:
        """``mgan predict``: draw ``--num_samples`` sample slots of the checkpoint's model
        (the SampleWriter writes them). The data are not read: the DataModule only told the
        model its sample shape, so a checkpoint can be sampled where the data are absent."""
        options: PredictOptions = self.predict_options
        batch_size = getattr(datamodule, "batch_size", None) or 256
        loader = sample_slot_loader(options.num_samples, options.seed, batch_size)
        kwargs["return_predictions"] = False
        self.trainer.predict(model, dataloaders=loader, ckpt_path=ckpt_path, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Link the DataModule's ``sample_shape`` into the model's when both are built, so a
        config never states the shape of the data."""
        parser.link_arguments(
            "data.sample_shape", "model.init_args.sample_shape", apply_on="instantiate"
        )


def _shown_folder(folder: str) -> str:
    """``folder`` relative to the working directory when it lies under it, as a user gives it
    (Lightning keeps a checkpoint folder as an absolute path), so printed output holds no
    machine paths; a folder elsewhere, or a URL, as it is."""
    if "://" in folder:
        return folder
    try:
        relative = Path(folder).resolve().relative_to(Path.cwd().resolve())
    except (ValueError, OSError):
        return folder
    return str(relative)


def _has(callbacks: list, kind: type) -> bool:
    return any(isinstance(c, kind) for c in callbacks)


def _evaluation(callback: Any) -> bool:
    """Whether ``callback`` evaluates samples during training (a cadence above 0)."""
    return isinstance(callback, SampleEvaluation) and callback.every_n_steps > 0


def _registered(package: str, base: type) -> list[str]:
    from importlib import import_module

    module = import_module(package)
    names = getattr(module, "__all__", dir(module))
    return sorted(
        n for n in names
        if isinstance(getattr(module, n, None), type) and issubclass(getattr(module, n), base)
        and getattr(module, n) is not base
    )  # fmt: skip


def description() -> str:
    """``mgan --help``'s text: the methods, the DataModules and the shipped config folders."""
    methods = ", ".join(_registered("mgan_lightning.methods", GANMethod))
    data = ", ".join(_registered("mgan_lightning.data", GANDataModule))
    configs = Path(__file__).resolve().parents[1] / "configs"
    folders = sorted(p.name for p in configs.iterdir() if p.is_dir()) if configs.is_dir() else []
    where = ", ".join(folders) if folders else "configs/ in the repository"
    return (
        f"Multi-generator and mode-covering GANs (mgan-lightning {__version__}). "
        f"Methods (--model): {methods}. DataModules (--data): {data}. "
        f"Config folders (--config configs/<folder>/<method>.yaml): {where}. "
        f"Arguments of one class: mgan fit --model.help MGAN. "
        f"Lengths, cadences and step counts are generator steps. "
        f"mgan --verbose <subcommand> ... keeps Lightning's tips and warnings."
    )


def build_cli(args: list[str] | None = None, run: bool = True) -> MGANCLI:
    """Parse ``args`` (default: ``sys.argv``) and, if ``run``, execute the subcommand.

    Interpolations such as ``${trainer.default_root_dir}`` are resolved after the command
    line is applied (jsonargparse's ``omegaconf+`` mode), so overrides reach them too."""
    watch_parent_process()  # a DDP worker whose launcher died ends instead of waiting
    # Each subcommand's config is resolved under its own root (``fit.trainer...``): absolute
    # ``${trainer.default_root_dir}`` paths are read relative to it (jsonargparse >= 4.42).
    set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
    return MGANCLI(
        LightningModule,
        GANDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=SaveAndLogConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf+", "description": description()},
        trainer_defaults={"max_epochs": -1, "devices": 1},
        seed_everything_default=0,
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main() -> None:
    """Entry point of the ``mgan`` console script: ``mgan --version``; ``mgan --verbose
    <subcommand> ...`` (or ``MGAN_VERBOSE=1``) keeps Lightning's tips and warnings;
    ``mgan test|validate|predict --ckpt_path X`` alone uses the configuration X holds."""
    args = sys.argv[1:]
    if args[:1] == ["--version"]:
        print(f"mgan-lightning {__version__}")
        return
    verbose = args[:1] == ["--verbose"] or bool(os.environ.get("MGAN_VERBOSE"))
    args = [a for i, a in enumerate(args) if not (i == 0 and a == "--verbose")]
    if not verbose:
        console.quiet()
    args, problem = with_stored_config(args)
    if problem:
        print(f"mgan {args[0]}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    sys.argv[1:] = args  # LightningCLI reads sys.argv (and warns when given both)
    build_cli()


if __name__ == "__main__":
    main()
