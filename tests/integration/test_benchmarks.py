"""The benchmark part of the evaluate stage (selectit/evaluation/benchmarks.py, tasks/*.yaml).

Three kinds of check:
- structure, with tiny random Llamas (SmolLM2's real tokenizer) on a trimmed copy of the
  benchmark folder (3 MMLU subjects, 3 BBH tasks): ids stable and unique, scores in [0, 1],
  counts that follow the limits, the same ids for two models;
- scoring, with an oracle LM that answers from the document it is asked about: always right
  must score 1.0 on every benchmark and always wrong 0.0, which checks the prompts reach the
  model, the answers are extracted and the metrics are wired;
- HumanEval's gate and its subprocess runner, and the errors a caller can make.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT, SHARED_DATA, tiny_llama

from selectit.config import load_params
from selectit.core.errors import ParamsError
from selectit.evaluation import benchmarks as bm
from selectit.evaluation.benchmarks import BENCHMARKS, QuestionScores

BENCHMARKS_DIR = SHARED_DATA / "benchmarks"
# The project's settings, as the evaluate stage passes them; a test overrides one by name.
EVALUATE = load_params(ROOT / "params.yaml").evaluate
SETTINGS = {"run_code": EVALUATE.run_code, "max_new_tokens": EVALUATE.max_new_tokens}
SMALL_MMLU = ("abstract_algebra", "anatomy", "world_religions")
SMALL_BBH = ("boolean_expressions", "date_understanding", "dyck_languages")

pytestmark = pytest.mark.skipif(not BENCHMARKS_DIR.is_dir(), reason=f"no benchmark data at {BENCHMARKS_DIR}")


pytestmark = pytest.mark.usefixtures("hf_offline")


@pytest.fixture(scope="session")
def small_benchmarks(tmp_path_factory) -> Path:
    """The real benchmark files, with MMLU and BBH cut to three subjects / tasks each."""
    folder = tmp_path_factory.mktemp("benchmarks")
    with zipfile.ZipFile(BENCHMARKS_DIR / "mmlu.zip") as source, zipfile.ZipFile(folder / "mmlu.zip", "w") as small:
        for subject in SMALL_MMLU:
            for split in ("dev", "test"):
                entry = f"data/{split}/{subject}_{split}.csv"
                small.writestr(entry, source.read(entry))
    (folder / "bbh" / "cot-prompts").mkdir(parents=True)
    for task in SMALL_BBH:
        shutil.copy(BENCHMARKS_DIR / "bbh" / f"{task}.json", folder / "bbh")
        shutil.copy(BENCHMARKS_DIR / "bbh" / "cot-prompts" / f"{task}.txt", folder / "bbh" / "cot-prompts")
    for name in ("gsm8k_test.jsonl", "humaneval.jsonl.gz"):
        shutil.copy(BENCHMARKS_DIR / name, folder)
    return folder


@pytest.fixture(scope="session")
def shared_work(tmp_path_factory) -> Path:
    """One work folder for the oracle runs over the full data: they share the datasets cache."""
    return tmp_path_factory.mktemp("work")


# --- models ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tokenizer(smollm2_folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_folder)


def small_llama(tokenizer, seed: int):
    """helpers' tiny Llama, narrower, with a context long enough for the 5-shot and 8-shot prompts."""
    return tiny_llama(tokenizer, seed, hidden_size=32, intermediate_size=64, max_position_embeddings=4096).eval()


def oracle_lm(correct: bool):
    """An lm-eval LM that reads the gold answer off each request's document and answers
    right (correct=True) or wrong, in the form a model is prompted to answer in."""
    from lm_eval.api.model import LM

    class Oracle(LM):
        def __init__(self):
            super().__init__()
            self.requests = []  # every request seen, to check the prompts

        def loglikelihood(self, requests):
            self.requests += requests
            answers = []
            for request in requests:
                _, continuation = request.args
                good = (continuation.strip() == request.doc["answer"]) == correct
                answers.append((0.0 if good else -10.0, good))
            return answers

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def generate_until(self, requests):
            self.requests += requests
            return [self.write(request.task_name, request.doc) for request in requests]

        @staticmethod
        def write(task: str, doc: dict) -> str:
            if task == "gsm8k":
                # the reference's own reasoning (calculator notes dropped), its number as written
                reasoning, number = doc["answer"].split("####")
                reasoning = re.sub(r"<<[^>]*>>", "", reasoning).strip().replace("\n", " ")
                if not correct:
                    number = str(int(bm.normal_number(number)) + 1)
                return f" {reasoning} The answer is {number.strip()}."
            if task.startswith("bbh_"):
                target = doc["target"]
                if not correct:
                    target = "(Z)" if target.startswith("(") else f"not {target}"
                return f"\nLet me work through it.\nSo the answer is {target}."
            if task == "humaneval":
                return doc["canonical_solution"] if correct else "    raise NotImplementedError\n"
            raise AssertionError(f"unexpected task {task}")

    return Oracle()


def run_benchmarks(model, tokenizer, limits: dict, folder: Path, work: Path, **settings) -> dict[str, QuestionScores]:
    return bm.run_benchmarks(
        model, tokenizer, limits, folder, work, **SETTINGS | {"batch_size": EVALUATE.batch_size} | settings
    )


def evaluate_with(lm, limits: dict, folder: Path, work: Path, **settings) -> dict[str, QuestionScores]:
    settings = SETTINGS | settings
    return bm._evaluate(
        lm, bm._check_request(limits, folder, settings["run_code"]), folder, work, progress=False, **settings
    )


# --- structure, with tiny random models ------------------------------------------------


def check_structure(results: dict[str, QuestionScores], limits: dict) -> None:
    assert list(results) == list(limits)
    per_benchmark = {"mmlu": len(SMALL_MMLU), "bbh": len(SMALL_BBH), "gsm8k": 1, "humaneval": 1}
    for name, scores in results.items():
        assert scores.benchmark == name and scores.metric == bm.METRICS[name]
        assert len(scores.question_ids) == len(scores.scores) == limits[name] * per_benchmark[name]
        assert len(set(scores.question_ids)) == len(scores.question_ids)
        assert all(q.startswith(f"{name}/") for q in scores.question_ids)
        assert all(0.0 <= s <= 1.0 for s in scores.scores)
        assert 0.0 <= scores.mean <= 1.0


def test_every_task_runs_on_tiny_models_with_stable_ids(tokenizer, small_benchmarks, tmp_path, monkeypatch):
    import datasets

    def no_network(*args, **kwargs):
        raise AssertionError("the benchmarks tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    limits = {"mmlu": 2, "gsm8k": 2, "bbh": 2, "humaneval": 2}
    runs = [
        run_benchmarks(
            small_llama(tokenizer, seed),
            tokenizer,
            limits,
            small_benchmarks,
            tmp_path / f"work{seed}",
            run_code=True,
            max_new_tokens=8,
            progress=False,
        )
        for seed in (0, 1)
    ]
    for results in runs:
        check_structure(results, limits)
    first, second = runs
    for name in limits:
        assert first[name].question_ids == second[name].question_ids
    assert first["mmlu"].question_ids[:3] == [
        "mmlu/abstract_algebra/test/0",
        "mmlu/abstract_algebra/test/1",
        "mmlu/anatomy/test/0",
    ]
    assert first["gsm8k"].question_ids == ["gsm8k/test/0", "gsm8k/test/1"]
    assert first["bbh"].question_ids[0] == "bbh/boolean_expressions/test/0"
    assert first["humaneval"].question_ids == ["humaneval/test/0", "humaneval/test/1"]
    assert not datasets.are_progress_bars_disabled()  # progress=False put the switch back


def test_peft_wrapped_model_runs(tokenizer, small_benchmarks, tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(small_llama(tokenizer, 2), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    limits = {"mmlu": 1, "gsm8k": 1}
    results = run_benchmarks(model, tokenizer, limits, small_benchmarks, tmp_path, max_new_tokens=4, progress=False)
    check_structure(results, limits)


def test_limit_none_takes_every_question_and_zero_skips(small_benchmarks, tmp_path):
    results = evaluate_with(oracle_lm(True), {"bbh": None, "humaneval": 0}, small_benchmarks, tmp_path)
    expected = sum(len(json.loads((small_benchmarks / "bbh" / f"{t}.json").read_text())["examples"]) for t in SMALL_BBH)
    assert list(results) == ["bbh"]
    assert len(results["bbh"].scores) == expected
    assert results["bbh"].question_ids[-1] == "bbh/dyck_languages/test/249"


# --- scoring, with the oracle -------------------------------------------------------------


@pytest.mark.parametrize("correct", [True, False])
def test_oracle_scores_one_when_right_and_zero_when_wrong(correct, shared_work):
    limits = {name: 2 for name in BENCHMARKS}
    results = evaluate_with(oracle_lm(correct), limits, BENCHMARKS_DIR, shared_work, run_code=True)
    assert {name: scores.mean for name, scores in results.items()} == {name: float(correct) for name in BENCHMARKS}
    assert len(results["mmlu"].scores) == 2 * 57 and len(results["bbh"].scores) == 2 * 27


def test_prompts_are_the_standard_few_shot_prompts(shared_work):
    lm = oracle_lm(True)
    evaluate_with(lm, {name: 1 for name in BENCHMARKS}, BENCHMARKS_DIR, shared_work, run_code=True, max_new_tokens=99)
    by_task = {}
    for request in lm.requests:
        by_task.setdefault(request.task_name, request)

    # MMLU: the subject's description, its five dev questions with answers, the question, "Answer:"
    context, continuation = by_task["mmlu_abstract_algebra"].args
    assert context.startswith("The following are multiple choice questions (with answers) about abstract algebra.\n\n")
    with zipfile.ZipFile(BENCHMARKS_DIR / "mmlu.zip") as archive:
        dev = archive.read("data/dev/abstract_algebra_dev.csv").decode()
    assert context.count("\nAnswer: ") == 5 and context.endswith("\nD. 6\nAnswer:")
    assert dev.splitlines()[0].split(",")[0] in context
    assert continuation in (" A", " B", " C", " D")

    # GSM8K: the eight chain-of-thought exemplars, then the question
    context, generation = by_task["gsm8k"].args
    assert context.startswith("Q: There are 15 trees in the grove.")
    assert context.count("The answer is") == 8
    assert context.endswith(f"\n\nQ: {by_task['gsm8k'].doc['question']}\nA:")
    assert generation["max_gen_toks"] == 99 and generation["do_sample"] is False and "\n\n" in generation["until"]

    # BBH: the published prompt verbatim, then the question and the chain-of-thought cue
    request = by_task["bbh_dyck_languages"]
    prompt = (BENCHMARKS_DIR / "bbh" / "cot-prompts" / "dyck_languages.txt").read_text().split("-----\n", 1)[1]
    assert request.args[0] == f"{prompt.strip()}\n\nQ: {request.doc['input']}\nA: Let's think step by step."

    # HumanEval: the problem's prompt alone
    assert by_task["humaneval"].args[0] == by_task["humaneval"].doc["prompt"]


def test_answer_extraction():
    assert bm.final_number("5 + 4 = 9. The answer is 9.") == "9"
    assert bm.final_number("So 3 boxes. The answer is $1,250.00 in total") == "1250"
    assert bm.final_number("The answer is 4. Wait, the answer is -12.5.") == "-12.5"
    assert bm.final_number("no cue: 3 apples and 7 pears") == "7"
    assert bm.final_number("nothing numeric") == bm.INVALID
    assert bm.gsm8k_reference({"answer": "so...\n#### 1,450,000"}) == "1450000"
    assert bm.bbh_answer("A is x. So the answer is (B).") == "(B)"
    assert bm.bbh_answer("So the answer is (C) blue.\nQ: more") == "(C)"
    assert bm.bbh_answer("Thus the answer is ] ) ).") == "] ) )"
    assert bm.bbh_answer("So the answer is valid.") == "valid"
    assert bm.bbh_answer("the answer is (A). Hmm, so the answer is (D).") == "(D)"
    assert bm.bbh_answer("I do not know.") == bm.INVALID


def test_every_mmlu_row_loads_as_text_with_a_letter_answer(shared_work):
    """Through the task configs: no option read as a number or as a missing value."""
    from lm_eval.tasks import TaskManager

    configs = bm._task_configs("mmlu", BENCHMARKS_DIR, shared_work, max_new_tokens=1)
    tasks = TaskManager(include_defaults=False).load(list(configs.values()))["tasks"]
    rows = [row for task in tasks.values() for row in task.eval_docs]
    assert len(tasks) == 57 and len(rows) == 14042
    assert all(isinstance(row[c], str) for row in rows for c in bm.MMLU_COLUMNS)
    assert all(row["answer"] in "ABCD" and len(row["answer"]) == 1 for row in rows)
    options = {row[c] for row in rows for c in "ABCD"}
    assert "None" in options  # pandas' defaults would have made it a missing value
    assert "0.40" in options  # and this the float 0.4


def test_every_gsm8k_reference_is_a_whole_number():
    rows = [json.loads(line) for line in (BENCHMARKS_DIR / "gsm8k_test.jsonl").read_text().splitlines()]
    assert all(re.fullmatch(r"-?\d+", bm.gsm8k_reference(row)) for row in rows)


def test_every_bbh_prompt_is_three_shot():
    for task in bm._bbh_tasks(BENCHMARKS_DIR / "bbh"):
        prompt = bm._cot_prompt(BENCHMARKS_DIR, task)
        assert "canary" not in prompt and not prompt.startswith("-")
        assert prompt.count("\n\nQ: ") == 3 and prompt.count("So the answer is") == 3, task


# --- HumanEval ------------------------------------------------------------------------------


def test_humaneval_is_refused_without_run_code(tmp_path):
    with pytest.raises(ParamsError, match=r"limits\.humaneval: .*run_code=True"):
        run_benchmarks(None, None, {"humaneval": 1}, BENCHMARKS_DIR, tmp_path)
    # and lm-eval's own gate holds should the check above be bypassed
    with pytest.raises(ValueError, match="unsafe"):
        bm._evaluate(oracle_lm(True), {"humaneval": 1}, BENCHMARKS_DIR, tmp_path, progress=False, **SETTINGS)


@pytest.mark.parametrize("correct", [True, False])
def test_humaneval_canonical_solution_passes_and_wrong_one_fails(correct, shared_work):
    results = evaluate_with(oracle_lm(correct), {"humaneval": 3}, BENCHMARKS_DIR, shared_work, run_code=True)
    assert results["humaneval"].scores == [float(correct)] * 3


def test_run_program_reports_exit_status():
    assert bm.run_program("assert sum([1, 2]) == 3\n")
    assert not bm.run_program("assert sum([1, 2]) == 4\n")
    assert not bm.run_program("import os\nassert 'HOME' not in os.environ and False\n")


def test_run_program_kills_a_program_that_runs_too_long_with_what_it_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    source = (
        "import subprocess\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "while True:\n    pass\n"
    )
    started = time.monotonic()
    assert not bm.run_program(source, timeout_s=1.5)
    assert time.monotonic() - started < 10
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting to be reaped."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


# --- errors ------------------------------------------------------------------------------


def test_unknown_benchmark_is_named(tmp_path):
    with pytest.raises(ParamsError, match=r"limits\.truthfulqa: unknown benchmark"):
        run_benchmarks(None, None, {"gsm8k": 1, "truthfulqa": 1}, BENCHMARKS_DIR, tmp_path)


@pytest.mark.parametrize("limit", [-1, 1.5, True, "3"])
def test_bad_limit_is_named(limit, tmp_path):
    with pytest.raises(ParamsError, match=r"limits\.gsm8k: expected a number of questions"):
        run_benchmarks(None, None, {"gsm8k": limit}, BENCHMARKS_DIR, tmp_path)


@pytest.mark.parametrize(
    "name, missing",
    [
        ("mmlu", "mmlu.zip"),
        ("gsm8k", "gsm8k_test.jsonl"),
        ("humaneval", "humaneval.jsonl.gz"),
        ("bbh", "*.json"),
    ],
)
def test_missing_benchmark_file_is_named(name, missing, tmp_path):
    with pytest.raises(ParamsError, match=rf"limits\.{name}: benchmark file not found: .*{re.escape(missing)}"):
        run_benchmarks(None, None, {name: 1}, tmp_path, tmp_path, run_code=True)


def test_bbh_task_without_its_prompt_is_named(small_benchmarks, tmp_path):
    folder = tmp_path / "benchmarks"
    shutil.copytree(small_benchmarks / "bbh", folder / "bbh")
    os.remove(folder / "bbh" / "cot-prompts" / "date_understanding.txt")
    with pytest.raises(ParamsError, match=r"limits\.bbh: benchmark file not found: .*date_understanding\.txt"):
        run_benchmarks(None, None, {"bbh": 1}, folder, tmp_path)


def test_question_scores_mean():
    assert QuestionScores("gsm8k", "exact_match", ["a", "b"], [1.0, 0.0]).mean == 0.5


# --- every question of the real data, with the oracle (slow) ------------------------------------


@pytest.mark.slow
def test_oracle_scores_one_on_every_question(shared_work):
    """Every reference of the full benchmarks parses and can be matched: nothing is unscoreable.

    MMLU is cut to 10 questions a subject: building all 14,042 five-shot prompts takes minutes,
    and its rows are checked one by one in test_every_mmlu_row_loads_as_text_with_a_letter_answer."""
    limits = {name: None for name in BENCHMARKS} | {"mmlu": 10}
    results = evaluate_with(oracle_lm(True), limits, BENCHMARKS_DIR, shared_work, run_code=True)
    sizes = {name: len(scores.scores) for name, scores in results.items()}
    assert sizes == {"mmlu": 570, "gsm8k": 1319, "bbh": 6511, "humaneval": 164}
    failed = {
        name: [q for q, s in zip(r.question_ids, r.scores, strict=True) if s != 1.0][:5] for name, r in results.items()
    }
    assert failed == {name: [] for name in BENCHMARKS}
