"""Task of the select stage: the top R% by select.method (or what select.diversity keeps of its
ranking) as Alpaca JSON, the ids kept and left out, the selections of the diversity modes, their
diversity numbers (diversity.json), the other selectors' scores and a dataset card."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from selectit.audit.pairs import read_pairs
from selectit.audit.selectors import needed_selectors, selector_scores, write_selector_outputs
from selectit.config import DIVERSITY_VARIANTS, Params, writes_embeddings
from selectit.core.io import write_json, write_text
from selectit.core.layout import Layout
from selectit.core.records import Example, Reject, read_example_records, write_rejects
from selectit.evaluation.preference_split import preference_split
from selectit.finetune.variants import variant_examples
from selectit.provenance import code_version
from selectit.rating_params import rating_settings
from selectit.scoring.tables import read_scores
from selectit.selection.card import run_card
from selectit.selection.coverage import ExampleFacts, describe_selections, leading_verb
from selectit.selection.diversity import Choice, choices_by_mode
from selectit.selection.methods import LEARNED, SELECTIT, method_ranking
from selectit.selection.output import write_selection
from selectit.selection.rows import ranked_vectors
from selectit.summaries import SelectSummary

BASELINES = ("random", "length", "bottom")  # the fine-tuning baselines of the selection's size


@task(name="select-top", cache_policy=NO_CACHE, version=code_version(__name__))
def select_examples(
    params: Params, layout: Layout, shown_source: str, command: str, progress: bool = True
) -> SelectSummary:
    """Write the selection (input order), the ids kept and left out, the semantic duplicates
    (rejects), the diversity modes' selections, diversity.json and the dataset card; and the
    scores of the other selectors the run needs (select.method, the selector variants).

    `shown_source` is the source as the card names it (see `run_card`)."""
    cfg = params.select
    # DVC keeps the selectors' cache between runs (a persisted output), so it exists even when unused.
    layout.selector_cache.mkdir(parents=True, exist_ok=True)
    scores = read_scores(layout.scores_table)
    ranked = scores.sort_by("rank")["example_id"].to_pylist()
    # The validated pool, read once: the selectors, the selection, the rejects and diversity.json use it.
    pool = read_example_records(layout.examples(layout.validated))
    ranking, ranking_scores = None, None
    selectors = needed_selectors(params)
    found = None
    if selectors:
        scored = set(ranked)
        scored_pool = [e for e in pool if e.id in scored]
        found = selector_scores(
            params,
            layout,
            scored_pool,
            rating_settings(params.score),
            selectors=selectors,
            exclude_pair_ids=_pairs_kept_for_evaluation(params) if LEARNED in selectors else (),
            progress=progress,
        )
        if cfg.method != SELECTIT:
            ranking = method_ranking(
                cfg.method, selectit_ranked=ranked, pool=scored_pool, scores=found.scores[cfg.method]
            )
            ranking_scores = found.scores[cfg.method]
    write_selector_outputs(found, layout, ranked)
    # Diversity walks the method's ranking (SelectIT's by default).
    order = ranking if ranking is not None else ranked
    vectors = ranked_vectors(layout.embeddings, order, cfg.centre_embeddings) if writes_embeddings(params) else None
    choices = choices_by_mode(cfg, order, vectors)
    choice = choices[cfg.diversity]
    selection = write_selection(
        scores,
        iter(pool),
        cfg.ratio,
        layout.selection,
        layout.selected_ids,
        layout.excluded_ids,
        # Examples the aggregate stage rejected were validated but never scored.
        allow_unscored=True,
        ranking=ranking,
        ranking_scores=ranking_scores,
        choose=lambda ids: (choice.kept, choice.left_out),
    )
    # One ids file per diversity variant's mode; none left from an earlier run with embeddings.
    shutil.rmtree(layout.diverse_selection_ids("none").parent, ignore_errors=True)
    for mode in DIVERSITY_VARIANTS.values():
        if mode in choices:
            write_text(layout.diverse_selection_ids(mode), "".join(i + "\n" for i in choices[mode].kept))
    write_rejects(
        [
            Reject(e.source, e.row, None, choice.duplicates[e.id].reason, e.raw)
            for e in pool
            if e.id in choice.duplicates
        ],
        layout.rejects(layout.selected),
    )
    described = describe_selections(
        order,
        vectors,
        {e.id: ExampleFacts(leading_verb(e.instruction), len(e.output.split())) for e in pool},
        _selections(params, choices, pool, ranked, selection.kept),
        clusters=cfg.clusters,
        coverage_sample=cfg.coverage_sample,
        seed=cfg.seed,
    )
    write_json(
        layout.diversity_report,
        {
            "diversity": cfg.diversity,
            "budget": choice.budget,
            "shortfall": {mode: c.shortfall for mode, c in choices.items()},
            "semantic_duplicates": len(choice.duplicates),
            **described,
        },
    )
    write_text(layout.dataset_card, run_card(params, layout, selection, shown_source, command))
    summary = SelectSummary(
        selected=len(selection.kept),
        left_out=len(selection.left_out),
        ratio=cfg.ratio,
        lowest_kept_score=selection.lowest_kept_score,
        settings={"select": dataclasses.asdict(cfg), "score": dataclasses.asdict(params.score)},
    )
    summary.save(layout.selected)
    return summary


def _selections(
    params: Params, choices: dict[str, Choice], pool: list[Example], ranked: list[str], kept: list[str]
) -> dict[str, list[str]]:
    """The training sets of the fine-tuning variants of the selection's size, made as the
    finetune stage makes them: the selection, each diversity mode's, and the baselines."""
    selections = {"selectit": kept}
    selections.update({v: choices[mode].kept for v, mode in DIVERSITY_VARIANTS.items() if mode in choices})
    for baseline in BASELINES:
        data = variant_examples(baseline, pool, ranked, kept, params.finetune.seed)
        selections[baseline] = [e.id for e in data.examples]
    return selections


def _pairs_kept_for_evaluation(params: Params) -> set[str]:
    """Judged pairs of select.learned_pairs that the preference-accuracy evaluation asks about:
    the learned model is never fitted on them."""
    candidates = read_pairs(Path(params.select.learned_pairs)).pairs
    return preference_split(params.evaluate).excluded_pair_ids(candidates)
