"""Compare fine-tuned variants metric by metric: means with bootstrap intervals and
paired differences against a reference variant (by default `random`).

Input: `results[variant][metric] = (question_ids, scores)`, one score per question.

`Comparison.to_json()` returns (JSON-serialisable; variants and metrics in display order):

    {
      "format": "selectit.comparison/1",
      "level": 0.95, "resamples": 2000, "seed": 0,
      "reference": "random", "reference_present": true,
      "metrics": [{"name": "heldout_nll", "key": "heldout_nll", "label": "held-out NLL ↓",
                   "higher_is_better": false}, ...],
      "variants": {
        "selectit": {
          "heldout_nll": {"mean": 2.314, "low": 2.20, "high": 2.43, "n": 500,
                          "vs_reference": {"diff": -0.052, "low": -0.09, "high": -0.01,
                                           "verdict": "better"}},
          "mmlu/acc": null,            # this variant has no scores for the metric
          ...
        },
        "random": {"heldout_nll": {..., "vs_reference": null}, ...},   # the reference itself
        ...
      }
    }

`vs_reference` is null for the reference, when the reference is absent, and when
the reference has no scores for that metric. `diff` is variant minus reference.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selectit.core.errors import InputError
from selectit.evaluation.stats import Interval, bootstrap_ci, paired_bootstrap

FORMAT = "selectit.comparison/1"

BETTER = "better"
WORSE = "worse"
NO_CLEAR_DIFFERENCE = "no clear difference"

# variant -> metric -> (question ids, scores)
Results = Mapping[str, Mapping[str, tuple[Sequence[str], Sequence[float]]]]


@dataclass(frozen=True)
class MetricSpec:
    """A metric as shown in the table; `name` is its key in the results."""

    name: str
    higher_is_better: bool
    label: str


@dataclass(frozen=True)
class Difference:
    """Variant minus reference over the same questions, and what it means for this metric."""

    interval: Interval
    verdict: str

    def to_dict(self) -> dict[str, float | str]:
        return {
            "diff": self.interval.estimate,
            "low": self.interval.low,
            "high": self.interval.high,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class Cell:
    """One variant on one metric: its mean with interval, and its difference from the reference."""

    interval: Interval
    n: int
    vs_reference: Difference | None

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.interval.estimate,
            "low": self.interval.low,
            "high": self.interval.high,
            "n": self.n,
            "vs_reference": None if self.vs_reference is None else self.vs_reference.to_dict(),
        }


@dataclass(frozen=True)
class Comparison:
    """The outcome of `compare_variants`; `cells[variant][metric]` is None where a variant has no scores."""

    metrics: tuple[MetricSpec, ...]
    reference: str
    cells: dict[str, dict[str, Cell | None]]
    level: float
    resamples: int
    seed: int

    @property
    def variants(self) -> list[str]:
        return list(self.cells)

    @property
    def reference_present(self) -> bool:
        return self.reference in self.cells

    def to_json(self) -> dict[str, object]:
        """The whole comparison as plain JSON types (structure in the module docstring)."""
        return {
            "format": FORMAT,
            "level": self.level,
            "resamples": self.resamples,
            "seed": self.seed,
            "reference": self.reference,
            "reference_present": self.reference_present,
            "metrics": [
                {"name": m.name, "key": metric_key(m.name), "label": m.label, "higher_is_better": m.higher_is_better}
                for m in self.metrics
            ],
            "variants": {
                variant: {name: None if cell is None else cell.to_dict() for name, cell in row.items()}
                for variant, row in self.cells.items()
            },
        }

    @classmethod
    def load(cls, path: Path) -> Comparison:
        """A comparison that `to_json` wrote to `path` (comparison.json)."""
        return cls.parse(json.loads(Path(path).read_text(encoding="utf-8")), path)

    @classmethod
    def parse(cls, data: object, path: Path) -> Comparison:
        """A comparison from what `to_json` wrote, read from `path` (named in errors)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{path}: not a {FORMAT} comparison (written by another version?); run compare again")

        try:
            return cls._from_json(data)
        except KeyError as missing:
            raise InputError(f"{path}: no {missing} (written by an older version?); run compare again") from None

    @classmethod
    def _from_json(cls, data: dict) -> Comparison:
        def cell(c: dict | None) -> Cell | None:
            if c is None:
                return None
            vs = c["vs_reference"]
            difference = None if vs is None else Difference(Interval(vs["diff"], vs["low"], vs["high"]), vs["verdict"])
            return Cell(Interval(c["mean"], c["low"], c["high"]), c["n"], difference)

        return cls(
            metrics=tuple(MetricSpec(m["name"], m["higher_is_better"], m["label"]) for m in data["metrics"]),
            reference=data["reference"],
            cells={v: {name: cell(c) for name, c in row.items()} for v, row in data["variants"].items()},
            level=data["level"],
            resamples=data["resamples"],
            seed=data["seed"],
        )

    def to_markdown(self) -> str:
        """A table of means with intervals, then a table of differences against the reference."""
        percent = f"{self.level * 100:g}%"
        header = ["variant"] + [_escape(m.label) for m in self.metrics]
        means = [
            [_escape(variant)] + [_format_mean(row[m.name]) for m in self.metrics]
            for variant, row in self.cells.items()
        ]
        lines = [
            f"Means over questions with {percent} percentile bootstrap intervals ({self.resamples} resamples, "
            f"seed {self.seed}); reference variant: `{self.reference}`.",
            "",
            *_table(header, means),
            "",
        ]
        if not self.reference_present:
            lines.append(
                f"No differences: the reference variant `{self.reference}` is not among the results "
                f"({', '.join(f'`{v}`' for v in self.cells)})."
            )
            return "\n".join(lines) + "\n"
        differences = [
            [_escape(variant)] + [_format_difference(row[m.name]) for m in self.metrics]
            for variant, row in self.cells.items()
            if variant != self.reference
        ]
        lines += [
            f"Difference from `{self.reference}` (variant minus reference, paired over the same questions, "
            f"{percent} paired bootstrap interval); a verdict only where the interval excludes 0:",
            "",
            *_table(header, differences),
        ]
        return "\n".join(lines) + "\n"

    def dvc_metrics(self) -> dict[str, dict[str, float]]:
        """`{variant: {key: mean, key_low, key_high, key_vs_<reference>: diff}}` for a DVC metrics file."""
        return {variant: self.mlflow_metrics(variant) for variant in self.cells}

    def mlflow_metrics(self, variant: str) -> dict[str, float]:
        """The flat metrics of one variant, named as in `dvc_metrics` (plain keys MLflow accepts)."""
        if variant not in self.cells:
            raise KeyError(f"no variant {variant!r}; variants: {self.variants}")
        vs = f"_vs_{metric_key(self.reference)}"
        flat: dict[str, float] = {}
        for m in self.metrics:
            cell = self.cells[variant][m.name]
            if cell is None:
                continue
            key = metric_key(m.name)
            flat[key] = cell.interval.estimate
            flat[key + "_low"] = cell.interval.low
            flat[key + "_high"] = cell.interval.high
            if cell.vs_reference is not None:
                flat[key + vs] = cell.vs_reference.interval.estimate
        return flat


def metric_key(name: str) -> str:
    """`name` as a plain key of letters, digits and underscores ("mmlu/acc" -> "mmlu_acc")."""
    key = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    if not key:
        raise ValueError(f"metric name {name!r} has no letters or digits to build a key from")
    return key


def verdict(interval: Interval, higher_is_better: bool) -> str:
    """BETTER or WORSE when the difference interval excludes 0 (per `higher_is_better`), else NO_CLEAR_DIFFERENCE."""
    if interval.low > 0:
        higher = True
    elif interval.high < 0:
        higher = False
    else:
        return NO_CLEAR_DIFFERENCE
    return BETTER if higher == higher_is_better else WORSE


def compare_variants(
    results: Results,
    metrics: Sequence[MetricSpec],
    *,
    reference: str,
    resamples: int,
    level: float,
    seed: int,
) -> Comparison:
    """Means with bootstrap intervals for every variant and metric, and paired differences vs `reference`.

    Every variant must answer the same questions for a metric: question ids are
    matched, not positions, and differing id sets are an error. A variant
    without scores for a metric gets an empty cell; an absent reference only
    leaves out the differences.
    """
    if not results:
        raise ValueError("no variants to compare")
    _check_metrics(results, metrics, reference)
    aligned = {
        variant: {m.name: _sorted_by_id(variant, m.name, by_metric[m.name]) for m in metrics if m.name in by_metric}
        for variant, by_metric in results.items()
    }
    base = aligned.get(reference, {})
    cells: dict[str, dict[str, Cell | None]] = {}
    for variant, by_metric in aligned.items():
        cells[variant] = {}
        for m in metrics:
            if m.name not in by_metric:
                cells[variant][m.name] = None
                continue
            ids, scores = by_metric[m.name]
            interval = bootstrap_ci(scores, resamples=resamples, level=level, seed=seed)
            difference = None
            if variant != reference and m.name in base:
                _check_same_ids(variant, reference, m.name, ids, base[m.name][0])
                diff = paired_bootstrap(scores, base[m.name][1], resamples=resamples, level=level, seed=seed)
                difference = Difference(diff, verdict(diff, m.higher_is_better))
            cells[variant][m.name] = Cell(interval, len(ids), difference)
    return Comparison(tuple(metrics), reference, cells, level, resamples, seed)


def _check_metrics(results: Results, metrics: Sequence[MetricSpec], reference: str) -> None:
    if not metrics:
        raise ValueError("no metrics to compare")
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names repeat: {names}")
    known = sorted({name for by_metric in results.values() for name in by_metric})
    for name in names:
        if name not in known:
            raise ValueError(f"metric {name!r}: no variant has scores for it; metrics in the results: {known}")
    # Every flat key (dvc_metrics, mlflow_metrics) must name exactly one number:
    # "mmlu/acc" and "mmlu-acc", or "x" and "x_low", would overwrite each other.
    vs = f"_vs_{metric_key(reference)}"
    owner: dict[str, str] = {}
    for name in names:
        key = metric_key(name)
        for flat in (key, key + "_low", key + "_high", key + vs):
            if flat in owner and owner[flat] != name:
                raise ValueError(f"metrics {owner[flat]!r} and {name!r} both give the key {flat!r}; rename one")
            owner[flat] = name


def _sorted_by_id(
    variant: str, metric: str, pair: tuple[Sequence[str], Sequence[float]]
) -> tuple[list[str], np.ndarray]:
    """Ids and scores ordered by id, so the bootstrap does not depend on the order questions were stored in."""
    ids, scores = pair
    ids = [str(i) for i in ids]
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or len(ids) != len(values):
        raise ValueError(f"variant {variant!r}, metric {metric!r}: {len(ids)} question ids but {values.size} scores")
    if not ids:
        raise ValueError(f"variant {variant!r}, metric {metric!r}: no questions")
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise ValueError(f"variant {variant!r}, metric {metric!r}: {bad} of {len(ids)} scores are NaN or infinite")
    if len(set(ids)) != len(ids):
        repeated = len(ids) - len(set(ids))
        raise ValueError(f"variant {variant!r}, metric {metric!r}: {repeated} question id(s) repeat")
    order = sorted(range(len(ids)), key=ids.__getitem__)
    return [ids[i] for i in order], values[order]


def _check_same_ids(variant: str, reference: str, metric: str, ids: list[str], reference_ids: list[str]) -> None:
    # Both lists are sorted and unique, so equal sets mean equal lists and the
    # scores are already aligned question by question.
    if ids == reference_ids:
        return
    own, theirs = set(ids), set(reference_ids)
    only_here, only_there = len(own - theirs), len(theirs - own)
    raise ValueError(
        f"variant {variant!r}, metric {metric!r}: {only_here + only_there} question ids differ from reference "
        f"{reference!r} ({only_here} only in {variant!r}, {only_there} only in {reference!r}); "
        "every variant must answer the same questions"
    )


def _format_mean(cell: Cell | None) -> str:
    if cell is None:
        return "n/a"
    i = cell.interval
    return f"{i.estimate:.3f} [{i.low:.2f}, {i.high:.2f}]"


def _format_difference(cell: Cell | None) -> str:
    if cell is None or cell.vs_reference is None:
        return "n/a"
    i = cell.vs_reference.interval
    return f"{i.estimate:+.3f} [{i.low:+.2f}, {i.high:+.2f}] {cell.vs_reference.verdict}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _escape(text: str) -> str:
    """A label or name that cannot break the table (a "|" would start a new column)."""
    return text.replace("|", "\\|")
