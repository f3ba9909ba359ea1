"""Bad input refused with one short message: the field, the value, what is allowed.

The ``mgan`` command (:mod:`mgan_lightning.cli`) prints these messages alone, as
``mgan fit: error: <message>``, and exits with status 2, without a usage dump or a traceback
(``JSONARGPARSE_DEBUG=1`` gives the traceback). This module holds what that needs and can
be tested on its own:

- :func:`distil_parse_error`, which turns jsonargparse's nested union messages into the
  essential line (which key, which value, what is accepted, a close match for a typo);
- :func:`checkpoint_mismatch`, a checkpoint made by another method or for data of another
  shape than the config's.

The exceptions the CLI reports (:class:`~mgan_lightning.errors.InputError`, raised by the
data, the metrics and the classifiers) and :func:`~mgan_lightning.errors.load_error_summary`
live in :mod:`mgan_lightning.errors`, in the core; they are re-exported here.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pydoc
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mgan_lightning.errors import (  # noqa: F401  (re-exported: the CLI's names for them)
    InputError,
    WeightsMismatchError,
    load_error_summary,
)
from mgan_lightning.private_api import argument_names, subclass_paths


# ------------------------------------------------------------------ checkpoints vs. config
def _short(class_path: str) -> str:
    return class_path.rsplit(".", 1)[-1]


def checkpoint_data_name(checkpoint: Mapping[str, Any]) -> str | None:
    """The DataModule a checkpoint was trained on, as far as it tells: Lightning stores the
    DataModule's state under its class name."""
    from lightning.pytorch import LightningDataModule

    names = {_short(p) for p in subclass_paths(LightningDataModule)}
    return next((key for key in checkpoint if key in names), None)


def checkpoint_mismatch(
    checkpoint: Mapping[str, Any],
    file: str | Path,
    model_class_path: str | None,
    data_shape: Iterable[int] | None,
    data_name: str | None = None,
) -> str | None:
    """Why the checkpoint at ``file`` cannot be used with the configured model and data
    (``None`` if it can, as far as its hyperparameters tell): it was made by another method
    than ``model_class_path``, or for samples of another shape than ``data_shape``."""
    hparams = checkpoint.get("hyper_parameters") or {}
    saved_class = hparams.get("_class_path")
    if saved_class and model_class_path and saved_class != model_class_path:
        return (
            f"{file} holds a {_short(saved_class)} model ({saved_class}), but the config asks "
            f"for {_short(model_class_path)} ({model_class_path}); use the config the "
            f"checkpoint was trained with (its logs/version_*/config.yaml)"
        )
    saved_shape = hparams.get("sample_shape")
    if saved_shape is not None and data_shape is not None:
        saved_shape, data_shape = tuple(saved_shape), tuple(data_shape)
        if saved_shape != data_shape:
            trained = checkpoint_data_name(checkpoint)
            trained = f" (trained on {trained})" if trained else ""
            data = f"the data ({data_name})" if data_name else "the data"
            return (
                f"{file} holds a model of samples of shape {saved_shape}{trained}, but "
                f"{data} give samples of shape {data_shape}; use the data it was trained on"
            )
    return None


# ------------------------------------------------------------------ jsonargparse messages
_PARSER_KEY = re.compile(r'^Parser key "([^"]+)":\s*(.*)$')
_CLASS_PROBLEM = re.compile(r"^Problem with given class_path '([^']+)':\s*(.*)$")
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_EXPECTED = re.compile(r"^Expected a (.+?)(?:\. Got value: (.*))?$", re.S)
_IMPORT = re.compile(
    r"has no attribute|No module named|cannot import|[Ii]mport path|not a subclass|"
    r"not a class|does not correspond|Unable to import"
)
_TYPE_NAMES = {
    "<class 'int'>": "an int",
    "<class 'float'>": "a float",
    "<class 'bool'>": "true or false",
    "<class 'str'>": "a string",
}

Lines = list[tuple[int, str]]


def _lines(message: str) -> Lines:
    return [
        (len(line) - len(line.lstrip()), line.strip())
        for line in message.splitlines()
        if line.strip()
    ]


def _block(lines: Lines, start: int) -> Lines:
    """Line ``start`` and the lines indented under it."""
    indent = lines[start][0]
    end = start + 1
    while end < len(lines) and lines[end][0] > indent:
        end += 1
    return lines[start:end]


def _expected(kind: str) -> str:
    """``typing.Literal['a', 'b']`` -> ``one of 'a', 'b'``; ``<class 'int'>`` -> ``an int``."""
    literal = re.fullmatch(r"typing\.Literal\[(.*)\]", kind.strip())
    if literal:
        return f"one of {literal.group(1)}"
    if kind in _TYPE_NAMES:
        return _TYPE_NAMES[kind]
    named = re.fullmatch(r"<class '(?:[\w.]+\.)?(\w+)'>", kind)
    return f"a {named.group(1)}" if named else kind


def import_class(path: str) -> Any:
    """The object a dotted path names (``torch.optim.Adam``, ``pkg.Outer.Inner``): the
    standard library's :func:`pydoc.locate`, raising ``ImportError`` where it finds none."""
    found = pydoc.locate(path)
    if found is None:
        raise ImportError(f"cannot import {path!r}")
    return found


def accepted_arguments(class_path: str) -> list[str]:
    """The ``init_args`` names jsonargparse accepts for ``class_path`` (signatures followed
    through ``**kwargs`` as jsonargparse does); empty if that cannot be told."""
    try:
        from jsonargparse import ArgumentParser

        cls = import_class(class_path)
        parser = ArgumentParser(exit_on_error=False)
        skip = {"params"} if _is_optimizer_like(cls) else set()
        parser.add_class_arguments(cls, fail_untyped=False, skip=skip)
        names = {d.split(".")[0] for d in argument_names(parser) if d not in ("help",)}
        return sorted(n for n in names if n and not n.startswith("_"))
    except Exception:  # no suggestion is better than an error while reporting one
        return []


def _is_optimizer_like(cls: Any) -> bool:
    try:
        return "params" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def _did_you_mean(word: str, names: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(names), n=1, cutoff=0.6)
    return match[0] if match else None


def _unknown_option(key: str, option: str, class_path: str | None, base: str | None = None) -> str:
    if class_path and class_path == base:  # init_args given, but no class chosen
        owner = key.removesuffix(".init_args")
        return (
            f"{key}.{option}: {owner} has no class_path (it is null here); "
            f"set {owner}.class_path first"
        )
    names = accepted_arguments(class_path) if class_path else []
    where = f" ({_short(class_path)} takes no such argument)" if class_path else ""
    message = f"unknown option {key}.{option}{where}" if key else f"unknown option {option}"
    best = _did_you_mean(option, names)
    if best:
        return f"{message}; did you mean {best}?"
    if names:
        return f"{message}; accepted: {', '.join(names)}"
    return message


def _class_candidates(base: str | None) -> list[str]:
    """Class paths jsonargparse knows as subclasses of ``base`` (``module.Class`` text)."""
    if not base:
        return []
    try:
        return subclass_paths(import_class(base))
    except Exception:
        return []


def _module_classes(detail: str) -> list[str]:
    """``module 'torch.optim' has no attribute 'Adamm'`` -> the classes of ``torch.optim``."""
    named = re.search(r"module '([\w.]+)' has no attribute", detail)
    if not named:
        return []
    try:
        module = importlib.import_module(named.group(1))
    except Exception:
        return []
    return [
        f"{module.__name__}.{n}"
        for n, v in vars(module).items()
        if inspect.isclass(v) and not n.startswith("_")
    ]


def _bad_class(key: str, class_path: str, detail: str, base: str | None) -> str:
    """``model.class_path=no_such.X``: what failed, and the closest known class."""
    detail = detail.rstrip(".")
    message = f"{key}.class_path: cannot use {class_path!r}: {detail}"
    known = [c for c in _class_candidates(base) if not _short(c).startswith("_")]
    candidates = known + _module_classes(detail)
    best = _did_you_mean(_short(class_path), sorted({_short(c) for c in candidates}))
    if best:
        full = next(c for c in candidates if _short(c) == best)
        return f"{message}; did you mean {full}?"
    shorts = sorted({_short(c) for c in known} - {_short(base or "")})
    if len(shorts) > 12:  # many imported (a user's project, tests): those of the module named
        module = class_path.rsplit(".", 1)[0]
        known = [c for c in known if c.rsplit(".", 1)[0] == module] or known
        shorts = sorted({_short(c) for c in known} - {_short(base or "")})
    if shorts and len(shorts) <= 12:
        modules = {c.rsplit(".", 1)[0] for c in known if _short(c) in shorts}
        where = f" (in {modules.pop()})" if len(modules) == 1 else ""
        return f"{message}; known{where}: {', '.join(shorts)}"
    return message


def _leaf(text: str, key: str, class_path: str | None, given: str | None) -> str:
    """One error at the bottom of jsonargparse's message, with the key it belongs to."""
    owner = re.search(r"class_path='([^']+)'", text)  # a callable's class (an optimizer)
    detail = re.search(r"callable class: (.*?)(?:\. Got value:|$)", text)
    if owner and detail and _IMPORT.search(detail.group(1)):
        return _bad_class(key, owner.group(1), detail.group(1), None)
    subclass = re.search(r"Import path (\S+) does not correspond to a subclass of (\w+)", text)
    if subclass:
        return f"{key}.class_path: {subclass.group(1)} is not a {subclass.group(2)}"
    option = _NOT_ACCEPTED.search(text)
    if option:  # an unknown init_args key, of this class or of a callable's class
        if owner:
            return _unknown_option(f"{key}.init_args", option.group(1), owner.group(1))
        return _unknown_option(
            f"{key}.init_args" if class_path else key, option.group(1), class_path
        )
    expected = _EXPECTED.match(text)
    if expected:
        value = expected.group(2) if expected.group(2) is not None else given
        shown = f"{value!r}" if value is not None else "the value"
        return f"{key}: {shown} is not {_expected(expected.group(1))}"
    missing = re.match(r"File does not exist: (.*)$", text)
    if missing:
        key = "--config" if key == "config" else key
        return f"{key}: file does not exist: {missing.group(1)}"
    return f"{key}: {text}" if key else text


def _walk(lines: Lines, key: list[str], class_path: str | None, base: str | None) -> str:
    """Descend jsonargparse's indented message to the error that matters."""
    indent, text = lines[0]
    name = ".".join(key)
    parser_key = _PARSER_KEY.match(text)
    if parser_key:
        inner = [*key, "init_args"] if class_path else list(key)
        inner += [parser_key.group(1)]
        rest = parser_key.group(2)
        body = ([(indent + 2, rest)] if rest else []) + lines[1:]
        return _walk(body, inner, None, None) if body else f"{'.'.join(inner)}: invalid"
    if text.startswith("Does not validate against any of the Union subtypes"):
        return _union(lines, key)
    if text.startswith("- "):  # alternatives (a config file, or a class): take the class
        union = next(
            (
                n
                for n, (_, t) in enumerate(lines)
                if t.startswith("- Does not validate against any of the Union")
            ),
            None,
        )
        if union is not None:
            block = _block(lines, union)
            head = (block[0][0], block[0][1][2:])
            return _union([head, *((i, t) for i, t in lines[union + 1 :] if i >= head[0])], key)
    if class_path and _IMPORT.search(text):
        return _bad_class(name, class_path, " ".join(t for _, t in lines), base)
    option = _NOT_ACCEPTED.search(text)
    if class_path and option and not re.search(r"class_path='", text):
        return _unknown_option(f"{name}.init_args", option.group(1), class_path, base)
    return _leaf(" ".join(t for _, t in lines), name, class_path, None)


def _union(lines: Lines, key: list[str]) -> str:
    name = ".".join(key)
    texts = [t for _, t in lines]
    subtypes = next((t for t in texts if t.startswith("Subtypes:")), "")
    base = next(iter(re.findall(r"<class '([\w.]+)'>", subtypes)), None)
    base = None if base == "NoneType" else base
    union_indent = lines[0][0]
    given = next(
        (
            t[len("Given value:") :].strip()
            for i, t in lines
            if i == union_indent and t.startswith("Given value:")
        ),
        None,
    )
    errors_at = next((n for n, (_, t) in enumerate(lines) if t == "Errors:"), None)
    if errors_at is None:
        return _leaf(" ".join(texts[1:]), name, None, given)
    items: list[Lines] = []
    n = errors_at + 1
    while n < len(lines) and lines[n][1].startswith("- "):
        block = _block(lines, n)
        items.append(block)
        n += len(block)
    leaves = []
    for item in items:
        (item_indent, first), rest = item[0], item[1:]
        first = first[2:]
        if first.startswith("Expected a <class 'NoneType'>"):
            continue
        problem = _CLASS_PROBLEM.match(first)
        if problem:
            inner = ([(item_indent + 4, problem.group(2))] if problem.group(2) else []) + rest
            if not inner:
                continue
            return _walk(inner, key, problem.group(1), base)
        dotted = re.match(r"Expected a dot import path string: (.*)$", first)
        if dotted:  # a class name that names no class
            return _bad_class(name, dotted.group(1), "no such class", base)
        leaves.append(" ".join([first, *(t for _, t in rest)]))
    if leaves:
        literal = next((t for t in leaves if t.startswith("Expected a typing.Literal")), None)
        return _leaf(literal or leaves[0], name, None, given)
    return f"{name}: {given!r} is not accepted" if given else f"{name}: invalid value"


def _unrecognized(message: str, options: Iterable[str], typed: Iterable[str] = ()) -> str:
    """``unrecognized arguments: fit --trainer.max_stepz=3`` -> the unknown option and the
    closest accepted one. ``typed``: the options given, for when the message names none
    (jsonargparse says only ``unrecognized arguments: fit`` for an abbreviation)."""
    tokens = message.split(":", 1)[1].split()
    named = [t for t in tokens if t.startswith("-")] or list(typed)
    unknown = list(dict.fromkeys(t.split("=", 1)[0] for t in named))
    if not unknown:
        return message
    options = list(options)
    parts = []
    for option in unknown:
        group, _, leaf = option.rpartition(".")
        same_group = [o.rpartition(".")[2] for o in options if o.rpartition(".")[0] == group]
        best = _did_you_mean(leaf, same_group) if group else _did_you_mean(option, options)
        best = f"{group}.{best}" if group and best else best
        parts.append(f"unknown option {option}" + (f"; did you mean {best}?" if best else ""))
    return "; ".join(parts)


def distil_parse_error(message: str, options: Iterable[str] = (), typed: Iterable[str] = ()) -> str:
    """jsonargparse's message -> the essential line(s): which key, which value, what is
    accepted (with a close match for a typo). ``options``: the option strings the parser
    accepts and ``typed``: the given options it does not know, for ``unrecognized
    arguments``. A message of another shape comes back whole."""
    try:
        if message.startswith("unrecognized arguments:"):
            return _unrecognized(message, options, typed)
        lines = _lines(message)
        if not lines or not _PARSER_KEY.match(lines[0][1]):
            return message
        short = _walk(lines, [], None, None)
        return short if short.strip() else message
    except Exception:  # never fail while reporting a failure
        return message
