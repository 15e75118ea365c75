"""`selectit` command line: score, aggregate, select, show-prompts, audit, finetune, evaluate, compare, report, explain.

Every default comes from params.yaml (--params); a flag overrides one key.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from selectit.config import Params, load_params
from selectit.context import unwritable_folder
from selectit.core import interrupts
from selectit.core.catalog import DTYPE_NAMES, TOKEN_LEVEL_SCORES
from selectit.core.errors import InputError, SelectitError
from selectit.core.io import write_json
from selectit.core.layout import Layout
from selectit.core.records import write_rejects
from selectit.core.telemetry import switch_off_telemetry
from selectit.evaluation.comparison import compare_evaluations
from selectit.evaluation.run import evaluate_model
from selectit.finetune.run import finetune_variant
from selectit.ingest.formats import read_examples
from selectit.rating_params import rating_settings
from selectit.scoring.tables import read_ratings, read_scores, score_ratings, write_parquet
from selectit.selection.diversity import choose
from selectit.selection.methods import LENGTH, MODEL_METHODS, SELECTIT, length_scores, method_ranking
from selectit.selection.output import write_selection
from selectit.selection.rows import ranked_vectors

log = logging.getLogger("selectit")

# flag dest -> params key it overrides
OVERRIDES = {
    "raters": "score.raters",
    "prompt_set": "score.prompt_set",
    "num_prompts": "score.num_prompts",
    "k": "score.k",
    "template": "score.template",
    "layout": "score.layout",
    "cue": "score.cue",
    "dtype": "score.dtype",
    "device": "score.device",
    "token_budget": "score.token_budget",
    "max_length": "score.max_length",
    "trust_remote_code": "score.trust_remote_code",
    "limit": "ingest.limit",
    "rows_key": "ingest.rows_key",
    "alpha": "aggregate.alpha",
    "authors_softmax": "aggregate.authors_softmax",
    "weights": "aggregate.weights",
    "token_score": "aggregate.token_score",
    "ratio": "select.ratio",
    "select_method": "select.method",
    "base_model": "finetune.base_model",
    "method": "finetune.method",
    "epochs": "finetune.epochs",
    "max_steps": "finetune.max_steps",
    "reference": "evaluate.reference",
    "audit_limit": "audit.limit",
    "ifd_raters": "audit.ifd_raters",
    "stability_resamples": "report.stability_resamples",
    "stability_seed": "report.stability_seed",
}


def _weights(pairs: list[str]) -> dict[str, float]:
    try:
        return {name: float(value) for name, value in (p.rsplit("=", 1) for p in pairs)}
    except ValueError:
        raise argparse.ArgumentTypeError(f"--weights expects NAME=NUMBER pairs, got {pairs}") from None


def _params(args: argparse.Namespace):
    overrides = {}
    for dest, key in OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = _weights(value) if dest == "weights" else value
    return load_params(args.params, overrides)


def _inputs(args, params) -> list[str]:
    return args.inputs or [params.ingest.source]


def _read(args, params):
    result = read_examples(_inputs(args, params), params.ingest.rows_key)
    examples = result.examples[: params.ingest.limit] if params.ingest.limit else result.examples
    log.info(
        "read %d examples (%d rejected, %d of them duplicates)%s",
        len(result.examples),
        len(result.rejects),
        result.n_duplicates,
        f"; using the first {len(examples)}" if len(examples) < len(result.examples) else "",
    )
    return result, examples


def cmd_score(args) -> None:
    from selectit.rating.rate import rate_examples  # torch: only when rating

    params = _params(args)
    out = Path(args.out)
    read, examples = _read(args, params)
    rating = rating_settings(params.score)
    started = time.time()
    # Ratings are cached per shard under the output folder: a re-run after a crash
    # or with more input rates only what no finished shard holds.
    run = rate_examples(examples, params.score.raters, rating, out / "cache", progress=not args.no_progress)
    write_parquet(run.ratings, out / "ratings.parquet")
    scores = score_ratings(run.ratings, params.aggregate, out / "scores.parquet")
    write_rejects(read.rejects + run.rejects, out / "rejects.jsonl")
    manifest = {
        "inputs": _inputs(args, params),
        "params": {"score": vars(params.score), "aggregate": vars(params.aggregate), "ingest": vars(params.ingest)},
        "prompt_version": rating.prompts().version,
        "counts": {
            "examples_read": len(read.examples),
            "examples_scored": scores.table.num_rows,
            "rejects": len(read.rejects) + len(run.rejects),
            "duplicates": read.n_duplicates,
        },
        "raters": run.report(),
        "weights": scores.weights,
        "seconds": time.time() - started,
    }
    write_json(out / "manifest.json", manifest)
    for r in run.raters:
        log.info(
            "%s: %d texts in %.0f s (%.2f texts/s), mean digit mass %.3f, %d truncated",
            r.name,
            r.n_texts,
            r.seconds,
            r.texts_per_second,
            r.mass.get("mean", float("nan")),
            r.n_truncated,
        )
    log.info("wrote %s/{ratings,scores}.parquet, rejects.jsonl, manifest.json", out)


def cmd_aggregate(args) -> None:
    params = _params(args)
    scores = score_ratings(read_ratings(args.ratings), params.aggregate, args.out)
    log.info("wrote %s (%d examples, weights %s)", args.out, scores.table.num_rows, scores.weights)


def _diversity_chooser(params: Params, ranked: list[str], embeddings: str | None):
    """select.diversity and select.semantic_duplicates over the embeddings file and the
    ranking `ranked` (ids best first), or None (top R%)."""
    cfg = params.select
    if not cfg.needs_embeddings:
        return None
    if embeddings is None:
        raise InputError(
            f"select.diversity {cfg.diversity} / select.semantic_duplicates {cfg.semantic_duplicates}: "
            "pass --embeddings (the score stage's data/embeddings/embeddings.parquet)"
        )
    choice = choose(
        ranked,
        cfg.ratio,
        diversity=cfg.diversity,
        vectors=ranked_vectors(Path(embeddings), ranked, cfg.centre_embeddings),
        max_similarity=cfg.max_similarity,
        duplicate_threshold=cfg.semantic_duplicates,
        seed=cfg.seed,
    )
    if choice.duplicates:
        log.info("left out %d semantic duplicates of better-ranked examples", len(choice.duplicates))
    if choice.shortfall:
        log.warning(
            "the repr filter ran out of ranking: %d kept, %d short of the budget (raise select.max_similarity)",
            len(choice.kept),
            choice.shortfall,
        )
    return lambda ids: (choice.kept, choice.left_out)


def cmd_select(args) -> None:
    """The select stage's files, from any scored inputs: the selection as one Alpaca JSON list,
    selected_ids.txt beside it, and the left-out ids."""
    params = _params(args)
    out = Path(args.out)
    if out.suffix != ".json":
        raise InputError(f"--out {out}: the selection is written as one Alpaca JSON list; name it *.json")
    excluded = Path(args.excluded or out.with_name("excluded_ids.txt"))
    method = params.select.method
    if method in MODEL_METHODS:
        raise InputError(
            f"select.method {method}: this command ranks by SelectIT's score or by length; {method} runs a "
            "model over the pool: use the select stage (`dvc repro select` or `python -m flows.pipeline`)"
        )
    scores = read_scores(args.scores)
    examples = read_examples(_inputs(args, params), params.ingest.rows_key).examples
    ranked = scores.sort_by("rank")["example_id"].to_pylist()
    ranking = ranking_scores = None
    if method == LENGTH:
        try:
            ranking = method_ranking(method, selectit_ranked=ranked, pool=examples)
        except ValueError as error:
            raise InputError(f"--scores {args.scores}: {error} of the input files") from None
        ranking_scores = length_scores(examples)
    selection = write_selection(
        scores,
        examples,
        params.select.ratio,
        out,
        out.with_name("selected_ids.txt"),
        excluded,
        allow_unscored=args.allow_unscored,
        ranking=ranking,
        ranking_scores=ranking_scores,
        choose=_diversity_chooser(params, ranking or ranked, args.embeddings),
    )
    if selection.unscored:
        log.warning(
            "%d input examples were never scored; selected among the %d scored ones (--allow-unscored)",
            selection.unscored,
            len(selection.scores),
        )
    log.info(
        "kept %d of %d examples (ratio %.3g, ranked by %s) -> %s; left-out ids -> %s",
        len(selection.kept),
        len(selection.scores),
        params.select.ratio,
        method,
        out,
        excluded,
    )


def cmd_show_prompts(args) -> None:
    # selectit.report imports pandas, which `selectit --help` and the other commands need not load.
    from selectit.report.explain import rating_texts

    params = _params(args)
    rater = rating_texts(args.rater or params.score.raters[0], params.score)
    examples = [
        e for e in read_examples(_inputs(args, params), params.ingest.rows_key).examples if e.row in set(args.rows)
    ]
    chosen = range(len(rater.prompts.prompts)) if args.prompt is None else [args.prompt]
    print(rater.header())
    for prompt_id in chosen:
        for example in examples:
            print(f"\n===== {example.source} row {example.row} (id {example.id}), prompt {prompt_id} =====")
            print(rater.texts(example, prompt_id))


def cmd_report(args) -> None:
    """The run report of a data folder (what the report stage writes, without MLflow)."""
    # selectit.report imports pandas, which `selectit --help` and the other commands need not load.
    from selectit.report import build_report

    params = _params(args)
    layout = Layout(Path(args.data))
    result = build_report(params, layout, Path(args.out) if args.out else layout.run_report)
    print(f"{result.html} ({len(result.sections)} sections, {len(result.plots)} plots)")


def cmd_explain(args) -> None:
    """What each rater read and answered for one example of a run."""
    # selectit.report imports pandas, which `selectit --help` and the other commands need not load.
    from selectit.report.explain import explain

    params = _params(args)
    for line in explain(params, Layout(Path(args.data)), args.id, with_texts=not args.no_texts):
        print(line)


def cmd_audit(args) -> None:
    """Rate judged pairs and report how often each score prefers the judge's choice (the audit stage's code)."""
    from selectit.audit.run import audit_pairs, write_audit  # torch: only when auditing

    params = _params(args)
    out = Path(args.out)
    # Ratings are cached per shard under the output folder, as `selectit score` caches them:
    # a re-run, or one with a larger --limit, rates only responses no finished shard holds.
    report = audit_pairs(
        args.pairs or params.audit.pairs,
        params.audit.limit,
        params.score.raters,
        rating_settings(params.score),
        params.aggregate,
        out / "cache",
        resamples=params.evaluate.bootstrap_resamples,
        level=params.evaluate.confidence,
        seed=params.evaluate.seed,
        progress=not args.no_progress,
        ifd_raters=params.audit.ifd_raters,
        ifd_max_tokens=params.audit.ifd_max_tokens,
        learned_folds=params.select.learned_folds,
    )
    write_audit(report, out)
    print(report.to_markdown())
    log.info(
        "audited %d pairs in %.0f s; wrote %s/{audit.json,audit.md,metrics.json,rejects.jsonl}",
        report.pairs,
        report.seconds,
        out,
    )


def cmd_finetune(args) -> None:
    """Fine-tune the base model on one file of examples (a selection, say) as the finetune stage does."""
    params = _params(args)
    _, examples = _read(args, params)
    out = Path(args.out)
    summary = finetune_variant(
        out.name, examples, params.finetune, out, out / "checkpoints", progress=not args.no_progress
    )
    log.info(
        "%d steps, loss %.3f -> %.3f; model in %s",
        summary.steps,
        summary.first_loss or float("nan"),
        summary.last_loss or float("nan"),
        out / "model",
    )


def cmd_evaluate(args) -> None:
    """Measure one model (a `selectit finetune` output, or the base model) as the evaluate stage does."""
    params = _params(args)
    heldout = read_examples([args.heldout]).examples if args.heldout else None
    if params.evaluate.heldout_loss and not heldout:
        log.info("no --heldout file: the held-out loss is skipped")
    out = Path(args.out)
    trained = None if args.model == "base" else Path(args.model)
    summary = evaluate_model(
        Path(args.model).name, trained, params, heldout, out, out / "cache", progress=not args.no_progress
    )
    for metric, value in summary.means.items():
        print(f"{metric}: {value:.4f} over {summary.questions[metric]} questions")


def cmd_compare(args) -> None:
    """Compare `selectit evaluate` outputs by name, as the compare stage does: intervals and paired differences."""
    params = _params(args)
    pairs = [item.split("=", 1) for item in args.variants]
    if any(len(p) != 2 for p in pairs):
        raise InputError(f"expected NAME=FOLDER pairs, got {args.variants}")
    comparison = compare_evaluations({name: Path(folder) for name, folder in pairs}, params.evaluate, Path(args.out))
    print(comparison.to_markdown())


def token_score_flag(parser: argparse.ArgumentParser, more: str = "") -> None:
    parser.add_argument(
        "--token-score",
        choices=TOKEN_LEVEL_SCORES,
        help=f"token-level score the selection ranks by: paper (the paper's) or expected (the expected rating){more}",
    )


def _input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", help="input files (default: ingest.source of params.yaml)")
    parser.add_argument(
        "--rows-key", help='for a file that is one JSON object with its rows under a key ({"data": [...]})'
    )


def _aggregate_arguments(parser: argparse.ArgumentParser) -> None:
    """The aggregate settings, which `score` and `aggregate` both apply."""
    parser.add_argument("--alpha", type=float)
    parser.add_argument(
        "--authors-softmax",
        action="store_true",
        default=None,
        help="apply the released scripts' extra softmax (to reproduce their numbers)",
    )
    parser.add_argument("--weights", nargs="+", metavar="NAME=W", help="rater weights (default: parameter counts)")
    token_score_flag(parser)


def _score_parser(sub) -> None:
    score = sub.add_parser("score", help="rate examples with the rater models and score them")
    _input_arguments(score)
    score.add_argument("--out", required=True, help="output folder")
    score.add_argument("--raters", nargs="+", help="model short names, folders, .gguf files or hub ids")
    score.add_argument("--prompt-set")
    score.add_argument("--num-prompts", type=int)
    score.add_argument("--k", type=int, help="rating scale 1..K")
    score.add_argument("--template", choices=["plain", "chat"])
    score.add_argument("--layout", choices=["prompt-first", "example-first"])
    score.add_argument("--cue")
    score.add_argument("--dtype", choices=DTYPE_NAMES)
    score.add_argument("--device")
    score.add_argument("--token-budget", type=int)
    score.add_argument("--max-length", type=int)
    score.add_argument("--limit", type=int, help="score only the first N examples")
    score.add_argument("--trust-remote-code", action="store_true", default=None)
    score.add_argument("--no-progress", action="store_true")
    _aggregate_arguments(score)


def _aggregate_parser(sub) -> None:
    aggregate = sub.add_parser("aggregate", help="recompute scores.parquet from ratings.parquet")
    _aggregate_arguments(aggregate)
    aggregate.add_argument("--ratings", required=True)
    aggregate.add_argument("--out", required=True)


def _select_parser(sub) -> None:
    select = sub.add_parser("select", help="write the top R%% of the scored examples as Alpaca JSON")
    _input_arguments(select)
    select.add_argument("--scores", required=True, help="scores.parquet from `selectit score`")
    select.add_argument("--ratio", type=float)
    select.add_argument(
        "--method",
        dest="select_method",
        choices=[SELECTIT, LENGTH],
        help="rank by SelectIT's score or by response length (default: select.method of params.yaml; "
        "ifd and learned run a model: use the select stage)",
    )
    select.add_argument(
        "--out", required=True, help="selected examples, one Alpaca JSON list (.json); selected_ids.txt beside it"
    )
    select.add_argument("--excluded", help="file for the left-out ids (default: excluded_ids.txt beside --out)")
    select.add_argument(
        "--embeddings",
        help="the examples' embeddings (Parquet: id, embedding) for select.diversity and semantic duplicates",
    )
    select.add_argument(
        "--allow-unscored", action="store_true", help="when some inputs were not scored, select among the scored ones"
    )


def _show_prompts_parser(sub) -> None:
    show = sub.add_parser("show-prompts", help="print the exact rating texts a rater reads")
    _input_arguments(show)
    show.add_argument("--rater", help="default: the first rater of params.yaml")
    show.add_argument("--rows", type=int, nargs="+", default=[0], help="0-based rows of the input files")
    show.add_argument("--prompt", type=int, help="one prompt id (default: all)")


def _report_parser(sub) -> None:
    report = sub.add_parser("report", help="write the HTML run report of a data folder")
    report.add_argument("--data", default="data", help="the run's data folder (default: data)")
    report.add_argument("--out", help="output folder (default: <data>/reports/run)")
    report.add_argument("--stability-resamples", type=int, help="resamples of the stability check (0: skip it)")
    report.add_argument("--stability-seed", type=int)


def _explain_parser(sub) -> None:
    why = sub.add_parser("explain", help="print what each rater read and answered for one example")
    why.add_argument("id", help="the example's id (scores.parquet, selected_ids.txt, the report)")
    why.add_argument("--data", default="data", help="the run's data folder (default: data)")
    why.add_argument("--no-texts", action="store_true", help="only the stored answers (loads no tokenizer)")


def _audit_parser(sub) -> None:
    audit = sub.add_parser("audit", help="how often the scores prefer the judge's choice on judged response pairs")
    audit.add_argument("pairs", nargs="?", help="judged pairs, JSON lines (default: audit.pairs of params.yaml)")
    audit.add_argument("--out", required=True, help="folder for audit.json, audit.md, metrics.json, rejects.jsonl")
    audit.add_argument("--limit", dest="audit_limit", type=int, help="audit only the first N usable pairs")
    audit.add_argument("--raters", nargs="+", help="model short names, folders, .gguf files or hub ids")
    audit.add_argument("--ifd-raters", nargs="+", help="also score responses by IFD with these models")
    audit.add_argument("--prompt-set", help="packaged prompt set (default, fewshot) or a YAML file")
    audit.add_argument("--num-prompts", type=int)
    audit.add_argument("--template", choices=["plain", "chat"])
    audit.add_argument("--layout", choices=["prompt-first", "example-first"])
    token_score_flag(audit, "; the audit reports both, this one as audit.agreement")
    audit.add_argument("--dtype", choices=DTYPE_NAMES)
    audit.add_argument("--device")
    audit.add_argument("--no-progress", action="store_true")


def _finetune_parser(sub) -> None:
    tune = sub.add_parser("finetune", help="fine-tune the base model on examples (finetune section of params)")
    _input_arguments(tune)
    tune.add_argument("--out", required=True, help="output folder: model/ (adapter or weights), summary.json")
    tune.add_argument("--base-model")
    tune.add_argument("--method", choices=["lora", "full"])
    tune.add_argument("--epochs", type=float)
    tune.add_argument("--max-steps", type=int)
    tune.add_argument("--limit", type=int, help="train on the first N examples only")
    tune.add_argument("--no-progress", action="store_true")


def _evaluate_parser(sub) -> None:
    evaluate = sub.add_parser("evaluate", help="held-out loss and benchmarks of one model (evaluate section)")
    evaluate.add_argument("--model", required=True, help="a `selectit finetune` output folder, or `base`")
    evaluate.add_argument("--base-model", help="the model it was tuned from (default: finetune.base_model)")
    evaluate.add_argument("--heldout", help="examples for the held-out loss (never trained on)")
    evaluate.add_argument("--out", required=True, help="folder for questions.json and summary.json")
    evaluate.add_argument("--no-progress", action="store_true")


def _compare_parser(sub) -> None:
    compare = sub.add_parser("compare", help="compare `selectit evaluate` outputs with bootstrap intervals")
    compare.add_argument("variants", nargs="+", metavar="NAME=FOLDER")
    compare.add_argument("--reference", help="the variant the others are compared with (default: evaluate.reference)")
    compare.add_argument(
        "--out", required=True, help="folder for comparison.md, comparison.json and metrics.json (DVC metrics)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selectit", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="settings file (default: ./params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser in (
        _score_parser,
        _aggregate_parser,
        _select_parser,
        _show_prompts_parser,
        _report_parser,
        _explain_parser,
        _audit_parser,
        _finetune_parser,
        _evaluate_parser,
        _compare_parser,
    ):
        add_parser(sub)
    return parser


COMMANDS = {
    "score": cmd_score,
    "aggregate": cmd_aggregate,
    "select": cmd_select,
    "show-prompts": cmd_show_prompts,
    "report": cmd_report,
    "explain": cmd_explain,
    "audit": cmd_audit,
    "finetune": cmd_finetune,
    "evaluate": cmd_evaluate,
    "compare": cmd_compare,
}


def main(argv: list[str] | None = None) -> int:
    switch_off_telemetry()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        if (out := getattr(args, "out", None)) and (blocked := unwritable_folder(Path(out))) is not None:
            raise InputError(f"--out {out}: {blocked} cannot be written; make it writable, or name another folder")
        with interrupts.sigterm_as_ctrl_c():
            COMMANDS[args.command](args)
    except SelectitError as exc:
        print(f"selectit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (interrupts.Terminated)
        print(f"selectit {args.command}: {interrupts.how_it_ended(exc)}; {_kept(args)}", file=sys.stderr)
        return interrupts.exit_status(exc)
    return 0


def _kept(args) -> str:
    """What an interrupted command leaves under its --out folder for the next run."""
    out = Path(args.out) if getattr(args, "out", None) else None
    if out is None or args.command not in ("score", "audit", "finetune"):
        return "nothing finished is kept: run the same command again"
    finetunes = args.command == "finetune"
    return interrupts.kept_work(None if finetunes else out / "cache", out / "checkpoints" if finetunes else None)
