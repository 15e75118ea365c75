"""The audit's result: every scorer's agreement with the judge, overall and by length
relation, beside the baselines, and the raters' rating validity; as JSON, Markdown,
MLflow metrics and DVC metrics.

`AuditReport.to_json()` (JSON-serialisable; scorers in display order):

    {
      "format": "selectit.audit/1", "enabled": true,
      "pairs_file": "...", "pairs_sha256": "...", "lines_read": 200, "pairs": 200,
      "rejects": [{"line": 7, "reason": "missing field 'preferred'"}, ...],
      "unrated": [{"pair_id": "...", "line": 12, "reason": "..."}, ...],
      "length_relations": {"longer_wins": 136, "shorter_wins": 61, "same_length": 3},
      "level": 0.95, "resamples": 2000, "seed": 0, "chance": 0.5,
      "weights": {"<rater>": 0.33, ...},
      "calibration": {"<rater>.<prompt>": [q_1, ..., q_K], ...},
      "generators": {"text_davinci_003 vs falcon-7b-instruct": 100, ...},
      "headline": "model",
      "scorers": [{"name": "model", "level": "model", "description": "...", "rater": null, "prompt": null,
                   "variant": "paper",
                   "all": {"agreement": 0.46, "low": 0.41, "high": 0.52, "n": 200, "wins": 92, "losses": 108,
                           "ties": 0, "tie_share": 0.0},
                   "by_length": {"longer_wins": {...}, "shorter_wins": {...}, "same_length": {...}},
                   "by_generators": {"<generator_a> vs <generator_b>": {...}, ...}}, ...],
      "validity": [{"rater": "...", "prompt": 0, "texts": 400, "digit_mass": 0.84,
                    "top_is_digit_share": 0.9, "truncated": 0}, ...],
      "seconds": 12.3, "settings": {...}
    }
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selectit.audit.agreement import (
    LONGER_WINS,
    RELATIONS,
    SAME_LENGTH,
    SHORTER_WINS,
    Agreement,
    agreement,
    agreement_by_relation,
    length_relations,
)
from selectit.audit.pairs import JudgedPair
from selectit.audit.scorers import MODEL, Scorer
from selectit.audit.validity import Validity
from selectit.core.errors import InputError
from selectit.core.records import Reject, read_rejects
from selectit.evaluation.stats import Interval

FORMAT = "selectit.audit/1"
CHANCE = 0.5  # a scorer that orders each pair by a coin flip

RELATION_LABELS = {
    LONGER_WINS: "preferred is longer",
    SHORTER_WINS: "preferred is shorter",
    SAME_LENGTH: "same length",
}


@dataclass(frozen=True)
class ScorerResult:
    scorer: Scorer
    overall: Agreement
    by_length: dict[str, Agreement]  # length relation -> agreement on those pairs
    by_generators: dict[str, Agreement] = field(default_factory=dict)  # when the pairs name their generators

    def to_dict(self) -> dict:
        s = self.scorer
        return {
            "name": s.name,
            "level": s.level,
            "description": s.description,
            "rater": s.rater,
            "prompt": s.prompt,
            "variant": s.variant,
            "all": self.overall.to_dict(),
            "by_length": {relation: a.to_dict() for relation, a in self.by_length.items()},
            "by_generators": {group: a.to_dict() for group, a in self.by_generators.items()},
        }

    def metrics(self) -> dict[str, float | None]:
        """`agreement`, its interval, the tie share, and agreement by length relation."""
        interval = self.overall.interval
        values = {
            "agreement": self.overall.agreement,
            "agreement_low": interval.low if interval else None,
            "agreement_high": interval.high if interval else None,
            "tie_share": self.overall.tie_share,
        }
        for relation in (LONGER_WINS, SHORTER_WINS):
            if relation in self.by_length:
                values[f"agreement_{relation}"] = self.by_length[relation].agreement
        return values


@dataclass
class AuditReport:
    pairs_file: str
    pairs_sha256: str
    lines_read: int
    rejects: list[Reject]  # lines of the pairs file that are not usable pairs
    unrated: list[dict]  # pairs with a response no rater could read: pair_id, line, reason
    length_relations: dict[str, int]  # pairs per length relation
    results: list[ScorerResult]  # SelectIT's scorers first, then the length baseline
    validity: list[Validity]
    weights: dict[str, float]
    resamples: int
    level: float
    seed: int
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)
    generators: dict[str, int] = field(default_factory=dict)  # pairs per generator pair, when named
    # "<rater>.<prompt>" -> the normalised digit distribution on content-free inputs (calibration)
    calibration: dict[str, list[float]] = field(default_factory=dict)
    # the scorer whose numbers are `audit.agreement`, ...: the model level the selection ranks by
    # (`model`, or `expected.model` under aggregate.token_score: expected)
    headline: str = MODEL

    @property
    def pairs(self) -> int:
        """Pairs audited: read, usable, and rated by every rater."""
        return sum(self.length_relations.values())

    def result(self, name: str) -> ScorerResult:
        return next(r for r in self.results if r.scorer.name == name)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "enabled": True,
            "pairs_file": self.pairs_file,
            "pairs_sha256": self.pairs_sha256,
            "lines_read": self.lines_read,
            "pairs": self.pairs,
            "rejects": [{"line": r.line, "reason": r.reason} for r in self.rejects],
            "unrated": self.unrated,
            "length_relations": self.length_relations,
            "level": self.level,
            "resamples": self.resamples,
            "seed": self.seed,
            "chance": CHANCE,
            "weights": self.weights,
            "calibration": self.calibration,
            "generators": self.generators,
            "headline": self.headline,
            "scorers": [r.to_dict() for r in self.results],
            "validity": [v.to_dict() for v in self.validity],
            "seconds": self.seconds,
            "settings": self.settings,
        }

    @classmethod
    def load(cls, report_json: Path, rejects_jsonl: Path) -> AuditReport | None:
        """The report that `to_json` wrote to report_json (audit.json), with its rejects
        from rejects.jsonl; None for an audit that audit.enabled switched off. The
        scorers' per-example scores are not stored: a loaded scorer has none."""
        data = json.loads(Path(report_json).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"{report_json}: not a {FORMAT} report (written by another version?); run the audit again")
        if not data["enabled"]:
            return None
        try:
            return cls._from_json(data, read_rejects(rejects_jsonl))
        except KeyError as missing:
            raise InputError(
                f"{report_json}: no {missing} (written by an older version?); run the audit again"
            ) from None

    @classmethod
    def _from_json(cls, data: dict, rejects: list[Reject]) -> AuditReport:
        return cls(
            pairs_file=data["pairs_file"],
            pairs_sha256=data["pairs_sha256"],
            lines_read=data["lines_read"],
            rejects=rejects,
            unrated=data["unrated"],
            length_relations=data["length_relations"],
            results=[_scorer_result(s) for s in data["scorers"]],
            validity=[Validity(**v) for v in data["validity"]],
            weights=data["weights"],
            resamples=data["resamples"],
            level=data["level"],
            seed=data["seed"],
            seconds=data["seconds"],
            settings=data["settings"],
            generators=data["generators"],
            calibration=data["calibration"],
            # audits written before the field was added ranked by the paper's model level
            headline=data.get("headline", MODEL),
        )

    def mlflow_metrics(self) -> dict[str, float | None]:
        """Flat metrics for the stage's and the pipeline's MLflow runs: the headline (the selection's
        model level) as `audit.agreement`, `audit.agreement_shorter_wins`, ...; every other scorer as
        `audit.<scorer>.agreement`, ...; rating validity as `audit.digit_mass.<rater>.<prompt>`."""
        metrics: dict[str, float | None] = {
            "audit.pairs": self.pairs,
            "audit.rejects": len(self.rejects),
            "audit.unrated": len(self.unrated),
            "audit.longer_wins_share": self.length_relations.get(LONGER_WINS, 0) / self.pairs if self.pairs else None,
        }
        for result in self.results:
            prefix = "audit." if result.scorer.name == self.headline else f"audit.{result.scorer.name}."
            metrics.update({prefix + k: v for k, v in result.metrics().items()})
        for v in self.validity:
            metrics[f"audit.digit_mass.{v.rater}.{v.prompt}"] = v.digit_mass
            metrics[f"audit.top_is_digit.{v.rater}.{v.prompt}"] = v.top_is_digit_share
        return metrics

    def dvc_metrics(self) -> dict:
        """Agreement by scorer, for `dvc metrics show` and `dvc exp show`."""
        return {"pairs": self.pairs, **{r.scorer.name: r.metrics() for r in self.results}}

    def to_markdown(self) -> str:
        relations = [r for r in RELATIONS if self.length_relations.get(r)]
        name = Path(self.pairs_file).name

        def header(relation: str) -> str:
            return f"{RELATION_LABELS[relation]} (n={self.length_relations[relation]})"

        counts = ", ".join(f"{RELATION_LABELS[r]} in {self.length_relations[r]}" for r in relations)
        lines = [
            "# Audit: does the score pick the judge's preferred response?",
            "",
            f"{self.pairs} judged pairs from `{name}` (sha256 {self.pairs_sha256[:12]}…): {counts}. "
            f"{len(self.rejects)} line(s) rejected, {len(self.unrated)} pair(s) no rater could read.",
            "",
            "Agreement: the share of pairs where the preferred response scores higher; ties count as "
            f"misses and are shown apart. {self.level:.0%} percentile bootstrap intervals over pairs "
            f"({self.resamples} resamples, seed {self.seed}).",
            "",
            "| scorer | agreement | ties | " + " | ".join(header(r) for r in relations),
            "| --- | --- | --- | " + " | ".join("---" for _ in relations),
        ]
        for result in self.results:
            label = f"`{result.scorer.name}`: {result.scorer.description}"
            if result.scorer.name == self.headline:
                label = f"**{label} (the selection's ranking)**"
            cells = [_cell(result.by_length.get(r)) for r in relations]
            lines.append(f"| {label} | {_cell(result.overall)} | {result.overall.ties} | " + " | ".join(cells))
        lines.append("| chance | 50.0% | | " + " | ".join("50.0%" for _ in relations))
        if len(self.generators) > 1:
            groups = list(self.generators)
            lines += [
                "",
                "## By generator pair",
                "",
                "| scorer | " + " | ".join(f"{g} (n={self.generators[g]})" for g in groups),
                "| --- | " + " | ".join("---" for _ in groups),
            ]
            for result in self.results:
                cells = [_cell(result.by_generators.get(g)) for g in groups]
                lines.append(f"| `{result.scorer.name}` | " + " | ".join(cells))
        lines += [
            "",
            "## Rating validity",
            "",
            "Per rater and prompt on the same texts: the mean probability on the digits 1..K, and the share "
            "of texts whose most likely next token is one of them.",
            "",
            "| rater | prompt | texts | digit mass | top token a digit | truncated |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for v in self.validity:
            lines.append(
                f"| {v.rater} | {v.prompt} | {v.texts} | {v.digit_mass:.3f} | {v.top_is_digit_share:.1%} "
                f"| {v.truncated} |"
            )
        return "\n".join(lines) + "\n"


def _agreement(stored: dict) -> Agreement:
    """An Agreement from its `to_dict`."""
    interval = None if stored["agreement"] is None else Interval(stored["agreement"], stored["low"], stored["high"])
    return Agreement(stored["n"], stored["wins"], stored["losses"], stored["ties"], interval)


def _scorer_result(stored: dict) -> ScorerResult:
    """A ScorerResult from its `to_dict`, without the per-example scores (not stored)."""
    scorer = Scorer(
        stored["name"], stored["level"], stored["description"], {}, stored["rater"], stored["prompt"], stored["variant"]
    )
    return ScorerResult(
        scorer,
        _agreement(stored["all"]),
        {relation: _agreement(a) for relation, a in stored["by_length"].items()},
        {group: _agreement(a) for group, a in stored["by_generators"].items()},
    )


def _cell(result: Agreement | None) -> str:
    if result is None or result.interval is None:
        return "–"
    i = result.interval
    return f"{i.estimate:.1%} [{i.low:.1%}, {i.high:.1%}]"


def judge_scorers(
    pairs: Sequence[JudgedPair], scorers: Sequence[Scorer], *, resamples: int, level: float, seed: int
) -> tuple[list[ScorerResult], dict[str, int]]:
    """Each scorer's agreement with the judge on these pairs, overall and by length relation;
    and how many pairs fall in each length relation. Every scorer needs a score for both
    responses of every pair."""
    lengths = np.array([[len(p.response(p.preferred)), len(p.response(p.other))] for p in pairs]).reshape(-1, 2)
    relations = length_relations(lengths[:, 0], lengths[:, 1])
    generators = np.array([p.generators for p in pairs], dtype=object)
    groups = list(dict.fromkeys(g for g in generators if g))
    bootstrap = {"resamples": resamples, "level": level, "seed": seed}
    results = []
    for scorer in scorers:
        preferred = np.array([scorer.scores[p.example_id(p.preferred)] for p in pairs], dtype=np.float64)
        other = np.array([scorer.scores[p.example_id(p.other)] for p in pairs], dtype=np.float64)
        results.append(
            ScorerResult(
                scorer,
                agreement(preferred, other, **bootstrap),
                agreement_by_relation(preferred, other, relations, **bootstrap),
                {
                    g: agreement(preferred[mask], other[mask], **bootstrap)
                    for g in groups
                    if (mask := generators == g).any()
                },
            )
        )
    counts = {r: int((relations == r).sum()) for r in RELATIONS if (relations == r).any()}
    return results, counts
