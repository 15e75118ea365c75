"""The Great Expectations plumbing shared by the record and rating checks.

An ephemeral GX context runs one suite over one pandas frame through a
Checkpoint with COMPLETE results (failed rows identified by a `position`
column), and, when asked, writes Data Docs into a folder of the caller's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path


def import_gx():
    """Import GX quietly (it costs seconds, so only when a check runs)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # never send usage statistics
    import great_expectations as gx

    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # leave a level the caller chose alone
        gx_logger.setLevel(logging.ERROR)
    return gx


def rows_text(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def run_suite(gx, frame, expectations: Sequence, *, suite_name: str, asset_name: str,
              docs_site: str, docs_dir: Path | None):
    """Run the expectations over the frame; return the GX validation result and the
    Data Docs index (or None)."""
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    for site in list(context.list_data_docs_sites()):  # GX's default site points into /tmp
        context.delete_data_docs_site(site)
    batch_definition = (context.data_sources.add_pandas("selectit")
                        .add_dataframe_asset(asset_name)
                        .add_batch_definition_whole_dataframe("all_rows"))
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_run", data=batch_definition, suite=suite))

    actions = []
    index: Path | None = None
    if docs_dir is not None:
        docs_dir = Path(docs_dir).resolve()
        docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(docs_site, {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[docs_site]))
        index = docs_dir / "index.html"
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=f"{suite_name}_checkpoint", validation_definitions=[definition], actions=actions,
        result_format={"result_format": "COMPLETE",
                       "unexpected_index_column_names": ["position"]}))
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=docs_site))
    (validation,) = result.run_results.values()
    if index is not None and not index.is_file():
        raise RuntimeError(f"Great Expectations did not write the Data Docs index {index}")
    return validation, index


def paired_outcomes(validation, checks: Sequence) -> list[tuple[object, object]]:
    """(check, GX outcome) in the suite's order; each check has a `key` stored in its
    expectation's meta as `selectit_check`, and a `label` for messages.

    An expectation GX could not evaluate is an error, never a silent pass."""
    by_key = {check.key: check for check in checks}
    pairs = []
    for outcome in validation.results:
        check = by_key[(outcome.expectation_config.meta or {})["selectit_check"]]
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            message = outcome.exception_info.get("exception_message")
            raise RuntimeError(f"Great Expectations could not evaluate {check.label}: {message}")
        pairs.append((check, outcome))
    return pairs
