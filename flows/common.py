"""What every stage flow shares: opening a run context, the stage's MLflow run, the command line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from prefect.exceptions import TerminationSignal

from flows.prefect_runtime import quiet_user_errors, server_that_outlives_ctrl_c
from selectit.context import RunContext
from selectit.core import interrupts
from selectit.core.errors import SelectitError
from selectit.core.layout import Layout
from selectit.core.stages import Stage
from selectit.core.telemetry import switch_off_telemetry
from selectit.provenance import code_version, record_stages
from selectit.tracking.runs import StageLogger

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"
DEFAULT_DATA = PROJECT_ROOT / "data"


def open_context(params_path: str | Path, data_dir: str | Path, progress: bool = True) -> RunContext:
    return RunContext.open(params_path, data_dir, PROJECT_ROOT, progress)


@contextlib.contextmanager
def tracked_stage(
    context: RunContext, name: str, settings: dict, flow_module: str, dvc_stage: str | None = None
) -> Iterator[StageLogger]:
    """The stage's nested MLflow run, tagged with the version of the code it runs.

    Under the pipeline flow, the finished stage is then recorded in DVC (dvc.lock
    and the DVC cache, as `dvc repro` would have) and its stage hash tagged on the
    run. `dvc_stage` is its name in dvc.yaml (default: `name`)."""
    if context.parent_run_id is None:
        raise ValueError(f"stage {name}: the run context has no MLflow parent run (see RunContext.on_its_own)")
    with context.tracker().stage(
        name, settings, parent_run_id=context.parent_run_id, parent_takes_status=context.parent_takes_stage_status
    ) as stage_log:
        stage_log.tags({"code_version": code_version(flow_module)})
        yield stage_log
        if context.record_in_dvc:
            hashes = record_stages(context.project_root, [dvc_stage or name])
            stage_log.tags(hashes)


def kept_work(data_dir: Path) -> str:
    """What an interrupted run leaves for the next one, and how to resume."""
    layout = Layout(data_dir)
    return interrupts.kept_work(layout.shard_cache, layout.root / "cache" / "finetune")


def command_main(
    name: str,
    description: str,
    run: Callable[[argparse.Namespace], object],
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Command line of a flow, as DVC and users run it: `python -m flows.<name> [--params] [--data] ...`.

    An error the user can fix (SelectitError) is one line and exit status 2; Ctrl-C and
    SIGTERM are one line saying what was kept, and exit status 130 or 143; anything
    else is a bug and keeps its traceback."""
    switch_off_telemetry()
    parser = argparse.ArgumentParser(prog=f"python -m flows.{name}", description=description)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS))
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="data folder (default: data/)")
    if extra:
        extra(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    quiet_user_errors()
    try:
        with interrupts.sigterm_as_ctrl_c():
            run(args)
    except SelectitError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, TerminationSignal) as exc:
        print(f"{name}: {interrupts.how_it_ended(exc)}; {kept_work(Path(args.data))}", file=sys.stderr)
        sys.exit(interrupts.exit_status(exc))


def stage_main(
    flow: Callable,
    description: str,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    runner: Callable | None = None,
    switched_off: Callable[[RunContext, dict], Path] | None = None,
) -> None:
    """`python -m flows.<stage>`: the settings are read (and checked) before Prefect
    starts, so a typo in params.yaml is one line of error, not a failed flow run.
    Arguments that `extra` adds are passed on to the flow by name; `runner`, when
    given, is called in place of the flow with the same arguments (it picks how to run it).
    `switched_off`, given by the stages that finetune.enabled switches off, writes their
    outputs' note in place of a run (selection only) and returns where."""

    def run(args: argparse.Namespace) -> None:
        flow_args = {k: v for k, v in vars(args).items() if k not in ("params", "data")}
        context = open_context(args.params, args.data)
        if switched_off is not None and not context.params.finetune.enabled:
            # Selection only: a note in place of the outputs, so that `dvc repro` goes on to the report.
            written = switched_off(context, flow_args)
            print(f"{flow.name}: switched off (finetune.enabled: false in {args.params}); a note -> {written}")
            return
        # The benchmark files are checked where a run starts (`dvc repro` starts at ingest) and where they are read.
        context.check_ready(evaluates=flow.name in (Stage.INGEST, Stage.EVALUATE))
        # DVC runs one process a stage: ingest begins a new pipeline run, later stages join it.
        context = context.on_its_own(new_pipeline_run=flow.name == Stage.INGEST)
        with server_that_outlives_ctrl_c():
            (runner or flow)(context, **flow_args)

    command_main(flow.name, description, run, extra)
