"""`selectit` commands end to end on the tiny model: tables, selection, errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from helpers import TINY_ROWS, write_params

from selectit import config
from selectit.cli import main
from selectit.config import load_params
from selectit.core.embeddings import write_embeddings
from selectit.ingest.formats import read_examples
from selectit.scoring.tables import SENTENCE_PREFIX


def selectit(params, *words) -> int:
    """`selectit --params PARAMS WORDS...`, run in this process; paths are taken as they are."""
    return main(["--params", str(params), *map(str, words)])


@pytest.fixture
def scored(tmp_path, tiny_alpaca, tiny_model):
    # The second rater is the same tiny model under another folder name.
    twin = tmp_path / "twin-llama"
    twin.symlink_to(tiny_model, target_is_directory=True)
    params = write_params(tmp_path / "params.yaml", str(tiny_alpaca), [str(tiny_model), str(twin)])
    out = tmp_path / "scores"
    assert selectit(params, "score", "--out", out, "--no-progress") == 0
    return params, out


def test_score_writes_the_documented_tables(scored):
    _, out = scored
    ratings = pq.read_table(out / "ratings.parquet")
    assert {
        "example_id",
        "model",
        "prompt_id",
        "probs",
        "token_score",
        "mass",
        "top_is_digit",
        "prompt_version",
        "n_tokens",
        "truncated",
    } <= set(ratings.column_names)
    # 6 examples x 2 prompts x 2 raters, each with K = 5 raw probabilities
    assert ratings.num_rows == 24
    probs = np.array(ratings["probs"].to_pylist())
    assert probs.shape == (24, 5)
    np.testing.assert_allclose(probs.sum(axis=1), ratings["mass"].to_numpy())
    scores = pq.read_table(out / "scores.parquet")
    assert scores.column_names == [
        "example_id",
        SENTENCE_PREFIX + "tiny-llama",
        SENTENCE_PREFIX + "twin-llama",
        "model_score",
        "rank",
    ]
    assert sorted(scores["example_id"].to_pylist()) == sorted(
        e.id for e in read_examples([out.parent / "tiny.json"]).examples
    )
    # Two identical raters with equal parameter counts: the model score is their shared sentence score.
    np.testing.assert_allclose(scores["model_score"].to_numpy(), scores[SENTENCE_PREFIX + "tiny-llama"].to_numpy())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights"] == {"tiny-llama": 0.5, "twin-llama": 0.5}
    assert manifest["counts"]["examples_scored"] == 6


def test_aggregate_recomputes_scores_without_a_model(scored, tmp_path):
    params, out = scored
    again = tmp_path / "again.parquet"
    assert selectit(params, "aggregate", "--ratings", out / "ratings.parquet", "--out", again) == 0
    assert pq.read_table(again).equals(pq.read_table(out / "scores.parquet"))
    changed = tmp_path / "alpha.parquet"
    assert selectit(params, "aggregate", "--ratings", out / "ratings.parquet", "--alpha", "5", "--out", changed) == 0
    assert not np.allclose(
        pq.read_table(changed)["model_score"].to_numpy(), pq.read_table(again)["model_score"].to_numpy()
    )


def test_aggregate_with_the_expected_rating(scored, tmp_path):
    """--token-score expected: each rater's sentence score from the expected rating of every
    stored distribution, computed here from the probabilities."""
    params, out = scored
    result = tmp_path / "expected.parquet"
    args = ("aggregate", "--ratings", out / "ratings.parquet", "--token-score", "expected", "--out", result)
    assert selectit(params, *args) == 0
    ratings = pq.read_table(out / "ratings.parquet").to_pandas()
    probs = np.stack(ratings["probs"].to_numpy())
    p = probs / probs.sum(axis=1, keepdims=True)
    ratings["expected"] = p @ np.arange(1, p.shape[1] + 1)
    rater = ratings["model"].iloc[0]
    grid = ratings[ratings["model"] == rater].pivot(index="example_id", columns="prompt_id", values="expected")
    alpha = load_params(params).aggregate.alpha
    by_hand = grid.mean(axis=1) / (1 + alpha * grid.std(axis=1, ddof=0))
    scores = pq.read_table(result).to_pandas().set_index("example_id")
    np.testing.assert_allclose(scores[SENTENCE_PREFIX + rater], by_hand.loc[scores.index], rtol=1e-9)
    with pytest.raises(SystemExit):  # argparse: invalid choice
        selectit(params, *args[:-4], "--token-score", "median", "--out", result)


def test_select_writes_what_the_select_stage_writes(scored, tmp_path, tiny_alpaca):
    """The selection as one Alpaca JSON list in input order, selected_ids.txt beside it, the left-out ids."""
    params, out = scored
    selected = tmp_path / "selected.json"
    assert selectit(params, "select", "--scores", out / "scores.parquet", "--ratio", "0.5", "--out", selected) == 0
    best = pq.read_table(out / "scores.parquet").sort_by("rank")["example_id"].to_pylist()
    kept = set(best[:3])
    in_input_order = [e for e in read_examples([tiny_alpaca]).examples if e.id in kept]
    assert json.loads(selected.read_text()) == [
        {"instruction": e.instruction, "input": e.input, "output": e.output} for e in in_input_order
    ]
    assert (tmp_path / "selected_ids.txt").read_text().split() == best[:3]
    assert (tmp_path / "excluded_ids.txt").read_text().split() == best[3:]


def test_select_by_length_and_refuses_a_method_that_runs_a_model(scored, tmp_path, tiny_alpaca, capsys):
    """--method length keeps the longest responses; ifd (select.method in params) is one line
    naming the key and the stage that runs it, and writes nothing."""
    params, out = scored
    selected = tmp_path / "selected.json"
    words = ["select", "--scores", out / "scores.parquet", "--ratio", "0.5", "--out", selected]
    assert selectit(params, *words, "--method", "length") == 0
    scored_ids = set(pq.read_table(out / "scores.parquet")["example_id"].to_pylist())
    pool = [e for e in read_examples([tiny_alpaca]).examples if e.id in scored_ids]
    longest = sorted(pool, key=lambda e: (-len(e.output), e.id))
    assert (tmp_path / "selected_ids.txt").read_text().split() == [e.id for e in longest[:3]]
    raw = yaml.safe_load(params.read_text())
    raw["select"]["method"] = "ifd"
    params.write_text(yaml.safe_dump(raw))
    capsys.readouterr()
    assert selectit(params, *words[:-1], tmp_path / "other.json") == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "select.method ifd" in error and "use the select stage" in error
    assert not (tmp_path / "other.json").exists()


def test_select_with_the_repr_filter_over_embeddings(scored, tmp_path, monkeypatch, capsys):
    """--embeddings: the second-best example points the same way as the best, so the filter skips it."""
    params, out = scored
    monkeypatch.setattr(config, "writes_embeddings", lambda params: True)
    raw = yaml.safe_load(params.read_text())
    raw["select"].update(diversity="repr-filter", max_similarity=0.9)
    params.write_text(yaml.safe_dump(raw))
    best = pq.read_table(out / "scores.parquet").sort_by("rank")["example_id"].to_pylist()
    vectors = np.eye(len(best), dtype=np.float32)
    vectors[1] = vectors[0]
    write_embeddings(tmp_path / "embeddings.parquet", best, vectors)
    words = ["select", "--scores", out / "scores.parquet", "--ratio", "0.5", "--out", tmp_path / "selected.json"]
    assert selectit(params, *words, "--embeddings", tmp_path / "embeddings.parquet") == 0
    assert (tmp_path / "selected_ids.txt").read_text().split() == [best[0], best[2], best[3]]
    assert (tmp_path / "excluded_ids.txt").read_text().split() == [best[1], *best[4:]]
    capsys.readouterr()
    assert selectit(params, *words) == 2
    (error,) = capsys.readouterr().err.strip().splitlines()
    assert "select.diversity repr-filter" in error and "pass --embeddings" in error


def test_select_refuses_an_output_that_is_not_json(scored, tmp_path, capsys):
    params, out = scored
    selected = tmp_path / "selected.jsonl.gz"
    assert selectit(params, "select", "--scores", out / "scores.parquet", "--out", selected) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "selected.jsonl.gz: the selection is written as one Alpaca JSON list" in error[0]
    assert not selected.exists()


def test_select_refuses_inputs_that_were_never_scored_unless_allowed(scored, tmp_path, tiny_alpaca, capsys):
    params, out = scored
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps([{"instruction": "Never scored.", "output": "Right."}]))
    command = ["--params", str(params), "select", str(tiny_alpaca), str(extra), "--scores", str(out / "scores.parquet")]
    assert main([*command, "--out", str(tmp_path / "a.json")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "1 of 7 input examples were never scored (e.g. row 0 of" in error[0]
    assert not (tmp_path / "a.json").exists()
    assert main([*command, "--out", str(tmp_path / "b.json"), "--allow-unscored"]) == 0
    assert len(json.loads((tmp_path / "b.json").read_text())) == 1  # 20% of the 6 scored


def test_show_prompts_prints_the_exact_rating_text(tmp_path, tiny_alpaca, tiny_model, capsys):
    params = write_params(tmp_path / "params.yaml", str(tiny_alpaca), [str(tiny_model)])
    assert selectit(params, "show-prompts", "--rows", "1", "--prompt", "0") == 0
    printed = capsys.readouterr().out
    assert "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3" in printed
    assert "2 + 3 = 5, so the answer is 5.\n\nRating: |" in printed
    assert "row 1" in printed and "prompt 1" not in printed


def test_rejected_rows_are_kept_with_their_reason(tmp_path, tiny_model):
    data = tmp_path / "mixed.jsonl"
    data.write_text(
        "\n".join(
            [
                json.dumps(TINY_ROWS[0]),
                "{broken",
                json.dumps({"instruction": "x", "output": ""}),
                json.dumps(TINY_ROWS[1]),
            ]
        )
    )
    params = write_params(tmp_path / "params.yaml", str(data), [str(tiny_model)])
    assert selectit(params, "score", "--out", tmp_path / "o", "--no-progress") == 0
    rejects = [json.loads(line) for line in (tmp_path / "o" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"].split(":")[0]) for r in rejects] == [
        (2, "invalid JSON"),
        (3, "field 'output' is empty"),
    ]
    assert pq.read_table(tmp_path / "o" / "scores.parquet").num_rows == 2


def test_errors_name_the_problem(tmp_path, tiny_alpaca, tiny_model, capsys):
    params = write_params(tmp_path / "params.yaml", str(tiny_alpaca), [str(tiny_model)])
    out = str(tmp_path / "o")
    assert selectit(params, "score", "--out", out, "--k", "12") == 2
    assert "score.k" in capsys.readouterr().err
    assert selectit(params, "score", tmp_path / "missing.json", "--out", out) == 2
    assert "missing.json" in capsys.readouterr().err
    assert selectit(params, "score", "--out", out, "--raters", tmp_path) == 2
    assert "rater" in capsys.readouterr().err
    assert selectit(tmp_path / "nope.yaml", "score", "--out", out) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_a_table_of_the_wrong_kind_is_named_not_a_traceback(scored, tmp_path, capsys):
    params, out = scored
    assert selectit(params, "aggregate", "--ratings", out / "scores.parquet", "--out", tmp_path / "x.parquet") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "scores.parquet: not a ratings table" in error[0]
    assert "found columns ['example_id'" in error[0] and "Traceback" not in error[0]
    assert selectit(params, "select", "--scores", out / "ratings.parquet", "--out", tmp_path / "sel.json") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "ratings.parquet: not a scores table" in error[0] and len(error[0]) < 400


def test_a_rerun_of_score_takes_every_rating_from_the_shard_cache(scored):
    params, out = scored
    before = pq.read_table(out / "ratings.parquet")
    assert selectit(params, "score", "--out", out, "--no-progress") == 0
    assert pq.read_table(out / "ratings.parquet").equals(before)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["raters"] == []  # no rater was loaded: every shard came from the cache
