"""The selection's files: the kept examples as Alpaca JSON, the kept ids and the left-out ids.

The select stage and `selectit select` both write them with `write_selection`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from selectit.core.errors import InputError
from selectit.core.io import write_text
from selectit.core.records import Example, write_json_list
from selectit.selection.top import n_to_keep


@dataclass(frozen=True)
class Selection:
    kept: list[str]  # ids, best first
    left_out: list[str]  # ids, best first
    scores: np.ndarray  # the ranking's score of every scored example, best first (the model level for selectit)
    unscored: int  # examples that were read but never scored (left out unseen)
    kept_scores: np.ndarray  # the scores of the kept examples, best first

    @property
    def lowest_kept_score(self) -> float | None:
        return float(np.min(self.kept_scores)) if len(self.kept) else None


def write_selection(
    scores: pa.Table,
    examples: Iterable[Example],
    ratio: float,
    out: Path,
    selected_ids: Path,
    excluded_ids: Path,
    *,
    allow_unscored: bool,
    ranking: Sequence[str] | None = None,
    ranking_scores: Mapping[str, float] | None = None,
    choose: Callable[[Sequence[str]], tuple[list[str], list[str]]] | None = None,
) -> Selection:
    """Keep the top `ratio` of `scores`, or of `ranking` (another selector's order of the same
    ids, best first, with its `ranking_scores`); or what `choose` keeps of the ranked ids (the
    kept and the left-out ids, best first; select.diversity). Write the kept examples to `out`
    in the order of `examples` (a filtered copy of the input), then the kept and the left-out
    ids, best first.

    `examples` are streamed: no example is held longer than its row. Every scored example
    must be among them (`InputError` otherwise); an example that was never scored is an
    `InputError` too unless `allow_unscored`. On an error nothing is written."""
    ranked = scores.sort_by("rank")
    if ranking is None:
        ranking = ranked["example_id"].to_pylist()
        values = ranked["model_score"].to_numpy()
    else:
        values = np.array([ranking_scores[i] for i in ranking], dtype=np.float64)
    if choose is None:
        keep = n_to_keep(len(ranking), ratio)
        kept, left_out = list(ranking[:keep]), list(ranking[keep:])
    else:
        kept, left_out = choose(ranking)
    unscored = _Unscored(set(left_out))
    rows = _kept_rows(examples, kept, unscored, allow_unscored)
    write_json_list(rows, out)
    write_text(selected_ids, "".join(i + "\n" for i in kept))
    write_text(excluded_ids, "".join(i + "\n" for i in left_out))
    kept_set = set(kept)
    is_kept = np.array([i in kept_set for i in ranking], dtype=bool)
    return Selection(kept, left_out, values, unscored.count, values[is_kept])


@dataclass
class _Unscored:
    left_out: set[str]
    count: int = 0
    first: Example | None = None


def _kept_rows(
    examples: Iterable[Example], kept: list[str], unscored: _Unscored, allow_unscored: bool
) -> Iterator[dict[str, str]]:
    """The Alpaca rows of the kept examples. The checks run at the end of the stream, so
    an error leaves the output unwritten (it is written atomically)."""
    wanted, found, read = set(kept), set(), 0
    for example in examples:
        read += 1
        if example.id in wanted:
            found.add(example.id)
            yield {"instruction": example.instruction, "input": example.input, "output": example.output}
        elif example.id not in unscored.left_out:
            unscored.count += 1
            unscored.first = unscored.first or example
    missing = [i for i in kept if i not in found]
    if missing:
        raise InputError(
            f"{len(missing)} scored examples (e.g. {missing[0]}) are not in the inputs; pass the files that were scored"
        )
    if unscored.count and not allow_unscored:
        first = unscored.first
        raise InputError(
            f"{unscored.count} of {read} input examples were never scored (e.g. row {first.row} of {first.source}): "
            "the selection would drop them unseen; score them, pass only the files that were scored, "
            "or add --allow-unscored to select among the scored ones"
        )
