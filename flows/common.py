"""What every stage flow shares: opening a run context, the stage's MLflow run, the command line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from selectit.context import RunContext
from selectit.errors import SelectitError
from selectit.provenance import code_version, git_commit, record_stages
from selectit.tracking.runs import StageLogger

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"
DEFAULT_DATA = PROJECT_ROOT / "data"

log = logging.getLogger(__name__)


def open_context(params_path: str | Path, data_dir: str | Path, progress: bool = True) -> RunContext:
    return RunContext.open(params_path, data_dir, PROJECT_ROOT, progress)


def provenance_tags(context: RunContext) -> dict[str, str]:
    """Tags on every MLflow run: which commit of the code made it."""
    return {"git_commit": git_commit(context.project_root) or "unknown"}


@contextlib.contextmanager
def tracked_stage(
    context: RunContext, name: str, settings: dict, flow_module: str, dvc_stage: str | None = None
) -> Iterator[StageLogger]:
    """The stage's nested MLflow run, tagged with the version of the code it runs.

    Under the pipeline flow, the finished stage is then recorded in DVC (dvc.lock
    and the DVC cache, as `dvc repro` would have) and its stage hash tagged on the
    run. `dvc_stage` is its name in dvc.yaml (default: `name`)."""
    tracker = context.tracker(provenance_tags(context))
    # A stage on its own (DVC runs one process per stage) starts a new pipeline run at
    # ingest; later stages nest under the run that ingest recorded.
    with tracker.stage(
        name,
        settings,
        parent_run_id=context.parent_run_id,
        new_parent=name == "ingest" and context.parent_run_id is None,
    ) as stage_log:
        stage_log.tags({"code_version": code_version(flow_module)})
        yield stage_log
        if context.record_in_dvc:
            hashes = record_stages(context.project_root, [dvc_stage or name])
            stage_log.tags(hashes)


def command_main(
    name: str,
    description: str,
    run: Callable[[argparse.Namespace], object],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Command line of a flow, as DVC and users run it: `python -m flows.<name> [--params] [--data] ...`.

    An error the user can fix (SelectitError) is one line and exit status 2;
    anything else is a bug and keeps its traceback."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.{name}", description=description)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS))
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="data folder (default: data/)")
    if extra:
        extra(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        run(args)
    except SelectitError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(2)


def stage_main(
    flow: Callable,
    description: str,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """`python -m flows.<stage>`: the settings are read (and checked) before Prefect
    starts, so a typo in params.yaml is one line of error, not a failed flow run.
    Arguments that `extra` adds are passed on to the flow by name."""

    def run(args: argparse.Namespace) -> None:
        flow_args = {k: v for k, v in vars(args).items() if k not in ("params", "data")}
        flow(open_context(args.params, args.data), **flow_args)

    command_main(flow.name, description, run, extra)
