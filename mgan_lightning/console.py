"""What ``mgan`` prints: Lightning's tips, deprecation warnings and absent-accelerator lines
are dropped unless asked for (``mgan --verbose ...`` or ``MGAN_VERBOSE=1``), and metric
tables show 4 significant figures."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping, Sequence

# Lightning's informational lines that say nothing about this run.
_NOISE = re.compile(
    r"Tip: For seamless|^[GTH]PU available|^LOCAL_RANK: \d+ - |^`Trainer\.\w+` stopped: "
)
_LIGHTNING_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _NOISE.search(record.getMessage())


def quiet() -> None:
    """Drop Lightning's tips, its accelerator lines, its stop message (``mgan fit`` prints
    its own, in generator steps) and the deprecation warnings of dependencies."""
    for name in _LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(_DropNoise())
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def significant(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant figures (``0.0108``, ``1234``, ``3.2e-05``)."""
    return f"{value:.{digits}g}"


def results_table(results: Sequence[Mapping[str, float]], title: str) -> str:
    """Lightning's ``trainer.test`` results as a two-column table, 4 significant figures."""
    rows = [(k, significant(float(v))) for result in results for k, v in result.items()]
    if not rows:
        return f"{title}: no metric was logged"
    width = max(len(title), *(len(k) for k, _ in rows))
    lines = [f"{title:<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)
