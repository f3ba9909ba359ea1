"""The errors raised when data files are missing or unreadable: they name the files and the
folder. Both are :class:`~mgan_lightning.validation.InputError`: the ``mgan`` command prints
the message alone (``mgan fit: error: ...``) and exits with status 2."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from mgan_lightning.errors import InputError


class DataNotFoundError(InputError, FileNotFoundError):
    """Data files are missing and downloading was not asked for (or failed offline)."""


class DataUnreadableError(InputError, RuntimeError):
    """Data files are there but cannot be used: unreadable (permissions), corrupt, truncated,
    or rejected by a checksum."""


def unreadable_data_error(
    dataset: str, path: str | Path, cause: BaseException
) -> DataUnreadableError:
    """Name the file and why it cannot be read, in one line."""
    reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(cause)
    reason = re.sub(rf"\s*'?{re.escape(str(path))}'?", "", reason)  # named once, in front
    return DataUnreadableError(
        f"{dataset} data file {path} cannot be read ({reason}); replace it with the official "
        f"file or make it readable"
    )


def missing_data_error(
    dataset: str,
    folder: str | Path,
    files: Sequence[str],
    cause: BaseException | None = None,
    downloadable: bool = True,
) -> DataNotFoundError:
    """Build a ``DataNotFoundError`` that tells the user exactly what to put where."""
    listing = "\n".join(f"  {Path(folder) / name}" for name in files)
    why = f"\n(underlying error: {cause})" if cause is not None else ""
    fetch = (
        ", or pass `--data.init_args.download=true` on a machine with internet access"
        if downloadable
        else ""
    )
    return DataNotFoundError(
        f"{dataset} data not found. Expected these files:\n{listing}\n"
        f"Put them there (set `data.init_args.data_root` to the folder that holds them)"
        f"{fetch}.{why}"
    )
