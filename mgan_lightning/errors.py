"""The exceptions every layer may raise, in the core so that no layer imports upwards to raise
or catch them (the ``mgan`` command reports each in one line: :mod:`mgan_lightning.cli`).

- :class:`InputError` marks an exception that means "the input cannot be used" (missing or
  unreadable data files, a weights file of another network): exit status 2;
- :class:`DivergenceError` means training blew up: exit status 1, nothing saved;
- :func:`load_error_summary` turns a ``load_state_dict`` error into its first mismatching
  tensor, for the messages of both.
"""

from __future__ import annotations

import re


class InputError(Exception):
    """Mixin of the exceptions that mean the user's input cannot be used (not a bug): the
    CLI prints their message as one ``error:`` and exits with status 2."""


class WeightsMismatchError(InputError, ValueError):
    """A weights file whose tensors do not fit the network it is loaded into."""


class DivergenceError(FloatingPointError):
    """Training diverged (a loss, the weights or the samples blew up); the run stops and
    nothing of the diverged state is saved."""


class NonFiniteLossError(DivergenceError):
    """A loss became NaN or infinite; training stops before the weights are corrupted."""


# ------------------------------------------------------------------ load_state_dict errors
_SIZE = re.compile(
    r"size mismatch for ([^:\s]+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) "
    r"from checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)"
)
_KEYS = re.compile(r"(Missing|Unexpected) key\(s\) in state_dict: ((?:\"[^\"]*\"(?:, )?)+)")


def _shape(text: str) -> str:
    sizes = [s.strip() for s in text.split(",") if s.strip()]
    return "(" + ", ".join(sizes) + ("," if len(sizes) == 1 else "") + ")"


def load_error_summary(error: BaseException | str) -> str | None:
    """The first mismatching tensor named by a ``load_state_dict`` error, in one line
    (``None`` if ``error`` is not such an error). A shape mismatch is named before a
    missing or unexpected tensor: it says the most about what differs."""
    text = str(error)
    if "Error(s) in loading state_dict" not in text:
        return None
    sizes = _SIZE.findall(text)
    keys = {kind: re.findall(r"\"([^\"]*)\"", names) for kind, names in _KEYS.findall(text)}
    problems = len(sizes) + sum(len(v) for v in keys.values())
    more = f" ({problems - 1} more tensors differ)" if problems > 1 else ""
    if sizes:
        name, saved, model = sizes[0]
        return (
            f"tensor {name} is {_shape(saved)} in the file but {_shape(model)} in the model{more}"
        )
    if keys.get("Missing"):
        return f"tensor {keys['Missing'][0]} is missing from the file{more}"
    if keys.get("Unexpected"):
        return f"the file has a tensor {keys['Unexpected'][0]} the model does not{more}"
    return text.strip().splitlines()[0]
