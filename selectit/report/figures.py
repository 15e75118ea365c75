"""The report's plots, drawn with matplotlib (no display) and returned as PNG bytes.

Each function takes plain tables and returns the PNG; `page` embeds it inline
(base64), so the report needs no file beside it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from selectit.report.stability import Curve

SELECTED, DROPPED, THRESHOLD = "#dd8452", "#4c72b0", "#c44e52"
PROMPT_COLOURS = ("#4c72b0", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")


def _figure(width: float = 6.4, height: float = 3.6, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)  # renders without a display
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, list(axes)


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _bins(values: np.ndarray, most: int = 40) -> np.ndarray | int:
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.min() == finite.max():
        return 10
    return np.linspace(finite.min(), finite.max(), int(min(most, max(10, np.sqrt(finite.size) * 2))) + 1)


def _split_hist(axes, values: np.ndarray, selected: np.ndarray, label: str) -> None:
    bins = _bins(values)
    axes.hist(
        [values[~selected & np.isfinite(values)], values[selected & np.isfinite(values)]],
        bins=bins,
        stacked=True,
        color=[DROPPED, SELECTED],
        label=["dropped", "selected"],
        edgecolor="white",
        linewidth=0.4,
    )
    axes.set_xlabel(label)
    axes.set_ylabel("examples")


def token_levels(token: pd.DataFrame, raters: Sequence[str], label: str = "token-level score") -> bytes:
    """Token-level scores, one panel per rater, one outline per prompt."""
    figure, axes = _figure(4.2 * len(raters), 3.4, ncols=len(raters))
    for ax, rater in zip(axes, raters, strict=True):
        mine = token[rater]
        bins = _bins(mine.to_numpy(dtype=float).ravel())
        for i, prompt in enumerate(mine.columns):
            ax.hist(
                mine[prompt].dropna(),
                bins=bins,
                histtype="step",
                linewidth=1.5,
                color=PROMPT_COLOURS[i % len(PROMPT_COLOURS)],
                label=f"prompt {prompt}",
            )
        ax.set_title(rater, fontsize=10)
        ax.set_xlabel(label)
        ax.set_ylabel("examples")
        ax.legend(fontsize=8)
    return _png(figure)


def sentence_levels(scores: pd.DataFrame, columns: Mapping[str, str], selected: np.ndarray, ratio: float) -> bytes:
    """Sentence-level scores per rater, selected against dropped, with the line above which
    the rater alone would keep the top R%."""
    figure, axes = _figure(4.2 * len(columns), 3.4, ncols=len(columns))
    for ax, (rater, column) in zip(axes, columns.items(), strict=True):
        values = scores[column].to_numpy(dtype=float)
        _split_hist(ax, values, selected, "sentence-level score")
        cut = np.nanquantile(values, 1 - ratio)
        ax.axvline(cut, color=THRESHOLD, linestyle="--", label=f"this rater's top {ratio:.0%}")
        ax.set_title(rater, fontsize=10)
        ax.legend(fontsize=8)
    return _png(figure)


def model_level(values: np.ndarray, selected: np.ndarray, threshold: float | None, ratio: float) -> bytes:
    figure, (ax,) = _figure()
    _split_hist(ax, values, selected, "model-level score")
    if threshold is not None:
        ax.axvline(threshold, color=THRESHOLD, linestyle="--", label=f"selection threshold (top {ratio:.0%})")
    ax.set_title("model-level score: the ranking key")
    ax.legend(fontsize=8)
    return _png(figure)


def digit_mass(mass: pd.DataFrame) -> bytes:
    """Digit mass per rater and prompt as box plots."""
    groups = list(mass.groupby(["model", "prompt_id"])["mass"])
    figure, (ax,) = _figure(max(6.4, 1.4 * len(groups)), 3.8)
    ax.boxplot([g.to_numpy() for _, g in groups], showfliers=True)
    labels = [f"{m}\nprompt {p}" for (m, p), _ in groups]
    ax.set_xticks(range(1, len(groups) + 1), labels, fontsize=7, rotation=20, ha="right")
    ax.set_ylabel("probability on digits 1..K")
    ax.set_ylim(0, 1.02)
    ax.set_title("digit mass per rater and prompt")
    return _png(figure)


def prompt_spread(spread: pd.DataFrame, raters: Sequence[str]) -> bytes:
    figure, (ax,) = _figure()
    for i, rater in enumerate(raters):
        values = spread.loc[spread["model"] == rater, "spread"].to_numpy(dtype=float)
        ax.hist(
            values,
            bins=_bins(values),
            histtype="step",
            linewidth=1.5,
            color=PROMPT_COLOURS[i % len(PROMPT_COLOURS)],
            label=rater,
        )
    ax.set_xlabel("std of token-level scores over prompts (per example)")
    ax.set_ylabel("examples")
    ax.set_title("agreement between prompts (0 = every prompt gave the same score)")
    ax.legend(fontsize=8)
    return _png(figure)


def correlation(matrix: pd.DataFrame) -> bytes:
    n = len(matrix)
    figure, (ax,) = _figure(1.6 + 1.3 * n, 1.2 + 1.1 * n)
    image = ax.imshow(matrix.to_numpy(dtype=float), vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n), matrix.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), matrix.index, fontsize=8)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{matrix.iat[i, j]:.2f}", ha="center", va="center", fontsize=9)
    figure.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title("Spearman rank correlation")
    return _png(figure)


def overlap_bars(overlap: pd.DataFrame, ratio: float) -> bytes:
    figure, (ax,) = _figure(6.4, 1.2 + 0.5 * len(overlap))
    ax.barh(overlap["rater"], overlap["share of selection"], color=SELECTED)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"share of the final selection in the rater's own top {ratio:.0%}")
    for y, value in enumerate(overlap["share of selection"]):
        ax.text(min(value + 0.02, 0.9), y, f"{value:.0%}", va="center", fontsize=9)
    return _png(figure)


def selected_vs_dropped(features: pd.DataFrame, task_shares: pd.DataFrame) -> bytes:
    """Response and instruction length, task type, input present: selected against dropped."""
    figure, axes = _figure(13.0, 3.6, ncols=4)
    chosen = features["selected"].to_numpy()
    for ax, column, label in (
        (axes[0], "response_words", "response words"),
        (axes[1], "instruction_words", "instruction + input words"),
    ):
        values = np.log10(1 + features[column].to_numpy(dtype=float))
        ax.hist(
            [values[~chosen], values[chosen]],
            bins=_bins(values, 25),
            density=True,
            histtype="step",
            linewidth=1.5,
            color=[DROPPED, SELECTED],
            label=["dropped", "selected"],
        )
        ax.set_xlabel(f"log10(1 + {label})")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    shown = task_shares.head(8)
    y = np.arange(len(shown))
    axes[2].barh(y - 0.2, shown["dropped"], height=0.4, color=DROPPED, label="dropped")
    axes[2].barh(y + 0.2, shown["selected"], height=0.4, color=SELECTED, label="selected")
    axes[2].set_yticks(y, shown.index, fontsize=8)
    axes[2].invert_yaxis()
    axes[2].set_xlabel("share (leading verb of the instruction)")
    axes[2].legend(fontsize=8)
    shares = features.groupby("selected")[["has_input", "calculation"]].mean()
    x = np.arange(2)
    for offset, flag, colour, label in ((-0.2, False, DROPPED, "dropped"), (0.2, True, SELECTED, "selected")):
        values = shares.loc[flag].to_numpy() if flag in shares.index else np.zeros(2)
        axes[3].bar(x + offset, values, width=0.4, color=colour, label=label)
    axes[3].set_xticks(x, ["has an input", "calculation"])
    axes[3].set_ylabel("share of examples")
    axes[3].set_ylim(0, 1)
    axes[3].legend(fontsize=8)
    return _png(figure)


def stability(curves: Sequence[Curve], marks: Mapping[str, float]) -> bytes:
    figure, axes = _figure(11.0, 3.6, ncols=len(curves))
    for ax, curve in zip(axes, curves, strict=True):
        ax.fill_between(curve.x, curve.low, curve.high, color=DROPPED, alpha=0.2, label="5-95% of resamples")
        ax.plot(curve.x, curve.mean, marker="o", color=DROPPED, label="mean over resamples")
        ax.plot(curve.x, curve.unresampled, marker="s", color=SELECTED, linestyle=":", label="all prompts and raters")
        ax.axvline(marks[curve.setting], color=THRESHOLD, linestyle="--", label=f"this run's {curve.setting}")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("R (share kept)" if curve.setting == "ratio" else "alpha")
        ax.set_ylabel("Jaccard with the run's top R%")
        if curve.setting == "alpha" and min(curve.x) >= 0 and max(curve.x) > 1:
            ax.set_xscale("symlog", linthresh=0.1)  # alpha spans 0 to several: small values need room
            ax.set_xlim(0, max(curve.x) * 1.1)
        ax.legend(fontsize=7)
    return _png(figure)


def losses(curves: Mapping[str, Sequence[tuple[int, float]]]) -> bytes:
    figure, (ax,) = _figure()
    for i, (variant, points) in enumerate(curves.items()):
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, marker="o", markersize=3, color=PROMPT_COLOURS[i % len(PROMPT_COLOURS)], label=variant)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.set_title("training loss per variant")
    ax.legend(fontsize=8)
    return _png(figure)


def comparison(comparison: Mapping) -> bytes:
    """Each variant's mean with its interval, one panel per metric."""
    metrics = comparison["metrics"]
    figure, axes = _figure(max(6.4, 4.2 * len(metrics)), 3.6, ncols=len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        cells = [(v, row.get(metric["name"])) for v, row in comparison["variants"].items()]
        cells = [(v, c) for v, c in cells if c]
        y = np.arange(len(cells))
        means = np.array([c["mean"] for _, c in cells])
        errors = np.array([[c["mean"] - c["low"] for _, c in cells], [c["high"] - c["mean"] for _, c in cells]])
        colours = [SELECTED if v == "selectit" else DROPPED for v, _ in cells]
        ax.errorbar(means, y, xerr=errors, fmt="none", ecolor="#555555", capsize=3)
        ax.scatter(means, y, color=colours, zorder=3)
        ax.set_yticks(y, [v for v, _ in cells])
        ax.invert_yaxis()
        ax.set_xlabel(metric["label"])
        ax.set_title(f"{comparison['level']:.0%} bootstrap intervals", fontsize=9)
    return _png(figure)
