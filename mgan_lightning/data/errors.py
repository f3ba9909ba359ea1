"""The error raised when data files are missing: it names the files and the folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DataNotFoundError(FileNotFoundError):
    """Data files are missing and downloading was not asked for (or failed offline)."""


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
