"""A 2D scatter plot drawn with Pillow: points coloured by generator, known modes marked.

Data of any dimension d is drawn in the plane (:func:`planar_view`): d = 2 as it is, d >= 3
by its first two coordinates, d = 1 against a random vertical jitter; the picture says
which."""

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


def planar_view(
    points: torch.Tensor, modes: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """``(N, d)`` points and ``(M, d)`` modes as 2D coordinates, and a caption naming the view.

    - d = 2: unchanged, no caption;
    - d >= 3: coordinates 1 and 2 (the others are dropped: modes that differ only there
      overlap in the picture);
    - d = 1: x against a uniform jitter of +-1/4 of the data's x range (a fixed seed: the
      same points give the same picture), modes at y = 0.
    """
    dim = points.shape[1]
    if dim == 2:
        return points, modes, ""
    if dim >= 3:
        return points[:, :2], None if modes is None else modes[:, :2], f"coordinates 1-2 of {dim}"
    ref = modes if modes is not None and len(modes) else points
    span = float(ref.max() - ref.min()) if len(ref) else 0.0
    half_height = 0.25 * max(span, 1.0)
    jitter = torch.rand(len(points), generator=torch.Generator().manual_seed(0)) * 2 - 1
    flat = torch.stack([points[:, 0], half_height * jitter], dim=1)
    on_axis = None if modes is None else torch.cat([modes, torch.zeros_like(modes)], dim=1)
    return flat, on_axis, "1D data: y is random jitter"


def render_scatter(
    points: torch.Tensor,
    generator_index: torch.Tensor | None = None,
    modes: torch.Tensor | None = None,
    title: str = "",
    size: int = 512,
) -> Image.Image:
    """Scatter ``points[N, d]``; colour ``i`` is generator ``i``; modes are thin black crosses
    drawn under the points. For d != 2 the plane shown is :func:`planar_view`'s, named at the
    bottom of the picture."""
    points = points.detach().float().cpu()
    modes = None if modes is None else modes.detach().float().cpu()
    dim = points.shape[1]
    points, modes, caption = planar_view(points, modes)
    index = (
        torch.zeros(len(points), dtype=torch.long)
        if generator_index is None
        else generator_index.detach().cpu().long()
    )
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
    ranges = f"x: [{x0:.2f}, {x1:.2f}]" + (f"  y: [{y0:.2f}, {y1:.2f}]" if dim > 1 else "")
    draw.text(
        (pad + 2, size + top - pad - 12),
        f"{caption}  {ranges}" if caption else ranges,
        fill="black" if caption else "gray",
        font=font,
    )
    return image
