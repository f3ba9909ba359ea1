"""One bar per generator: what each generator of a mixture reaches of the real manifold.

Draws the per-generator part of :func:`~mgan_lightning.metrics.prdc.prdc` (coverage and
precision of each generator alone) and, in the title, how the real balls split between
reached by exactly one generator, by several, and by none. Matplotlib (Agg, no display) is
imported only here, when a picture is asked for.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import torch
from PIL import Image

# The first colours of the scatter plot's palette: coverage, precision.
COLOURS = ("#1f77b4", "#ff7f0e")


def plot_per_generator(
    scores: Mapping[str, torch.Tensor],
    title: str = "",
    width: float = 6.4,
    height: float = 3.6,
    dpi: int = 100,
) -> Image.Image:
    """Bars of ``coverage_per_generator`` and ``precision_per_generator`` side by side for
    each generator G0, G1, ...; the title adds the ``covered_by_*`` shares. ``scores`` is
    what :meth:`PRDC.compute` (with generator indices) or :meth:`PRDC.per_generator`
    returns. Returns an RGB picture (for :func:`~mgan_lightning.callbacks.image_logging.
    log_image` or ``.save(path)``)."""
    if "coverage_per_generator" not in scores:
        raise ValueError("plot_per_generator needs per-generator scores: give PRDC.update a "
                         "generator_index with the fake samples")  # fmt: skip
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # matplotlib is an optional dependency (the `bench` extra)
        raise ImportError("plot_per_generator needs matplotlib: pip install matplotlib") from err
    coverage = scores["coverage_per_generator"].double().cpu()
    precision = scores["precision_per_generator"].double().cpu()
    count = len(coverage)
    figure = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    slots = torch.arange(count, dtype=torch.float64)
    bar = 0.4
    axes.bar((slots - bar / 2).tolist(), coverage.tolist(), bar, label="coverage",
             color=COLOURS[0])  # fmt: skip
    axes.bar((slots + bar / 2).tolist(), precision.nan_to_num(0.0).tolist(), bar,
             label="precision", color=COLOURS[1])  # fmt: skip
    axes.set_xticks(slots.tolist(), [f"G{g}" for g in range(count)])
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("share")
    axes.legend(loc="upper right", fontsize="small")
    lines = [title] if title else []
    if "covered_by_one" in scores:
        lines.append(
            "real balls reached by one generator "
            f"{100 * float(scores['covered_by_one']):.1f}%, several "
            f"{100 * float(scores['covered_by_several']):.1f}%, none "
            f"{100 * float(scores['covered_by_none']):.1f}%"
        )
    if lines:
        axes.set_title("\n".join(lines), fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
