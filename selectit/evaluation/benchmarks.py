"""Benchmark scores of one model, per question: MMLU, GSM8K, BBH and HumanEval, run by
lm-evaluation-harness (lm-eval) on the offline copies in the shared benchmark folder.

The task configurations are lm-eval YAML files in `tasks/`. They cannot name the
benchmark folder (it is only known at run time), so they hold placeholders such as
`@BENCHMARKS_DIR@`; `_task_configs` loads a template, fills it in and hands lm-eval
the result as a config dict. MMLU and BBH are one template each, expanded into one
task per subject (57) or task (27).

Scores are read from lm-eval's logged samples, one per question, under ids that do
not depend on the model or the run (`mmlu/abstract_algebra/test/3`), so a paired
bootstrap can line two models up question by question.

Nothing here needs the Hugging Face Hub: the data are local files read by the
`json`/`csv` loaders of `datasets`, and the model comes in already loaded.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from selectit.config import BENCHMARKS
from selectit.core.errors import InputError, ParamsError

if TYPE_CHECKING:
    from lm_eval.api.model import LM

log = logging.getLogger(__name__)


# The per-question metric lm-eval logs for each benchmark (named in its YAML's metric_list).
METRICS = {"mmlu": "acc", "gsm8k": "exact_match", "bbh": "exact_match", "humaneval": "pass@1"}

TASKS_DIR = Path(__file__).parent / "tasks"

MMLU_COLUMNS = ("question", "A", "B", "C", "D", "answer")

# What an extraction filter returns when a response holds no answer: never equal to a reference.
INVALID = "[invalid]"

# A HumanEval program gets this long (wall clock) and this much address space.
CODE_TIMEOUT_S = 5.0
CODE_MEMORY_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class QuestionScores:
    """One benchmark's score for every question a model was asked, in file order."""

    benchmark: str
    metric: str  # e.g. "acc", "exact_match", "pass@1"
    question_ids: list[str]  # stable across models and runs, e.g. "mmlu/abstract_algebra/test/3"
    scores: list[float]  # one per question, 0..1

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else math.nan


def run_benchmarks(
    model,
    tokenizer,
    limits: dict[str, int | None],
    benchmarks_dir: Path,
    work_dir: Path,
    *,
    run_code: bool,
    max_new_tokens: int,
    batch_size: int,
    progress: bool = True,
) -> dict[str, QuestionScores]:
    """Score `model` (a loaded transformers causal LM, possibly peft-wrapped) on the benchmarks in `limits`.

    `limits` maps a benchmark (one of BENCHMARKS) to how many questions to ask: the first N
    in file order, so every model gets the same ones; None asks all of them and 0 skips the
    benchmark. For mmlu and bbh the limit is per subject (57) or per task (27), so that every
    one is represented: mmlu with limit 2 asks 114 questions.

    `benchmarks_dir` is the offline benchmark folder (mmlu.zip, gsm8k_test.jsonl, bbh/,
    humaneval.jsonl.gz). `work_dir` receives the MMLU CSVs taken out of the zip and the
    `datasets` cache. Generation (gsm8k, bbh, humaneval) is greedy, at most `max_new_tokens`
    tokens. HumanEval runs the code the model writes, each program in its own time-limited
    Python process, and only when `run_code` is true.

    lm-eval's HFLM wraps the model: it puts the model in eval mode and gives the tokenizer a
    pad token if it has none.

    Raises ParamsError for an unknown benchmark, a bad limit, a missing benchmark file, or
    humaneval without run_code. Returns {benchmark: QuestionScores} in the order of `limits`.
    """
    active = _check_request(limits, Path(benchmarks_dir), run_code)
    for key, value in (("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
        if value < 1:
            raise ParamsError(f"{key}: expected an integer >= 1, got {value}")
    lm = _wrap_model(model, tokenizer, batch_size, progress)
    return _evaluate(
        lm,
        active,
        Path(benchmarks_dir),
        Path(work_dir),
        run_code=run_code,
        max_new_tokens=max_new_tokens,
        progress=progress,
    )


# --- what was asked for --------------------------------------------------------------


def _check_request(limits: Mapping[str, int | None], benchmarks_dir: Path, run_code: bool) -> dict[str, int | None]:
    """The benchmarks to run with their limits (0 dropped), or a ParamsError naming the key."""
    active = {}
    for name, limit in limits.items():
        if name not in BENCHMARKS:
            raise ParamsError(f"limits.{name}: unknown benchmark; expected one of {list(BENCHMARKS)}")
        # bool is an int, and lm-eval reads a limit below 1 as a fraction of the questions
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ParamsError(f"limits.{name}: expected a number of questions >= 0 or None, got {limit!r}")
        if limit == 0:
            continue
        if name == "humaneval" and not run_code:
            raise ParamsError(
                "limits.humaneval: HumanEval runs the code the model writes; "
                "pass run_code=True to allow it, or leave humaneval out"
            )
        if (missing := _missing_file(name, benchmarks_dir)) is not None:
            raise ParamsError(f"limits.{name}: benchmark file not found: {missing}")
        active[name] = limit
    return active


def _missing_file(name: str, benchmarks_dir: Path) -> Path | None:
    """The first file the benchmark needs that is not there, or None."""
    if name == "bbh":
        folder = benchmarks_dir / "bbh"
        tasks = _bbh_tasks(folder)
        needed = [folder / "cot-prompts" / f"{task}.txt" for task in tasks] if tasks else [folder / "*.json"]
    else:
        needed = [
            benchmarks_dir / {"mmlu": "mmlu.zip", "gsm8k": "gsm8k_test.jsonl", "humaneval": "humaneval.jsonl.gz"}[name]
        ]
    return next((path for path in needed if not path.exists()), None)


def _bbh_tasks(folder: Path) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.json"))


# --- running lm-eval -----------------------------------------------------------------


def _wrap_model(model, tokenizer, batch_size: int, progress: bool) -> LM:
    """lm-eval's HFLM around an already loaded model (it accepts an instance, peft-wrapped or not)."""
    from lm_eval.models.huggingface import HFLM

    class _HFLM(HFLM):
        # HFLM shows a progress bar per request type unless told not to; the evaluator never tells it.
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm or not progress)

        def generate_until(self, requests, disable_tqdm: bool = False):
            return super().generate_until(requests, disable_tqdm=disable_tqdm or not progress)

    return _HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


def _evaluate(
    lm: LM,
    limits: Mapping[str, int | None],
    benchmarks_dir: Path,
    work_dir: Path,
    *,
    run_code: bool,
    max_new_tokens: int,
    progress: bool = True,
) -> dict[str, QuestionScores]:
    """Run each benchmark through lm-eval with any lm-eval `LM` (the seam the tests use).

    `limits` must already have passed `_check_request`."""
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager

    work_dir.mkdir(parents=True, exist_ok=True)
    # Only our configs: indexing lm-eval's own few thousand YAML files would take seconds, and
    # its built-in tasks of the same names (gsm8k, mmlu_*) must not be picked up instead.
    manager = TaskManager(include_defaults=False)
    results = {}
    for name, limit in limits.items():
        started = time.monotonic()
        subtasks = _task_configs(name, benchmarks_dir, work_dir, max_new_tokens)
        with _progress_bars(progress):
            loaded = manager.load(list(subtasks.values()))
            # One call per benchmark because the limit differs; lm-eval applies it per task.
            # bootstrap_iters=0: lm-eval's own stderr is not used (the compare stage bootstraps).
            output = evaluate(
                lm,
                loaded,
                limit=limit,
                bootstrap_iters=0,
                log_samples=True,
                confirm_run_unsafe_code=run_code,
            )
        task_names = {subtask: config["task"] for subtask, config in subtasks.items()}
        results[name] = _question_scores(name, task_names, output["samples"])
        log.info(
            "%s: %d questions, %s %.3f (%.0f s)",
            name,
            len(results[name].scores),
            results[name].metric,
            results[name].mean,
            time.monotonic() - started,
        )
    return results


@contextlib.contextmanager
def _progress_bars(show: bool) -> Iterator[None]:
    """Without progress, also silence the bars of `datasets` and of lm-eval's prompt building.

    Neither has a switch for one call: `datasets` has a global one (restored afterwards), and
    lm-eval's task module calls `tqdm` directly, so it gets a disabled one for the duration."""
    if show:
        yield
        return
    from functools import partial

    import datasets
    import lm_eval.api.task as lm_eval_task

    were_disabled = datasets.are_progress_bars_disabled()
    original_tqdm = lm_eval_task.tqdm
    datasets.disable_progress_bars()
    lm_eval_task.tqdm = partial(original_tqdm, disable=True)
    try:
        yield
    finally:
        lm_eval_task.tqdm = original_tqdm
        if not were_disabled:
            datasets.enable_progress_bars()


def _question_scores(name: str, subtasks: Mapping[str, str], samples: Mapping[str, list[dict]]) -> QuestionScores:
    """Per-question scores from lm-eval's logged samples; `subtasks` maps our subtask name
    ("" when the benchmark has none) to its lm-eval task name, in the order to report."""
    metric = METRICS[name]
    ids, scores = [], []
    for subtask, task_name in subtasks.items():
        for sample in sorted(samples[task_name], key=lambda s: s["doc_id"]):
            ids.append(question_id(name, subtask, sample["doc_id"]))
            scores.append(float(sample[metric]))
    if len(set(ids)) != len(ids):  # one filter per task, so one sample per question
        raise RuntimeError(f"{name}: lm-eval logged some questions more than once")
    return QuestionScores(name, metric, ids, scores)


def question_id(benchmark: str, subtask: str, row: int) -> str:
    """`<benchmark>[/<subject or task>]/test/<row>`, row counted from 0 in the benchmark's file."""
    return "/".join(part for part in (benchmark, subtask, "test", str(row)) if part)


# --- task configs from the YAML templates --------------------------------------------

_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")


def _task_configs(name: str, benchmarks_dir: Path, work_dir: Path, max_new_tokens: int) -> dict[str, dict]:
    """{subtask: lm-eval task config} for one benchmark, in reporting order ("" = no subtasks)."""
    common = {"BENCHMARKS_DIR": str(benchmarks_dir.resolve()), "WORK_DIR": str(work_dir.resolve())}
    template = _load_template(name)
    if name == "mmlu":
        mmlu_dir = work_dir / "mmlu"
        configs = {}
        for subject in _extract_mmlu(benchmarks_dir / "mmlu.zip", mmlu_dir):
            config = _fill(
                template,
                {
                    **common,
                    "MMLU_DIR": str(mmlu_dir.resolve()),
                    "SUBJECT": subject,
                    "SUBJECT_TEXT": subject.replace("_", " "),
                },
            )
            config["dataset_kwargs"]["features"] = _string_features(MMLU_COLUMNS)
            configs[subject] = config
    elif name == "bbh":
        configs = {
            task: _fill(template, {**common, "TASK": task, "COT_PROMPT": _cot_prompt(benchmarks_dir, task)})
            for task in _bbh_tasks(benchmarks_dir / "bbh")
        }
    else:
        configs = {"": _fill(template, common)}
    for config in configs.values():
        if config.get("output_type") == "generate_until":
            config["generation_kwargs"]["max_gen_toks"] = max_new_tokens
    return configs


def _load_template(name: str) -> dict:
    """tasks/<name>.yaml as a dict; `!function a.b.c` becomes the object c of module a.b.

    lm-eval's own loader does the same but is private (lm_eval.tasks._yaml_loader), and the
    templates only name functions of this package, so a small loader of our own does."""

    class Loader(yaml.SafeLoader):
        pass

    def function(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        module, _, attribute = loader.construct_scalar(node).rpartition(".")
        return getattr(importlib.import_module(module), attribute)

    Loader.add_constructor("!function", function)
    return yaml.load((TASKS_DIR / f"{name}.yaml").read_text(encoding="utf-8"), Loader=Loader)  # noqa: S506


def _fill(value: Any, fields: Mapping[str, str]) -> Any:
    """A copy of `value` with every @NAME@ in its strings replaced by fields[NAME].

    One pass: text put in (a BBH prompt) is not searched again."""
    if isinstance(value, str):

        def field(match: re.Match) -> str:
            if match.group(1) not in fields:
                raise KeyError(f"task template: no value for placeholder {match.group()}")
            return fields[match.group(1)]

        return _PLACEHOLDER.sub(field, value)
    if isinstance(value, dict):
        return {key: _fill(item, fields) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, fields) for item in value]
    return value


def _string_features(columns: tuple[str, ...]):
    from datasets import Features, Value

    return Features({column: Value("string") for column in columns})


def _cot_prompt(benchmarks_dir: Path, task: str) -> str:
    """The task's chain-of-thought prompt: the file less its canary line and the "-----" under it."""
    text = (benchmarks_dir / "bbh" / "cot-prompts" / f"{task}.txt").read_text(encoding="utf-8")
    _, separator, prompt = text.partition("-----\n")
    return (prompt if separator else text).strip()


def _extract_mmlu(zip_path: Path, folder: Path) -> list[str]:
    """Write the dev and test CSVs of mmlu.zip to folder/{dev,test}/; return the subjects, sorted.

    A file already there with the same bytes is left alone, so `datasets` keeps its cache."""
    wanted = re.compile(r"data/(dev|test)/(\w+)_(dev|test)\.csv")
    subjects = set()
    with zipfile.ZipFile(zip_path) as archive:
        for entry in archive.namelist():
            match = wanted.fullmatch(entry)
            if not match or match.group(1) != match.group(3):
                continue
            split, subject = match.group(1), match.group(2)
            _write_if_changed(folder / split / f"{subject}_{split}.csv", archive.read(entry))
            if split == "test":
                subjects.add(subject)
    missing_dev = [s for s in subjects if not (folder / "dev" / f"{s}_dev.csv").exists()]
    if not subjects or missing_dev:
        raise InputError(
            f"{zip_path}: expected data/test/<subject>_test.csv and data/dev/<subject>_dev.csv "
            f"for every subject; found {len(subjects)} subjects, without dev rows: {missing_dev}"
        )
    return sorted(subjects)


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


# --- answer extraction (named by the YAML files) -------------------------------------

_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_ANSWER_CUE = re.compile(r"the answer is", re.IGNORECASE)


def _after_last_cue(response: str) -> str | None:
    """The text after the last "the answer is" (any case), or None without one."""
    cues = list(_ANSWER_CUE.finditer(response))
    return response[cues[-1].end() :] if cues else None


def normal_number(text: str) -> str:
    """A number in one written form: no "$" or thousands commas, no trailing ".0"."""
    number = text.replace("$", "").replace(",", "").strip().rstrip(".")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number


def final_number(response: str) -> str:
    """The number after the last "The answer is"; without one, the last number written."""
    answer = _after_last_cue(response)
    if answer is not None and (match := _NUMBER.search(answer)):
        return normal_number(match.group())
    numbers = _NUMBER.findall(response)
    return normal_number(numbers[-1]) if numbers else INVALID


def gsm8k_reference(doc: Mapping[str, str]) -> str:
    """The number after "####" in a GSM8K solution, in normal form."""
    return normal_number(doc["answer"].split("####")[-1])


def gsm8k_answers(responses: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """lm-eval filter: each response reduced to its final number."""
    return [[final_number(text) for text in per_doc] for per_doc in responses]


def bbh_answer(response: str) -> str:
    """The text after the last "the answer is", up to the end of its line, without a final ".";
    a multiple-choice answer such as "(B) blue" is cut to its letter "(B)", as the targets are."""
    answer = _after_last_cue(response)
    if answer is None:
        return INVALID
    answer = answer.split("\n", 1)[0].strip().removesuffix(".").strip()
    if choice := re.match(r"\([A-Z]\)", answer):
        return choice.group()
    return answer or INVALID


def bbh_answers(responses: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """lm-eval filter: each response reduced to its answer."""
    return [[bbh_answer(text) for text in per_doc] for per_doc in responses]


# --- HumanEval: running model-written code -------------------------------------------


def humaneval_process_results(doc: Mapping[str, str], results: list[str]) -> dict[str, float]:
    """lm-eval process_results: pass@1 is 1 when the completed function passes the problem's tests."""
    program = f"{doc['prompt']}{results[0]}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"
    return {"pass@1": 1.0 if run_program(program) else 0.0}


# Put first in every program: caps that the program cannot lift again (soft = hard limit).
_LIMITS = """\
import resource as _resource
_resource.setrlimit(_resource.RLIMIT_AS, ({memory}, {memory}))
_resource.setrlimit(_resource.RLIMIT_CPU, ({cpu}, {cpu}))
del _resource
"""


def run_program(source: str, timeout_s: float | None = None) -> bool:
    """True when `source` runs to the end with exit status 0 in a fresh Python process.

    Never in this process: the program gets its own process group in an empty temporary folder,
    Python's isolated mode (no user site, no PYTHON* variables), an environment with nothing but
    PATH (no tokens or credentials), no stdin, capped memory and CPU time, and is killed with
    everything it started when `timeout_s` (default CODE_TIMEOUT_S) runs out."""
    timeout_s = CODE_TIMEOUT_S if timeout_s is None else timeout_s
    preamble = _LIMITS.format(memory=CODE_MEMORY_BYTES, cpu=math.ceil(timeout_s) + 1)
    with tempfile.TemporaryDirectory(prefix="selectit-code-") as folder:
        path = Path(folder) / "program.py"
        path.write_text(preamble + source, encoding="utf-8")
        process = subprocess.Popen(
            [sys.executable, "-I", str(path)],
            cwd=folder,
            env={"PATH": os.environ.get("PATH", "")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=timeout_s) == 0
        except subprocess.TimeoutExpired:
            return False
        finally:
            _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the program's process group (whatever it forked too) and reap the program."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
