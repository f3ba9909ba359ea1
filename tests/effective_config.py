"""The *effective configuration* of a shipped config: what ``mgan fit --config <path>`` would
run, as plain JSON values, without training.

A config file says only part of a run: jsonargparse fills every class's default arguments,
the ``mgan`` command changes the Trainer's settings before anything is built (the length on
the generator-step clock, the DDP strategy) and, when the Trainer is built, adds what the
config does not say (progress bar, checkpoints, logger, evaluation, root folder). Two configs
that resolve to the same effective configuration run the same experiment, however they are
written. It has three parts:

- ``seed_everything``, ``model``, ``data``: the parsed ``fit`` configuration as jsonargparse
  dumps it (every default filled), after the command's own changes;
- ``trainer``: the arguments the Trainer was constructed with, read when it is built
  (so what the command adds counts the same as what the file says), each callback and logger
  as ``{"class_path", "init_args"}`` recorded when it was constructed.

Values equal to a default of a class from another library (torch, Lightning) are left out:
they are that library's, not the experiment's, and change between its releases. Every
argument of this library's classes is kept, defaults included: a changed default changes the
experiment.

The snapshot in ``tests/data/effective_configs.json`` holds these for every shipped config;
``tests/test_config_equivalence.py`` checks the configs against it. Write it again with::

    python -m tests.effective_config --write

or add one new config's entry with ``python -m tests.effective_config --write CONFIG``,
and print the differences from it with ``python -m tests.effective_config``. Models are
built on PyTorch's ``meta`` device (no weights are allocated); the data are not read.
"""

from __future__ import annotations

import argparse
import enum
import functools
import inspect
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import yaml
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import Logger

import mgan_lightning.callbacks  # noqa: F401  (every callback class, for the recorder)
import mgan_lightning.cli as cli_module
from mgan_lightning.validation import import_class

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SNAPSHOT = Path(__file__).resolve().parent / "data" / "effective_configs.json"
# Config fragments, not whole runs: a logger added to a run, W&B sweep definitions, overlays
# that change one aspect of any run (configs/overlays).
NOT_RUNS = ("loggers", "sweeps", "overlays")
OWN_PACKAGE = "mgan_lightning."


def run_configs() -> list[Path]:
    """Every shipped run config (``configs/<folder>/<name>.yaml``; fragments excluded)."""
    return sorted(
        path
        for path in CONFIGS.glob("*/*.yaml")
        if path.parent.name not in NOT_RUNS and not path.name.startswith("_")
    )


def config_id(path: Path) -> str:
    """``<folder>/<name>.yaml``: a config's key in the snapshot."""
    return path.relative_to(CONFIGS).as_posix()


# --------------------------------------------------------------------------- plain values


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _own(path: str) -> bool:
    return path.startswith(OWN_PACKAGE)


def _signature_defaults(target: Any) -> dict[str, Any]:
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(plain(a) == plain(b))
    except Exception:
        return False


def without_library_defaults(path: str, init_args: dict[str, Any], target: Any = None) -> dict:
    """``init_args`` of ``path`` less the values equal to its own defaults, when ``path`` is
    another library's class (this library's arguments are all kept)."""
    if _own(path):
        return init_args
    if target is None:
        try:
            target = import_class(path)
        except ImportError:
            return init_args
    defaults = _signature_defaults(target)
    return {k: v for k, v in init_args.items() if not (k in defaults and _equal(v, defaults[k]))}


def plain(value: Any) -> Any:
    """``value`` as JSON values: dicts, lists, strings, numbers, booleans and ``None``; a
    class spec (``class_path``/``init_args``) of another library without its defaults; an
    object by its class (``{"object": <class path>}``)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        spec = {str(k): plain(v) for k, v in value.items()}
        if isinstance(spec.get("class_path"), str) and isinstance(spec.get("init_args"), dict):
            spec["init_args"] = without_library_defaults(spec["class_path"], spec["init_args"])
        return spec
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape)}
    if isinstance(value, type):
        return {"class": class_path(value)}
    return {"object": class_path(type(value))}


# ------------------------------------------------------------------- construction records


class ConstructionRecorder:
    """Records the arguments every Trainer, callback and logger is constructed with.

    While active, the ``__init__`` of :class:`~lightning.pytorch.Trainer` and of every
    subclass of ``Callback`` and ``Logger`` (Lightning's and this library's) is wrapped: the
    first ``__init__`` an object enters (its own class's, or the one it inherits) binds the
    arguments to that signature, defaults applied."""

    def __init__(self) -> None:
        self.records: dict[int, tuple[Any, str, dict[str, Any], set[str]]] = {}

    def spec(self, obj: Any) -> Any:
        """``{"class_path", "init_args"}`` of a recorded object (a list, element-wise)."""
        if isinstance(obj, (list, tuple)):
            return [self.spec(o) for o in obj]
        found = self.records.get(id(obj))
        if found is None or found[0] is not obj:
            return plain(obj)
        _, path, arguments, forwarded = found
        init_args = {k: self.spec(v) for k, v in arguments.items()}
        # ``**kwargs`` passed on to another library's class: its defaults are its own
        inherited = _library_defaults(type(obj))
        for name in forwarded:
            if name in inherited and _equal(init_args[name], inherited[name]):
                del init_args[name]
        return {"class_path": path, "init_args": without_library_defaults(path, init_args)}

    @contextmanager
    def active(self) -> Iterator[ConstructionRecorder]:
        classes = [Trainer, *_subclasses(Callback), *_subclasses(Logger)]
        originals = {cls: cls.__dict__["__init__"] for cls in classes if "__init__" in cls.__dict__}
        for cls, original in originals.items():
            cls.__init__ = self._wrap(original)  # type: ignore[misc]
        try:
            yield self
        finally:
            for cls, original in originals.items():
                cls.__init__ = original  # type: ignore[misc]

    def _wrap(self, original: Callable) -> Callable:
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(obj: Any, *args: Any, **kwargs: Any) -> None:
            if id(obj) not in self.records:
                bound = signature.bind(obj, *args, **kwargs)
                bound.apply_defaults()
                arguments: dict[str, Any] = {}
                forwarded: set[str] = set()
                for name, parameter in list(signature.parameters.items())[1:]:
                    value = bound.arguments[name]
                    if isinstance(value, list):  # the callee may extend it later
                        value = list(value)
                    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                        arguments.update(value)
                        forwarded |= set(value)
                    else:
                        arguments[name] = value
                self.records[id(obj)] = (obj, class_path(type(obj)), arguments, forwarded)
            original(obj, *args, **kwargs)

        return __init__


def _library_defaults(cls: type) -> dict[str, Any]:
    """The defaults of the ``__init__`` of every class of another library ``cls`` derives
    from (the nearest first)."""
    defaults: dict[str, Any] = {}
    for base in reversed(cls.__mro__[1:]):
        init = base.__dict__.get("__init__")
        if init is not None and not _own(base.__module__ + "."):
            defaults.update(_signature_defaults(init))
    return defaults


def _subclasses(base: type) -> list[type]:
    found: list[type] = []
    stack = [base]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found.append(sub)
                stack.append(sub)
    return found


# ----------------------------------------------------------------------------- the CLI


class _DryCLI(cli_module.MGANCLI):
    """The ``mgan`` command up to the built Trainer; the subcommand is not run."""

    captured: dict[str, Any] | None = None
    recorder: ConstructionRecorder | None = None

    def instantiate_classes(self) -> None:
        """Dump the parsed configuration, then build the classes while recording."""
        parser = self.subcommand_parser(self.subcommand)
        dumped = parser.dump(self.config[self.subcommand], skip_none=False, skip_validation=True)
        self.captured = yaml.safe_load(dumped)
        self.recorder = ConstructionRecorder()
        with self.recorder.active():
            super().instantiate_classes()

    def run_subcommand(self, subcommand: str) -> None:
        """Not run: the configuration is all that is wanted."""

    def again(self, args: list[str]) -> None:
        """What the constructor does after building the parsers, for other arguments: parse,
        the command's changes, build (the parsers are built once: most of the cost)."""
        self.parse_arguments(self.parser, args)
        self.subcommand = self.config["subcommand"]
        self.before_instantiate_classes()
        self.instantiate_classes()


def _on_meta(class_type: type, *args: Any, **kwargs: Any) -> Any:
    """Build a model without allocating its weights."""
    kwargs.pop("applied_instantiation_links", None)
    with torch.device("meta"):
        return class_type(*args, **kwargs)


def _plainly(class_type: type, *args: Any, **kwargs: Any) -> Any:
    """Build a DataModule (Lightning's own instantiator also dumps the whole configuration
    for the hyperparameters it records, which the effective configuration does not use)."""
    kwargs.pop("applied_instantiation_links", None)
    return class_type(*args, **kwargs)


@contextmanager
def _cheap_instantiation() -> Iterator[None]:
    """Every parser the CLI builds instantiates LightningModules on the meta device."""
    real_init = cli_module.MGANArgumentParser.__init__

    def init(parser: Any, *args: Any, **kwargs: Any) -> None:
        real_init(parser, *args, **kwargs)
        parser.add_instantiator(_on_meta, LightningModule, subclasses=True, prepend=True)
        parser.add_instantiator(_plainly, LightningDataModule, subclasses=True, prepend=True)

    with mock.patch.object(cli_module.MGANArgumentParser, "__init__", init):
        yield


def _effective(cli: _DryCLI) -> dict[str, Any]:
    dumped = cli.captured or {}
    recorder = cli.recorder
    assert recorder is not None, "the classes were not built"
    trainer = recorder.spec(cli.trainer)
    assert isinstance(trainer, dict) and trainer.get("class_path"), "the Trainer was not seen"
    config: dict[str, Any] = {
        "seed_everything": plain(dumped.get("seed_everything")),
        "trainer": trainer["init_args"],
        "model": plain(dumped.get("model")),
        "data": plain(dumped.get("data")),
    }
    # the model's share of the data (linked when the classes are built, so not in the dump)
    model = cli.model
    if hasattr(model, "sample_shape") and isinstance(config["model"], dict):
        config["model"].setdefault("init_args", {})["sample_shape"] = plain(
            list(model.sample_shape)
        )
    return config


@contextmanager
def _quiet() -> Iterator[None]:
    with ExitStack() as stack:
        sink = stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(redirect_stdout(sink))
        stack.enter_context(redirect_stderr(sink))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def effective_configs(
    paths: list[Path], extra_args: tuple[str, ...] = (), fresh: bool = False
) -> dict[str, dict[str, Any]]:
    """The effective configuration of each config in ``paths`` (``mgan fit --config <path>``
    from the repository root, plus ``extra_args``), keyed by :func:`config_id`. One command
    object parses them all, unless ``fresh`` (one per config, as ``mgan`` runs)."""
    results: dict[str, dict[str, Any]] = {}
    seeds = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    cwd = os.getcwd()
    os.chdir(ROOT)
    cli: _DryCLI | None = None
    try:
        with _quiet(), mock.patch.object(cli_module, "MGANCLI", _DryCLI), _cheap_instantiation():
            for path in paths:
                args = ["fit", "--config", os.path.relpath(path, ROOT), *extra_args]
                if cli is None or fresh:
                    built = cli_module.build_cli(args)
                    assert isinstance(built, _DryCLI)
                    cli = built
                else:
                    cli.again(args)
                results[config_id(path)] = _effective(cli)
    finally:
        os.chdir(cwd)
        for key, value in seeds.items():  # build_cli exports the seed: give it back
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return results


# ------------------------------------------------------------------------------ diffing


def differences(expected: Any, actual: Any, key: str = "") -> list[str]:
    """``key: expected -> actual`` for every leaf that differs (dotted keys, list indices)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for k in sorted(set(expected) | set(actual), key=str):
            sub = f"{key}.{k}" if key else str(k)
            if k not in actual:
                found.append(f"{sub}: {expected[k]!r} -> (absent)")
            elif k not in expected:
                found.append(f"{sub}: (absent) -> {actual[k]!r}")
            else:
                found += differences(expected[k], actual[k], sub)
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            d
            for i, (e, a) in enumerate(zip(expected, actual))
            for d in differences(e, a, f"{key}[{i}]")
        ]
    return [] if expected == actual else [f"{key}: {expected!r} -> {actual!r}"]


def load_snapshot() -> dict[str, dict[str, Any]]:
    return json.loads(SNAPSHOT.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--write",
        action="store_true",
        help=f"write {SNAPSHOT.name} (only the named configs' entries when configs are named)",
    )
    parser.add_argument("configs", nargs="*", help="configs (default: every shipped one)")
    options = parser.parse_args(argv)
    paths = [Path(p).resolve() for p in options.configs] or run_configs()
    found = effective_configs(paths)
    if options.write:
        if options.configs:  # a new config joins the snapshot; the others keep their entries
            found = load_snapshot() | found
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(found)} effective configurations to {SNAPSHOT.relative_to(ROOT)}")
        return 0
    snapshot = load_snapshot()
    changed = 0
    for name, config in found.items():
        lines = differences(snapshot.get(name, {}), config)
        if lines:
            changed += 1
            print(f"{name}:\n  " + "\n  ".join(lines))
    print(f"{changed} of {len(found)} configs differ from {SNAPSHOT.relative_to(ROOT)}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
