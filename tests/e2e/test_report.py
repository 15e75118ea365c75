"""The run report: built from a real (tiny) pipeline run, every section and plot present,
rendered in headless Chromium without errors; `selectit explain`."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_ROWS, pipeline_params

SECTIONS = [
    "overview",
    "scores",
    "validity",
    "agreement",
    "stability",
    "selected",
    "diversity",
    "flagged",
    "examples",
    "finetuning",
    "validation",
]
PLOTS = [
    "token-scores",
    "sentence-scores",
    "model-scores",
    "digit-mass",
    "prompt-spread",
    "rater-correlation",
    "rater-overlap",
    "stability",
    "selected-vs-dropped",
    "comparison",
    "losses",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# A small stability grid for the unit test (params.yaml's `report` section sets the real one).

MORE_ROWS = [
    {"instruction": f"What is {a} times {b}?", "input": "", "output": f"{a} times {b} is {a * b}."}
    for a, b in [(2, 3), (4, 5), (6, 7), (8, 9)]
]
# MORE_ROWS[0] but for case: ingest keeps it (another id), validate rejects it as a near-duplicate,
# so the report's validation section has a failed expectation with its failing example.
NEAR_DUPLICATE = {**MORE_ROWS[0], "instruction": MORE_ROWS[0]["instruction"].lower()}


class _Page(HTMLParser):
    """Section ids with their text, and each figure's image bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.plots: dict[str, bytes] = {}
        self.links: list[str] = []
        self._section: str | None = None
        self._figure: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs["id"]
            self.sections[self._section] = ""
        elif tag == "figure":
            self._figure = attrs["id"].removeprefix("plot-")
        elif tag == "img" and self._figure:
            self.plots[self._figure] = base64.b64decode(attrs["src"].removeprefix("data:image/png;base64,"))
        elif tag in ("script", "link") or (tag == "img" and not attrs["src"].startswith("data:")):
            self.links.append(str(attrs))

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data):
        if self._section:
            self.sections[self._section] += data


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model, prefect_harness):
    """A tiny pipeline run to the end (two raters, two variants), report included."""
    from flows.pipeline import pipeline_flow

    folder = tmp_path_factory.mktemp("report-run")
    source = folder / "source.json"
    source.write_text(json.dumps(TINY_ROWS + MORE_ROWS + [NEAR_DUPLICATE]))
    twin = folder / "twin-llama"
    twin.symlink_to(tiny_model, target_is_directory=True)
    params = pipeline_params(
        folder, source, [str(tiny_model), str(twin)], finetune__variants=["selectit", "random"], finetune__max_steps=3
    )
    pipeline_flow(str(params), str(folder / "data"), progress=False)
    return params, folder / "data"


@pytest.mark.slow
def test_the_report_has_every_section_and_plot_from_the_runs_own_files(finished_run):
    params, data = finished_run
    report = data / "reports" / "run" / "report.html"
    page = _Page()
    page.feed(report.read_text(encoding="utf-8"))
    assert list(page.sections) == SECTIONS
    assert all(len(text.split()) > 10 for text in page.sections.values()), page.sections
    assert list(page.plots) == PLOTS
    for plot_id, png in page.plots.items():
        assert png.startswith(PNG_MAGIC) and len(png) > 5000, plot_id  # a drawn picture, not a blank one
    assert page.links == []  # self-contained: no script, stylesheet or image from elsewhere
    text = report.read_text(encoding="utf-8")
    assert "selectit explain" in text and "calculation-heavy" in text
    assert "aggregate.token_score" in page.sections["overview"] and "the paper's score" in page.sections["scores"]
    # The validation results, offline: every expectation of both suites with its outcome.
    validate = json.loads((data / "validated" / "summary.json").read_text())["expectations"]
    checks = json.loads((data / "aggregated" / "summary.json").read_text())["rating_checks"]
    assert len(validate) > 5 and len(checks) > 5
    shown = text.split('<section id="validation"')[1]
    assert shown.count('class="pass"') + shown.count('class="fail"') == len(validate) + len(checks)
    # ... with the failing examples: the near-duplicate, under the expectation it fails.
    (reject,) = [json.loads(line) for line in (data / "validated" / "rejects.jsonl").read_text().splitlines()]
    (failed,) = [e for e in validate if not e["success"]]
    assert (failed["expectation"], failed["column"]) == ("expect_column_values_to_be_unique", "content_key")
    row = shown.split("expect_column_values_to_be_unique(content_key)</td>")[1].split("</tr>")[0]
    assert 'class="fail"' in row and f"row {reject['row']}: validation: " in row
    # The comparison table: every variant with its interval.
    for variant in ("selectit", "random"):
        assert variant in page.sections["finetuning"]
    # The selections side by side, with their coverage of the pool (the first rater's embeddings,
    # on by default).
    diversity = page.sections["diversity"]
    assert "No embeddings in this run" not in diversity and "coverage" in diversity
    assert all(name in diversity for name in ("selectit", "random", "length", "bottom"))

    plots = data / "reports" / "run" / "plots"
    ratio = np.genfromtxt(plots / "stability_ratio.csv", delimiter=",", names=True)
    assert ((ratio["jaccard_mean"] >= 0) & (ratio["jaccard_mean"] <= 1)).all()
    assert (ratio["jaccard_all_ratings"] == 1).all()  # nothing resampled: the run's own ranking
    assert len(np.genfromtxt(plots / "stability_alpha.csv", delimiter=",", names=True)) >= 7
    losses = (plots / "losses.csv").read_text().splitlines()
    # Both trained variants' curves, every step (3): loss_history.json beside each model.
    assert {line.split(",")[0] for line in losses[1:]} == {"selectit", "random"} and len(losses) == 1 + 2 * 3
    scores = (plots / "scores.csv").read_text().splitlines()
    selected = (data / "selected" / "selected_ids.txt").read_text().split()
    assert len(scores) == 1 + len(_ids(data / "validated" / "examples.jsonl"))
    assert [line.split(",")[1] for line in scores[1:] if line.split(",")[3] == "True"] == selected

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{params.parent / 'mlflow.db'}")
    (run,) = [
        r
        for r in client.search_runs([client.get_experiment_by_name("selectit").experiment_id])
        if r.info.run_name == "report"
    ]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "report")} >= {"report/report.html", "report/plots"}


@pytest.mark.slow
def test_explain_prints_what_each_rater_read_and_answered(finished_run, capsys):
    import pyarrow.parquet as pq

    from selectit.cli import main

    params, data = finished_run
    example_id = (data / "selected" / "selected_ids.txt").read_text().split()[0]
    assert main(["--params", str(params), "explain", example_id, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    ratings = pq.read_table(data / "scores" / "twin-llama" / "ratings.parquet").to_pylist()
    mine = [r for r in ratings if r["example_id"] == example_id]
    assert len(mine) == 2  # two prompts
    for row in mine:
        assert f"===== rater twin-llama, prompt {row['prompt_id']} =====" in out
        assert f"digit mass {row['mass']:.4f}" in out
        assert f"  1: {row['probs'][0]:.4f}" in out
        assert f"token-level score (paper) {row['token_score']:.4f}" in out  # as rated, the configured score
    example = next(json.loads(line) for line in (data / "validated" / "examples.jsonl").open() if example_id in line)
    assert example["output"] in out  # the rating text holds the response the rater read
    assert out.count("\n\nRating: |") == 4  # ... ending with the cue: 2 raters x 2 prompts
    assert "selected: True" in out and f"rank 1 of {len(_ids(data / 'validated' / 'examples.jsonl'))}" in out


@pytest.mark.slow
def test_the_report_section_of_params_sets_the_stability_check(finished_run, tmp_path):
    import yaml

    from selectit.cli import main
    from selectit.report.stability import Curve

    params, data = finished_run
    raw = yaml.safe_load(params.read_text())
    raw["report"].update({"stability_ratios": [0.25, 0.75], "stability_alphas": [3.0]})
    changed = params.with_name("params-report.yaml")  # beside the original: same relative paths
    changed.write_text(yaml.safe_dump(raw))
    out = tmp_path / "report"
    assert main(["--params", str(changed), "report", "--data", str(data), "--out", str(out)]) == 0
    by_ratio = np.genfromtxt(out / "plots" / "stability_ratio.csv", delimiter=",", names=True)
    by_alpha = np.genfromtxt(out / "plots" / "stability_alpha.csv", delimiter=",", names=True)
    # The settings' grid plus the run's own select.ratio (0.5) and aggregate.alpha.
    assert by_ratio["ratio"].tolist() == [0.25, 0.5, 0.75]
    assert by_alpha["alpha"].tolist() == [raw["aggregate"]["alpha"], 3.0]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"{raw['report']['stability_resamples']} resamples" in page

    # No resamples (the command-line flag over params.yaml): the curves' files keep only their
    # header (DVC still finds the stage's plots), and the report says why.
    flag = ["--stability-resamples", "0"]
    assert main(["--params", str(changed), "report", "--data", str(data), "--out", str(out), *flag]) == 0
    assert (out / "plots" / "stability_ratio.csv").read_text().splitlines() == [",".join(Curve.columns("ratio"))]
    assert "report.stability_resamples is 0" in (out / "report.html").read_text(encoding="utf-8")


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium_without_errors(finished_run, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser_path:
        pytest.skip("no chromium (the Makefile's set-up installs Debian's chromium where apt exists)")
    _, data = finished_run
    report = data / "reports" / "run" / "report.html"
    problems = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        for section in SECTIONS:
            locator = page.locator(f"section#{section}")
            assert locator.is_visible() and len(locator.inner_text().split()) > 10, section
        for plot in PLOTS:
            image = page.locator(f"figure#plot-{plot} img")
            image.scroll_into_view_if_needed()
            assert image.is_visible(), plot
            width = image.evaluate("img => img.complete ? img.naturalWidth : 0")
            box = image.bounding_box()
            assert width > 100 and box["width"] > 100 and box["height"] > 50, plot
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        browser.close()
    assert problems == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
