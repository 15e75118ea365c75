"""Every path a stage reads or writes under the data folder, defined once.

dvc.yaml's stage deps and outputs are generated from these paths (selectit/stages.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

EXAMPLES = "examples.jsonl"
REJECTS = "rejects.jsonl"


def model_cache() -> Path:
    """Where converted models and file digests are kept, outside every data folder (SELECTIT_CACHE)."""
    return Path(os.environ.get("SELECTIT_CACHE", Path.home() / ".cache" / "selectit"))


@dataclass(frozen=True)
class Layout:
    root: Path  # the data folder

    # ingest
    @property
    def ingested(self) -> Path:
        """examples.jsonl (the normalised rows), rejects.jsonl (rows that cannot be used, with their reason)
        and summary.json (source sha256, counts)."""
        return self.root / "ingested"

    @property
    def downloads(self) -> Path:
        """URL sources, downloaded once (through a .partial file) before they are read."""
        return self.root / "downloads"

    # validate
    @property
    def validated(self) -> Path:
        """examples.jsonl (the valid examples that are scored), heldout.jsonl, rejects.jsonl (each failing row
        with the expectation, benchmark question or near-duplicate it matched) and summary.json."""
        return self.root / "validated"

    @property
    def heldout(self) -> Path:
        """Valid examples set aside before scoring (validate.heldout), for the held-out loss."""
        return self.validated / "heldout.jsonl"

    @property
    def validation_docs(self) -> Path:
        """Great Expectations Data Docs of the validate stage's suite (index.html)."""
        return self.reports / "validation"

    # score
    def rater_scores(self, rater: str) -> Path:
        """One rater's ratings.parquet (example x prompt) and summary.json (throughput, digit mass)."""
        return self.root / "scores" / rater

    @property
    def shard_cache(self) -> Path:
        """Finished rating shards per rater, keyed by content: a re-run rates only what no shard holds."""
        return self.root / "cache" / "ratings"

    def rater_embeddings(self, rater: str) -> Path:
        """The examples' embeddings from this rater's own forward pass (score.embeddings names it)."""
        return self.rater_scores(rater) / "embeddings.parquet"

    @property
    def embedding_cache(self) -> Path:
        """Shard cache of a dedicated encoder's embeddings (score.embeddings: encoder)."""
        return self.root / "cache" / "embeddings"

    @property
    def embeddings(self) -> Path:
        """One embedding per scored example (selectit/core/embeddings.py), for semantic duplicates,
        diversity-aware selection and coverage."""
        return self.root / "embeddings" / "embeddings.parquet"

    # aggregate
    @property
    def aggregated(self) -> Path:
        """scores.parquet (sentence and model level per example, best first), rejects.jsonl (texts no rater
        could fit) and summary.json (rater weights, score quantiles, the rating checks)."""
        return self.root / "aggregated"

    @property
    def scores_table(self) -> Path:
        return self.aggregated / "scores.parquet"

    @property
    def rating_docs(self) -> Path:
        """Great Expectations Data Docs of the aggregate stage's checks of the rating tables."""
        return self.reports / "ratings"

    # select
    @property
    def selected(self) -> Path:
        """selective_alpaca.json (the top select.ratio as Alpaca JSON), dataset_card.md, selected_ids.txt,
        excluded_ids.txt and summary.json."""
        return self.root / "selected"

    @property
    def selection(self) -> Path:
        return self.selected / "selective_alpaca.json"

    @property
    def dataset_card(self) -> Path:
        """Source and hash, counts, rejects, settings, raters, score distribution, how to reproduce, licence."""
        return self.selected / "dataset_card.md"

    @property
    def selected_ids(self) -> Path:
        """Ids of the selection, best first (what the `selectit` variant trains on)."""
        return self.selected / "selected_ids.txt"

    @property
    def excluded_ids(self) -> Path:
        return self.selected / "excluded_ids.txt"

    @property
    def diversity_report(self) -> Path:
        """Coverage, clusters touched, leading verbs, length and overlap of each selection."""
        return self.selected / "diversity.json"

    def diverse_selection_ids(self, mode: str) -> Path:
        """Ids chosen from the ranking by one diversity mode, best first (the diversity variants)."""
        return self.selected / "by_diversity" / f"{mode}.txt"

    @property
    def method_scores(self) -> Path:
        """The scores of the selectors other than SelectIT that this run needed (select.method and
        the variants among length, ifd, learned): example_id and one column per selector."""
        return self.selected / "method_scores.parquet"

    @property
    def learned_model(self) -> Path:
        """The `learned` selector's pairwise model: features, means, scales, coefficients, CV agreement."""
        return self.selected / "learned_model.json"

    @property
    def selector_cache(self) -> Path:
        """The selectors' model runs, kept between runs: IFD losses of the pool (ifd-losses/), and the
        judged pairs' ratings and IFD (learned/)."""
        return self.root / "cache" / "selectors"

    # audit
    @property
    def audit(self) -> Path:
        """audit.json, audit.md, metrics.json (DVC metrics), rejects.jsonl and summary.json of the audit."""
        return self.reports / "audit"

    @property
    def audit_report(self) -> Path:
        return self.audit / "audit.json"

    @property
    def audit_metrics(self) -> Path:
        """The audit's agreement by scorer as DVC metrics (`dvc metrics show`)."""
        return self.audit / "metrics.json"

    @property
    def audit_cache(self) -> Path:
        """Shard cache of the audit's ratings (the score stage's kind, in a folder of its own: the
        score stage's cache is that stage's DVC output, and audit shards there would mark it changed)."""
        return self.root / "cache" / "audit"

    # finetune
    def finetuned(self, variant: str) -> Path:
        """One variant's result: summary.json, and model/ (a LoRA adapter or a whole model)."""
        return self.root / "finetuned" / variant

    def finetuned_model(self, variant: str) -> Path:
        return self.finetuned(variant) / "model"

    def finetune_checkpoints(self, variant: str) -> Path:
        """Trainer checkpoints of an unfinished run, for resuming; removed when it finishes."""
        return self.root / "cache" / "finetune" / variant

    # evaluate
    def evaluation(self, variant: str) -> Path:
        """One variant's per-question scores (questions.json) and summary.json."""
        return self.root / "evaluation" / variant

    # compare
    @property
    def comparison(self) -> Path:
        """comparison.md and comparison.json: every variant by metric, with intervals."""
        return self.reports / "comparison"

    @property
    def comparison_metrics(self) -> Path:
        """The comparison as DVC metrics (`dvc metrics show`, `dvc metrics diff`)."""
        return self.comparison / "metrics.json"

    # report
    @property
    def run_report(self) -> Path:
        """report.html (self-contained), summary.json, and plots/ (the CSV behind the plots, for `dvc plots`)."""
        return self.reports / "run"

    @property
    def run_report_html(self) -> Path:
        """The run report: one self-contained HTML page (plots inline, nothing from a CDN)."""
        return self.run_report / "report.html"

    # shared
    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @staticmethod
    def flagged(stage_folder: Path) -> Path:
        """Examples kept with a flag (a response cut to fit, ...): JSON lines {id, source, row, flag, detail}."""
        return stage_folder / "flagged.jsonl"

    @staticmethod
    def examples(stage_folder: Path) -> Path:
        return stage_folder / EXAMPLES

    @staticmethod
    def rejects(stage_folder: Path) -> Path:
        return stage_folder / REJECTS

    def ratings_table(self, rater: str) -> Path:
        return self.rater_scores(rater) / "ratings.parquet"
