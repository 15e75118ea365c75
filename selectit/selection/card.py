"""The dataset card written next to the selection."""

from __future__ import annotations

import numpy as np
import yaml

from selectit.summaries import ScoreSummary

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
) -> str:
    """The card as Markdown; `settings` are the nested settings each stage ran with."""
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
    settings_block = yaml.safe_dump(settings, sort_keys=False, allow_unicode=True).rstrip()
    return f"""# {name}

A subset of instruction-tuning data chosen with SelectIT (arXiv 2402.16705):
rater models scored every example by the uncertainty of their own ratings at
token, sentence (across rating prompts) and model (across raters) level, and
the top share was kept.

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

Model-level score quantiles (min, 25%, median, 75%, max) over all scored
examples: {", ".join(f"{q:.3f}" for q in quantiles)}. Lowest kept score: {threshold:.3f}.

```
{_histogram(scores)}
```

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
