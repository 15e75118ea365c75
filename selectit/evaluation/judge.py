"""AlpacaEval-style win rate: a judge model compares a variant's answers with the
text-davinci-003 reference answers of the AlpacaEval set, through an OpenAI-compatible
endpoint and the `alpaca-eval` package's pairwise annotator (its prompt, its parser,
its random swap of the two answers against position bias, its annotation cache).

Score per question: 1 when the judge prefers the variant's answer, 0 when it prefers
the reference, 0.5 when the answers are identical or the judge's reply names neither."""

from __future__ import annotations

import json
import logging
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from selectit.config import JudgeConfig
from selectit.core.errors import InputError
from selectit.core.io import write_json
from selectit.evaluation.generate import generate_answers

log = logging.getLogger(__name__)

ALPACA_EVAL_FILE = "alpaca_eval_805_davinci003.json"  # in evaluate.benchmarks_dir
ANSWERS_FILE = "alpaca_eval_answers.json"  # in each variant's evaluation folder
# Local servers take any key; the OpenAI client insists on one.
_NO_KEY = "not-needed"


@dataclass(frozen=True)
class Question:
    id: str
    instruction: str
    reference: str


def load_questions(benchmarks_dir: Path, count: int | None, seed: int) -> list[Question]:
    """A seeded sample of `count` AlpacaEval instructions (all when None), the same for every variant."""
    path = Path(benchmarks_dir) / ALPACA_EVAL_FILE
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: the AlpacaEval set is missing (evaluate.benchmarks_dir)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    questions = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or not {"instruction", "output"} <= row.keys():
            raise InputError(f"{path}: item {index} lacks 'instruction' or 'output'")
        questions.append(Question(f"alpaca_eval/{index}", row["instruction"], row["output"]))
    if count is not None and count < len(questions):
        picked = sorted(random.Random(seed).sample(range(len(questions)), count))
        questions = [questions[i] for i in picked]
    return questions


def judge_win_rate(
    model,
    tokenizer,
    cfg: JudgeConfig,
    *,
    benchmarks_dir: Path,
    variant: str,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    work_dir: Path,
    answers_dir: Path,
    progress: bool = True,
) -> tuple[list[str], list[float]]:
    """(question ids, scores): generate the variant's answers, then have the judge compare them."""
    questions = load_questions(benchmarks_dir, cfg.questions, seed)
    answers = generate_answers(
        model,
        tokenizer,
        [q.instruction for q in questions],
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
    )
    # AlpacaEval's own output format, so the answers can go to its leaderboard tools as they are.
    pairs = list(zip(questions, answers, strict=True))
    write_json(
        Path(answers_dir) / ANSWERS_FILE,
        [{"instruction": q.instruction, "output": a, "generator": variant} for q, a in pairs],
    )
    preferences = annotate(cfg, questions, answers, work_dir=Path(work_dir), seed=seed)
    return [q.id for q in questions], [_score(p) for p in preferences]


def annotate(cfg: JudgeConfig, questions: list[Question], answers: list[str], *, work_dir: Path, seed: int):
    """alpaca-eval's preference per question: 1 = reference, 2 = variant, 1.5 = identical, None = unparsed."""
    try:
        with warnings.catch_warnings():  # its import of pkg_resources warns; nothing a user can act on
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            from alpaca_eval.annotators import PairwiseAnnotator
    except ImportError as exc:
        raise InputError("evaluate.judge needs the alpaca-eval package: pip install alpaca-eval") from exc
    import openai

    work_dir.mkdir(parents=True, exist_ok=True)
    annotator = PairwiseAnnotator(
        annotators_config=str(_annotator_config(cfg, work_dir)),
        caching_path=work_dir / "annotations.json",  # a rerun asks the judge only about new answer pairs
        seed=seed,
    )
    if annotator.df_annotations is not None:
        # pandas 3 reads whole-number preferences back as int64, and alpaca-eval then fails
        # to write 1.5 (identical answers) into that column: keep it float, as it was written.
        key = annotator.annotation_key
        annotator.df_annotations[key] = annotator.df_annotations[key].astype(float)
    reference = [{"instruction": q.instruction, "output": q.reference} for q in questions]
    candidate = [{"instruction": q.instruction, "output": a} for q, a in zip(questions, answers, strict=True)]
    try:
        annotated = annotator.annotate_head2head(
            reference, candidate, is_ordered=True, client_kwargs={"api_key": _api_key(cfg)}
        )
    except openai.OpenAIError as exc:
        raise InputError(f"evaluate.judge: the judge at {cfg.base_url} failed: {exc}") from exc
    if len(annotated) != len(questions):
        raise InputError(f"evaluate.judge: {len(questions)} answer pairs sent, {len(annotated)} judged")
    preferences = [_preference(row.get("preference")) for row in annotated]
    unparsed = sum(p is None for p in preferences)
    if unparsed:
        log.warning(
            "judge %s: %d of %d replies named neither answer; counted as ties", cfg.model, unparsed, len(annotated)
        )
    return preferences


def _annotator_config(cfg: JudgeConfig, work_dir: Path) -> Path:
    """The chosen alpaca-eval annotator (its prompt and parser), pointed at the configured
    judge model; written beside its annotations so a run says which judge it used."""
    from alpaca_eval import constants

    source = Path(constants.EVALUATORS_CONFIG_DIR) / cfg.annotator
    try:
        (name, settings), *rest = yaml.safe_load((source / "configs.yaml").read_text(encoding="utf-8")).items()
    except FileNotFoundError:
        raise InputError(f"evaluate.judge.annotator: {cfg.annotator!r} is not an alpaca-eval annotator") from None
    if rest or settings.get("fn_completions") != "openai_completions":
        raise InputError(
            f"evaluate.judge.annotator: {cfg.annotator!r} does not judge through one OpenAI-style model; "
            "pick one that does (chatgpt, alpaca_eval_gpt4, ...)"
        )
    settings["prompt_template"] = str((source.parent / settings["prompt_template"]).resolve())
    # Client settings go in a file the package reads; the key is passed per call, never written.
    clients = work_dir / "judge_client.yaml"
    clients.write_text(yaml.safe_dump({"default": [{"base_url": cfg.base_url}]}), encoding="utf-8")
    settings["completions_kwargs"] = {
        **settings.get("completions_kwargs", {}),
        "model_name": cfg.model,
        # alpaca-eval's prompts are ChatML; it guesses the chat format from OpenAI model names only.
        "requires_chatml": True,
        "client_config_path": str(clients),
        "price_per_token": 0,
    }
    path = work_dir / name / "configs.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({name: settings}), encoding="utf-8")
    return path


def _api_key(cfg: JudgeConfig) -> str:
    if not cfg.api_key_env:
        return _NO_KEY
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise InputError(f"evaluate.judge.api_key_env: the environment variable {cfg.api_key_env} is not set")
    return key


def _preference(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value in (1.0, 1.5, 2.0) else None


def _score(preference: float | None) -> float:
    """The variant's answer is output 2: 2 -> 1.0, 1 -> 0.0, tie or unparsed -> 0.5."""
    return 0.5 if preference is None else preference - 1.0
