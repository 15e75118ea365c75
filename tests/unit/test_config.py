"""Typed settings from params.yaml (selectit/config.py)."""

import copy
import re
from pathlib import Path

import pytest
import yaml
from helpers import ROOT

from selectit.config import Params, ParamsError, load_params

REPO_PARAMS = ROOT / "params.yaml"

# The structure of the repository's params.yaml, written out so these tests do not
# depend on its current values.
BASE = {
    "ingest": {
        "source": "data/train.json",
        "limit": 200,
        "rows_key": None,
        "max_download_mb": 2048,
        "download_timeout_s": 1800,
    },
    "validate": {"min_chars": 1, "max_chars": 20000, "max_reject_fraction": 0.2, "heldout": 0.1, "seed": 0},
    "hygiene": {
        "decontaminate": False,  # on, it needs benchmarks_dir to exist (test_decontamination_needs_the_benchmarks)
        "ngram": 13,
        "near_duplicates": True,
        "jaccard": 0.8,
        "shingle_words": 5,
        "minhash_permutations": 128,
        "rater_injection": "flag",
    },
    "score": {
        "raters": ["smollm2-135m-instruct", "gemma3-270m"],
        "prompt_set": "default",
        "num_prompts": 3,
        "k": 5,
        "template": "plain",
        "layout": "prompt-first",
        "cue": "\n\nRating: ",
        "dtype": "auto",
        "device": "auto",
        "token_budget": 4096,
        "shard_size": 50,
        "max_length": None,
        "trust_remote_code": False,
        "compile": False,
        "embeddings": "first-rater",
        "embedding_encoder": None,
    },
    "aggregate": {"alpha": 0.2, "authors_softmax": False, "weights": None, "token_score": "paper"},
    "select": {
        "ratio": 0.2,
        "method": "selectit",
        "ifd_model": "smollm2-135m-instruct",
        "ifd_max_tokens": 400,
        "learned_pairs": "pairs.jsonl",
        "learned_pair_limit": 100,
        "learned_folds": 5,
        "learned_length_features": True,
        "learned_ifd": False,
        "diversity": "none",
        "max_similarity": 0.9,
        "centre_embeddings": True,
        "semantic_duplicates": None,
        "clusters": 50,
        "coverage_sample": 5000,
        "seed": 0,
    },
    "audit": {"enabled": True, "pairs": "pairs.jsonl", "limit": 40, "ifd_raters": [], "ifd_max_tokens": 400},
    "finetune": {
        "enabled": True,
        "base_model": "smollm2-135m-instruct",
        "variants": ["selectit", "random", "length", "bottom", "full", "base"],
        "method": "lora",
        "seed": 0,
        "epochs": 1,
        "max_steps": None,
        "learning_rate": 2.0e-4,
        "lr_scheduler": "cosine",
        "warmup_ratio": 0.03,
        "batch_size": 8,
        "micro_batch_size": 4,
        "max_length": 256,
        "gradient_checkpointing": False,
        "lora_r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_target_modules": "all-linear",
        "dtype": "auto",
        "device": "auto",
        "trust_remote_code": False,
    },
    "evaluate": {
        "heldout_loss": True,
        "benchmarks": {"mmlu": 1, "gsm8k": 0, "bbh": 0, "humaneval": 0},
        "benchmarks_dir": "benchmarks",
        "run_code": False,
        "judge": {"base_url": None, "model": None, "api_key_env": None, "questions": 100, "annotator": "chatgpt"},
        "preference_pairs": 0,
        "preference_file": "pairs.jsonl",
        "preference_seed": 0,
        "max_new_tokens": 256,
        "batch_size": 8,
        "reference": "random",
        "bootstrap_resamples": 2000,
        "confidence": 0.95,
        "seed": 0,
    },
    "report": {
        "stability_resamples": 30,
        "stability_seed": 0,
        "stability_ratios": [0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
        "stability_alphas": [0.0, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0],
    },
    "ray": {
        "address": None,
        "replicas": 1,
        "cpus_per_replica": 1,
        "gpus_per_replica": None,
        "retries": 3,
        "prefect_api_url": None,
    },
    "tracking": {"experiment": "selectit", "tracking_uri": None},
}


def write_params(folder: Path, changes=None, drop=None) -> Path:
    """params.yaml in `folder` from BASE; changes maps 'section.key' -> value, drop lists keys to delete."""
    raw = copy.deepcopy(BASE)
    for dotted, value in (changes or {}).items():
        section, key = dotted.split(".", 1)
        raw[section][key] = value
    for dotted in drop or []:
        section, _, key = dotted.partition(".")
        if key:
            del raw[section][key]
        else:
            del raw[section]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_base_structure_matches_the_repository_params_file():
    repo = yaml.safe_load(REPO_PARAMS.read_text(encoding="utf-8"))
    assert {s: set(v) for s, v in repo.items()} == {s: set(v) for s, v in BASE.items()}


def test_repository_params_file_loads():
    params = load_params(REPO_PARAMS)
    assert isinstance(params, Params)
    assert 2 <= params.score.k <= 9
    assert 0 < params.select.ratio <= 1
    assert params.score.raters
    assert Path(params.ingest.source).is_absolute()


def test_written_params_load_with_their_values(tmp_path):
    params = load_params(write_params(tmp_path))
    assert params.score.k == 5
    assert params.score.cue == "\n\nRating: "
    assert params.score.max_length is None
    assert params.aggregate.alpha == 0.2
    assert params.aggregate.weights is None
    assert params.select.ratio == 0.2
    assert params.ingest.limit == 200


# --- unknown, missing and mistyped keys ---------------------------------------------


def test_unknown_key_names_the_key_and_lists_expected_keys(tmp_path):
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['kk'\]") as info:
        load_params(write_params(tmp_path, {"score.kk": 5}))
    message = str(info.value)
    assert "score" in message
    for key in ("num_prompts", "k", "template", "token_budget"):
        assert f"'{key}'" in message


def test_unknown_top_level_section_rejected(tmp_path):
    path = write_params(tmp_path)
    path.write_text(path.read_text(encoding="utf-8") + "selection:\n  ratio: 0.5\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="selection"):
        load_params(path)


@pytest.mark.parametrize(
    ("dotted", "value", "where", "expected"),
    [
        ("score.k", "five", "score.k", "expected int"),
        ("select.ratio", "0.2", "select.ratio", "expected float"),
        ("ingest.limit", True, "ingest.limit", "expected int"),
        ("score.k", 5.0, "score.k", "expected int"),
        ("score.trust_remote_code", "yes", "score.trust_remote_code", "expected bool"),
        ("score.compile", "yes", "score.compile", "expected bool"),
        ("score.raters", "gemma3-270m", "score.raters", "expected a list"),
        ("score.raters", ["a", 3], "score.raters[1]", "expected str"),
        ("aggregate.weights", {"a": "heavy"}, "aggregate.weights.a", "expected float"),
        ("aggregate.authors_softmax", 1, "aggregate.authors_softmax", "expected bool"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, dotted, value, where, expected):
    with pytest.raises(ParamsError, match=expected) as info:
        load_params(write_params(tmp_path, {dotted: value}))
    assert f"{where}:" in str(info.value)


def test_missing_section(tmp_path):
    with pytest.raises(ParamsError, match="missing section 'select'"):
        load_params(write_params(tmp_path, drop=["select"]))


def test_missing_key(tmp_path):
    with pytest.raises(ParamsError, match=r"score: missing key\(s\) \['cue'\]"):
        load_params(write_params(tmp_path, drop=["score.cue"]))


def test_section_that_is_not_a_mapping(tmp_path):
    path = write_params(tmp_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["select"] = 0.2  # `select: 0.2` instead of `select: {ratio: 0.2}`
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ParamsError, match="select: expected a mapping, got float"):
        load_params(path)


def test_missing_file_and_invalid_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("score: [unclosed\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML") as info:
        load_params(bad)
    assert str(bad) in str(info.value)


# --- value checks --------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0, 0.0, -0.1, 1.5, 2])
def test_ratio_outside_zero_one_rejected(tmp_path, ratio):
    with pytest.raises(ParamsError, match=r"select.ratio: expected a number in \(0, 1\]"):
        load_params(write_params(tmp_path, {"select.ratio": ratio}))


def test_ratio_of_one_accepted(tmp_path):
    assert load_params(write_params(tmp_path, {"select.ratio": 1.0})).select.ratio == 1.0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_similarity", 0, r"select.max_similarity: expected a cosine similarity in \(0, 1\], got 0"),
        ("max_similarity", 1.1, r"select.max_similarity: expected a cosine similarity in \(0, 1\], got 1.1"),
        ("semantic_duplicates", -0.5, r"select.semantic_duplicates: expected a cosine similarity in \(0, 1\]"),
        ("diversity", "deita", r"select.diversity: expected one of \['none', 'repr-filter', 'k-center'\]"),
        ("clusters", 0, "select.clusters: expected an integer >= 1"),
        ("coverage_sample", 0, "select.coverage_sample: expected an integer >= 1"),
        ("seed", -1, "select.seed: expected an integer >= 0"),
    ],
)
def test_select_diversity_keys_checked(tmp_path, key, value, message):
    with pytest.raises(ParamsError, match=message):
        load_params(write_params(tmp_path, {f"select.{key}": value}))


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"select.diversity": "repr-filter"}, "select.diversity: repr-filter needs the examples' embeddings"),
        ({"select.diversity": "k-center"}, "select.diversity: k-center needs the examples' embeddings"),
        ({"select.semantic_duplicates": 0.95}, "select.semantic_duplicates needs the examples' embeddings"),
        (
            {"finetune.variants": ["selectit", "selectit-kcenter"]},
            "finetune.variants: selectit-kcenter needs the examples' embeddings",
        ),
    ],
)
def test_diversity_without_embeddings_is_a_params_error(tmp_path, changes, named):
    with pytest.raises(ParamsError, match=named):
        load_params(write_params(tmp_path, {"score.embeddings": None, **changes}))


def test_diversity_with_embeddings_loads(tmp_path):
    changes = {
        "score.embeddings": "first-rater",
        "select.diversity": "repr-filter",
        "select.semantic_duplicates": 1,
        "finetune.variants": ["selectit-diverse"],
    }
    select = load_params(write_params(tmp_path, changes)).select
    assert (select.diversity, select.semantic_duplicates, select.needs_embeddings) == ("repr-filter", 1.0, True)


@pytest.mark.parametrize("k", [1, 10])
def test_k_outside_two_to_nine_rejected(tmp_path, k):
    with pytest.raises(ParamsError, match="score.k: expected an integer from 2 to 9"):
        load_params(write_params(tmp_path, {"score.k": k}))


@pytest.mark.parametrize(
    ("dotted", "value", "where"),
    [
        ("score.num_prompts", 0, "score.num_prompts"),
        ("score.token_budget", 0, "score.token_budget"),
        ("score.max_length", 0, "score.max_length"),
        ("ingest.limit", 0, "ingest.limit"),
        ("ingest.source", " ", "ingest.source"),
        ("score.raters", [], "score.raters"),
        ("score.template", "fancy", "score.template"),
        ("score.dtype", "int8", "score.dtype"),
        ("aggregate.alpha", -0.5, "aggregate.alpha"),
        ("aggregate.token_score", "mean", "aggregate.token_score"),
        ("report.stability_resamples", -1, "report.stability_resamples"),
        ("report.stability_seed", -1, "report.stability_seed"),
        ("report.stability_ratios", [0.2, 1.5], "report.stability_ratios"),
        ("report.stability_ratios", [], "report.stability_ratios"),
        ("report.stability_alphas", [0.2, float("inf")], "report.stability_alphas"),
        ("report.stability_ratios", 0.2, "report.stability_ratios"),  # a number, not a list
        ("ray.address", "", "ray.address"),
        ("ray.replicas", 0, "ray.replicas"),
        ("ray.cpus_per_replica", 0, "ray.cpus_per_replica"),
        ("ray.gpus_per_replica", -1, "ray.gpus_per_replica"),
        ("ray.retries", -1, "ray.retries"),
        ("hygiene.ngram", 4, "hygiene.ngram"),
        ("hygiene.jaccard", 0, "hygiene.jaccard"),
        ("hygiene.jaccard", 1.5, "hygiene.jaccard"),
        ("hygiene.shingle_words", 0, "hygiene.shingle_words"),
        ("hygiene.minhash_permutations", 8, "hygiene.minhash_permutations"),
        ("score.embeddings", "smollm3", "score.embeddings"),  # not a rater of score.raters
        ("score.embeddings", "encoder", "score.embedding_encoder"),  # an encoder, but none named
    ],
)
def test_invalid_values_rejected_naming_the_key(tmp_path, dotted, value, where):
    with pytest.raises(ParamsError) as info:
        load_params(write_params(tmp_path, {dotted: value}))
    assert f"{where}:" in str(info.value)


@pytest.mark.parametrize(
    ("embeddings", "encoder", "rater", "source"),
    [
        ("first-rater", None, "smollm2-135m-instruct", "smollm2-135m-instruct"),
        ("gemma3-270m", None, "gemma3-270m", "gemma3-270m"),
        ("encoder", "models/minilm", None, "models/minilm"),
        (None, None, None, None),
        ("none", "models/minilm", None, None),
    ],
)
def test_the_embedding_source_is_a_rater_an_encoder_or_none(tmp_path, embeddings, encoder, rater, source):
    changes = {"score.embeddings": embeddings, "score.embedding_encoder": encoder}
    score = load_params(write_params(tmp_path, changes)).score
    assert (score.embedding_rater, score.embedding_source) == (rater, source)


def test_two_raters_with_the_same_name_rejected(tmp_path):
    with pytest.raises(ParamsError, match="share a name"):
        load_params(write_params(tmp_path, {"score.raters": ["gemma3-270m", "gemma3-270m"]}))


def test_int_accepted_for_float_fields(tmp_path):
    params = load_params(
        write_params(
            tmp_path,
            {
                "aggregate.alpha": 1,
                "select.ratio": 1,
                "aggregate.weights": {"smollm2-135m-instruct": 2, "gemma3-270m": 0.5},
            },
        )
    )
    assert params.aggregate.alpha == 1.0 and isinstance(params.aggregate.alpha, float)
    assert isinstance(params.select.ratio, float)
    assert params.aggregate.weights == {"smollm2-135m-instruct": 2.0, "gemma3-270m": 0.5}
    assert all(isinstance(w, float) for w in params.aggregate.weights.values())


def test_optional_fields_accept_null_and_values(tmp_path):
    params = load_params(write_params(tmp_path, {"ingest.limit": None, "score.max_length": 512}))
    assert params.ingest.limit is None
    assert params.score.max_length == 512


# --- paths and overrides ----------------------------------------------------------------


@pytest.mark.parametrize(
    "given, expected",
    [
        ("data/x.json", "project/data/x.json"),
        ("../up.jsonl", "up.jsonl"),
    ],
)
def test_relative_source_resolves_against_the_params_folder(tmp_path, given, expected):
    path = write_params(tmp_path / "project", {"ingest.source": given})
    assert Path(load_params(path).ingest.source).resolve() == (tmp_path / expected).resolve()


def test_absolute_source_is_kept(tmp_path):
    absolute = str(tmp_path / "elsewhere" / "abs.json")
    assert load_params(write_params(tmp_path / "project", {"ingest.source": absolute})).ingest.source == absolute


def test_relative_inputs_do_not_depend_on_the_working_directory(tmp_path, monkeypatch):
    path = write_params(tmp_path / "project", {"ingest.source": "x.json"})
    monkeypatch.chdir(tmp_path)
    a = load_params(path.resolve()).ingest.source
    monkeypatch.chdir(tmp_path / "project")
    b = load_params(path.resolve()).ingest.source
    assert a == b == str(tmp_path / "project" / "x.json")


def test_overrides_apply(tmp_path):
    path = write_params(tmp_path)
    weights = {"smollm2-135m-instruct": 1.0, "gemma3-270m": 3.0}
    params = load_params(path, {"score.k": 7, "select.ratio": 0.5, "aggregate.weights": weights})
    assert params.score.k == 7
    assert params.select.ratio == 0.5
    assert params.aggregate.weights == weights
    # the file itself is untouched
    assert load_params(path).score.k == 5


def test_overrides_are_validated_like_the_file(tmp_path):
    with pytest.raises(ParamsError, match="score.k: expected int"):
        load_params(write_params(tmp_path), {"score.k": "7"})
    with pytest.raises(ParamsError, match="score.k: expected an integer from 2 to 9"):
        load_params(write_params(tmp_path), {"score.k": 11})
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['kay'\]"):
        load_params(write_params(tmp_path), {"score.kay": 7})


def test_override_can_fill_a_missing_key(tmp_path):
    path = write_params(tmp_path, drop=["score.cue"])
    assert load_params(path, {"score.cue": "\nScore: "}).score.cue == "\nScore: "


@pytest.mark.parametrize("source", ["https://example.org/data.jsonl", "hf:vicgalle/alpaca-gpt4:train"])
def test_remote_sources_are_not_made_relative(tmp_path, source):
    assert load_params(write_params(tmp_path, {"ingest.source": source})).ingest.source == source


@pytest.mark.parametrize("alpha", [float("nan"), float("inf")])
def test_non_finite_alpha_is_rejected(tmp_path, alpha):
    with pytest.raises(ParamsError, match="aggregate.alpha"):
        load_params(write_params(tmp_path, {"aggregate.alpha": alpha}))


def test_relative_prompt_set_file_is_relative_to_params(tmp_path):
    (tmp_path / "my_prompts.yaml").write_text("prompts: ['Rate it from 1 to {k}.']")
    params = load_params(write_params(tmp_path, {"score.prompt_set": "my_prompts.yaml", "score.num_prompts": 1}))
    assert params.score.prompt_set == str(tmp_path / "my_prompts.yaml")


@pytest.mark.parametrize(
    "weights, expected",
    [
        ({"smollm2-135m-instruct": 1.0}, "do not match the raters"),
        ({"smollm2-135m-instruct": 1.0, "gemma3-270m": -1.0}, "finite numbers >= 0"),
        ({"smollm2-135m-instruct": 0.0, "gemma3-270m": 0.0}, "not all zero"),
    ],
)
def test_rater_weights_are_checked_when_params_are_read(tmp_path, weights, expected):
    with pytest.raises(ParamsError, match=rf"aggregate.weights: .*{expected}"):
        load_params(write_params(tmp_path, {"aggregate.weights": weights}))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"finetune.variants": ["selectit", "best"]}, r"finetune.variants: expected one of"),
        ({"finetune.variants": ["random", "random"]}, r"finetune.variants: a variant is listed twice"),
        ({"finetune.method": "qlora"}, r"finetune.method: expected one of \['lora', 'full'\]"),
        ({"finetune.batch_size": 6, "finetune.micro_batch_size": 4}, r"not a multiple of micro_batch_size 4"),
        ({"finetune.learning_rate": 2}, r"finetune.learning_rate: expected a number in \(0, 1\)"),
        ({"validate.heldout": 1}, r"validate.heldout: expected a share in \[0, 1\)"),
        ({"evaluate.benchmarks": {"mmlu": 1, "tydiqa": 5}}, r"evaluate.benchmarks: expected one of"),
        ({"evaluate.benchmarks": {"humaneval": 5}}, r"runs model-written code; set evaluate.run_code: true"),
        ({"evaluate.confidence": 1.0}, r"evaluate.confidence: expected a number in \(0, 1\)"),
        ({"evaluate.heldout_loss": False, "evaluate.benchmarks": {"mmlu": 0}}, r"evaluate: nothing to measure"),
        ({"validate.heldout": 0}, r"evaluate.heldout_loss needs held-out examples"),
        ({"evaluate.preference_pairs": -1}, r"evaluate.preference_pairs: expected a count >= 0 \(0: off\)"),
        ({"evaluate.preference_seed": -1}, r"evaluate.preference_seed: expected an integer >= 0"),
        ({"evaluate.preference_pairs": 5}, r"evaluate.preference_file: .*pairs.jsonl not found.*preference_pairs: 0"),
    ],
)
def test_finetune_and_evaluate_settings_are_checked(tmp_path, changes, message):
    with pytest.raises(ParamsError, match=message):
        load_params(write_params(tmp_path, changes))


def test_benchmarks_dir_is_relative_to_the_params_file(tmp_path):
    params = load_params(write_params(tmp_path / "sub"))
    assert params.evaluate.benchmarks_dir == str(tmp_path / "sub" / "benchmarks")
    assert params.finetune.accumulation_steps == 2
    assert params.evaluate.active_benchmarks == {"mmlu": 1}


def test_preference_file_is_relative_to_the_params_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "pairs.jsonl").write_text("")
    params = load_params(write_params(tmp_path / "sub", {"evaluate.preference_pairs": 3}))
    assert params.evaluate.preference_file == str(tmp_path / "sub" / "pairs.jsonl")
    assert params.evaluate.preference_pairs == 3


def test_decontamination_needs_the_benchmarks(tmp_path):
    with pytest.raises(ParamsError, match=r"evaluate\.benchmarks_dir: .*benchmarks is not a folder.*hygiene"):
        load_params(write_params(tmp_path, {"hygiene.decontaminate": True}))
    (tmp_path / "benchmarks").mkdir()
    assert load_params(write_params(tmp_path, {"hygiene.decontaminate": True})).hygiene.decontaminate


@pytest.mark.parametrize(
    ("key", "value", "where", "meant"),
    [
        ("score.raters", ["smollm2-135m"], "score.raters[0]", "smollm2-135m-instruct"),
        ("finetune.base_model", "gemma3-270", "finetune.base_model", "gemma3-270m"),
        ("audit.ifd_raters", ["smollm2-135m-instruct-q4"], "audit.ifd_raters[0]", "smollm2-135m-instruct"),
        ("select.ifd_model", "smolm2-135m-instruct", "select.ifd_model", "smollm2-135m-instruct"),
    ],
)
def test_a_misspelled_model_is_a_params_error_with_the_closest_name(tmp_path, monkeypatch, key, value, where, meant):
    from selectit.core.catalog import PACKAGED_RATERS

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)  # no folder of that name here
    with pytest.raises(ParamsError, match=rf"{re.escape(where)}: no model is called .*; did you mean (\S+)\?$") as err:
        load_params(write_params(tmp_path, {key: value}))
    assert err.value.args[0].endswith(f"did you mean {meant}?") and meant in PACKAGED_RATERS


def test_a_bare_name_in_the_local_hub_cache_or_a_folder_is_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hub" / "models--gpt2").mkdir(parents=True)  # a legacy hub id, downloaded before
    (tmp_path / "my-model").mkdir()
    params = load_params(write_params(tmp_path, {"score.raters": ["gpt2", "my-model"], "aggregate.weights": None}))
    assert params.score.raters == ["gpt2", "my-model"]
    with pytest.raises(ParamsError, match=r"'gpt3'.*; did you mean gpt2\?"):
        load_params(write_params(tmp_path, {"score.raters": ["gpt3"], "aggregate.weights": None}))


def test_selection_only_needs_nothing_to_measure(tmp_path):
    nothing = {"evaluate.heldout_loss": False, "evaluate.benchmarks": {"mmlu": 0}}
    with pytest.raises(ParamsError, match=r"evaluate: nothing to measure.*finetune.enabled: false"):
        load_params(write_params(tmp_path, nothing))
    params = load_params(write_params(tmp_path, {**nothing, "finetune.enabled": False, "validate.heldout": 0.0}))
    assert not params.finetune.enabled


def test_the_selection_study_params_load_with_every_key_params_yaml_has():
    """studies/selection/params.yaml is a whole params file (a key added to params.yaml must be added there)."""
    study = load_params(ROOT / "studies" / "selection" / "params.yaml")
    assert study.finetune.variants == ["selectit", "random", "length", "ifd", "learned", "base"]
    assert Path(study.select.learned_pairs).is_file() and Path(study.evaluate.preference_file).is_file()


def test_the_coverage_study_params_load_and_differ_from_the_selection_study_as_it_says():
    """studies/coverage/params.yaml is the selection study's file with the pool, the variants and
    fine-tuning changed (each a `# coverage:` line), and nothing else."""
    folder = ROOT / "studies"
    coverage = load_params(folder / "coverage" / "params.yaml")
    assert (coverage.ingest.limit, coverage.finetune.variants, coverage.finetune.enabled) == (
        5556,
        ["selectit", "random"],
        False,
    )
    raw = yaml.safe_load((folder / "coverage" / "params.yaml").read_text())
    study = yaml.safe_load((folder / "selection" / "params.yaml").read_text())
    raw["ingest"]["limit"] = study["ingest"]["limit"]
    raw["finetune"].update(variants=study["finetune"]["variants"], enabled=study["finetune"]["enabled"])
    assert raw == study
