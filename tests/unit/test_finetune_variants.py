"""Fine-tuning variants: which examples each variant gets, and the seeded held-out split."""

from __future__ import annotations

import pytest

from selectit.core.records import Example
from selectit.finetune.variants import variant_examples
from selectit.ingest.split import split_heldout


def _example(i: int, output_len: int = 10) -> Example:
    return Example(f"id{i:03d}", f"Say {i}.", "", "x" * output_len, "s.json", i, "alpaca", {})


POOL = [_example(i, output_len=5 + (i * 7) % 23) for i in range(40)]
RANKED = [e.id for e in sorted(POOL, key=lambda e: e.id, reverse=True)]  # a made-up ranking, best first
SELECTED = RANKED[:8]


def test_variants_have_the_selection_size_and_the_promised_examples():
    sizes = {
        n: len(variant_examples(n, POOL, RANKED, SELECTED, seed=0).examples)
        for n in ("selectit", "random", "length", "bottom", "full", "base")
    }
    assert sizes == {"selectit": 8, "random": 8, "length": 8, "bottom": 8, "full": 40, "base": 0}
    ids = {
        n: {e.id for e in variant_examples(n, POOL, RANKED, SELECTED, seed=0).examples}
        for n in ("selectit", "bottom", "length")
    }
    assert ids["selectit"] == set(SELECTED) and ids["bottom"] == set(RANKED[-8:])
    assert not ids["selectit"] & ids["bottom"]
    cutoff = sorted((len(e.output) for e in POOL), reverse=True)[7]
    assert all(len(e.output) >= cutoff for e in variant_examples("length", POOL, RANKED, SELECTED, 0).examples)


def test_random_variant_is_seeded():
    first = variant_examples("random", POOL, RANKED, SELECTED, seed=1).examples
    assert first == variant_examples("random", POOL, RANKED, SELECTED, seed=1).examples
    assert first != variant_examples("random", POOL, RANKED, SELECTED, seed=2).examples


def test_heldout_split_is_seeded_disjoint_and_never_in_a_variant():
    examples = [_example(i) for i in range(400)]
    kept, heldout = split_heldout(examples, 0.25, seed=3)
    assert 60 <= len(heldout) <= 140 and len(kept) + len(heldout) == 400  # about a quarter
    assert not {e.id for e in kept} & {e.id for e in heldout}
    assert split_heldout(list(reversed(examples)), 0.25, seed=3)[1] == list(reversed(heldout))  # not row order
    assert split_heldout(examples, 0.25, seed=4)[1] != heldout
    for name in ("random", "length", "full"):
        chosen = variant_examples(name, kept, [e.id for e in kept], [e.id for e in kept[:5]], 0).examples
        assert not {e.id for e in chosen} & {e.id for e in heldout}


def test_appended_rows_move_no_old_example_in_or_out_of_the_heldout_set():
    examples = [_example(i) for i in range(200)]
    _, before = split_heldout(examples, 0.1, seed=0)
    _, after = split_heldout(examples + [_example(i) for i in range(200, 300)], 0.1, seed=0)
    assert [e for e in after if e.id in {x.id for x in examples}] == before


def test_heldout_split_of_tiny_data_holds_one_out_and_refuses_to_hold_all():
    from selectit.core.errors import ParamsError

    kept, heldout = split_heldout([_example(i) for i in range(3)], 0.01, seed=0)
    assert len(heldout) == 1 and len(kept) == 2
    with pytest.raises(ParamsError, match="validate.heldout: holding out 0.01 of 1 valid examples leaves none"):
        split_heldout([_example(0)], 0.01, seed=0)


def test_a_selection_from_another_run_is_an_input_error():
    from selectit.core.errors import InputError

    with pytest.raises(InputError, match="not in the training pool"):
        variant_examples("selectit", POOL[:10], RANKED, ["nope"], seed=0)


def test_a_diversity_variant_trains_on_its_modes_selection():
    diverse = RANKED[:3] + RANKED[5:8]  # a diversity mode's selection, not the top of the ranking
    for name in ("selectit-diverse", "selectit-kcenter"):
        assert {e.id for e in variant_examples(name, POOL, RANKED, diverse, seed=0).examples} == set(diverse)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("selectit", r"'selectit' has no examples to train on: the selection \(selected_ids.txt\) holds 0 examples"),
        ("random", r"'random' has no examples .* as the selection \(selected_ids.txt\), which holds 0"),
    ],
)
def test_an_empty_selection_names_the_variant_and_the_selection_size_before_training(name, why):
    from selectit.core.errors import InputError

    with pytest.raises(InputError, match=why):
        variant_examples(name, POOL, RANKED, [], seed=0)
    assert variant_examples("base", POOL, RANKED, [], seed=0).examples == []  # the base model trains on nothing


def test_the_reported_loss_is_the_mean_over_every_step_those_before_a_resume_included():
    from selectit.finetune.train import mean_step_loss

    # steps 1-2 from the checkpoint's log, 3-4 run after the resume
    assert mean_step_loss([(1, 2.0), (2, 1.5), (3, 1.0), (4, 0.5)]) == 1.25
    assert mean_step_loss([]) is None
