"""Diversity-aware selection, semantic duplicates and coverage: exact hand-made cases, and the
bucketed (LSH) search against the plain one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from selectit.core.embeddings import centre_rows, write_embeddings
from selectit.core.errors import InputError
from selectit.selection.coverage import (
    ExampleFacts,
    clusters_touched,
    coverage,
    describe_selections,
    diversity_metrics,
    kmeans_labels,
    leading_verb,
    verb_mix,
)
from selectit.selection.diversity import choose, k_center, repr_filter
from selectit.selection.rows import ranked_vectors
from selectit.selection.semantic_duplicates import semantic_duplicate_rows
from selectit.selection.similarity import KeptSet, bucket_plan, tables_for


def at(degrees: float) -> list[float]:
    """The 2-d unit vector at this angle."""
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


def unit(rows) -> np.ndarray:
    matrix = np.asarray(rows, dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


# Ranking order: row 0 is the best. Rows 1 and 3 lie 10 degrees (cosine 0.985) from rows 0 and 2.
FIVE = unit([at(0), at(10), at(90), at(80), at(180)])


def test_repr_filter_keeps_what_is_not_too_close_to_anything_kept():
    assert repr_filter(FIVE, 3, 0.9, exact=True) == [0, 2, 4]
    # At 0.99 the 10-degree neighbours (0.985) are far enough.
    assert repr_filter(FIVE, 3, 0.99, exact=True) == [0, 1, 2]


def test_repr_filter_stops_short_when_the_ranking_runs_out():
    assert repr_filter(FIVE, 4, 0.9, exact=True) == [0, 2, 4]


def test_choose_reports_the_repr_filter_shortfall():
    ids = ["a", "b", "c", "d", "e"]
    choice = choose(
        ids, 0.8, diversity="repr-filter", vectors=FIVE, max_similarity=0.9, duplicate_threshold=None, seed=0
    )
    assert (choice.kept, choice.left_out, choice.budget, choice.shortfall) == (["a", "c", "e"], ["b", "d"], 4, 1)


def test_k_center_farthest_first_with_ties_to_the_better_ranked():
    # Rows 3 and 5 are both at distance 1 from the centres 0 and 2: the better-ranked (3) wins.
    vectors = unit([[1, 0], at(5), [-1, 0], [0, 1], at(100), [0, -1]])
    assert k_center(vectors, 3) == [0, 2, 3]
    assert k_center(vectors, 2) == [0, 2]  # candidates: the best 2 x 2 rows; 2 is the farthest of them


def test_k_center_only_picks_from_the_top_candidates():
    # Row 4, the farthest from row 0, is outside the best 2 x budget = 4 rows.
    vectors = unit([[1, 0], at(10), at(20), at(30), [-1, 0]])
    assert k_center(vectors, 2) == [0, 3]


def test_k_center_over_tree_leaves_fills_the_budget_in_ranking_order():
    vectors = unit(np.random.default_rng(0).standard_normal((600, 8)))
    chosen = k_center(vectors, 100, leaf=64)
    assert len(chosen) == len(set(chosen)) == 100
    assert chosen == sorted(chosen) and max(chosen) < 200
    assert chosen == k_center(vectors, 100, leaf=64)  # seeded: the same every time


def test_semantic_duplicates_on_both_sides_of_the_threshold():
    cosine = [[1.0, 0.0], [0.96, math.sqrt(1 - 0.96**2)], [0.94, -math.sqrt(1 - 0.94**2)]]
    duplicates = semantic_duplicate_rows(unit(cosine), 0.95, exact=True)
    assert list(duplicates) == [1]
    of, similarity = duplicates[1]
    assert of == 0 and similarity == pytest.approx(0.96, abs=1e-6)


def test_choose_removes_semantic_duplicates_before_the_budget():
    ids = ["a", "b", "c", "d", "e"]
    choice = choose(ids, 0.5, diversity="none", vectors=FIVE, max_similarity=1.0, duplicate_threshold=0.98, seed=0)
    # b and d duplicate a and c; 3 rows remain, 0.5 x 3 rounds to 2.
    assert (choice.kept, choice.left_out, choice.budget) == (["a", "c"], ["b", "d", "e"], 2)
    assert {k: (d.of, round(d.similarity, 3)) for k, d in choice.duplicates.items()} == {
        "b": ("a", 0.985),
        "d": ("c", 0.985),
    }
    assert choice.duplicates["b"].reason == "semantic duplicate of a (cosine similarity 0.985)"


def planted(n: int, dim: int, seed: int) -> np.ndarray:
    """Random unit rows, a third of them noisy copies of earlier rows at cosines about 0.8-1."""
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    for i in range(n // 3, n, 3):
        source = rows[rng.integers(0, i)]
        source = source / np.linalg.norm(source)
        noise = rng.standard_normal(dim).astype(np.float32)
        noise -= (noise @ source) * source
        angle = math.acos(rng.uniform(0.8, 1.0))
        rows[i] = math.cos(angle) * source + math.sin(angle) * noise / np.linalg.norm(noise)
    return unit(rows)


def test_bucketed_search_equals_the_plain_one_on_random_data():
    vectors = planted(6000, 64, seed=1)
    assert KeptSet(64, 0.9, capacity=2000, pool=len(vectors)).bucketed
    assert repr_filter(vectors, 2000, 0.9) == repr_filter(vectors, 2000, 0.9, exact=True)
    bucketed, plain = semantic_duplicate_rows(vectors, 0.9), semantic_duplicate_rows(vectors, 0.9, exact=True)
    assert len(plain) > 100 and bucketed.keys() == plain.keys()
    assert {r: d[1] for r, d in bucketed.items()} == pytest.approx({r: d[1] for r, d in plain.items()})


def test_tables_for_the_threshold():
    # p = 1 - acos(0.9)/pi = 0.8564; p^10 = 0.2122; ceil(ln(1e-3) / ln(1 - 0.2122)) = 29.
    assert tables_for(0.9, 10) == 29
    assert tables_for(1.0, 10) == 1
    assert tables_for(0.3, 8) is None  # too many tables: the plain search
    assert bucket_plan(0.3, 1000) is None


def test_bucket_plan_grows_the_keys_with_the_set():
    # Cost: tables x (1 + capacity / 2^bits). At 1,000: 12 bits, 41 tables (41 x 1.24 = 51);
    # at 10,000: 14 bits, 57 tables (57 x 1.61 = 92).
    assert bucket_plan(0.9, 1000) == (12, 41)
    assert bucket_plan(0.9, 10000) == (14, 57)


def test_coverage_on_a_hand_made_pool():
    pool = unit([[1, 0], [0, 1], [-1, 0]])
    assert coverage(pool, pool[[0]]) == pytest.approx((0 + 1 + 2) / 3)
    assert coverage(pool, pool[[0, 2]]) == pytest.approx(1 / 3)
    assert coverage(pool, pool) == pytest.approx(0, abs=1e-7)
    assert coverage(pool, pool[:0]) == 1.0


def test_clusters_touched_and_kmeans_on_separated_groups():
    assert clusters_touched(np.array([0, 0, 1, 2, 2]), [0, 1, 3]) == 2
    rng = np.random.default_rng(0)
    centres = unit([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    pool = unit(np.repeat(centres, 20, axis=0) + 0.01 * rng.standard_normal((60, 3)))
    labels = kmeans_labels(pool, 3, seed=0)
    assert len(set(labels[:20])) == len(set(labels[20:40])) == len(set(labels[40:])) == 1
    assert len(set(labels)) == 3


def test_leading_verb_and_mix():
    assert leading_verb("  Write a poem.") == "write"
    assert leading_verb("123 ?") == "(none)"
    assert verb_mix(["write", "write", "list", "explain", "add"], top=2) == {"write": 0.4, "add": 0.2, "other": 0.4}


def test_describe_selections_without_and_with_embeddings():
    facts = {i: ExampleFacts(v, w) for i, v, w in [("a", "write", 10), ("b", "list", 20), ("c", "write", 40)]}
    selections = {"selectit": ["a", "b"], "random": ["b", "c"]}
    plain = describe_selections(["a", "b", "c"], None, facts, selections, clusters=2, coverage_sample=None, seed=0)
    assert plain["selections"]["selectit"] == {
        "examples": 2,
        "coverage": None,
        "clusters_touched": None,
        "leading_verbs": {"list": 0.5, "write": 0.5},
        "response_words_mean": 15.0,
        "response_words_median": 15.0,
    }
    assert plain["overlap"]["selectit"] == {"selectit": 1.0, "random": pytest.approx(1 / 3, abs=1e-4)}
    vectors = unit([[1, 0], [0, 1], [-1, 0]])
    full = describe_selections(["a", "b", "c"], vectors, facts, selections, clusters=3, coverage_sample=None, seed=0)
    assert full["selections"]["selectit"]["coverage"] == pytest.approx(1 / 3)  # distances 0, 0, 1
    assert full["selections"]["random"]["clusters_touched"] == 2
    assert full["pool"]["clusters"] == 3


def test_diversity_metrics_are_flat_names():
    report = {
        "diversity": "repr-filter",
        "shortfall": {"repr-filter": 2, "k-center": 0},
        "semantic_duplicates": 3,
        "selections": {
            "selectit": {"coverage": 0.25, "clusters_touched": 4},
            "random": {"coverage": None, "clusters_touched": None},
        },
    }
    assert diversity_metrics(report) == {
        "semantic_duplicates": 3,
        "shortfall": 2,
        "coverage/selectit": 0.25,
        "clusters_touched/selectit": 4,
        "coverage/random": None,
        "clusters_touched/random": None,
    }


def test_centring_spreads_embeddings_that_share_one_direction():
    # Hidden states as a rater gives them: every row is a large common part plus a small own
    # part, so any two are at cosine above 0.9 and a 0.9 repr filter keeps one example.
    rng = np.random.default_rng(0)
    own = rng.standard_normal((200, 16)).astype(np.float32)
    crowded = unit(own * 0.1 + np.eye(16, dtype=np.float32)[0] * 3)
    assert (crowded @ crowded.T).min() > 0.9
    assert len(repr_filter(crowded, 40, 0.9, exact=True)) == 1
    centred = centre_rows(crowded.copy())
    assert np.allclose(np.linalg.norm(centred, axis=1), 1, atol=1e-5)
    assert abs(float(centred.mean(axis=0) @ centred.mean(axis=0))) < 0.05  # no shared direction left
    assert len(repr_filter(centred, 40, 0.9, exact=True)) == 40  # the budget is filled


def test_ranked_vectors_centre_over_the_ranked_pool_only_when_asked(tmp_path):
    path = tmp_path / "embeddings.parquet"
    write_embeddings(path, ["a", "b", "c"], np.asarray([[1, 1], [1, 0.8], [0.8, 1]], dtype=np.float32))
    raw = ranked_vectors(path, ["c", "a", "b"], centre=False).take(np.arange(3))
    assert np.allclose(raw[0], unit([[0.8, 1]])[0], atol=1e-3)  # float16 on disk
    centred = ranked_vectors(path, ["c", "b"], centre=True).take(np.arange(2))  # each the other's opposite
    assert np.allclose(centred[0] @ centred[1], -1, atol=1e-3)


def test_ranked_vectors_read_from_a_file_equal_the_matrix_they_came_from(tmp_path):
    # More rows than one parquet group and one walk block, ranked in another order than the file's.
    rng = np.random.default_rng(3)
    matrix = unit(rng.standard_normal((9000, 8)))
    ids = [f"e{i}" for i in range(9000)]
    path = tmp_path / "embeddings.parquet"
    write_embeddings(path, ids, matrix)
    order = rng.permutation(9000)
    rows = ranked_vectors(path, [ids[i] for i in order], centre=False)
    expected = unit(matrix.astype(np.float16)[order])
    assert len(rows) == 9000 and rows.dim == 8
    assert np.allclose(rows.take(np.arange(9000)), expected, atol=2e-3)
    scattered = np.array([8999, 3, 4, 5, 17, 0])  # runs and single rows, in any order
    assert np.allclose(rows.take(scattered), expected[scattered], atol=2e-3)
    # The walks give the same answer from the file as from the matrix it holds.
    held = rows.take(np.arange(9000))
    assert repr_filter(rows, 500, 0.5) == repr_filter(held, 500, 0.5)
    assert k_center(rows, 300, leaf=256) == k_center(held, 300, leaf=256)


def test_ranked_vectors_name_a_scored_example_with_no_embedding(tmp_path):
    path = tmp_path / "embeddings.parquet"
    write_embeddings(path, ["a", "b"], np.eye(2, dtype=np.float32))
    with pytest.raises(InputError, match=r"1 of 3 scored examples \(e.g. z\) have no embedding"):
        ranked_vectors(path, ["a", "z", "b"], centre=True)


def test_kept_set_holds_float16_but_finds_an_exact_copy_at_cosine_one():
    rng = np.random.default_rng(0)
    vector = unit(rng.standard_normal((1, 576)))[0]
    kept = KeptSet(576, 1.0, capacity=1, pool=1)
    kept.add(7, vector)
    match = kept.closest(vector)
    assert match is not None and match.index == 7 and match.similarity == pytest.approx(1.0, abs=1e-6)
