"""`selectit` command line: score, aggregate, select, show-prompts, audit, finetune, evaluate, compare, report, explain.

Every default comes from params.yaml (--params); a flag overrides one key.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from selectit.config import load_params
from selectit.core.catalog import DTYPE_NAMES, TOKEN_LEVEL_SCORES
from selectit.core.errors import InputError, SelectitError
from selectit.core.io import write_json, write_text
from selectit.core.records import write_examples, write_rejects
from selectit.ingest.formats import read_examples
from selectit.rating_params import rating_settings
from selectit.scoring.tables import aggregate, write_parquet

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


def _aggregate_settings(params) -> tuple:
    cfg = params.aggregate
    return cfg.alpha, cfg.authors_softmax, cfg.weights, cfg.token_score


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
    scores, weights = aggregate(run.ratings, *_aggregate_settings(params))
    write_parquet(run.ratings, out / "ratings.parquet")
    write_parquet(scores, out / "scores.parquet")
    write_rejects(read.rejects + run.rejects, out / "rejects.jsonl")
    manifest = {
        "inputs": _inputs(args, params),
        "params": {"score": vars(params.score), "aggregate": vars(params.aggregate), "ingest": vars(params.ingest)},
        "prompt_version": rating.prompts().version,
        "counts": {
            "examples_read": len(read.examples),
            "examples_scored": scores.num_rows,
            "rejects": len(read.rejects) + len(run.rejects),
            "duplicates": read.n_duplicates,
        },
        "raters": run.report(),
        "weights": weights,
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
    from selectit.scoring.tables import aggregate, read_ratings, write_parquet

    params = _params(args)
    scores, weights = aggregate(read_ratings(args.ratings), *_aggregate_settings(params))
    write_parquet(scores, args.out)
    log.info("wrote %s (%d examples, weights %s)", args.out, scores.num_rows, weights)


def cmd_select(args) -> None:
    from selectit.scoring.tables import read_scores
    from selectit.selection.top import select_top

    params = _params(args)
    kept, left_out = select_top(read_scores(args.scores), params.select.ratio)
    by_id = {e.id: e for e in read_examples(_inputs(args, params), params.ingest.rows_key).examples}
    missing = [i for i in kept if i not in by_id]
    if missing:
        raise InputError(
            f"{len(missing)} scored examples (e.g. {missing[0]}) are not in the inputs; pass the files that were scored"
        )
    scored = set(kept) | set(left_out)
    unscored = [e for e in by_id.values() if e.id not in scored]
    if unscored:
        first = unscored[0]
        what = (
            f"{len(unscored)} of {len(by_id)} input examples were never scored (e.g. row {first.row} of {first.source})"
        )
        if not args.allow_unscored:
            raise InputError(
                f"{what}: the selection would drop them unseen; score them, pass only the files that were "
                "scored, or add --allow-unscored to select among the scored ones"
            )
        log.warning("%s; selecting among the %d scored ones (--allow-unscored)", what, len(scored))
    kept_set = set(kept)
    # Written in input order, so the selection reads like a filtered copy of the input.
    write_examples([e for e in by_id.values() if e.id in kept_set], args.out)
    excluded = Path(args.excluded or Path(args.out).with_name("excluded_ids.txt"))
    write_text(excluded, "".join(i + "\n" for i in left_out))
    log.info(
        "kept %d of %d examples (ratio %.3g) -> %s; left-out ids -> %s",
        len(kept),
        len(kept) + len(left_out),
        params.select.ratio,
        args.out,
        excluded,
    )


def cmd_show_prompts(args) -> None:
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
    from selectit.core.layout import Layout
    from selectit.report import build_report

    params = _params(args)
    layout = Layout(Path(args.data))
    result = build_report(params, layout, Path(args.out) if args.out else layout.run_report)
    print(f"{result.html} ({len(result.sections)} sections, {len(result.plots)} plots)")


def cmd_explain(args) -> None:
    """What each rater read and answered for one example of a run."""
    from selectit.core.layout import Layout
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
    """Fine-tune the base model on one file of examples (a selection, say): the stage's training code."""
    from selectit.finetune.train import finetune
    from selectit.rating.models import resolve

    params = _params(args)
    _, examples = _read(args, params)
    source = resolve(params.finetune.base_model, params.finetune.trust_remote_code)
    out = Path(args.out)
    result = finetune(
        examples,
        params.finetune,
        source.location,
        source.content_id,
        out / "model",
        out / "checkpoints",
        progress=not args.no_progress,
    )
    write_json(
        out / "finetune.json",
        {
            "inputs": _inputs(args, params),
            "examples": len(examples),
            "base_model": params.finetune.base_model,
            "base_content_id": source.content_id,
            "result": vars(result),
        },
    )
    log.info(
        "%d steps, loss %.3f -> %.3f; model in %s",
        result.steps,
        result.first_loss or float("nan"),
        result.last_loss or float("nan"),
        out / "model",
    )


def cmd_evaluate(args) -> None:
    """Measure one model (a `selectit finetune` output, or the base model) as the evaluate stage does."""
    from selectit.evaluation.measure import means, measure
    from selectit.evaluation.metrics import write_questions
    from selectit.finetune.models import load_variant
    from selectit.finetune.train import training_dtype
    from selectit.rating.models import resolve

    params = _params(args)
    source = resolve(params.finetune.base_model, params.finetune.trust_remote_code)
    model_folder = None if args.model == "base" else Path(args.model) / "model"
    model, tokenizer = load_variant(
        model_folder, source.location, training_dtype(params.finetune)[1], params.finetune.trust_remote_code
    )
    heldout = read_examples([args.heldout]).examples if args.heldout else None
    if params.evaluate.heldout_loss and not heldout:
        log.info("no --heldout file: the held-out loss is skipped")
    out = Path(args.out)
    questions = measure(
        model,
        tokenizer,
        params.evaluate,
        heldout,
        max_length=params.finetune.max_length,
        work_dir=out / "cache",
        variant=Path(args.model).name,
        answers_dir=out,
        progress=not args.no_progress,
    )
    write_questions(out, questions)
    for metric, value in means(questions).items():
        print(f"{metric}: {value:.4f} over {len(questions[metric]['ids'])} questions")


def cmd_compare(args) -> None:
    """Compare `selectit evaluate` outputs by name: intervals and paired differences."""
    from selectit.evaluation.compare import compare_variants
    from selectit.evaluation.metrics import ordered_specs, read_questions

    params = _params(args)
    pairs = [item.split("=", 1) for item in args.variants]
    if any(len(p) != 2 for p in pairs):
        raise InputError(f"expected NAME=FOLDER pairs, got {args.variants}")
    results = {name: read_questions(Path(folder)) for name, folder in pairs}
    cfg = params.evaluate
    comparison = compare_variants(
        results,
        ordered_specs(m for q in results.values() for m in q),
        reference=cfg.reference,
        resamples=cfg.bootstrap_resamples,
        level=cfg.confidence,
        seed=cfg.seed,
    )
    out = Path(args.out)
    write_text(out / "comparison.md", comparison.to_markdown())
    write_json(out / "comparison.json", comparison.to_json())
    print(comparison.to_markdown())


def token_score_flag(parser: argparse.ArgumentParser, more: str = "") -> None:
    parser.add_argument(
        "--token-score",
        choices=TOKEN_LEVEL_SCORES,
        help=f"token-level score the selection ranks by: paper (the paper's) or expected (the expected rating){more}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selectit", description=__doc__)
    parser.add_argument("--params", default="params.yaml", help="settings file (default: ./params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def inputs(p):
        p.add_argument("inputs", nargs="*", help="input files (default: ingest.source of params.yaml)")
        p.add_argument(
            "--rows-key", help='for a file that is one JSON object with its rows under a key ({"data": [...]})'
        )

    score = sub.add_parser("score", help="rate examples with the rater models and score them")
    inputs(score)
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
    for p in (score, agg := sub.add_parser("aggregate", help="recompute scores.parquet from ratings.parquet")):
        p.add_argument("--alpha", type=float)
        p.add_argument(
            "--authors-softmax",
            action="store_true",
            default=None,
            help="apply the released scripts' extra softmax (to reproduce their numbers)",
        )
        p.add_argument("--weights", nargs="+", metavar="NAME=W", help="rater weights (default: parameter counts)")
        token_score_flag(p)
    agg.add_argument("--ratings", required=True)
    agg.add_argument("--out", required=True)

    select = sub.add_parser("select", help="write the top R%% of the scored examples in the input's format")
    inputs(select)
    select.add_argument("--scores", required=True, help="scores.parquet from `selectit score`")
    select.add_argument("--ratio", type=float)
    select.add_argument("--out", required=True, help="selected examples (.json, .jsonl or .jsonl.gz)")
    select.add_argument("--excluded", help="file for the left-out ids (default: excluded_ids.txt beside --out)")
    select.add_argument(
        "--allow-unscored", action="store_true", help="when some inputs were not scored, select among the scored ones"
    )

    show = sub.add_parser("show-prompts", help="print the exact rating texts a rater reads")
    inputs(show)
    show.add_argument("--rater", help="default: the first rater of params.yaml")
    show.add_argument("--rows", type=int, nargs="+", default=[0], help="0-based rows of the input files")
    show.add_argument("--prompt", type=int, help="one prompt id (default: all)")

    report = sub.add_parser("report", help="write the HTML run report of a data folder")
    report.add_argument("--data", default="data", help="the run's data folder (default: data)")
    report.add_argument("--out", help="output folder (default: <data>/reports/run)")
    report.add_argument("--stability-resamples", type=int, help="resamples of the stability check (0: skip it)")
    report.add_argument("--stability-seed", type=int)

    why = sub.add_parser("explain", help="print what each rater read and answered for one example")
    why.add_argument("id", help="the example's id (scores.parquet, selected_ids.txt, the report)")
    why.add_argument("--data", default="data", help="the run's data folder (default: data)")
    why.add_argument("--no-texts", action="store_true", help="only the stored answers (loads no tokenizer)")

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

    tune = sub.add_parser("finetune", help="fine-tune the base model on examples (finetune section of params)")
    inputs(tune)
    tune.add_argument("--out", required=True, help="output folder: model/ (adapter or weights), finetune.json")
    tune.add_argument("--base-model")
    tune.add_argument("--method", choices=["lora", "full"])
    tune.add_argument("--epochs", type=float)
    tune.add_argument("--max-steps", type=int)
    tune.add_argument("--limit", type=int, help="train on the first N examples only")
    tune.add_argument("--no-progress", action="store_true")

    evaluate = sub.add_parser("evaluate", help="held-out loss and benchmarks of one model (evaluate section)")
    evaluate.add_argument("--model", required=True, help="a `selectit finetune` output folder, or `base`")
    evaluate.add_argument("--base-model", help="the model it was tuned from (default: finetune.base_model)")
    evaluate.add_argument("--heldout", help="examples for the held-out loss (never trained on)")
    evaluate.add_argument("--out", required=True, help="folder for questions.json")
    evaluate.add_argument("--no-progress", action="store_true")

    compare = sub.add_parser("compare", help="compare `selectit evaluate` outputs with bootstrap intervals")
    compare.add_argument("variants", nargs="+", metavar="NAME=FOLDER")
    compare.add_argument("--reference", help="the variant the others are compared with (default: evaluate.reference)")
    compare.add_argument("--out", required=True, help="folder for comparison.md and comparison.json")
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
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        COMMANDS[args.command](args)
    except SelectitError as exc:
        print(f"selectit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
