"""Every use of Prefect beyond flows, tasks and their futures: the run's temporary
server, the server address Ray workers report to, a crashed task's state, and
Prefect's log lines for errors a user can fix.

Some of these are Prefect internals, with no public equivalent; each says why it
is needed, so that a Prefect upgrade has one module to check."""

from __future__ import annotations

import contextlib
import functools
import logging
import subprocess
from collections.abc import Iterator
from unittest import mock

from prefect import get_client
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_API_URL

from selectit.core.errors import SelectitError


def _temporary_server():
    """Prefect's temporary ("ephemeral") server, the one it starts when no PREFECT_API_URL is set.

    Internal: Prefect has no public handle on it; this one starts it (see
    server_that_outlives_ctrl_c) and gives its address to Ray workers. It is a singleton per
    port, so the instance made here is the one Prefect's client uses."""
    # Imported here: the server module loads Prefect's whole server (FastAPI app, database
    # models), seconds of every stage command's start, needed only when no server is configured.
    from prefect.server.api.server import SubprocessASGIServer

    return SubprocessASGIServer()


def configured_api_url() -> str | None:
    """The Prefect server that PREFECT_API_URL (or the active Prefect profile) names."""
    return PREFECT_API_URL.value() or None


@contextlib.contextmanager
def server_that_outlives_ctrl_c() -> Iterator[None]:
    """Start Prefect's temporary server (when no server is configured) in a session of its own.

    Ctrl-C in a terminal goes to the whole foreground process group, and `timeout` and
    systemd send SIGTERM to the whole group (or cgroup): the temporary server, a child of
    this process, stopped at once, and the interrupted run then spent over a minute
    retrying it before ending in a connection error. In its own session no group signal
    reaches it: it lives until this process stops it at exit (Prefect registers that),
    and the run records how it ended. Prefect's client finds it running and uses it."""
    if not configured_api_url():
        server = _temporary_server()
        # Internal: Prefect starts the server with subprocess.Popen in _run_uvicorn_command and
        # has no option for its session; Popen is given one for that call only.
        launch = server._run_uvicorn_command

        def launch_in_own_session():
            with mock.patch.object(subprocess, "Popen", functools.partial(_POPEN, start_new_session=True)):
                return launch()

        server._run_uvicorn_command = launch_in_own_session
        # The first start in a fresh PREFECT_HOME migrates a new database: over Prefect's
        # default 20 s on a busy 2-core machine.
        server.start(timeout=120)
    yield


_POPEN = subprocess.Popen


def api_url_for_workers(chosen: str | None) -> str | None:
    """The Prefect server Ray workers report task states to: `chosen` (ray.prefect_api_url),
    else the configured server, else this run's temporary server when it runs.

    Without one, each worker would start a temporary Prefect server of its own."""
    if chosen:
        return chosen
    if configured := configured_api_url():
        return configured
    server = _temporary_server()  # the run's temporary server, when server_that_outlives_ctrl_c started one
    return server.api_url if server.running else None


def record_crash(future: PrefectFuture) -> None:
    """Mark a task run Crashed on the server when Ray gave up on it.

    The task's own engine, on the lost worker, never reported its end, so the server
    still has it Running. `force=True` (a client option, not part of Prefect's flow and
    task API) lets the state move past the orchestration rules that refuse a Running
    task run a terminal state set from outside its engine."""
    with get_client(sync_client=True) as client:
        client.set_task_run_state(future.task_run_id, future.state, force=True)


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
    console handlers (Prefect puts its console handler on the root logger).

    The logger names and the "Finished in state Failed(...)" line are Prefect's own
    (not an API): a Prefect upgrade that renames them brings the tracebacks back."""
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorsToDebug) for f in logger.filters):
            logger.addFilter(_UserErrorsToDebug())
    for handler in logging.getLogger().handlers:
        if _not_a_user_error not in handler.filters:
            handler.addFilter(_not_a_user_error)
