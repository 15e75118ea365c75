"""The report's numbers: pure functions over the run's tables (pandas in, pandas out)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from selectit.core.records import Example
from selectit.scoring.tables import SENTENCE_PREFIX
from selectit.selection.top import n_to_keep

# An arithmetic expression (two numbers joined by an operator) or a word that asks for one:
# a plain, checkable reading of the paper's "calculation-heavy" data.
_CALCULATION = re.compile(
    r"\d\s*[-+*/×÷=^%]\s*\d|\b(calculate|compute|solve|equation|sum|average|percent(age)?|how many|how much)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z]+")
# The leading verbs shown by name; the rest are "other" (a long tail of one-off words).
TOP_TASK_TYPES = 10


def token_scores(ratings: pd.DataFrame) -> pd.DataFrame:
    """Token-level scores as example x (rater, prompt)."""
    return ratings.pivot_table(index="example_id", columns=["model", "prompt_id"], values="token_score")


def prompt_spread(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per example and rater: the population std of its token scores over the prompts
    (what the sentence level penalises), and their mean."""
    grouped = ratings.groupby(["example_id", "model"])["token_score"]
    return pd.DataFrame({"spread": grouped.std(ddof=0), "mean": grouped.mean()}).reset_index()


def rater_correlation(scores: pd.DataFrame, raters: Sequence[str]) -> pd.DataFrame:
    """Spearman rank correlation between the raters' sentence scores and the model score."""
    columns = {r: scores[SENTENCE_PREFIX + r] for r in raters}
    columns["model score"] = scores["model_score"]
    return pd.DataFrame(columns).corr(method="spearman")


def jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    first, second = set(a), set(b)
    union = first | second
    return len(first & second) / len(union) if union else 1.0


def top_ids(ids: Sequence[str], values: np.ndarray, ratio: float) -> list[str]:
    """The top `ratio` of ids by value, as `select` counts them; ties by id, NaN last."""
    order = sorted(range(len(ids)), key=lambda i: (np.isnan(values[i]), -np.nan_to_num(values[i]), ids[i]))
    return [ids[i] for i in order[: n_to_keep(len(ids), ratio)]]


def rater_selection_overlap(
    scores: pd.DataFrame, raters: Sequence[str], ratio: float, selected: Sequence[str]
) -> pd.DataFrame:
    """How much each rater's own top R% (by its sentence score) agrees with the final selection."""
    ids = scores["example_id"].tolist()
    rows = []
    for rater in raters:
        own = top_ids(ids, scores[SENTENCE_PREFIX + rater].to_numpy(dtype=float), ratio)
        rows.append(
            {
                "rater": rater,
                "kept": len(own),
                "shared with selection": len(set(own) & set(selected)),
                "share of selection": len(set(own) & set(selected)) / max(1, len(selected)),
                "jaccard": jaccard(own, selected),
            }
        )
    return pd.DataFrame(rows)


def mass_by_prompt(ratings: pd.DataFrame) -> pd.DataFrame:
    """Digit mass per rater and prompt: how much of the next-token probability is on 1..K."""
    grouped = ratings.groupby(["model", "prompt_id"])
    table = grouped["mass"].agg(
        mean="mean", median="median", p05=lambda m: float(np.quantile(m, 0.05)), min="min", ratings="size"
    )
    table["top is a digit"] = grouped["top_is_digit"].mean()
    return table.reset_index().rename(columns={"model": "rater", "prompt_id": "prompt"})


def lowest_mass(ratings: pd.DataFrame, examples: Mapping[str, Example], n: int = 10) -> pd.DataFrame:
    """The n ratings with the least digit mass: where a rater mostly did not answer with a rating."""
    low = ratings.nsmallest(n, "mass")
    return pd.DataFrame(
        {
            "example_id": low["example_id"],
            "rater": low["model"],
            "prompt": low["prompt_id"],
            "mass": low["mass"],
            "top is a digit": low["top_is_digit"],
            "instruction": [_short(examples[i].instruction) if i in examples else "" for i in low["example_id"]],
        }
    )


def leading_verb(instruction: str) -> str:
    """The instruction's first word, lowercased: a rough task type ("write", "explain", ...)."""
    found = _WORD.search(instruction)
    return found.group().lower() if found else "(none)"


def is_calculation(example: Example) -> bool:
    return bool(_CALCULATION.search(f"{example.instruction}\n{example.input}\n{example.output}"))


def example_features(examples: Mapping[str, Example], scores: pd.DataFrame, selected: Sequence[str]) -> pd.DataFrame:
    """One row per scored example: what was selected next to what it looks like."""
    chosen = set(selected)
    rows = []
    for example_id, score, rank in zip(scores["example_id"], scores["model_score"], scores["rank"], strict=True):
        e = examples[example_id]
        rows.append(
            {
                "example_id": example_id,
                "rank": int(rank),
                "model_score": float(score),
                "selected": example_id in chosen,
                "response_words": len(e.output.split()),
                "instruction_words": len((e.instruction + " " + e.input).split()),
                "has_input": bool(e.input.strip()),
                "calculation": is_calculation(e),
                "task_type": leading_verb(e.instruction),
            }
        )
    frame = pd.DataFrame(rows)
    common = frame["task_type"].value_counts().index[:TOP_TASK_TYPES]
    frame["task_type"] = frame["task_type"].where(frame["task_type"].isin(common), "other")
    return frame


def selected_vs_dropped(features: pd.DataFrame) -> pd.DataFrame:
    """Medians and shares of the selected examples next to the dropped ones."""
    rows = []
    for label, part in (("selected", features[features["selected"]]), ("dropped", features[~features["selected"]])):
        rows.append(
            {
                "": label,
                "examples": len(part),
                "median response words": float(part["response_words"].median()) if len(part) else np.nan,
                "median instruction words": float(part["instruction_words"].median()) if len(part) else np.nan,
                "share with input": float(part["has_input"].mean()) if len(part) else np.nan,
                "share calculation": float(part["calculation"].mean()) if len(part) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def task_type_shares(features: pd.DataFrame) -> pd.DataFrame:
    """Share of each task type (leading verb) among the selected and among the dropped."""
    table = pd.crosstab(features["task_type"], features["selected"], normalize="columns")
    table = table.rename(columns={True: "selected", False: "dropped"})
    for column in ("selected", "dropped"):
        if column not in table:
            table[column] = 0.0
    return table[["selected", "dropped"]].sort_values("selected", ascending=False)


def per_prompt_ratings(ratings: pd.DataFrame, example_id: str) -> pd.DataFrame:
    """One example's ratings: per rater and prompt, the most likely digit, its token score, the mass."""
    mine = ratings[ratings["example_id"] == example_id].sort_values(["model", "prompt_id"])
    return pd.DataFrame(
        {
            "rater": mine["model"],
            "prompt": mine["prompt_id"],
            "digit": [int(np.argmax(p)) + 1 for p in mine["probs"]],
            "token score": mine["token_score"],
            "mass": mine["mass"],
        }
    )


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shorten(text: str, limit: int = 300) -> str:
    return _short(text, limit)
