"""Loading a rater split by device_map gives the probabilities of loading it whole."""

from __future__ import annotations

import numpy as np
from transformers import AutoModelForCausalLM

from selectit.rating import engine
from selectit.rating.models import ModelSource
from selectit.rating.placement import Placement


def test_a_split_model_rates_like_a_whole_one(monkeypatch, tiny_model):
    """The device_map path of loading (here all on the CPU, the only device there is)
    gives the same probabilities as the plain path."""
    source = ModelSource("tiny", str(tiny_model))
    whole = engine.TransformersRater(source, "float32", "cpu")
    assert whole.placement.n_gpus == 0 and whole.device_label == "cpu"
    split_plan = Placement("float32", "cpu", "auto", {"cpu": 10**9}, 0, "test: through device_map")
    monkeypatch.setattr(engine, "plan_for_source", lambda *args: split_plan)
    loads = []
    load = AutoModelForCausalLM.from_pretrained
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", lambda *a, **kw: loads.append(kw) or load(*a, **kw))
    split = engine.TransformersRater(source, "float32", "cpu")
    assert [(kw["device_map"], kw["max_memory"]) for kw in loads] == [("auto", {"cpu": 10**9})]
    texts = [list(range(10, 40)), list(range(10, 30)) + [7, 8, 9], list(range(50, 60))]
    digits = [11, 12, 13, 14, 15]
    np.testing.assert_allclose(
        split.rate(texts, digits, 4096, progress=False).probs,
        whole.rate(texts, digits, 4096, progress=False).probs,
        rtol=1e-5,
        atol=1e-8,
    )
    assert split.device_label == "cpu"
