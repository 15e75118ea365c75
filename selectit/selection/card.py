"""The dataset card written next to the selection."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import yaml

from selectit.config import Params
from selectit.core.catalog import rater_name
from selectit.core.layout import Layout
from selectit.selection.coverage import diversity_markdown
from selectit.selection.output import Selection
from selectit.summaries import AggregateSummary, IngestSummary, ScoreSummary, ValidateSummary

# How the card's opening says the subset was chosen, by select.method; selectit's is the paper's.
METHOD_INTROS = {
    "selectit": """A subset of instruction-tuning data chosen with SelectIT (arXiv 2402.16705):
rater models scored every example by the uncertainty of their own ratings at
token, sentence (across rating prompts) and model (across raters) level, and
the top share was kept.""",
    "length": """A subset of instruction-tuning data chosen by response length: the examples
with the longest responses were kept ("Long Is More for Alignment", ICML 2024).""",
    "ifd": """A subset of instruction-tuning data chosen by instruction-following difficulty
(Superfiltering, ACL 2024): a small model's loss on each response with and without
its instruction; the highest IFD below 1 was kept.""",
    "learned": """A subset of instruction-tuning data chosen by a learned score: a pairwise model
fitted on judged response pairs over the raters' SelectIT scores and other
features (learned_model.json beside this card) ranked the examples, and the top
share was kept.""",
}
# The select keys each method reads; the card shows those (selectit's card is the paper's).
METHOD_KEYS = {
    "selectit": ("ratio",),
    "length": ("ratio", "method"),
    "ifd": ("ratio", "method", "ifd_model", "ifd_max_tokens"),
    "learned": (
        "ratio",
        "method",
        "learned_pairs",
        "learned_pair_limit",
        "learned_folds",
        "learned_length_features",
        "learned_ifd",
        "ifd_model",
        "ifd_max_tokens",
    ),
}

LICENCE_NOTE = (
    "The selection is a subset of the source data and carries its licence. The offline "
    "default sources (Alpaca, Alpaca-GPT4) are CC BY-NC 4.0: research use only."
)


def _number(value: float | None, form: str) -> str:
    return "—" if value is None else format(value, form)


def _histogram(values: np.ndarray, bins: int = 10) -> str:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return "(no finite scores)"
    counts, edges = np.histogram(finite, bins=bins)
    width = max(counts.max(), 1)
    return "\n".join(
        f"{edges[i]:7.3f} - {edges[i + 1]:7.3f} | {'#' * int(round(30 * c / width)):30s} {c}"
        for i, c in enumerate(counts)
    )


def dataset_card(
    *,
    name: str,
    sources: list[dict],
    counts: dict,
    settings: dict,
    raters: list[ScoreSummary],
    weights: dict,
    scores: np.ndarray,
    kept_scores: np.ndarray,
    command: str,
    diversity: dict | None = None,
    flagged: list[dict] | None = None,
    method: str = "selectit",
) -> str:
    """The card as Markdown; `settings` are the nested settings each stage ran with;
    `diversity` is diversity.json (select stage), when there is one."""
    source_rows = "\n".join(f"| `{s['source']}` | `{s['sha256'][:16]}` | {s['bytes']:,} |" for s in sources)
    rater_rows = "\n".join(
        f"| `{r.rater}` | {r.n_params or '—'} | {weights.get(r.rater, 0):.3f} | "
        f"{r.mass.get('mean', float('nan')):.3f} | {_number(r.top_is_digit_share, '.2f')} |"
        for r in raters
    )
    count_rows = "\n".join(f"| {k.replace('_', ' ')} | {v:,} |" for k, v in counts.items())
    quantiles = np.nanquantile(scores, [0, 0.25, 0.5, 0.75, 1]) if np.isfinite(scores).any() else [np.nan] * 5
    threshold = np.nanmin(kept_scores) if len(kept_scores) else float("nan")
    # YAML, so values with newlines (the cue) read as they are written in params.yaml.
    score_name = "Model-level" if method == "selectit" else f"The {method} selector's"
    settings_block = yaml.safe_dump(settings, sort_keys=False, allow_unicode=True).rstrip()
    diversity_block = f"\n## Diversity\n\n{diversity_markdown(diversity)}\n" if diversity else ""
    return f"""# {name}

{METHOD_INTROS[method]}

## Source

| source | sha256 (first 16) | bytes |
| --- | --- | --- |
{source_rows}

## Counts

| | |
| --- | --- |
{count_rows}

## Raters

| rater | parameters | weight | mean digit mass | top token is a digit |
| --- | --- | --- | --- | --- |
{rater_rows}

## Scores

{score_name} score quantiles (min, 25%, median, 75%, max) over all scored
examples: {", ".join(f"{q:.3f}" for q in quantiles)}. Lowest kept score: {threshold:.3f}.

```
{_histogram(scores)}
```
{diversity_block}

## Flagged examples in the selection

{_flagged_section(flagged or [])}

## Settings

```yaml
{settings_block}
```

## Reproduce

```bash
{command}
```

## Licence

{LICENCE_NOTE}
"""


def _flagged_section(flagged: list[dict]) -> str:
    """The selected examples the validate stage kept with a flag (validated/flagged.jsonl)."""
    if not flagged:
        return "None: no selected example was cut to fit or addresses the rater."
    rows = "\n".join(
        f"| `{f['id']}` | {f['source']} row {f['row']} | {f['flag']} | {f['detail'].replace('|', '/')} |"
        for f in flagged
    )
    return (
        "Kept by the validate stage with a flag; an example that addresses the rater may have steered its own "
        "score (hygiene.rater_injection: reject removes them).\n\n"
        f"| id | where | flag | detail |\n| --- | --- | --- | --- |\n{rows}"
    )


def selected_flags(layout: Layout, kept: list[str]) -> list[dict]:
    """The flags of validated/flagged.jsonl (an absent file: none) of the kept examples, best first."""
    path = layout.flagged(layout.validated)
    if not path.is_file():
        return []
    rank = {example_id: i for i, example_id in enumerate(kept)}
    with path.open(encoding="utf-8") as handle:
        flags = [json.loads(line) for line in handle if line.strip()]
    return sorted((f for f in flags if f["id"] in rank), key=lambda f: rank[f["id"]])


def run_card(params: Params, layout: Layout, selection: Selection, shown_source: str, command: str) -> str:
    """The card of a pipeline run's selection, from the summaries the earlier stages wrote.

    `shown_source` is the source as the card names it (as params.yaml spells it,
    not an absolute path on this machine)."""
    ingested = IngestSummary.load(layout.ingested)
    validated = ValidateSummary.load(layout.validated)
    raters = [ScoreSummary.load(layout.rater_scores(rater_name(r))) for r in params.score.raters]
    aggregated = AggregateSummary.load(layout.aggregated)
    report = layout.diversity_report
    diversity = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else None
    counts = {
        "rows_read": ingested.examples_read + ingested.rejects,
        "rejected_at_ingest": ingested.rejects,
        "duplicates_among_them": ingested.duplicates,
        "used_after_limit": ingested.examples,
        "rejected_at_validation": validated.rejects,
        **{f"of_them_contaminated_by_{name}": n for name, n in validated.contaminated.items()},
        "of_them_near_duplicates": validated.near_duplicates,
        "held_out_for_evaluation": validated.heldout,
        "rejected_at_scoring": aggregated.rejects,
        "scored": len(selection.scores),
        **({"of_them_semantic_duplicates": diversity["semantic_duplicates"]} if diversity else {}),
        "selected": len(selection.kept),
    }
    # Each stage recorded the settings it ran with; the card shows those, so it
    # describes the data as produced even when only the select stage re-ran.
    settings = {
        **ingested.settings,
        **validated.settings,
        **raters[0].settings,
        **aggregated.settings,
        "select": {
            k: v for k, v in dataclasses.asdict(params.select).items() if k in METHOD_KEYS[params.select.method]
        },
    }
    settings["ingest"] = {**settings["ingest"], "source": shown_source}
    return dataset_card(
        name="Selective Alpaca",
        sources=[{**s, "source": shown_source} for s in ingested.sources],
        counts=counts,
        settings=settings,
        raters=raters,
        weights=aggregated.weights,
        scores=selection.scores,
        kept_scores=selection.kept_scores,
        command=command,
        diversity=diversity,
        flagged=selected_flags(layout, selection.kept),
        method=params.select.method,
    )
