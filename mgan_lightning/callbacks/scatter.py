"""A 2D scatter plot drawn with Pillow: points coloured by generator, known modes marked."""

from __future__ import annotations

import torch
from PIL import Image, ImageDraw, ImageFont

# Tableau-10 then lighter variants: distinct colours for up to 20 generators, then repeats.
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]  # fmt: skip


def plot_bounds(
    points: torch.Tensor, modes: torch.Tensor | None
) -> tuple[float, float, float, float]:
    """A square window around the modes (or the points' 1-99% range), with a margin."""
    ref = modes if modes is not None and len(modes) else points
    if ref is points and len(points) > 10:
        lo, hi = points.quantile(0.01, dim=0), points.quantile(0.99, dim=0)
    else:
        lo, hi = ref.min(dim=0).values, ref.max(dim=0).values
    centre = (lo + hi) / 2
    half = float((hi - lo).max()) / 2
    half = max(half * 1.35, 0.5)
    return (
        float(centre[0]) - half,
        float(centre[0]) + half,
        float(centre[1]) - half,
        float(centre[1]) + half,
    )


def render_scatter(
    points: torch.Tensor,
    generator_index: torch.Tensor | None = None,
    modes: torch.Tensor | None = None,
    title: str = "",
    size: int = 512,
) -> Image.Image:
    """Scatter ``points[N, 2]``; colour ``i`` is generator ``i``; modes are thin black crosses
    drawn under the points."""
    points = points.detach().float().cpu()
    index = (
        torch.zeros(len(points), dtype=torch.long)
        if generator_index is None
        else generator_index.detach().cpu().long()
    )
    modes = None if modes is None else modes.detach().float().cpu()
    x0, x1, y0, y1 = plot_bounds(points, modes)
    top, pad = 28, 8
    plot = size - 2 * pad
    image = Image.new("RGB", (size, size + top), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        return pad + (x - x0) / (x1 - x0) * plot, top + pad + (y1 - y) / (y1 - y0) * plot

    draw.rectangle([pad, top + pad, pad + plot, top + pad + plot], outline="black")
    if modes is not None:  # drawn first and thin, so the samples on a mode stay visible
        for x, y in modes.tolist():
            u, v = to_pixel(x, y)
            draw.line([u - 7, v, u + 7, v], fill="black", width=1)
            draw.line([u, v - 7, u, v + 7], fill="black", width=1)
    for (x, y), k in zip(points.tolist(), index.tolist()):
        if x0 <= x <= x1 and y0 <= y <= y1:
            u, v = to_pixel(x, y)
            draw.ellipse([u - 2, v - 2, u + 2, v + 2], fill=PALETTE[k % len(PALETTE)])
    draw.text((pad, 4), title, fill="black", font=font)
    generators = int(index.max()) + 1 if len(index) else 0
    if generators > 1:
        for k in range(min(generators, 20)):
            u, v = pad + 4 + 36 * (k % 12), top + pad + 4 + 14 * (k // 12)
            draw.rectangle([u, v + 2, u + 8, v + 10], fill=PALETTE[k % len(PALETTE)])
            draw.text((u + 10, v), f"G{k}", fill="black", font=font)
    draw.text(
        (pad + 2, size + top - pad - 12),
        f"x: [{x0:.2f}, {x1:.2f}]  y: [{y0:.2f}, {y1:.2f}]",
        fill="gray",
        font=font,
    )
    return image
