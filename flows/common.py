"""What every stage flow shares: opening a run context, the stage's MLflow run, the command line."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from selectit.context import RunContext
from selectit.core.errors import SelectitError
from selectit.core.stages import Stage
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
        new_parent=name == Stage.INGEST and context.parent_run_id is None,
    ) as stage_log:
        stage_log.tags({"code_version": code_version(flow_module)})
        yield stage_log
        if context.record_in_dvc:
            hashes = record_stages(context.project_root, [dvc_stage or name])
            stage_log.tags(hashes)


def _user_error_names() -> tuple[str, ...]:
    found, todo = [], [SelectitError]
    while todo:
        cls = todo.pop()
        found.append(cls.__name__)
        todo += cls.__subclasses__()
    return tuple(found)


class _UserErrorsToDebug(logging.Filter):
    """Prefect logs a failed task's and flow's exception with its traceback at ERROR
    (about 80 lines for one bad file). For an error the user can fix, the command
    prints one line instead: these records drop to DEBUG in Prefect's own log and
    stay off the console. A bug keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, SelectitError) or (
            exc is None
            and "Failed(" in (message := record.getMessage())
            # "Finished in state Failed('... InputError: ...')": the same error, once more
            and any(f"{name}: " in message for name in _user_error_names())
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            record.selectit_user_error = True
        return True


def _not_a_user_error(record: logging.LogRecord) -> bool:
    return not getattr(record, "selectit_user_error", False)


def quiet_user_errors() -> None:
    """Install the filter on Prefect's run loggers, and keep what it marks off the
    console handlers (Prefect puts its console handler on the root logger)."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorsToDebug) for f in logger.filters):
            logger.addFilter(_UserErrorsToDebug())
    for handler in logging.getLogger().handlers:
        if _not_a_user_error not in handler.filters:
            handler.addFilter(_not_a_user_error)


@contextlib.contextmanager
def prefect_server_that_outlives_ctrl_c() -> Iterator[None]:
    """Start Prefect's temporary server (when no server is configured) with SIGINT blocked.

    Ctrl-C in a terminal goes to the whole process group: the temporary server, a
    child of this process, stopped at once, and the interrupted run then spent over
    a minute retrying it before ending in a connection error. A blocked signal stays
    blocked in the child (uvicorn installs handlers but keeps the mask), so the
    server lives until this process stops it at exit, and the run records how it
    ended. Prefect's client finds the server already running and uses it."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            # The first start in a fresh PREFECT_HOME migrates a new database: over Prefect's
            # default 20 s on a busy 2-core machine.
            SubprocessASGIServer().start(timeout=120)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    yield


def kept_work(data_dir: Path) -> str:
    """What an interrupted run leaves for the next one, and how to resume."""
    from selectit.core.layout import Layout

    layout = Layout(data_dir)
    shards = sum(1 for _ in layout.shard_cache.rglob("*.parquet")) if layout.shard_cache.is_dir() else 0
    checkpoints = len(list((layout.root / "cache" / "finetune").glob("*/*/checkpoint-*")))
    return (
        f"kept {shards} finished rating shard(s) in {layout.shard_cache} and {checkpoints} fine-tuning "
        "checkpoint(s); run the same command again to resume from them"
    )


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
    quiet_user_errors()
    try:
        run(args)
    except SelectitError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; {kept_work(Path(args.data))}", file=sys.stderr)
        sys.exit(130)


def stage_main(
    flow: Callable,
    description: str,
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
    runner: Callable | None = None,
) -> None:
    """`python -m flows.<stage>`: the settings are read (and checked) before Prefect
    starts, so a typo in params.yaml is one line of error, not a failed flow run.
    Arguments that `extra` adds are passed on to the flow by name; `runner`, when
    given, is called in place of the flow with the same arguments (it picks how to run it)."""

    def run(args: argparse.Namespace) -> None:
        flow_args = {k: v for k, v in vars(args).items() if k not in ("params", "data")}
        context = open_context(args.params, args.data)
        with prefect_server_that_outlives_ctrl_c():
            (runner or flow)(context, **flow_args)

    command_main(flow.name, description, run, extra)
