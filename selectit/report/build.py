"""Build the run report: read the run, compute, draw, write report.html and the plot data.

The plot data (CSV) goes beside the HTML in plots/, for `dvc plots` and for
anyone who wants the numbers behind a picture.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from selectit.audit.report import AuditReport
from selectit.checks.examples import examples_suite
from selectit.checks.ratings import ratings_suite
from selectit.config import Params, ValidateConfig
from selectit.core.catalog import EXPECTED, PAPER
from selectit.core.io import write_text
from selectit.core.layout import Layout
from selectit.evaluation.compare import Cell, Comparison
from selectit.report import analysis, figures, stability
from selectit.report.page import Section, render, status_html, table_html
from selectit.report.rundata import RunData, load_run
from selectit.scoring.tables import SENTENCE_PREFIX, without_examples
from selectit.selection.card import selected_flags
from selectit.selection.coverage import diversity_summary, overlap_rows, selection_rows

log = logging.getLogger(__name__)

# Examples shown at each end of the ranking.
SHOWN_EXAMPLES = 5
# Failing examples shown per expectation.
SHOWN_FAILURES = 5

PAPER_NOTE = (
    "The paper (arXiv 2402.16705, section 5) observes that SelectIT favours long responses and "
    "calculation-heavy data (maths, code, reasoning). Compare the selected and dropped columns: "
    "with the paper's 7B-70B raters the selected side is longer and holds more calculation; raters "
    "of a few hundred million parameters carry much less signal, so expect weaker or no differences."
)


@dataclass
class ReportResult:
    html: Path
    plot_files: list[Path]
    sections: list[str]  # section ids, in page order
    plots: list[str]  # plot ids, in page order
    jaccard_at_ratio: float | None = None  # mean over resamples at the run's R: the headline number
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {} if self.jaccard_at_ratio is None else {"stability_jaccard": self.jaccard_at_ratio}


class _Plots:
    """Collects the page's figure ids while sections are filled in."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def add(self, section: Section, plot_id: str, png: bytes, caption: str) -> None:
        self.ids.append(plot_id)
        section.figure(plot_id, png, caption)


def build_report(params: Params, layout: Layout, out: Path) -> ReportResult:
    """Write `out`/report.html and `out`/plots/*.csv for the run in `layout`, from its files alone
    (the stability check as params.yaml's `report` section sets it)."""
    run = load_run(params, layout)
    out = Path(out)
    plots_dir = out / "plots"
    plots = _Plots()
    frame = run.ratings_frame
    frame = frame[frame["example_id"].isin(set(run.scores["example_id"]))]  # as aggregate scored them
    chosen = run.scores["example_id"].isin(set(run.selected)).to_numpy()
    features = analysis.example_features(run.examples, run.scores, run.selected)
    curves = _stability(run)
    plot_files = _write_plot_data(run, features, curves, plots_dir)

    sections = [
        _overview(run),
        _scores(run, frame, chosen, plots),
        _validity(run, frame, plots),
        _agreement(run, frame, plots),
        _stability_section(run, curves, plots),
        _selected(features, plots),
        *([_diversity(run.diversity)] if run.diversity else []),
        _flagged(run),
        _examples(run, frame),
        _finetuning(run, plots),
        _validation(run),
    ]
    subtitle = (
        f"{len(run.scores)} examples scored by {len(run.raters)} rater(s), {len(run.selected)} selected "
        f"(top {run.ratio:.0%}); data folder {layout.root}"
    )
    page = render("SelectIT run report", subtitle, sections)
    report = out / "report.html"
    write_text(report, page)
    at_ratio = curves[0].mean[curves[0].x.index(run.ratio)] if curves else None
    return ReportResult(report, plot_files, [s.id for s in sections], plots.ids, at_ratio)


def _stability(run: RunData) -> tuple[stability.Curve, stability.Curve] | None:
    settings, cfg = run.params.report, run.params.aggregate
    if settings.stability_resamples == 0:
        return None
    scored = set(run.scores["example_id"])
    ratings = without_examples(run.ratings, {e for e in run.ratings["example_id"].to_pylist() if e not in scored})
    return stability.stability_curves(
        ratings,
        run.scores["example_id"].tolist(),
        run.ratio,
        cfg,
        resamples=settings.stability_resamples,
        seed=settings.stability_seed,
        ratios=settings.stability_ratios,
        alphas=settings.stability_alphas,
    )


def _write_plot_data(run: RunData, features: pd.DataFrame, curves, folder: Path) -> list[Path]:
    """The numbers behind the plots, as CSV (what dvc.yaml's `plots:` read)."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {
        "scores.csv": features[["rank", "example_id", "model_score", "selected", "response_words", "task_type"]],
        "rater_overlap.csv": analysis.rater_selection_overlap(run.scores, run.raters, run.ratio, run.selected),
    }
    # Written even when empty (no stability check, no fine-tuning yet): dvc.yaml names them
    # as plots of the stage, and a file left from an earlier report must not stay.
    for setting in ("ratio", "alpha"):
        rows = next((c.rows() for c in curves or () if c.setting == setting), [])
        tables[f"stability_{setting}.csv"] = pd.DataFrame(rows, columns=stability.Curve.columns(setting))
    tables["losses.csv"] = pd.DataFrame(
        [{"variant": v, "step": s, "loss": loss} for v, points in run.losses.items() for s, loss in points],
        columns=["variant", "step", "loss"],
    )
    written = []
    for name, table in tables.items():
        path = folder / name
        write_text(path, table.to_csv(index=False))
        written.append(path)
    return written


def _by_selectit(run: RunData) -> bool:
    """The selection ranks by the model-level score (select.method: selectit)."""
    return run.params.select.method == "selectit"


def _overview(run: RunData) -> Section:
    section = Section("overview", "Overview")
    counts = {
        "examples scored": len(run.scores),
        "selected": len(run.selected),
        "left out": run.select.left_out,
        "select.ratio": run.ratio,
        "lowest kept model score" if _by_selectit(run) else "lowest kept score": run.select.lowest_kept_score,
        # Another selector's ranking (docs/guides/selectors.md): its own lowest kept score.
        **({} if _by_selectit(run) else {"select.method": run.params.select.method}),
        "aggregate.alpha": run.params.aggregate.alpha,
        "aggregate.token_score": run.params.aggregate.token_score,
        "rating prompts": run.params.score.num_prompts,
        "K (rating scale)": run.params.score.k,
    }
    if run.validate:
        counts = {"examples validated": run.validate.examples_in, "held out": run.validate.heldout, **counts}
    section.table(pd.DataFrame({"": list(counts), "value": [str(v) for v in counts.values()]}))
    raters = pd.DataFrame(
        {
            "rater": run.raters,
            "weight": [run.aggregate.weights.get(r) for r in run.raters],
            "parameters": [run.score[r].n_params for r in run.raters],
            "ratings": [run.score[r].ratings for r in run.raters],
            "mean digit mass": [run.score[r].mass.get("mean") for r in run.raters],
        }
    )
    section.table(raters, "raters (model-level weight = share of parameters unless aggregate.weights is set)")
    return section


# What each aggregate.token_score reads from a rater's digit distribution.
TOKEN_LEVEL_WORDS = {
    PAPER: "the peak of the digit distribution scaled by how sure it is, the paper's score",
    EXPECTED: "the expected rating, the sum of each digit times its probability (aggregate.token_score: expected)",
}


def _scores(run: RunData, frame: pd.DataFrame, chosen: np.ndarray, plots: _Plots) -> Section:
    section = Section("scores", "Score distributions")
    token_score = run.params.aggregate.token_score
    token_level = TOKEN_LEVEL_WORDS[token_score]
    section.text(
        f"The three levels of SelectIT: token (one rater, one prompt: {token_level}), sentence (one rater: "
        f"mean over prompts shrunk by their spread, alpha = {run.params.aggregate.alpha}), model (raters "
        "weighted). Orange: selected; blue: dropped."
    )
    plots.add(
        section,
        "token-scores",
        figures.token_levels(analysis.token_scores(frame), run.raters, f"token-level score ({token_score})"),
        "Token-level scores per rater, one outline per rating prompt.",
    )
    columns = {r: SENTENCE_PREFIX + r for r in run.raters}
    plots.add(
        section,
        "sentence-scores",
        figures.sentence_levels(run.scores, columns, chosen, run.ratio),
        "Sentence-level scores per rater; the dashed line is where the rater alone would cut its top R%.",
    )
    plots.add(
        section,
        "model-scores",
        figures.model_level(
            run.scores["model_score"].to_numpy(dtype=float),
            chosen,
            run.select.lowest_kept_score if _by_selectit(run) else None,  # another selector's scale
            run.ratio,
        ),
        "Model-level scores, the ranking key; the dashed line is the lowest selected score.",
    )
    quantiles = pd.DataFrame([run.aggregate.quantiles])
    section.table(quantiles, "model-level score quantiles (aggregate summary)")
    return section


def _validity(run: RunData, frame: pd.DataFrame, plots: _Plots) -> Section:
    section = Section("validity", "Rating validity: digit mass")
    section.text(
        "The digit mass is the probability a rater puts on the digits 1..K right after the answer cue. "
        "A low mass means the rater mostly wanted to write something other than a rating; its score then "
        "rests on a small part of its distribution."
    )
    plots.add(section, "digit-mass", figures.digit_mass(frame), "Digit mass per rater and prompt.")
    section.table(analysis.mass_by_prompt(frame), "digit mass per rater and prompt")
    section.table(
        analysis.lowest_mass(frame, run.examples), "the ratings with the lowest digit mass (low-validity examples)"
    )
    return section


def _agreement(run: RunData, frame: pd.DataFrame, plots: _Plots) -> Section:
    section = Section("agreement", "Agreement between prompts and between raters")
    spread = analysis.prompt_spread(frame)
    plots.add(
        section,
        "prompt-spread",
        figures.prompt_spread(spread, run.raters),
        "Spread (population std) of each example's token scores over the prompts, per rater.",
    )
    summary = spread.groupby("model")["spread"].describe()[["mean", "50%", "max"]]
    section.table(summary.rename(columns={"50%": "median"}), "spread of token scores over prompts", index=True)
    matrix = analysis.rater_correlation(run.scores, run.raters)
    plots.add(
        section,
        "rater-correlation",
        figures.correlation(matrix),
        "Spearman rank correlation between the raters' sentence scores and the model score.",
    )
    overlap = analysis.rater_selection_overlap(run.scores, run.raters, run.ratio, run.selected)
    plots.add(
        section,
        "rater-overlap",
        figures.overlap_bars(overlap, run.ratio),
        "How much of the final selection each rater alone would have kept.",
    )
    section.table(overlap, f"each rater's own top {run.ratio:.0%} against the final selection")
    return section


def _stability_section(run: RunData, curves, plots: _Plots) -> Section:
    section = Section("stability", "Selection stability")
    if not curves:
        return section.note("Not computed (report.stability_resamples is 0).")
    settings = run.params.report
    section.text(
        f"{settings.stability_resamples} resamples (seed {settings.stability_seed}) of the stored probability "
        "table (no new inference): the rating prompts and the raters are drawn with replacement, the "
        "model-level ranking is recomputed with the project's own aggregation, and its top R% is compared "
        "with this run's by the Jaccard overlap (1 = the same examples). The dotted line changes only the "
        "setting, with every prompt and rater. The grids and the resamples are params.yaml's report section."
    )
    plots.add(
        section,
        "stability",
        figures.stability(curves, {"ratio": run.ratio, "alpha": run.params.aggregate.alpha}),
        "Jaccard overlap of the top R% against this run's: over R (left) and over alpha at this run's R (right).",
    )
    for curve in curves:
        section.table(pd.DataFrame(curve.rows()), f"overlap over {curve.setting}")
    return section


def _selected(features: pd.DataFrame, plots: _Plots) -> Section:
    section = Section("selected", "What was selected")
    section.note(PAPER_NOTE)
    shares = analysis.task_type_shares(features)
    plots.add(
        section,
        "selected-vs-dropped",
        figures.selected_vs_dropped(features, shares),
        "Response and instruction length, task type (the instruction's leading verb), and the share with "
        "an input or with calculation, selected against dropped.",
    )
    section.table(analysis.selected_vs_dropped(features), "selected against dropped")
    section.table(shares, "task type (leading verb): share among selected and among dropped", index=True)
    return section


def _diversity(report: dict) -> Section:
    """Each selection's coverage of the pool, clusters, verbs and length, and their overlap,
    as the select stage measured them (diversity.json)."""
    section = Section("diversity", "Diversity and coverage of the selections")
    section.text(
        "The training sets of the fine-tuning variants of the selection's size, side by side: coverage is the "
        "mean cosine distance from a pool example to its nearest selected one (lower covers the pool better), "
        "clusters are k-means clusters of the pool that hold a selected example, and the leading verb is the "
        "instruction's first word. docs/guides/diversity.md says how each selection is made."
    )
    section.note(diversity_summary(report))
    section.table(pd.DataFrame(selection_rows(report)), "each selection")
    section.table(pd.DataFrame(overlap_rows(report)), "Jaccard overlap of the selections")
    return section


def _flagged(run: RunData) -> Section:
    """Selected examples the validate stage kept with a flag: a response cut to fit, or a text
    that addresses the rater (which may have steered its own score)."""
    section = Section("flagged", "Flagged examples in the selection")
    flags = selected_flags(run.layout, list(run.selected))
    if not flags:
        section.note("None: no selected example was cut to fit or addresses the rater (validated/flagged.jsonl).")
        return section
    section.note(
        "Kept by the validate stage with a flag. An example that addresses the rater may have steered its own "
        "score; hygiene.rater_injection: reject removes such examples before they are rated."
    )
    section.table(pd.DataFrame(flags)[["id", "source", "row", "flag", "detail"]], "selected examples with a flag")
    return section


def _examples(run: RunData, frame: pd.DataFrame) -> Section:
    section = Section("examples", "Top and bottom examples")
    section.raw(
        "<p>Run <code>selectit explain ID</code> to see exactly what each rater read (the rating texts) "
        "and the digit distribution it answered with, per prompt.</p>"
    )
    ranked = run.scores["example_id"].tolist()
    for label, ids in (("top", ranked[:SHOWN_EXAMPLES]), ("bottom", ranked[-SHOWN_EXAMPLES:][::-1])):
        section.raw(f"<h3>{label} {len(ids)}</h3>")
        for example_id in ids:
            row = run.scores.loc[run.scores["example_id"] == example_id].iloc[0]
            e = run.examples[example_id]
            section.raw(
                f'<details class="example" id="example-{example_id}"><summary>rank {int(row["rank"])}, '
                f"model score {row['model_score']:.4g}: {html.escape(analysis.shorten(e.instruction, 100))} "
                f"(<code>selectit explain {example_id}</code>)</summary>"
                f"<p><b>Instruction</b>: {html.escape(analysis.shorten(e.instruction))}</p>"
                + (f"<p><b>Input</b>: {html.escape(analysis.shorten(e.input))}</p>" if e.input else "")
                + f"<p><b>Response</b>: {html.escape(analysis.shorten(e.output, 600))}</p>"
                + table_html(analysis.per_prompt_ratings(frame, example_id), "ratings per rater and prompt")
                + "</details>"
            )
    return section


def _finetuning(run: RunData, plots: _Plots) -> Section:
    section = Section("finetuning", "Fine-tuning and audit: does the selection pay off?")
    if run.comparison:
        section.raw(_comparison_table(run.comparison))
        plots.add(
            section,
            "comparison",
            figures.comparison(run.comparison.to_json()),
            "Each variant's mean with its bootstrap interval (data/reports/comparison/comparison.json).",
        )
    elif not run.params.finetune.enabled:
        section.note("Fine-tuning is switched off (finetune.enabled: false): the run ends with the selection.")
    else:
        section.note("No comparison yet: run the finetune, evaluate and compare stages (make run).")
    if run.losses:
        plots.add(section, "losses", figures.losses(run.losses), "Training loss per optimiser step.")
        if all(len(points) <= 2 for points in run.losses.values()):
            section.note(
                "Only the first and last logged losses are known for these results (their finetune summaries): "
                "they were trained before the whole curve was saved beside the model (loss_history.json)."
            )
    if run.audit is not None and run.audit.results:
        section.table(_audit_table(run.audit), "audit: agreement of each scorer with the judge on judged pairs")
    if run.finetune:
        section.table(
            pd.DataFrame(
                [
                    {
                        "variant": v,
                        "examples": s.examples,
                        "steps": s.steps,
                        "first loss": s.first_loss,
                        "last loss": s.last_loss,
                        "seconds": s.seconds,
                    }
                    for v, s in run.finetune.items()
                ]
            ),
            "fine-tuning runs",
        )
    return section


def _audit_table(audit: AuditReport) -> pd.DataFrame:
    rows = []
    for result in audit.results:
        name, overall, interval = result.scorer.name, result.overall, result.overall.interval
        rows.append(
            {
                "scorer": name + (" (the selection's ranking)" if name == audit.headline else ""),
                "agreement": overall.agreement,
                "interval": "" if interval is None else f"[{interval.low:.3g}, {interval.high:.3g}]",
                "pairs": overall.n,
            }
        )
    return pd.DataFrame(rows)


def _comparison_table(comparison: Comparison) -> str:
    def cell(c: Cell | None) -> str:
        if c is None:
            return ""
        text = f"{c.interval.estimate:.4g} [{c.interval.low:.4g}, {c.interval.high:.4g}]"
        vs = c.vs_reference
        if vs is not None:
            diff = vs.interval
            text += (
                f"; vs {comparison.reference}: {diff.estimate:+.3g} [{diff.low:+.3g}, {diff.high:+.3g}] {vs.verdict}"
            )
        return text

    rows = [
        {"variant": v, **{m.label: cell(row.get(m.name)) for m in comparison.metrics}}
        for v, row in comparison.cells.items()
    ]
    caption = (
        f"means with {comparison.level:.0%} bootstrap intervals ({comparison.resamples} resamples); "
        f"differences paired against {comparison.reference}"
    )
    return table_html(pd.DataFrame(rows), caption)


def _validation(run: RunData) -> Section:
    section = Section("validation", "Validation results")
    section.text(
        "The Great Expectations checks of the validate stage (examples) and the aggregate stage (ratings), "
        "from their summaries: shown here so they read offline."
    )
    if run.validate:
        reasons = _guards_validate(run)
        rows = []
        for i, e in enumerate(run.validate.expectations):
            label = _label(e)
            failing = [r for r in run.validate_rejects if f"{label}:" in r.reason][:SHOWN_FAILURES]
            rows.append(
                "<tr>"
                f"<td>{html.escape(label)}</td><td>{html.escape(reasons[i] if i < len(reasons) else '')}</td>"
                f"<td>{html.escape(str(e.get('level', '')))}</td><td>{status_html(e['success'])}</td>"
                f"<td>{e.get('unexpected_count', '')}</td><td>{e.get('rejected_count', '')}</td>"
                f"<td>{'<br>'.join(html.escape(f'{r.source} row {r.row}: {r.reason}') for r in failing)}</td></tr>"
            )
        section.raw(
            '<h3>validate: the examples</h3><table class="data" id="validate-expectations"><thead><tr>'
            "<th>expectation</th><th>guards</th><th>level</th><th>result</th><th>failing</th><th>rejected</th>"
            f"<th>failing examples</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
        section.raw(_hygiene_table(run))
    else:
        section.note("No validate summary in this data folder.")
    guards = _guards_ratings(run)
    rows = [
        "<tr>"
        f"<td>{html.escape(_label(e))}</td><td>{html.escape(guards[i] if i < len(guards) else '')}</td>"
        f"<td>{status_html(e['success'])}</td><td>{e.get('unexpected_count', '')}</td></tr>"
        for i, e in enumerate(run.aggregate.rating_checks)
    ]
    section.raw(
        '<h3>aggregate: the ratings</h3><table class="data" id="rating-checks"><thead><tr><th>expectation</th>'
        f"<th>guards</th><th>result</th><th>failing</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return section


def _hygiene_table(run: RunData) -> str:
    """What the hygiene pass removed: examples per benchmark they copy, near-duplicates, with a few reasons."""
    kinds = {f"contaminated: {name}": (n, f" with {name} question ") for name, n in run.validate.contaminated.items()}
    kinds["near-duplicates"] = (run.validate.near_duplicates, "near-duplicate of ")
    rows = []
    for kind, (count, marker) in kinds.items():
        shown = [r for r in run.validate_rejects if marker in r.reason][:SHOWN_FAILURES]
        examples = "<br>".join(html.escape(f"{r.source} row {r.row}: {r.reason}") for r in shown)
        rows.append(f"<tr><td>{html.escape(kind)}</td><td>{count}</td><td>{examples}</td></tr>")
    return (
        '<h3>validate: hygiene</h3><table class="data" id="hygiene"><thead><tr><th>removed as</th>'
        f"<th>examples</th><th>examples removed</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _label(expectation: Mapping) -> str:
    """As the checks name an outcome (and the rejects' reasons quote it): name(column)."""
    column = expectation.get("column")
    return f"{expectation['expectation']}({column})" if column else expectation["expectation"]


def _guards_validate(run: RunData) -> list[str]:
    """What each validate expectation guards, from the suite's table (same order as the summary)."""
    try:
        table = examples_suite(ValidateConfig(**run.validate.settings["validate"]))
    except (KeyError, TypeError):
        return []
    return [entry.reason for entry in table] if len(table) == len(run.validate.expectations) else []


def _guards_ratings(run: RunData) -> list[str]:
    """What each rating check guards, from the aggregate stage's suite table (same order)."""
    counts = {"raters": len(run.raters), "prompts": run.params.score.num_prompts, "ids": len(run.scores)}
    table = ratings_suite(set(), counts)
    return [entry.reason for entry in table] if len(table) == len(run.aggregate.rating_checks) else []
