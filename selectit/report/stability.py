"""How stable is the selection? Recompute it from resampled prompts and raters.

No model runs: the stored probability table (every rater's ratings.parquet) is
resampled and put through the project's own aggregation (`scoring.tables.aggregate`).
One resample draws the prompts with replacement (the same draw for every rater,
as every rater reads the same prompts) and the raters with replacement; a rater
drawn twice counts twice, under its own weight each time. The ranking it gives is
compared with the run's own ranking by the Jaccard overlap of their top R%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from selectit.config import AggregateConfig
from selectit.report.analysis import jaccard
from selectit.scoring.tables import aggregate
from selectit.selection.top import n_to_keep


@dataclass
class Curve:
    """Jaccard overlap of the top R% against the run's own, along one setting."""

    setting: str  # "ratio" or "alpha"
    x: list[float]
    mean: list[float]  # over resamples
    low: list[float]  # 5th percentile over resamples
    high: list[float]  # 95th percentile
    unresampled: list[float]  # all prompts and raters, only the setting changed (1.0 along R)

    @staticmethod
    def columns(setting: str) -> list[str]:
        return [setting, "jaccard_mean", "jaccard_p05", "jaccard_p95", "jaccard_all_ratings"]

    def rows(self) -> list[dict]:
        values = zip(self.x, self.mean, self.low, self.high, self.unresampled, strict=True)
        return [dict(zip(self.columns(self.setting), row, strict=True)) for row in values]


def _ranked_ids(scores: pa.Table) -> list[str]:
    return scores.sort_by("rank")["example_id"].to_pylist()


def _resample(ratings: pa.Table, rng: np.random.Generator) -> tuple[pa.Table, list[tuple[str, str]]]:
    """One resampled ratings table, and (new rater name, original rater) for each drawn slot."""
    raters = list(dict.fromkeys(ratings["model"].to_pylist()))
    prompts = sorted(set(ratings["prompt_id"].to_pylist()))
    drawn_raters = rng.choice(len(raters), size=len(raters), replace=True)
    drawn_prompts = rng.choice(len(prompts), size=len(prompts), replace=True)
    parts, slots = [], []
    for slot, r in enumerate(drawn_raters):
        name = f"{raters[r]}#{slot}"
        slots.append((name, raters[r]))
        of_rater = ratings.filter(pc.equal(ratings["model"], raters[r]))
        for new_prompt, p in enumerate(drawn_prompts):
            part = of_rater.filter(pc.equal(of_rater["prompt_id"], prompts[p]))
            n = part.num_rows
            prompt_column = pa.array([new_prompt] * n, pa.int16())
            part = part.set_column(part.schema.get_field_index("prompt_id"), "prompt_id", prompt_column)
            part = part.set_column(part.schema.get_field_index("model"), "model", pa.array([name] * n))
            parts.append(part)
    return pa.concat_tables(parts), slots


def _ranking(ratings: pa.Table, cfg: AggregateConfig, alpha: float, slots=None) -> list[str]:
    weights = cfg.weights
    if weights is not None and slots is not None:  # explicit weights follow each drawn rater
        weights = {name: weights[original] for name, original in slots}
    scores, _ = aggregate(ratings, alpha, cfg.authors_softmax, weights, cfg.token_score)
    return _ranked_ids(scores)


def _overlap(ranked: Sequence[str], reference: Sequence[str], ratio: float) -> float:
    keep = n_to_keep(len(reference), ratio)
    return jaccard(ranked[:keep], reference[:keep])


def stability_curves(
    ratings: pa.Table,
    reference: Sequence[str],
    ratio: float,
    cfg: AggregateConfig,
    *,
    resamples: int,
    seed: int,
    ratios: Sequence[float],
    alphas: Sequence[float],
) -> tuple[Curve, Curve]:
    """(over `ratios` at the run's alpha, over `alphas` at the run's R); the run's own R and
    alpha are added to their grids. `reference` is the run's ranking (scores.parquet, best
    first); its top `ratio` is the selection, scored with the run's aggregate settings `cfg`.
    The grids and resamples are params.yaml's `report` section."""
    rng = np.random.default_rng(seed)
    alpha = cfg.alpha
    ratios = sorted(set(ratios) | {ratio})
    alphas = sorted(set(alphas) | {alpha})
    draws = [_resample(ratings, rng) for _ in range(resamples)]

    by_ratio = np.array(
        [
            [_overlap(ranked, reference, r) for r in ratios]
            for ranked in (_ranking(t, cfg, alpha, slots) for t, slots in draws)
        ]
    )
    by_alpha = np.array(
        [[_overlap(_ranking(t, cfg, a, slots), reference, ratio) for a in alphas] for t, slots in draws]
    )
    exact_alpha = [_overlap(_ranking(ratings, cfg, a), reference, ratio) for a in alphas]
    exact_ratio = [_overlap(_ranking(ratings, cfg, alpha), reference, r) for r in ratios]
    return _curve("ratio", ratios, by_ratio, exact_ratio), _curve("alpha", alphas, by_alpha, exact_alpha)


def _curve(setting: str, x: Sequence[float], values: np.ndarray, exact: Sequence[float]) -> Curve:
    return Curve(
        setting,
        [float(v) for v in x],
        values.mean(axis=0).tolist(),
        np.quantile(values, 0.05, axis=0).tolist(),
        np.quantile(values, 0.95, axis=0).tolist(),
        [float(v) for v in exact],
    )
