"""One way to declare and run a Great Expectations suite, shared by the record and rating checks.

A suite is a table of `Expectation`s: what GX checks, what it guards (the
notes in the Data Docs) and how a failure reads. `run_suite` builds the GX
suite from the table and runs it over one pandas frame in an ephemeral GX
context, through a Checkpoint with COMPLETE results (failed rows identified by a
``position`` column), writing Data Docs into a folder of the caller's when
asked. It returns one `Outcome` per expectation, in the table's order.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from selectit.core.errors import SuiteFailed

if TYPE_CHECKING:
    import pandas as pd

DATASET, ROW = "dataset", "row"


@dataclass(frozen=True)
class Expectation:
    """One expectation of a suite."""

    key: str  # unique in its suite; GX carries it as the meta `selectit_check`
    level: str  # DATASET: a failure fails the data; ROW: it rejects the rows that fail
    gx_class: str  # a class of gx.expectations, e.g. "ExpectColumnValuesToBeUnique"
    kwargs: Mapping[str, Any]  # its arguments, the column(s) included
    reason: str  # what it guards: the notes shown in the Data Docs
    # DATASET: describe(outcome) -> the failure message; ROW: describe(record, column, first)
    # -> why this record fails, `first` being the kept first of its group (keep_first) or None.
    describe: Callable[..., str]
    shown_column: str | None = None  # the column summaries name, where it is not the one GX checks
    keep_first: bool = False  # uniqueness: the first row of a group of equal values passes
    advice: str = ""  # what to do about a failure, said once after the failure messages

    @property
    def columns(self) -> tuple[str, ...]:
        """The frame columns GX checks."""
        return tuple(self.kwargs[name] for name in ("column", "column_A", "column_B") if name in self.kwargs)

    @property
    def column(self) -> str | None:
        return self.shown_column or ", ".join(self.columns) or None


@dataclass
class Outcome:
    """What GX found for one expectation."""

    expectation: Expectation
    label: str  # e.g. "expect_column_values_to_be_unique(id)"
    success: bool
    unexpected_count: int
    positions: list[int]  # the rows that failed, ascending
    frame: pd.DataFrame  # the data the suite ran over
    summary: dict  # expectation, column, success, unexpected_count: what the stage records

    @property
    def rows(self) -> pd.DataFrame:
        """The rows that failed, in input order."""
        return self.frame.iloc[self.positions]


@dataclass
class SuiteRun:
    outcomes: list[Outcome]  # in the table's order
    docs_index: Path | None  # the Data Docs index.html, if a docs folder was given

    @property
    def summaries(self) -> list[dict]:
        return [outcome.summary for outcome in self.outcomes]

    def fail_on_dataset_level(self, error: type[SuiteFailed], prefix: str) -> None:
        """Raise if a dataset-level expectation failed, with the message each one describes."""
        failures = [
            outcome.expectation.describe(outcome)
            for outcome in self.outcomes
            if outcome.expectation.level == DATASET and not outcome.success
        ]
        if failures:
            self.fail(error, prefix + "; ".join(failures))

    def fail(self, error: type[SuiteFailed], message: str) -> NoReturn:
        """Raise with the failed expectations' advice and the Data Docs path added."""
        advice = dict.fromkeys(
            outcome.expectation.advice
            for outcome in self.outcomes
            if not outcome.success and outcome.expectation.advice
        )
        report = f" (report: {self.docs_index})" if self.docs_index else ""
        raise error(message + "".join(f"; {text}" for text in advice) + report, self.summaries, self.docs_index)


def _load_gx():
    """Import GX quietly (it costs seconds, so only when a check runs), with the
    settings the suites need applied here, where GX is loaded, and nowhere else."""
    # Set before GX loads: without it, GX sends usage statistics.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    # Internal: GX fingerprints every pandas batch, hashing every value (the texts encoded once more:
    # about 1.5x the frame at peak, 46 MB at 52K examples), only to list the hash among the
    # batch's markers. The pipeline identifies its data by DVC's hashes, so it is skipped:
    # GX hashes only frames below this size in bytes.
    from great_expectations.execution_engine import pandas_execution_engine

    pandas_execution_engine.HASH_THRESHOLD = 0
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:  # leave a level the caller chose alone
        gx_logger.setLevel(logging.ERROR)
    return gx


def rows_text(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def failed_rows(outcome: Outcome, where: Callable[[Any], str]) -> str:
    """'<label> failed for N rows (first: <where(first failed row)>)'."""
    if not outcome.positions:
        return f"{outcome.label} failed"
    first = where(outcome.rows.iloc[0])
    return f"{outcome.label} failed for {rows_text(outcome.unexpected_count)} (first: {first})"


def run_suite(
    frame: pd.DataFrame,
    table: Sequence[Expectation],
    *,
    suite_name: str,
    asset_name: str,
    docs_site: str,
    docs_dir: Path | None,
) -> SuiteRun:
    """Run the table's expectations over the frame, which has a ``position`` column."""
    # Not exported at GX's top level: a run name for the Data Docs page, and the switch
    # for GX's progress bars (one per metric, hundreds of lines in a log otherwise).
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    by_key = {entry.key: entry for entry in table}
    if len(by_key) != len(table):
        raise ValueError(f"suite {suite_name} uses a key twice")
    gx = _load_gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    for site in list(context.list_data_docs_sites()):  # GX's default site points into /tmp
        context.delete_data_docs_site(site)
    batch_definition = (
        context.data_sources.add_pandas("selectit")
        .add_dataframe_asset(asset_name)
        .add_batch_definition_whole_dataframe("all_rows")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for entry in table:
        suite.add_expectation(
            getattr(gx.expectations, entry.gx_class)(
                **entry.kwargs,
                notes=f"{entry.reason} ({entry.level}-level)",
                meta={"selectit_check": entry.key},
                severity="critical" if entry.level == DATASET else "warning",
            )
        )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_run", data=batch_definition, suite=suite)
    )

    actions = []
    index: Path | None = None
    if docs_dir is not None:
        docs_dir = Path(docs_dir).resolve()
        docs_dir.mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            docs_site,
            {
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=[docs_site]))
        index = docs_dir / "index.html"
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite_name}_checkpoint",
            validation_definitions=[definition],
            actions=actions,
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["position"]},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=docs_site))
    (validation,) = result.run_results.values()
    if index is not None and not index.is_file():
        raise RuntimeError(f"Great Expectations did not write the Data Docs index {index}")

    outcomes = {}
    for result in validation.results:
        entry = by_key[(result.expectation_config.meta or {})["selectit_check"]]
        outcomes[entry.key] = _outcome(entry, result, frame)
    # GX groups its results by column; report them in the table's order.
    return SuiteRun([outcomes[entry.key] for entry in table], index)


def _outcome(entry: Expectation, result, frame: pd.DataFrame) -> Outcome:
    name = result.expectation_config.type
    label = f"{name}({entry.column})" if entry.column else name
    # An expectation GX could not evaluate is an error, never a silent pass (or a plain
    # failure). GX reports it at the top of exception_info, or under each failed metric.
    info = result.exception_info or {}
    for error in (info, *(value for value in info.values() if isinstance(value, dict))):
        if error.get("raised_exception"):
            raise RuntimeError(f"Great Expectations could not evaluate {label}: {error.get('exception_message')}")
    details = result.result or {}
    success = bool(result.success)
    count = details.get("unexpected_count")
    if count is None:  # a table-level expectation: a row count is off by so many rows, others by 1
        observed, wanted = details.get("observed_value"), entry.kwargs.get("value")
        count = abs(int(observed) - wanted) if isinstance(wanted, int) and observed is not None else int(not success)
    positions = sorted(
        int(item["position"]) for item in details.get("unexpected_index_list") or [] if "position" in item
    )
    return Outcome(
        entry,
        label,
        success,
        int(count),
        positions,
        frame,
        {"expectation": name, "column": entry.column, "success": success, "unexpected_count": int(count)},
    )
