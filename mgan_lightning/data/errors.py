"""The error raised when data files are missing: it names the files and the folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DataNotFoundError(FileNotFoundError):
    """Data files are missing and downloading was not asked for (or failed offline)."""


def missing_data_error(
    dataset: str, folder: str | Path, files: Sequence[str], cause: BaseException | None = None
) -> DataNotFoundError:
    """Build a ``DataNotFoundError`` that tells the user exactly what to put where."""
    listing = "\n".join(f"  {Path(folder) / name}" for name in files)
    why = f"\n(underlying error: {cause})" if cause is not None else ""
    return DataNotFoundError(
        f"{dataset} data not found. Expected these files:\n{listing}\n"
        f"Put them there (set `data.data_root` to the folder that holds them), or pass "
        f"`--data.download=true` on a machine with internet access.{why}"
    )
