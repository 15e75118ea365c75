"""The select stage's model runs: the scores of the selectors other than SelectIT that a run
needs (its select.method, and the fine-tuning variants named after a selector).

`length` needs no model; `ifd` runs select.ifd_model over the pool; `learned` rates the judged
pairs with score.raters, fits the pairwise model and scores the pool from the score stage's
ratings. Model runs are cached under Layout.selector_cache, so a re-run computes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from selectit.audit.learned import IfdResult, IfdSpec, LearnedSpec, fit_learned, ifd_of, learned_scores
from selectit.config import Params
from selectit.core.catalog import rater_name
from selectit.core.layout import Layout
from selectit.core.records import Example, Reject, write_rejects
from selectit.rating.settings import RatingSettings
from selectit.scoring.pairwise import PairwiseModel
from selectit.scoring.tables import read_ratings, write_parquet
from selectit.selection.methods import IFD, LEARNED, LENGTH, MODEL_METHODS, SELECTIT, length_scores

SELECTORS = (LENGTH, IFD, LEARNED)  # every selector but SelectIT, whose scores the aggregate stage writes


def needed_selectors(params: Params) -> list[str]:
    """The selectors whose scores this run writes: select.method's, and those of the variants that
    need a model (ifd, learned). The `length` variant reads the pool itself, so a default run
    writes nothing more than before."""
    wanted = {params.select.method} | (set(params.finetune.variants) & set(MODEL_METHODS))
    return [m for m in SELECTORS if m in wanted]


@dataclass
class SelectorScores:
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # selector -> example id -> score
    model: PairwiseModel | None = None  # the learned one, when fitted
    rejects: list[Reject] = field(default_factory=list)  # examples a selector could not score, with why

    def table(self, ids: Sequence[str]) -> pa.Table:
        """example_id and one float column per selector, in the order of `ids`."""
        columns = {"example_id": pa.array(list(ids), pa.string())}
        for name, by_id in self.scores.items():
            columns[name] = pa.array([by_id.get(i, float("nan")) for i in ids], pa.float64())
        return pa.table(columns)


def learned_spec(params: Params, rating: RatingSettings) -> LearnedSpec:
    cfg = params.select
    return LearnedSpec(
        raters=list(params.score.raters),
        rating=rating,
        alpha=params.aggregate.alpha,
        authors_softmax=params.aggregate.authors_softmax,
        length_features=cfg.learned_length_features,
        ifd=IfdSpec(cfg.ifd_model, cfg.ifd_max_tokens) if cfg.learned_ifd else None,
    )


def selector_scores(
    params: Params,
    layout: Layout,
    pool: Sequence[Example],
    rating: RatingSettings,
    *,
    selectors: Sequence[str],
    exclude_pair_ids: Collection[str] = (),
    progress: bool = True,
) -> SelectorScores:
    """The scores of `selectors` (of SELECTOR_VARIANTS) over the scored examples `pool`.

    `exclude_pair_ids`: judged pairs the learned model must not be fitted on (pairs reserved
    for the preference-accuracy evaluation)."""
    cfg = params.select
    out = SelectorScores()
    ifd: IfdResult | None = None
    if IFD in selectors or (LEARNED in selectors and cfg.learned_ifd):
        ifd = ifd_of(
            pool, IfdSpec(cfg.ifd_model, cfg.ifd_max_tokens), rating, layout.selector_cache / "ifd-losses", progress
        )
        out.rejects += ifd.rejects
    for selector in selectors:
        if selector == SELECTIT:
            continue
        if selector == LENGTH:
            out.scores[LENGTH] = length_scores(pool)
        elif selector == IFD:
            out.scores[IFD] = ifd.scores
        elif selector == LEARNED:
            spec = learned_spec(params, rating)
            out.model = fit_learned(
                cfg.learned_pairs,
                cfg.learned_pair_limit,
                spec,
                layout.selector_cache / "learned",
                folds=cfg.learned_folds,
                seed=params.evaluate.seed,
                exclude_ids=exclude_pair_ids,
                progress=progress,
            )
            ratings = pa.concat_tables([read_ratings(layout.ratings_table(rater_name(r))) for r in params.score.raters])
            scored = {e.id for e in pool}
            ratings = ratings.filter(pa.array([e in scored for e in ratings["example_id"].to_pylist()]))
            out.scores[LEARNED] = learned_scores(out.model, ratings, pool, spec, ifd.scores if ifd else None)
        else:
            raise ValueError(f"unknown selector {selector!r}")
    return out


def write_selector_outputs(result: SelectorScores | None, layout: Layout, ids: Sequence[str]) -> None:
    """method_scores.parquet, learned_model.json when fitted, and the rejects ledger of the examples a
    selector could not score; `result` None (no selector ran) removes an earlier run's."""
    if result is None:
        for path in (layout.method_scores, layout.learned_model, Layout.rejects(layout.selected)):
            path.unlink(missing_ok=True)
        return
    write_parquet(result.table(ids), layout.method_scores)
    if result.model is not None:
        result.model.save(layout.learned_model)
    else:
        layout.learned_model.unlink(missing_ok=True)
    write_rejects(result.rejects, Layout.rejects(layout.selected))
