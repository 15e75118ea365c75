"""The stage registry: what each pipeline stage runs, reads, writes and depends on.

dvc.yaml is generated from it (`make dvc-yaml`, i.e. `python -m selectit.stages >
dvc.yaml`): per stage its command (`python -m flows.<stage>`), the params.yaml
keys it depends on, its data and other deps, its outputs, metrics and plots; its
code deps are the project files its flow module loads (`project_modules`, the
import graph), so a change to any of them re-runs it and no other change does.
The flows check their inputs are current with `load_current`, against the
params sections the registry gives the stage that wrote them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from selectit.config import Params, is_remote
from selectit.core.catalog import rater_name
from selectit.core.errors import InputError
from selectit.core.io import file_sha256
from selectit.core.layout import Layout
from selectit.core.stages import Stage
from selectit.provenance import PROJECT_ROOT, project_modules
from selectit.summaries import (
    AggregateSummary,
    AuditSummary,
    EvaluateSummary,
    FinetuneSummary,
    IngestSummary,
    ScoreSummary,
    SelectSummary,
    StageSummary,
    ValidateSummary,
)

ITEM = "${item}"  # DVC's foreach variable: the rater or variant of one expanded stage
DATA = Layout(Path("data"))  # the data folder as dvc.yaml names it, relative to the project
# Every output goes into DVC's cache, the metrics and plots too: data/ is not in git, so `dvc push`
# and `dvc pull` are how another machine (docs/guides/team-stack.md) gets all of a run, and how
# its `dvc status` comes out up to date.
WORKING_CACHE = {"persist": True}  # kept between runs, and pushed: another machine resumes from it


@dataclass(frozen=True)
class Entry:
    """One item of a dvc.yaml list (a path or a params key), with its DVC options and comments."""

    value: str
    options: Mapping[str, object] = field(default_factory=dict)  # persist, cache, x, y, title ...
    comment: str = ""  # after it on its line
    note: tuple[str, ...] = ()  # comment lines above it


def _entries(values) -> tuple[Entry, ...]:
    return tuple(Entry(v.as_posix() if isinstance(v, Path) else v) for v in values)


@dataclass(frozen=True)
class StageSpec:
    stage: Stage
    summary: type[StageSummary] | None  # what it writes beside its outputs (summary.json), if anything
    summary_folder: Callable[[Layout, str | None], Path] | None  # where, for the item (rater, variant) or None
    params: tuple[Entry, ...]  # params.yaml sections and keys its outputs depend on
    deps: tuple[Entry, ...]  # data and other files it reads; its code is added from the import graph
    outs: tuple[Entry, ...]
    metrics: tuple[Entry, ...] = ()
    plots: tuple[Entry, ...] = ()
    foreach: str | None = None  # the params list it runs once per item of
    item_option: str | None = None  # how its flow takes the item on the command line
    note: tuple[str, ...] = ()  # comment lines above it in dvc.yaml

    @property
    def flow_module(self) -> str:
        return f"flows.{self.stage}"

    @property
    def cmd(self) -> str:
        cmd = f"python -m {self.flow_module}"
        return f"{cmd} {self.item_option} {ITEM}" if self.item_option else cmd

    @property
    def sections(self) -> tuple[str, ...]:
        """The whole params sections it depends on: `load_current` takes its outputs only while
        the settings its summary recorded for these are what params.yaml says now."""
        return tuple(p.value for p in self.params if "." not in p.value)

    def code_deps(self, root: Path = PROJECT_ROOT) -> list[str]:
        return [p.as_posix() for p in project_modules(self.flow_module, root=root)]


def _stage_folder(path: Callable[[Layout], Path]) -> Callable[[Layout, str | None], Path]:
    """The summary folder of a stage that runs once (it has no item)."""
    return lambda layout, item: path(layout)


STAGES: dict[Stage, StageSpec] = {
    spec.stage: spec
    for spec in [
        StageSpec(
            Stage.INGEST,
            IngestSummary,
            _stage_folder(lambda layout: layout.ingested),
            params=_entries(["ingest"]),
            deps=_entries(["${ingest.source}"]),
            outs=_entries([DATA.ingested]),
        ),
        StageSpec(
            Stage.VALIDATE,
            ValidateSummary,
            _stage_folder(lambda layout: layout.validated),
            params=_entries(["validate", "hygiene", "evaluate.benchmarks_dir"]),
            deps=_entries([DATA.ingested, "${evaluate.benchmarks_dir}"]),
            outs=_entries([DATA.validated, DATA.validation_docs]),
        ),
        StageSpec(
            Stage.SCORE,
            ScoreSummary,
            lambda layout, rater: layout.rater_scores(rater_name(rater)),
            params=_entries(["score"]),
            deps=_entries([DATA.validated, "selectit/core/prompt_sets"]),
            outs=(
                Entry(DATA.rater_scores(ITEM).as_posix()),
                Entry(
                    (DATA.shard_cache / ITEM).as_posix(),
                    WORKING_CACHE,
                    note=(
                        "The shard cache survives re-runs (persist), so a re-run rates only new",
                        "or unfinished shards; pushed with the rest, so another clone does not rate again.",
                    ),
                ),
            ),
            foreach="score.raters",
            item_option="--rater",
        ),
        StageSpec(
            Stage.AGGREGATE,
            AggregateSummary,
            _stage_folder(lambda layout: layout.aggregated),
            params=(
                *_entries(["aggregate", "score.raters", "score.num_prompts"]),
                Entry("score.embeddings", comment="whose embeddings data/embeddings holds"),
                Entry("score.embedding_encoder"),
                Entry("score.device", comment="where the encoder runs"),
            ),
            deps=_entries([DATA.validated, DATA.rater_scores(ITEM).parent]),
            outs=(
                *_entries([DATA.aggregated, DATA.rating_docs, DATA.embeddings.parent]),
                Entry(
                    DATA.embedding_cache.as_posix(),
                    WORKING_CACHE,
                    note=("A dedicated encoder's embedding shards (score.embeddings: encoder), kept between runs.",),
                ),
            ),
            note=(
                "Also writes the embeddings of the scored examples (data/embeddings) from score.embeddings:",
                "a rater's, which its score stage kept, or a dedicated encoder's, run here.",
            ),
        ),
        StageSpec(
            Stage.SELECT,
            SelectSummary,
            _stage_folder(lambda layout: layout.selected),
            params=(
                Entry("select"),
                Entry("score", comment="the raters' summaries in the card; `learned` rates judged pairs as they were"),
                Entry("aggregate.alpha", comment="`learned`: the sentence-level feature"),
                Entry("aggregate.authors_softmax"),
                Entry("finetune.variants", comment="the selectors whose scores the variants need (ifd, learned)"),
                Entry("finetune.seed", comment="the random baseline diversity.json describes"),
                Entry("evaluate.seed", comment="`learned`: the folds' pair orientation"),
                Entry("evaluate.preference_pairs", comment="`learned` is never fitted on the evaluation's pairs"),
                Entry("evaluate.preference_file"),
                Entry("evaluate.preference_seed"),
            ),
            deps=(
                *_entries(
                    [
                        DATA.ingested,
                        DATA.validated,
                        DATA.rater_scores(ITEM).parent,
                        DATA.aggregated,
                        DATA.embeddings.parent,
                    ]
                ),
                Entry("${select.learned_pairs}", comment="the judged pairs `learned` is fitted on"),
                Entry("${evaluate.preference_file}", comment="the evaluation's pairs, which `learned` leaves out"),
            ),
            outs=(
                *_entries([DATA.selected]),
                Entry(
                    DATA.selector_cache.as_posix(),
                    WORKING_CACHE,
                    note=("The selectors' model runs (IFD losses, the judged pairs' ratings), kept between runs.",),
                ),
            ),
        ),
        StageSpec(
            Stage.AUDIT,
            AuditSummary,
            _stage_folder(lambda layout: layout.audit),
            params=_entries(
                [
                    "audit",
                    "score",
                    "aggregate",
                    "select.learned_folds",
                    "evaluate.bootstrap_resamples",
                    "evaluate.confidence",
                    "evaluate.seed",
                ]
            ),
            deps=_entries(["${audit.pairs}", "selectit/core/prompt_sets"]),
            outs=(
                *_entries(
                    [
                        DATA.audit_report,
                        DATA.audit / "audit.md",
                        Layout.rejects(DATA.audit),
                        DATA.audit / StageSummary.FILE,
                    ]
                ),
                Entry(
                    DATA.audit_cache.as_posix(),
                    WORKING_CACHE,
                    note=("The audit's rating shards, kept between runs as the score stage keeps its own.",),
                ),
            ),
            metrics=(Entry(DATA.audit_metrics.as_posix()),),
            note=("Optional: with audit.enabled false it only writes a note that it is switched off.",),
        ),
        StageSpec(
            Stage.FINETUNE,
            FinetuneSummary,
            lambda layout, variant: layout.finetuned(variant),
            params=_entries(["finetune"]),
            deps=_entries([DATA.validated, DATA.aggregated, DATA.selected]),
            outs=(
                Entry(DATA.finetuned(ITEM).as_posix()),
                Entry(
                    DATA.finetune_checkpoints(ITEM).as_posix(),
                    WORKING_CACHE,
                    note=("Checkpoints of an unfinished run, for resuming after a crash; removed when it finishes.",),
                ),
            ),
            foreach="finetune.variants",
            item_option="--variant",
        ),
        StageSpec(
            Stage.EVALUATE,
            EvaluateSummary,
            lambda layout, variant: layout.evaluation(variant),
            params=(
                *_entries(
                    [
                        "evaluate.heldout_loss",
                        "evaluate.benchmarks",
                        "evaluate.benchmarks_dir",
                        "evaluate.run_code",
                        "evaluate.max_new_tokens",
                        "evaluate.batch_size",
                        "evaluate.judge",
                    ]
                ),
                Entry("evaluate.seed", comment="the judged questions and alpaca-eval's order swaps"),
                *_entries(["evaluate.preference_pairs", "evaluate.preference_file", "evaluate.preference_seed"]),
                *_entries(
                    ["finetune.base_model", "finetune.max_length", "finetune.device", "finetune.trust_remote_code"]
                ),
            ),
            deps=(
                Entry(DATA.finetuned(ITEM).as_posix()),
                Entry(DATA.validated.as_posix(), comment="the held-out examples"),
                Entry("${evaluate.benchmarks_dir}"),
                Entry("${evaluate.preference_file}", comment="the judged pairs of preference accuracy"),
                Entry("selectit/evaluation/tasks"),
            ),
            outs=_entries([DATA.evaluation(ITEM)]),
            foreach="finetune.variants",
            item_option="--variant",
        ),
        StageSpec(
            Stage.COMPARE,
            None,
            None,
            params=_entries(
                [
                    "finetune.variants",
                    "evaluate.reference",
                    "evaluate.bootstrap_resamples",
                    "evaluate.confidence",
                    "evaluate.seed",
                ]
            ),
            deps=_entries([DATA.evaluation(ITEM).parent]),
            outs=_entries([DATA.comparison / "comparison.md", DATA.comparison / "comparison.json"]),
            metrics=(Entry(DATA.comparison_metrics.as_posix()),),
        ),
        StageSpec(
            Stage.REPORT,
            None,
            None,
            params=_entries(
                [
                    "select",
                    "aggregate",
                    "score.raters",
                    "score.num_prompts",
                    "score.k",
                    "finetune.variants",
                    "report",
                ]
            ),
            deps=_entries(
                [
                    DATA.validated,
                    DATA.rater_scores(ITEM).parent,
                    DATA.aggregated,
                    DATA.selected,
                    DATA.finetuned(ITEM).parent,
                    DATA.comparison / "comparison.json",
                ]
            ),
            outs=_entries([DATA.run_report_html]),
            plots=(
                Entry(
                    (DATA.run_report / "plots" / "scores.csv").as_posix(),
                    {"x": "rank", "y": "model_score", "title": "model-level score by rank"},
                    note=("`dvc plots show` draws these; the report itself embeds its own pictures.",),
                ),
                Entry(
                    (DATA.run_report / "plots" / "stability_ratio.csv").as_posix(),
                    {
                        "x": "ratio",
                        "y": "jaccard_mean",
                        "title": "Jaccard overlap of the top R% under resampled prompts and raters, over R",
                    },
                ),
                Entry(
                    (DATA.run_report / "plots" / "stability_alpha.csv").as_posix(),
                    {
                        "x": "alpha",
                        "y": "jaccard_mean",
                        "title": "Jaccard overlap of the selection under resampled prompts and raters, over alpha",
                    },
                ),
                Entry(
                    (DATA.run_report / "plots" / "rater_overlap.csv").as_posix(),
                    {
                        "template": "bar_horizontal",
                        "x": "share of selection",
                        "y": "rater",
                        "title": "share of the selection in each rater's own top R%",
                    },
                ),
                Entry(
                    (DATA.run_report / "plots" / "losses.csv").as_posix(),
                    {
                        "template": "lines_by_variant",
                        "x": "step",
                        "y": "loss",
                        "title": "training loss per variant",
                    },
                    note=(
                        "Long format (variant, step, loss); the project's template .dvc/plots/lines_by_variant.json",
                        "draws one line per variant (DVC's own templates colour by file and revision only).",
                    ),
                ),
            ),
        ),
    ]
}


def load_current(stage: Stage, layout: Layout, params: Params, item: str | None = None) -> StageSummary:
    """The summary of `stage`'s finished run (of `item`: its rater or variant), which must
    have run with params.yaml's sections as they are now (else its outputs are another run's)."""
    spec = STAGES[stage]
    if spec.summary is None or spec.summary_folder is None:
        raise ValueError(f"the {stage} stage writes no summary")
    sections = {section: getattr(params, section) for section in spec.sections}
    return spec.summary.load_current(spec.summary_folder(layout, item), sections, item)


def check_ingested(layout: Layout, params: Params) -> IngestSummary:
    """Ingest's outputs are current: made with these settings, from the source file as it is now."""
    summary = load_current(Stage.INGEST, layout, params)
    for source in summary.sources:
        path = Path(source["path"])
        if not is_remote(source["source"]) and path.is_file() and file_sha256(path) != source["sha256"]:
            raise InputError(f"{path} changed since it was ingested: run the {Stage.INGEST} stage again first")
    return summary


HEADER = """\
# Generated from selectit/stages.py by `make dvc-yaml`: edit the registry there, not this file.
# The pipeline as DVC stages; each runs one Prefect flow (flows/<stage>.py) in
# ephemeral mode. Every stage lists exactly the params.yaml sections that change
# its outputs, so `dvc exp run -S select.ratio=0.1` re-runs only `select`.
# `tracking` is left out on purpose: renaming the MLflow experiment must not
# recompute data.
"""
CODE_DEPS_NOTE = "every project file the stage's command loads (selectit.provenance.project_modules)"


def _lines(key: str, entries: tuple[Entry, ...], indent: int, note: tuple[str, ...] = ()) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}# {line}" for line in note] + [f"{pad}{key}:"]
    for entry in entries:
        lines += [f"{pad}  # {line}" for line in entry.note]
        comment = f"  # {entry.comment}" if entry.comment else ""
        lines.append(f"{pad}  - {entry.value}{':' if entry.options else ''}{comment}")
        lines += [f"{pad}      {k}: {_scalar(v)}" for k, v in entry.options.items()]
    return lines


def _scalar(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def stage_yaml(spec: StageSpec, root: Path = PROJECT_ROOT) -> list[str]:
    """The stage's entry under `stages:` in dvc.yaml."""
    lines = [f"  # {line}" for line in spec.note] + [f"  {spec.stage}:"]
    indent = 4
    if spec.foreach:
        lines += [f"    foreach: ${{{spec.foreach}}}", "    do:"]
        indent = 6
    pad = " " * indent
    lines.append(f"{pad}cmd: {spec.cmd}")
    lines += _lines("deps", spec.deps, indent)
    lines.append(f"{pad}  # {CODE_DEPS_NOTE}")
    lines += [f"{pad}  - {path}" for path in spec.code_deps(root)]
    lines += _lines("params", spec.params, indent)
    lines += _lines("outs", spec.outs, indent)
    if spec.metrics:
        lines += _lines("metrics", spec.metrics, indent)
    if spec.plots:
        lines += _lines("plots", spec.plots, indent)
    return lines


def dvc_yaml(root: Path = PROJECT_ROOT) -> str:
    """dvc.yaml as the registry defines it (`make dvc-yaml` writes it)."""
    blocks = ["\n".join(stage_yaml(spec, root)) for spec in STAGES.values()]
    return HEADER + "stages:\n" + "\n\n".join(blocks) + "\n"


if __name__ == "__main__":
    print(dvc_yaml(), end="")
