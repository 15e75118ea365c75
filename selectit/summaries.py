"""What each stage produced, as typed values: returned by its task and flow, written
beside its outputs as summary.json, and read back by later stages (the dataset card).

Each summary records the settings its stage ran with, so a later stage describes
the data as it was produced even when only that later stage re-ran.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

from selectit.core.errors import InputError
from selectit.core.io import write_json
from selectit.core.layout import Layout
from selectit.core.stages import Stage, stage_id

T = TypeVar("T", bound="StageSummary")


@dataclass
class StageSummary:
    FILE = "summary.json"
    STAGE: ClassVar[Stage]  # the stage that writes it

    def save(self, folder: Path) -> None:
        write_json(Path(folder) / self.FILE, dataclasses.asdict(self))

    @classmethod
    def load(cls: type[T], folder: Path, item: str | None = None) -> T:
        """`item`: the rater or variant of a per-item stage, named in the error when it is missing."""
        path = Path(folder) / cls.FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            stage = stage_id(cls.STAGE, item)
            raise InputError(f"{path}: missing (its stage has not finished); run the {stage} stage first") from None
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(raw, dict) or not names <= set(raw):
            raise InputError(f"{path}: not a {cls.__name__} (written by another version?); re-run its stage")
        return cls(**{k: v for k, v in raw.items() if k in names})

    @classmethod
    def discard(cls, folder: Path) -> None:
        """Called when a stage starts: until it finishes, its outputs are not current, so
        a later stage refuses them rather than taking a failed run's leftovers."""
        (Path(folder) / cls.FILE).unlink(missing_ok=True)

    @classmethod
    def load_current(cls: type[T], folder: Path, sections: Mapping[str, object], item: str | None = None) -> T:
        """The summary of the stage's finished run, which must have used these settings
        (params.yaml section -> its typed value; selectit/stages.py says which sections
        a stage depends on), else its outputs belong to another run."""
        summary = cls.load(folder, item)
        for section, settings in sections.items():
            recorded = summary.settings.get(section) or {}
            current = json.loads(json.dumps(dataclasses.asdict(settings)))  # as the summary stored them
            differ = [k for k in sorted(set(recorded) | set(current)) if recorded.get(k) != current.get(k)]
            if differ:
                shown = "; ".join(
                    f"{section}.{k} was {recorded.get(k)!r}, is now {current.get(k)!r}" for k in differ[:3]
                )
                stage = stage_id(cls.STAGE, item)
                raise InputError(f"{folder} was made with other settings ({shown}): run the {stage} stage again first")
        return summary

    def headline(self) -> dict[str, float | int | None]:
        """The numbers worth comparing across runs (MLflow metrics on the stage and parent runs)."""
        return {}


@dataclass
class IngestSummary(StageSummary):
    STAGE = Stage.INGEST

    sources: list[dict]  # per source: source (as in params), path read, sha256, bytes
    examples_read: int  # readable rows before ingest.limit
    examples: int  # rows passed on
    rejects: int
    duplicates: int  # among the rejects
    settings: dict = field(default_factory=dict)

    def headline(self):
        return {
            "examples_read": self.examples_read,
            "examples": self.examples,
            "rejects": self.rejects,
            "duplicates": self.duplicates,
        }


@dataclass
class ValidateSummary(StageSummary):
    STAGE = Stage.VALIDATE

    examples_in: int
    valid: int  # held-out ones included
    heldout: int  # of the valid ones, set aside for the held-out loss (validated/heldout.jsonl)
    rejects: int
    expectations: list[dict]  # one per expectation: expectation, column, success, counts
    data_docs: str | None
    contaminated: dict[str, int] = field(default_factory=dict)  # benchmark -> examples removed (hygiene)
    near_duplicates: int = 0  # examples removed as near-duplicates of earlier ones (hygiene)
    flagged: dict[str, int] = field(default_factory=dict)  # flag -> examples kept with it (validated/flagged.jsonl)
    settings: dict = field(default_factory=dict)

    def headline(self):
        return {
            "examples_in": self.examples_in,
            "valid": self.valid,
            "heldout": self.heldout,
            "rejects": self.rejects,
            "contaminated": sum(self.contaminated.values()),
            "near_duplicates": self.near_duplicates,
        }


@dataclass
class ScoreSummary(StageSummary):
    STAGE = Stage.SCORE

    rater: str
    cache_key: str
    ratings: int
    truncated: int
    rejects: int
    texts_run: int  # texts this run put through the model (cached shards excluded)
    shards_run: int
    mass: dict[str, float]  # mean, min, p05, median of the digit probability mass
    top_is_digit_share: float | None
    # The model's identity and speed, known only when this run loaded it.
    n_params: int | None = None
    dtype: str | None = None
    device: str | None = None
    digit_token_ids: list[int] | None = None
    seconds: float | None = None
    texts_per_second: float | None = None
    # With score.embeddings naming this rater: what its embeddings are (model, layer, pooling, dim, rows),
    # and how many texts this run put through the model for embeddings alone (older cached shards).
    embeddings: dict | None = None
    settings: dict = field(default_factory=dict)

    def headline(self):
        return {
            "ratings": self.ratings,
            "rejects": self.rejects,
            "texts_run": self.texts_run,
            "shards_run": self.shards_run,
            "texts_per_second": self.texts_per_second,
            "top_is_digit_share": self.top_is_digit_share,
            "embedded_alone": self.embeddings["embedded_alone"] if self.embeddings else None,
            **{f"mass_{k}": v for k, v in self.mass.items()},
        }


@dataclass
class AggregateSummary(StageSummary):
    STAGE = Stage.AGGREGATE

    examples: int
    rejects: int
    nan_scores: int
    weights: dict[str, float]
    quantiles: dict[str, float]  # min, p25, median, p75, max of the model-level score
    mass: dict[str, dict[str, float]]  # rater -> digit-mass statistics
    rating_checks: list[dict]
    # What data/embeddings holds (source, model, layer, pooling, dim, rows), None with score.embeddings off.
    embeddings: dict | None = None
    settings: dict = field(default_factory=dict)

    def headline(self):
        return {
            "examples": self.examples,
            "rejects": self.rejects,
            "nan_scores": self.nan_scores,
            **{f"score_{k}": v for k, v in self.quantiles.items()},
            **{f"weight.{k}": v for k, v in self.weights.items()},
            **{
                (s if s == "top_is_digit_share" else f"mass_{s}") + f".{rater}": v
                for rater, stats in self.mass.items()
                for s, v in stats.items()
            },
        }


@dataclass
class SelectSummary(StageSummary):
    STAGE = Stage.SELECT

    selected: int
    left_out: int
    ratio: float
    lowest_kept_score: float | None
    settings: dict = field(default_factory=dict)

    def headline(self):
        return {"selected": self.selected, "left_out": self.left_out, "lowest_kept_score": self.lowest_kept_score}


@dataclass
class FinetuneSummary(StageSummary):
    STAGE = Stage.FINETUNE

    variant: str
    examples: int  # training examples (0 for `base`)
    steps: int  # optimiser steps
    first_loss: float | None
    last_loss: float | None
    train_loss: float | None  # mean over the run
    resumed_from_step: int  # > 0 when an interrupted run was resumed
    seconds: float | None
    base_model: str  # as params names it
    base_content_id: str  # what the base model is, wherever it sits
    method: str  # lora | full | none (base)
    run_key: str  # settings + base model + data: an equal key means an equal result
    data_sha256: str  # of the training example ids, in order
    selection_sha256: str  # of the selection the variants were built against (select stage)
    settings: dict = field(default_factory=dict)

    def headline(self):
        return {
            "examples": self.examples,
            "steps": self.steps,
            "first_loss": self.first_loss,
            "last_loss": self.last_loss,
            "train_loss": self.train_loss,
            "seconds": self.seconds,
        }


@dataclass
class EvaluateSummary(StageSummary):
    STAGE = Stage.EVALUATE

    variant: str
    means: dict[str, float]  # metric -> mean over its questions
    questions: dict[str, int]  # metric -> how many
    seconds: float
    finetune_run_key: str  # the fine-tuning result evaluated (FinetuneSummary.run_key)
    settings: dict = field(default_factory=dict)

    def headline(self):
        return dict(self.means)


@dataclass
class AuditSummary(StageSummary):
    STAGE = Stage.AUDIT

    enabled: bool  # audit.enabled; off: nothing was rated and the report says so
    pairs_file: str | None
    pairs_sha256: str | None
    pairs: int  # judged pairs audited (usable, and every rater could read both responses)
    rejects: int  # lines of the pairs file that are not usable pairs (reports/audit/rejects.jsonl)
    unrated: int  # pairs with a response some rater cannot read
    seconds: float | None
    metrics: dict[str, float | None]  # audit.agreement, audit.agreement_shorter_wins, ... (as logged to MLflow)
    settings: dict = field(default_factory=dict)

    def headline(self):
        return dict(self.metrics)


def require_selection_stages(layout: Layout, raters: list[str], through: Stage = Stage.SELECT) -> None:
    """An InputError naming the first of ingest, validate, score@<rater>..., aggregate, select
    (up to `through`: score or select) that has not finished in `layout`: a command reading a
    later stage's files then says where the run stopped, not which of its files it looked for first."""
    order = [(Stage.INGEST, None, layout.ingested), (Stage.VALIDATE, None, layout.validated)]
    order += [(Stage.SCORE, rater, layout.rater_scores(rater)) for rater in raters]
    if through == Stage.SELECT:
        order += [(Stage.AGGREGATE, None, layout.aggregated), (Stage.SELECT, None, layout.selected)]
    for stage, item, folder in order:
        if not (folder / StageSummary.FILE).is_file():
            name = stage_id(stage, item)
            raise InputError(
                f"{layout.root}: the {name} stage has not finished here (no {folder / StageSummary.FILE}); "
                f"run the pipeline up to it (`dvc repro {name}`, or python -m flows.pipeline)"
            )


def reason_kind(reason: str) -> str:
    """The kind of a reject's reason, for counting: its words before the first detail
    ("duplicate of x.json row 3" -> "duplicate"; "validation: output empty: ..." -> "output empty")."""
    reason = reason.removeprefix("validation: ")
    return re.split(r"[:(;]| of | at | row ", reason, maxsplit=1)[0].strip() or "other"


def ledger_line(stage: str, rows_in: int, kept: int, ledger: Path, what: str = "kept") -> str:
    """The one line a stage ends with: rows in, kept, rejected by kind of reason, and where the rejects are."""
    kinds: Counter[str] = Counter()
    if Path(ledger).is_file():
        with Path(ledger).open(encoding="utf-8") as handle:
            kinds.update(reason_kind(json.loads(line).get("reason", "")) for line in handle if line.strip())
    rejected = sum(kinds.values())
    by_kind = f" ({', '.join(f'{n} {kind}' for kind, n in kinds.most_common())})" if rejected else ""
    return f"{stage}: {rows_in} rows in, {kept} {what}, {rejected} rejected{by_kind}; rejects and reasons: {ledger}"
