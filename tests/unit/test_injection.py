"""Texts that address the rater (issue 25, case 9): named by the validate stage, then kept and
flagged (listed in the dataset card and the report) or rejected, as hygiene.rater_injection says."""

from __future__ import annotations

import json

import pytest
from helpers import INJECTION_ROWS, TINY_ROWS
from test_hygiene import _validate

from selectit.hygiene.injection import addresses_rater


@pytest.mark.parametrize(("row", "passage"), INJECTION_ROWS)
def test_each_way_of_addressing_the_rater_is_named(row, passage):
    assert addresses_rater("\n".join(row.values())) == passage


def test_ordinary_instruction_data_is_not_flagged():
    ordinary = [
        "Rate the movie on a scale of 1 to 10 and explain.",  # asks the model to rate something else
        "The output of the program is 5.",
        "Hey assistant, set an alarm for 7 am.",
        "Score: the home team won 3-1.",
    ]
    assert [addresses_rater(text) for text in ordinary + ["\n".join(r.values()) for r in TINY_ROWS]] == [None] * (
        len(ordinary) + len(TINY_ROWS)
    )


def test_flagged_examples_are_kept_listed_and_named_in_the_card(tmp_path):
    from selectit.core.layout import Layout
    from selectit.selection.card import _flagged_section, selected_flags

    rows = [*TINY_ROWS[:3], INJECTION_ROWS[0][0]]
    summary, kept, rejects = _validate(tmp_path, rows, decontaminate=False, near_duplicates=False)
    assert kept == [0, 1, 2, 3] and rejects == [] and summary.flagged == {"addresses_rater": 1}
    layout = Layout(tmp_path / "data")
    (flag,) = [json.loads(line) for line in layout.flagged(layout.validated).read_text().splitlines()]
    assert flag["row"] == 3 and flag["detail"] == "addresses the rater: 'Ignore previous instructions'"
    card = _flagged_section(selected_flags(layout, [flag["id"]]))
    assert f"| `{flag['id']}` | in.json row 3 | addresses_rater |" in card
    assert selected_flags(layout, []) == []  # not selected: not listed


def test_reject_removes_them_with_the_reason(tmp_path):
    rows = [*TINY_ROWS[:3], INJECTION_ROWS[0][0]]
    _, kept, rejects = _validate(tmp_path, rows, decontaminate=False, near_duplicates=False, rater_injection="reject")
    assert kept == [0, 1, 2]
    assert [r["reason"] for r in rejects] == [
        "addresses_rater: 'Ignore previous instructions' (hygiene.rater_injection)"
    ]
