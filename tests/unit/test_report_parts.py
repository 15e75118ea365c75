"""Parts of the run report without a run: the stability math, DVC's loss plot, the task analysis."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from selectit.config import AggregateConfig

PAPER_AGGREGATE = AggregateConfig(alpha=0.2, authors_softmax=False, weights=None, token_score="paper")

GRID = {"seed": 0, "ratios": [0.1, 0.5], "alphas": [0.0, 1.0]}


def test_stability_is_perfect_when_prompts_and_raters_agree_and_drops_when_they_do_not():
    from selectit.report.stability import stability_curves
    from selectit.scoring.tables import RATINGS_SCHEMA, aggregate

    rng = np.random.default_rng(1)
    n, k = 40, 5
    quality = rng.random(n)

    def table(noise: float) -> pa.Table:
        rows = []
        for model, params in (("a", 100), ("b", 300)):
            for prompt in range(3):
                for i in range(n):
                    peak = 1 + quality[i] * (k - 1) + noise * rng.standard_normal()
                    probs = np.exp(-((np.arange(1, k + 1) - peak) ** 2))
                    probs = 0.9 * probs / probs.sum()
                    rows.append(
                        {
                            "example_id": f"e{i:02d}",
                            "model": model,
                            "model_params": params,
                            "prompt_id": prompt,
                            "prompt_version": "v",
                            "template": "plain",
                            "k": k,
                            "probs": probs.tolist(),
                            "mass": 0.9,
                            "top_is_digit": True,
                            "token_score": 0.0,  # aggregate recomputes it from probs
                            "n_tokens": 10,
                            "truncated": False,
                        }
                    )
        return pa.Table.from_pylist(rows, schema=RATINGS_SCHEMA)

    agreeing = table(noise=0.0)
    reference = aggregate(agreeing, 0.2, False, None)[0]["example_id"].to_pylist()
    by_ratio, by_alpha = stability_curves(agreeing, reference, 0.2, PAPER_AGGREGATE, resamples=5, **GRID)
    assert by_ratio.mean == pytest.approx([1.0] * len(by_ratio.x))  # every prompt and rater rates alike
    assert by_alpha.unresampled == pytest.approx([1.0] * len(by_alpha.x))  # no spread: alpha changes nothing

    noisy = table(noise=1.5)
    reference = aggregate(noisy, 0.2, False, None)[0]["example_id"].to_pylist()
    by_ratio, _ = stability_curves(noisy, reference, 0.2, PAPER_AGGREGATE, resamples=10, **GRID)
    assert by_ratio.unresampled == pytest.approx([1.0] * len(by_ratio.x))
    assert min(by_ratio.mean) < 0.9  # disagreeing prompts make the selection move
    assert all(lo <= m <= hi for lo, m, hi in zip(by_ratio.low, by_ratio.mean, by_ratio.high, strict=True))
    # Explicit weights follow each drawn rater (a rater drawn twice counts twice).
    weighted = replace(PAPER_AGGREGATE, weights={"a": 1.0, "b": 3.0})
    by_ratio, by_alpha = stability_curves(noisy, reference, 0.2, weighted, resamples=3, **GRID)
    assert len(by_ratio.mean) == len(by_ratio.x)
    # The grids are the settings' plus the run's own R and alpha.
    assert by_ratio.x == [0.1, 0.2, 0.5] and by_alpha.x == [0.0, 0.2, 1.0]

    # The run's token-level score is the one resampled: against the expected rating's own
    # ranking the unresampled curve is exact, while the paper's score ranks otherwise.
    expected = replace(PAPER_AGGREGATE, token_score="expected")
    reference = aggregate(noisy, 0.2, False, None, "expected")[0]["example_id"].to_pylist()
    by_ratio, _ = stability_curves(noisy, reference, 0.2, expected, resamples=2, **GRID)
    assert by_ratio.unresampled == pytest.approx([1.0] * len(by_ratio.x))
    by_ratio, _ = stability_curves(noisy, reference, 0.2, PAPER_AGGREGATE, resamples=2, **GRID)
    assert min(by_ratio.unresampled) < 1.0


def test_dvc_draws_the_loss_curves_as_one_line_per_variant():
    """dvc.yaml's definition of losses.csv, filled by DVC's renderer with the project's template."""
    import yaml
    from dvc_render.vega import VegaRenderer
    from helpers import ROOT

    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]
    (definition,) = [p["data/reports/run/plots/losses.csv"] for p in stage["plots"] if "losses.csv" in str(p)]
    # As DVC reads the long-format CSV the report writes: every value a string, plus the revision.
    rows = [
        {"variant": v, "step": str(s), "loss": str(2.0 - s / 10), "rev": "workspace"}
        for v in ("selectit", "random")
        for s in (1, 2, 3)
    ]
    properties = {k: v for k, v in definition.items() if k != "cache"}
    spec = VegaRenderer(rows, "losses", template_dir=str(ROOT / ".dvc" / "plots"), **properties).get_filled_template()
    assert spec["encoding"]["color"]["field"] == "variant"  # one colour, one line, per variant
    assert (spec["encoding"]["x"]["field"], spec["encoding"]["y"]["field"]) == ("step", "loss")
    assert spec["data"]["values"] == rows
    assert "<DVC_METRIC" not in json.dumps(spec)  # every anchor filled


def test_task_type_and_calculation_are_read_from_the_text():
    from selectit.core.records import Example
    from selectit.report.analysis import is_calculation, leading_verb

    def example(instruction, output, input=""):
        return Example("id", instruction, input, output, "f", 0, "alpaca", {})

    assert leading_verb("  Write a poem.") == "write" and leading_verb("123") == "(none)"
    assert is_calculation(example("What is 2 + 3?", "5"))
    assert is_calculation(example("Calculate the area.", "It is large."))
    assert not is_calculation(example("Name a colour.", "Red."))
