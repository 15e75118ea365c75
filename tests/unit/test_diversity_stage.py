"""The select stage's task with embeddings: semantic duplicates as rejects, the repr filter's
selection, each diversity mode's ids for its variant, and diversity.json, on 8 hand-made
examples in 2-d (the card itself is left out: it reads the earlier stages' summaries)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from helpers import ROOT

import tasks.select as select_task
from selectit import config
from selectit.config import load_params
from selectit.core.embeddings import write_embeddings
from selectit.core.layout import Layout
from selectit.core.records import Example, read_rejects, write_example_records
from selectit.scoring.tables import write_parquet
from selectit.selection.coverage import diversity_markdown


def at(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# Ranking order e0 (best) .. e7. e1 and e3 lie 5 degrees (cosine 0.9962) from e0 and e2.
VECTORS = [[1, 0], at(5), [0, 1], at(95), [-1, 0], [0, -1], at(45), at(135)]
IDS = [f"e{i}" for i in range(8)]
VERBS = ["write", "list", "write", "explain", "write", "list", "name", "add"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(config, "writes_embeddings", lambda params: True)
        monkeypatch.setattr(select_task, "writes_embeddings", lambda params: True)
        monkeypatch.setattr(select_task, "run_card", lambda *args: "card\n")
        yield _select(Layout(tmp_path_factory.mktemp("run") / "data"))


def _select(layout: Layout) -> Layout:
    examples = [
        Example(i, f"{VERBS[n].title()} thing {n}.", "", "word " * (n + 1), "in.json", n, "alpaca", {"n": n})
        for n, i in enumerate(IDS)
    ]
    write_example_records(reversed(examples), layout.examples(layout.validated))  # file order is not rank order
    scores = pa.table({"example_id": IDS, "model_score": [8.0 - n for n in range(8)], "rank": list(range(1, 9))})
    write_parquet(scores, layout.scores_table)
    write_embeddings(layout.embeddings, IDS[::-1], np.asarray(VECTORS[::-1]))
    overrides = {
        "select.ratio": 0.5,
        "select.diversity": "repr-filter",
        "select.semantic_duplicates": 0.99,
        "select.clusters": 3,
        "select.centre_embeddings": False,  # the cosines above as they are (centring: test_diversity.py)
    }
    params = load_params(ROOT / "params.yaml", overrides)
    select_task.select_examples.fn(params, layout, "in.json", "make run")
    return layout


def test_semantic_duplicates_are_rejects_naming_what_they_duplicate(run):
    rejects = read_rejects(Layout.rejects(run.selected))
    assert [(r.row, r.reason) for r in rejects] == [
        (3, "semantic duplicate of e2 (cosine similarity 0.996)"),
        (1, "semantic duplicate of e0 (cosine similarity 0.996)"),
    ]


def test_the_repr_filter_selection_and_each_modes_ids(run):
    # 6 examples remain after e1 and e3; 0.5 x 6 = 3. Repr filter: e0, e2, e4 (all orthogonal or opposite).
    assert run.selected_ids.read_text().split() == ["e0", "e2", "e4"]
    assert run.excluded_ids.read_text().split() == ["e1", "e3", "e5", "e6", "e7"]
    assert run.diverse_selection_ids("repr-filter").read_text().split() == ["e0", "e2", "e4"]
    # k-center from e0: e4 is farthest (2); then e2 and e5 tie at 1 and the better-ranked e2 wins.
    assert run.diverse_selection_ids("k-center").read_text().split() == ["e0", "e2", "e4"]
    assert [row["instruction"] for row in json.loads(run.selection.read_text())] == [
        "Write thing 4.",
        "Write thing 2.",
        "Write thing 0.",
    ]


def test_diversity_json(run):
    report = json.loads(run.diversity_report.read_text())
    assert (report["diversity"], report["budget"], report["semantic_duplicates"]) == ("repr-filter", 3, 2)
    assert report["shortfall"] == {"repr-filter": 0, "k-center": 0}
    selectit = report["selections"]["selectit"]
    # Nearest selected: e1, e3 at 5 degrees; e5 at 90; e6, e7 at 45; the rest are selected.
    expected = (2 * (1 - math.cos(math.radians(5))) + 1 + 2 * (1 - math.cos(math.radians(45)))) / 8
    assert selectit["coverage"] == pytest.approx(expected, abs=1e-5)
    assert selectit["leading_verbs"] == {"write": 1.0}
    assert selectit["response_words_mean"] == 3.0  # 1, 3 and 5 words
    assert set(report["selections"]) == {
        "selectit",
        "selectit-diverse",
        "selectit-kcenter",
        "random",
        "length",
        "bottom",
    }
    assert report["selections"]["length"]["response_words_mean"] == 7.0  # 8, 7 and 6 words
    assert report["overlap"]["selectit"]["selectit-diverse"] == 1.0
    assert report["overlap"]["selectit"]["bottom"] == 0.0  # e5, e6, e7
    assert report["pool"]["clusters"] == 3


def test_the_cards_diversity_section(run):
    text = diversity_markdown(json.loads(run.diversity_report.read_text()))
    assert "Diversity mode: repr-filter; budget 3 examples (R% of the 8 scored, after 2 semantic duplicates)." in text
    assert "| selectit | 3 | 0.1992 | " in text
