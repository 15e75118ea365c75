"""Pictures of a run's numbers, drawn with matplotlib (no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def histogram_png(values, title: str, path: Path) -> None:
    """A PNG histogram of the finite values, with their count, mean and median in the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(figure)  # renders without a display
    axes = figure.add_subplot()
    if data.size:
        axes.hist(data, bins=int(min(50, max(10, math.sqrt(data.size)))), color="#4c72b0", edgecolor="white")
        axes.set_title(f"{title}\nn={data.size}, mean={data.mean():.4g}, median={np.median(data):.4g}")
    else:
        axes.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=axes.transAxes)
        axes.set_title(title)
    axes.set_xlabel("value")
    axes.set_ylabel("count")
    figure.tight_layout()
    figure.savefig(path, format="png")
