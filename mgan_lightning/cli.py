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

import torch
import yaml
from jsonargparse import ArgumentParser, Namespace, set_parsing_settings
from jsonargparse._common import debug_mode_active
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger

import mgan_lightning.data  # noqa: F401  (registers the DataModules for short names)
import mgan_lightning.methods  # noqa: F401  (registers the methods for short names)
from mgan_lightning.callbacks.progress import GeneratorStepProgressBar
from mgan_lightning.cli_predict import (
    PREDICT_DESCRIPTION,
    PredictOptions,
    add_predict_arguments,
    predict_options,
    predict_problem,
    sample_writer,
)
from mgan_lightning.data.base import GANDataModule
from mgan_lightning.data.slots import sample_slot_loader
from mgan_lightning.divergence import DivergenceError
from mgan_lightning.peer_failure import (
    is_peer_failure,
    peer_failure_message,
    watch_parent_process,
)
from mgan_lightning.validation import (
    InputError,
    checkpoint_mismatch,
    distil_parse_error,
    load_error_summary,
)

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


class MGANArgumentParser(LightningArgumentParser):
    """Lightning's parser, whose errors are one short message, ``mgan fit: error: <message>``,
    then exit status 2. jsonargparse prints the whole usage (about 50 lines) first and nests a
    bad ``model``/``data`` value in union errors; this prints only the key, the value and
    what is accepted (:func:`mgan_lightning.validation.distil_parse_error`).
    ``JSONARGPARSE_DEBUG=1`` restores jsonargparse's behaviour (it raises)."""

    given_args: list[str] = []  # the command line, for "unrecognized arguments" (set by MGANCLI)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debug_mode_active():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        options = self._option_actions()
        short = distil_parse_error(message, options, self._unknown_given(options))
        self.refuse(short, parser)

    def refuse(self, message: str, parser: ArgumentParser | None = None) -> NoReturn:
        """Print ``<prog>: error: <message>`` on stderr and exit with status 2."""
        prog = (parser or self).prog.replace(" [options]", "")
        sys.stderr.write(f"{prog}: error: {message}\n")
        self.exit(2)

    def _option_actions(self) -> dict[str, Any]:
        """Every option string of this parser and its subcommands' parsers, with its action."""
        subcommands = getattr(self, "_subcommands_action", None)
        parsers = [self, *(subcommands._name_parser_map.values() if subcommands else [])]
        return {o: a for p in parsers for o, a in p._option_string_actions.items()}

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

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in loggers:
            logger.experiment.config.update(resolved, allow_val_change=True)


class MGANCLI(LightningCLI):
    """LightningCLI in subclass mode; the data tells the model its sample shape.

    Any LightningModule whose ``__init__`` takes ``sample_shape`` can be trained: the GAN
    methods, and helpers such as the Stacked-MNIST digit classifier."""

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse, then check ``--ckpt_path`` before Lightning unpickles it, so a damaged file
        gives one clear line instead of torch's unpickling traceback, and a checkpoint of
        another method or of data of another shape is refused naming both."""
        given = sys.argv[1:] if args is None else args
        if isinstance(parser, MGANArgumentParser) and isinstance(given, (list, tuple)):
            parser.given_args = [str(a) for a in given]
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        # errors name the subcommand ("mgan test: error: ...")
        fail = (getattr(self, "_subcommand_parsers", {}).get(subcommand) or parser).error
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        problem = checkpoint_problem(str(ckpt_path)) if ckpt_path else None
        if problem:
            fail(f"--ckpt_path: {problem}")
        if subcommand == "predict":
            problem = predict_problem(self.config["predict"])
            if problem:
                fail(problem)
        if ckpt_path and Path(str(ckpt_path)).is_file():
            problem = self._checkpoint_mismatch(str(ckpt_path), self.config[subcommand])
            if problem:
                fail(f"--ckpt_path: {problem}")

    @staticmethod
    def _checkpoint_mismatch(path: str, config: Namespace) -> str | None:
        """:func:`mgan_lightning.validation.checkpoint_mismatch` for the configured model
        class and the configured data's sample shape (the data are instantiated alone,
        which reads no file; if that fails the check is left to the normal path)."""
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        model = config.get("model")
        model_class = model.get("class_path") if isinstance(model, Namespace) else None
        data_shape, data_name = None, None
        data = config.get("data")
        if isinstance(data, Namespace) and data.get("class_path"):
            try:
                from jsonargparse._util import import_object

                init_args = data.get("init_args")
                kwargs = init_args.as_dict() if isinstance(init_args, Namespace) else {}
                datamodule = import_object(data.class_path)(**kwargs)
                data_shape = getattr(datamodule, "sample_shape", None)
                data_name = type(datamodule).__name__
            except Exception:
                pass
        return checkpoint_mismatch(checkpoint, path, model_class, data_shape, data_name)

    def _refuse(self, message: str) -> NoReturn:
        """End the command with ``mgan <subcommand>: error: <message>`` and status 2."""
        parsers = getattr(self, "_subcommand_parsers", {})
        subcommand = getattr(self, "subcommand", None)
        parser = parsers.get(subcommand) if subcommand else None
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

    def _run_subcommand(self, subcommand: str) -> None:
        """Run; training that diverged (:class:`~mgan_lightning.divergence.DivergenceError`)
        ends the command with its message alone and exit code 1, not a traceback. Set
        ``MGAN_DEBUG=1`` to get the traceback."""
        try:
            super()._run_subcommand(subcommand)
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

    def _instantiate_trainer(self, config: dict, callbacks: list) -> Trainer:
        """Add the generator-step progress bar unless the config turns bars off
        (``trainer.enable_progress_bar: false``) or brings its own."""
        listed = config.get("callbacks") or []
        listed = listed if isinstance(listed, list) else [listed]
        has_bar = any(isinstance(c, ProgressBar) for c in [*listed, *callbacks])
        if config.get("enable_progress_bar") is not False and not has_bar:
            callbacks = [*callbacks, GeneratorStepProgressBar()]
        if self.subcommand == "predict":  # the callback that writes the samples
            self.predict_options = predict_options(self.config["predict"])
            callbacks = [*callbacks, sample_writer(self.predict_options)]
        return super()._instantiate_trainer(config, callbacks)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs):
        """Lightning's parser of ``subcommand``; ``predict`` gets its own flags
        (:mod:`mgan_lightning.cli_predict`), the other subcommands stay as they are."""
        if subcommand == "predict":
            kwargs["description"] = PREDICT_DESCRIPTION
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
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
        parser.link_arguments(
            "data.sample_shape", "model.init_args.sample_shape", apply_on="instantiate"
        )


def build_cli(args: list[str] | None = None, run: bool = True) -> MGANCLI:
    """Parse ``args`` (default: ``sys.argv``) and, if ``run``, execute the subcommand.

    Interpolations such as ``${trainer.default_root_dir}`` are resolved after the command
    line is applied (jsonargparse's ``omegaconf+`` mode), so overrides reach them too."""
    watch_parent_process()  # a DDP worker whose launcher died ends instead of waiting
    set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
    return MGANCLI(
        LightningModule,
        GANDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=SaveAndLogConfig,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf+"},
        parser_class=MGANArgumentParser,
        seed_everything_default=0,
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def main() -> None:
    """Entry point of the ``mgan`` console script."""
    build_cli()


if __name__ == "__main__":
    main()
