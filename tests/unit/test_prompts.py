"""Rating prompts, their version hash and the request layout (selectit/prompts.py)."""

from pathlib import Path

import pytest
import yaml
from helpers import write_params

from selectit.config import load_params
from selectit.core.catalog import TEMPLATES, load_prompt_set
from selectit.core.errors import ParamsError
from selectit.rating.prompts import RatingPrompts, request_parts

CUE = "\n\nRating: "


def default_prompts(**changes) -> RatingPrompts:
    args = {"prompt_set": "default", "num_prompts": 3, "template": "plain", "cue": CUE, "k": 5}
    args.update(changes)
    return RatingPrompts.from_set(**args)


def write_set(path: Path, prompts) -> Path:
    path.write_text(yaml.safe_dump({"name": "custom", "prompts": prompts}), encoding="utf-8")
    return path


# --- the packaged set ---------------------------------------------------------------


def test_default_set_has_at_least_five_prompts_each_mentioning_k():
    prompts = load_prompt_set("default")
    assert len(prompts) >= 5
    for p in prompts:
        assert "{k}" in p
        assert p.strip()


def test_default_prompts_are_distinct():
    prompts = load_prompt_set("default")
    assert len(set(prompts)) == len(prompts)


@pytest.mark.parametrize("k", [2, 7, 9])
def test_from_set_fills_in_k(k):
    raw = load_prompt_set("default")
    rp = default_prompts(num_prompts=len(raw), k=k)
    assert len(rp.prompts) == len(raw)
    for formatted, template in zip(rp.prompts, raw, strict=True):
        assert "{k}" not in formatted
        assert str(k) in formatted
        assert formatted == template.replace("{k}", str(k))


def test_from_set_takes_the_first_n_prompts_in_order():
    raw = load_prompt_set("default")
    rp = default_prompts(num_prompts=2, k=4)
    assert rp.prompts == tuple(p.replace("{k}", "4") for p in raw[:2])


# --- version -----------------------------------------------------------------------


def test_version_is_stable_for_the_same_configuration():
    a, b = default_prompts(), default_prompts()
    assert a.version == b.version
    same = RatingPrompts(prompts=a.prompts, template="plain", cue=CUE, k=5)
    assert same.version == a.version
    assert len(a.version) == 12 and all(c in "0123456789abcdef" for c in a.version)


@pytest.mark.parametrize(
    "change",
    [{"num_prompts": 4}, {"template": "chat"}, {"cue": "\n\nScore: "}, {"k": 7}],
    ids=["prompts", "template", "cue", "k"],
)
def test_version_changes_with_what_the_rater_sees(change):
    assert default_prompts(**change).version != default_prompts().version


def test_version_changes_with_prompt_text(tmp_path):
    a = RatingPrompts.from_set(str(write_set(tmp_path / "a.yaml", ["Rate 1 to {k}."])), 1, "plain", CUE, 5)
    b = RatingPrompts.from_set(str(write_set(tmp_path / "b.yaml", ["Rate 1 to {k}!"])), 1, "plain", CUE, 5)
    assert a.version != b.version


def test_version_ignores_where_the_prompts_came_from(tmp_path):
    # the same text from two files is the same rating configuration
    a = RatingPrompts.from_set(str(write_set(tmp_path / "a.yaml", ["Rate 1 to {k}."])), 1, "plain", CUE, 5)
    b = RatingPrompts.from_set(str(write_set(tmp_path / "b.yaml", ["Rate 1 to {k}."])), 1, "plain", CUE, 5)
    assert a.version == b.version


# --- invalid settings --------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1, 7, 100])
def test_num_prompts_out_of_range_rejected_when_params_are_read(tmp_path, n):
    size = len(load_prompt_set("default"))
    with pytest.raises(
        ParamsError, match=rf"score.num_prompts: expected an integer from 1 to {size}.*'default'.*got {n}"
    ):
        load_params(write_params(tmp_path / "params.yaml", "data.json", ["a"], num_prompts=n))


@pytest.mark.parametrize("k", [0, 1, 10, 12])
def test_k_outside_two_to_nine_rejected_when_params_are_read(tmp_path, k):
    with pytest.raises(ParamsError, match=rf"score.k: expected an integer from 2 to 9.*got {k}"):
        load_params(write_params(tmp_path / "params.yaml", "data.json", ["a"], k=k))


def test_unknown_template_rejected_listing_the_choices(tmp_path):
    with pytest.raises(ParamsError, match="score.template: expected one of") as info:
        load_params(write_params(tmp_path / "params.yaml", "data.json", ["a"], template="fancy"))
    assert "'fancy'" in str(info.value)
    for t in TEMPLATES:
        assert t in str(info.value)


def test_unknown_prompt_set_rejected(tmp_path):
    with pytest.raises(ParamsError, match="neither a packaged set nor a YAML file"):
        load_prompt_set(str(tmp_path / "nope.yaml"))


# --- custom prompt files -------------------------------------------------------------


def test_custom_yaml_prompt_set(tmp_path):
    path = write_set(tmp_path / "mine.yaml", ["Rate this from 1 to {k}.", "Score out of {k}:", "Third {k}"])
    assert load_prompt_set(str(path)) == ["Rate this from 1 to {k}.", "Score out of {k}:", "Third {k}"]
    rp = RatingPrompts.from_set(str(path), 2, "chat", CUE, 4)
    assert rp.prompts == ("Rate this from 1 to 4.", "Score out of 4:")
    assert rp.template == "chat" and rp.k == 4


def test_custom_set_bounds_num_prompts_by_its_own_size(tmp_path):
    write_set(tmp_path / "two.yaml", ["A {k}", "B {k}"])
    params = write_params(tmp_path / "params.yaml", "data.json", ["a"], prompt_set="two.yaml", num_prompts=3)
    with pytest.raises(ParamsError, match="from 1 to 2"):
        load_params(params)


@pytest.mark.parametrize(
    "content",
    [
        "- just a list\n- of prompts\n",  # not a mapping
        "name: x\n",  # no prompts key
        "prompts: a single string\n",  # not a list
        "prompts: []\n",  # empty
        "prompts:\n  - fine {k}\n  - 3\n",  # a non-string entry
        "prompts:\n  - fine {k}\n  - '   '\n",  # a blank prompt
        "",  # empty file
    ],
    ids=["list", "no-prompts", "string", "empty-list", "number", "blank", "empty-file"],
)
def test_malformed_prompt_file_fails_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ParamsError, match="non-empty `prompts:` list of strings") as info:
        load_prompt_set(str(path))
    assert str(path) in str(info.value)


def test_yaml_syntax_error_in_prompt_file_raises(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("prompts: [unclosed\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML") as info:
        load_prompt_set(str(path))
    assert str(path) in str(info.value)


# --- request layout --------------------------------------------------------------------


def test_request_parts_without_input():
    text = request_parts("  Rate it 1 to 5.  ", "Name a colour.", "")
    assert text == "Rate it 1 to 5.\n\n### Instruction:\nName a colour.\n\n### Response:\n"
    assert "### Input:" not in text


def test_request_parts_whitespace_only_input_is_omitted():
    assert "### Input:" not in request_parts("Rate.", "Do it.", "  \n ")


def test_request_parts_with_input():
    text = request_parts("Rate.", "Translate to French.", "cat")
    assert text == "Rate.\n\n### Instruction:\nTranslate to French.\n\n### Input:\ncat\n\n### Response:\n"
    assert text.index("### Instruction:") < text.index("### Input:") < text.index("### Response:")


# --- the example-first layout and the few-shot set ------------------------------------------------


def test_example_first_puts_the_rating_prompt_after_the_example():
    prompts = default_prompts(layout="example-first")
    text = prompts.request(prompts.prompts[0], "Translate to French.", "cat", "chat")
    assert text == "### Instruction:\nTranslate to French.\n\n### Input:\ncat\n\n### Response:\nchat\n\n" + (
        prompts.prompts[0].strip()
    )
    # The paper's layout is unchanged, and so is its version (existing caches stay valid).
    first = default_prompts()
    assert first.request(first.prompts[0], "Do it.", "", "Done.") == request_parts(first.prompts[0], "Do it.", "") + (
        "Done."
    )
    assert first.version == default_prompts(layout="prompt-first").version != prompts.version


def test_fewshot_set_anchors_both_ends_of_the_scale():
    prompts = default_prompts(prompt_set="fewshot", num_prompts=3)
    for prompt in prompts.prompts:
        assert prompt.count("Rating: 1") == 1 and prompt.count("Rating: 5") == 1
        assert prompt.count("### Instruction:") == 2
