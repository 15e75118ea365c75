"""The documentation's Reference tables (docs/hooks.py) cover what the code defines: every key of
params.yaml, every command and flag of `selectit`, every file a stage writes, every ratings column."""

from __future__ import annotations

import argparse
import importlib.util

import pytest
import yaml
from helpers import ROOT

from selectit.cli import build_parser
from selectit.scoring.tables import RATINGS_SCHEMA
from selectit.stages import STAGES


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dotted_keys(mapping: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in mapping.items():
        keys.append(prefix + key)
        if isinstance(value, dict):
            keys += dotted_keys(value, f"{prefix}{key}.")
    return keys


def test_every_params_key_is_in_the_settings_reference(hooks):
    page = hooks.params_reference()
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    assert [section for section in params if f"## {section}\n" not in page] == []
    keys = [key for key in dotted_keys(params) if "." in key]
    assert len(keys) > 80  # a check that the walk found them, not a count to keep up
    missing = [key for key in keys if f"| `{key}` |" not in page]
    assert not missing, f"keys of params.yaml missing from the generated reference: {missing}"


def test_the_settings_reference_carries_values_types_and_comments(hooks):
    page = hooks.params_reference()
    assert "| `select.ratio` | `float` | `0.2` | the paper: 0.2 |" in page
    # a comment continued on the lines below its key is read whole
    assert "AlpacaEval instructions) is never scored, selected or trained on" in page


def test_every_command_and_flag_is_in_the_commands_reference(hooks):
    page = hooks.cli_reference()
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(commands.choices) >= 10
    for name, command in commands.choices.items():
        assert f"## selectit {name}\n" in page
        flags = [flag for action in command._actions for flag in action.option_strings if flag not in ("-h", "--help")]
        missing = [flag for flag in flags if f"`{flag}" not in page]
        assert not missing, f"selectit {name}: flags missing from the generated reference: {missing}"
    assert "`--ratio RATIO` |  | `select.ratio` |" in page  # the params key a flag overrides


def test_every_file_a_stage_writes_is_in_the_outputs_reference(hooks):
    page = hooks.outputs_reference()
    for spec in STAGES.values():
        assert f"## {spec.stage}\n" in page
        for entry in (*spec.outs, *spec.metrics, *spec.plots):
            assert f"| `{entry.value}` |" in page
    # described by the docstrings of selectit/core/layout.py
    assert "One variant's per-question scores (questions.json) and summary.json." in page


def test_every_ratings_column_is_described(hooks):
    table = hooks.ratings_columns()
    for field in RATINGS_SCHEMA:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{field.name}` |"))
        assert row.rstrip(" |").split("|")[-1].strip(), f"ratings.parquet column {field.name} has no comment"


def test_yaml_comments_follow_keys_sections_and_continuations(hooks):
    text = """# the file's header

# about the first section
first:
  plain: 1   # one
  quoted: "a # b"  # two
  nested:
    inner: x  # three
                # and more
second:
  bare: null
"""
    keys, sections = hooks.yaml_comments(text)
    assert keys == {"first.plain": "one", "first.quoted": "two", "first.nested.inner": "three and more"}
    assert sections == {"first": "about the first section", "second": ""}


def test_markers_expand_and_an_unknown_one_fails(hooks):
    assert "| `select.ratio` |" in hooks.expand("intro\n<!-- generated: params -->\n")
    with pytest.raises(ValueError, match="unknown generated section 'nothing'"):
        hooks.expand("<!-- generated: nothing -->", "page.md")
    pages = [path.read_text(encoding="utf-8") for path in (ROOT / "docs" / "reference").glob("*.md")]
    used = {match[1] for page in pages for match in hooks.MARKER.finditer(page)}
    assert used == set(hooks.GENERATORS), "every generated section appears on a Reference page"
