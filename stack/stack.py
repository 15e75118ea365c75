"""The team stack on one machine, for trying it out and for the end-to-end tests:
PostgreSQL, an MLflow tracking server and a Prefect server on it, a process work pool
and one worker, all on 127.0.0.1 with their data in one folder outside git.

    python stack/stack.py up       # start what is not running (first start: initdb, databases, pool)
    python stack/stack.py status   # the addresses, and what runs
    python stack/stack.py env      # `export` lines for MLFLOW_TRACKING_URI and PREFECT_API_URL
    python stack/stack.py down     # stop everything; the data stays

Settings, from the environment (the Makefile passes them on):
    STACK_DIR            the folder (default: .stack in the project, git-ignored)
    STACK_PG_PORT, STACK_MLFLOW_PORT, STACK_PREFECT_PORT
                         ports; unset, free ones are chosen at the first start and kept
    STACK_POOL           the Prefect work pool (default: selectit)
    STACK_CRASHED_AFTER_S  a flow run silent this long is marked Crashed (default 600; crashed-runs.yaml)
    STACK_PG_OS_USER     who runs PostgreSQL when this runs as root (default: postgres, the
                         user Debian's package creates): initdb and postgres refuse root

The database role `selectit` logs in with a generated password (stack.json, mode 0600);
PostgreSQL listens on 127.0.0.1 only and on a unix socket inside the folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
ROLE = "selectit"
DATABASES = ("mlflow", "prefect")
# The servers migrate a fresh database at their first start: minutes on a busy 2-core machine.
START_TIMEOUT_S = 300
# Marks a flow run Crashed when its heartbeats stop (a killed worker never reports the end).
AUTOMATIONS = Path(__file__).with_name("crashed-runs.yaml")
CRASHED_RUNS = "selectit-crashed-runs"
# Runs the stack's worker starts beat every 30 s; others on the same server beat at Prefect's
# default, every 180 s. The automation waits STACK_CRASHED_AFTER_S without a beat (default 600 s,
# above both), and the tests, whose runs all beat every 30 s, shorten it.
HEARTBEAT_S = "30"
CRASHED_AFTER_S = 600
# No internet on the machines this targets: nothing the stack starts reports usage.
TELEMETRY_OFF = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


class StackError(Exception):
    """A problem the user can fix; printed as one line."""


@dataclass
class Settings:
    """What a stack folder keeps between starts (stack.json), so its addresses stay the same."""

    pg_port: int
    mlflow_port: int
    prefect_port: int
    password: str
    pool: str

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}/api"

    def database_url(self, database: str, driver: str) -> str:
        return f"{driver}://{ROLE}:{self.password}@{HOST}:{self.pg_port}/{database}"


class Stack:
    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        self.pgdata = self.folder / "postgres" / "data"
        self.socket_dir = self.folder / "postgres" / "socket"
        self.artifacts = self.folder / "mlflow-artifacts"
        self.prefect_home = self.folder / "prefect-home"
        self.settings_file = self.folder / "stack.json"

    # -- settings -------------------------------------------------------------------------
    def settings(self, create: bool = False) -> Settings:
        if self.settings_file.is_file():
            return Settings(**json.loads(self.settings_file.read_text()))
        if not create:
            raise StackError(f"no stack in {self.folder}: start one with `make stack-up`")
        settings = Settings(
            pg_port=_port("STACK_PG_PORT"),
            mlflow_port=_port("STACK_MLFLOW_PORT"),
            prefect_port=_port("STACK_PREFECT_PORT"),
            password=secrets.token_urlsafe(24),
            pool=os.environ.get("STACK_POOL", "selectit"),
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.settings_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(asdict(settings), handle, indent=2)
        return settings

    def pid_file(self, name: str) -> Path:
        return self.folder / f"{name}.pid"

    def log_file(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    # -- PostgreSQL -----------------------------------------------------------------------
    def postgres_up(self, settings: Settings) -> None:
        if not (self.pgdata / "PG_VERSION").is_file():
            self._initdb(settings)
        if self._pg_ctl("status", check=False).returncode != 0:
            options = f"-c listen_addresses={HOST} -p {settings.pg_port} -c unix_socket_directories={self.socket_dir}"
            self._pg_ctl("start", "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.log_file("postgres")), "-o", options)
        existing = self._psql(settings, "SELECT datname FROM pg_database").split()
        for database in DATABASES:
            if database not in existing:
                self._psql(settings, f"CREATE DATABASE {database}")

    def _initdb(self, settings: Settings) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        password_file = self.pgdata.parent / "initial-password"
        with os.fdopen(os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(settings.password + "\n")
        try:
            self._hand_to_postgres_user(self.pgdata.parent, password_file)
            self.log_file("postgres").touch()
            self._hand_to_postgres_user(self.log_file("postgres"))
            _run(
                self._as_postgres_user(
                    [
                        _pg_binary("initdb"),
                        "-D",
                        str(self.pgdata),
                        "-U",
                        ROLE,
                        f"--pwfile={password_file}",
                        # Passwords on TCP, and on the socket too: the folder may sit where others can read.
                        "--auth=scram-sha-256",
                        "-E",
                        "UTF8",
                        "--no-instructions",
                    ]
                ),
                "initdb",
            )
        finally:
            password_file.unlink(missing_ok=True)

    def _hand_to_postgres_user(self, *paths: Path) -> None:
        """Under root, PostgreSQL runs as another user: its folders and log must be that user's,
        and every folder above them must let it through."""
        if os.geteuid() != 0:
            return
        user = _postgres_os_user()
        for path in paths:
            for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
                shutil.chown(item, user, user)
        reachable = subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(paths[0])], check=False)
        if reachable.returncode != 0:
            raise StackError(
                f"PostgreSQL runs as user {user!r} (initdb refuses root), which cannot reach {paths[0]}: "
                "choose a STACK_DIR whose parent folders others may enter (chmod o+x)"
            )

    def _as_postgres_user(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", _postgres_os_user(), "--", *command] if os.geteuid() == 0 else command

    def _pg_ctl(self, action: str, *options: str, check: bool = True) -> subprocess.CompletedProcess:
        command = self._as_postgres_user([_pg_binary("pg_ctl"), action, "-D", str(self.pgdata), *options])
        return _run(command, f"pg_ctl {action}", check=check)

    def _psql(self, settings: Settings, sql: str) -> str:
        command = [_pg_binary("psql"), "-h", HOST, "-p", str(settings.pg_port), "-U", ROLE, "-d", "postgres"]
        env = {**os.environ, "PGPASSWORD": settings.password}
        return _run([*command, "-tAc", sql], "psql", env=env).stdout

    def postgres_running(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file() and self._pg_ctl("status", check=False).returncode == 0

    def postgres_down(self) -> None:
        if self.postgres_running():
            self._pg_ctl("stop", "-m", "fast", "-w")

    # -- the servers and the worker -------------------------------------------------------
    def server_env(self, settings: Settings) -> dict[str, str]:
        env = {**os.environ, **TELEMETRY_OFF}
        env.pop("MLFLOW_TRACKING_URI", None)
        env.update(PREFECT_HOME=str(self.prefect_home), PREFECT_API_URL=settings.prefect_api_url)
        return env

    def mlflow_up(self, settings: Settings) -> None:
        if self.running("mlflow"):
            return
        self.artifacts.mkdir(parents=True, exist_ok=True)
        env = self.server_env(settings)
        # In the environment, not in argv: `ps` shows a command line, password included.
        env["MLFLOW_BACKEND_STORE_URI"] = settings.database_url("mlflow", "postgresql+psycopg2")
        command = [
            _venv_binary("mlflow"),
            "server",
            "--host",
            HOST,
            "--port",
            str(settings.mlflow_port),
            "--serve-artifacts",
            "--artifacts-destination",
            self.artifacts.as_uri(),
            "--workers",
            "1",  # a team server would run more; one keeps the test machine's memory
        ]
        self.spawn("mlflow", command, env)
        self.wait_for("mlflow", f"{settings.mlflow_url}/health")

    def prefect_up(self, settings: Settings) -> None:
        if self.running("prefect"):
            return
        self.prefect_home.mkdir(parents=True, exist_ok=True)
        env = self.server_env(settings)
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = settings.database_url("prefect", "postgresql+asyncpg")
        command = [_venv_binary("prefect"), "server", "start", "--host", HOST, "--port", str(settings.prefect_port)]
        self.spawn("prefect", command, env)
        self.wait_for("prefect", f"{settings.prefect_api_url}/health")
        pool = subprocess.run(
            [_venv_binary("prefect"), "work-pool", "inspect", settings.pool], env=env, capture_output=True, check=False
        )
        if pool.returncode != 0:
            create = [_venv_binary("prefect"), "work-pool", "create", settings.pool, "--type", "process"]
            _run(create, "prefect work-pool create", env=env)
        inspect = [_venv_binary("prefect"), "automation", "inspect", CRASHED_RUNS]
        if subprocess.run(inspect, env=env, capture_output=True, check=False).returncode != 0:
            create = [_venv_binary("prefect"), "automation", "create", "--from-json", crashed_runs_automation()]
            _run(create, "prefect automation create", env=env)

    def worker_up(self, settings: Settings) -> None:
        if self.running("worker"):
            return
        env = self.server_env(settings)
        # Its flow runs log to this stack's MLflow where params.yaml names no tracking server.
        env["MLFLOW_TRACKING_URI"] = settings.mlflow_url
        env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] = HEARTBEAT_S  # what crashed-runs.yaml watches
        # The flow runs import flows/ and selectit/ from the checkout the worker serves.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), env.get("PYTHONPATH")]))
        command = [_venv_binary("prefect"), "worker", "start", "--pool", settings.pool, "--type", "process"]
        self.spawn("worker", [*command, "--name", f"{settings.pool}-{socket.gethostname()}"], env, cwd=PROJECT)

    def spawn(self, name: str, command: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        """Start a server in a session of its own (so that stopping it stops what it started)."""
        with self.log_file(name).open("a") as log:
            process = subprocess.Popen(
                command, env=env, cwd=cwd or self.folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.pid_file(name).write_text(f"{process.pid}\n")

    def wait_for(self, name: str, url: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running(name):
                raise StackError(f"{name} stopped at its start; see {self.log_file(name)}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=5):
                return
            time.sleep(1)
        raise StackError(f"{name} did not answer at {url} within {START_TIMEOUT_S} s; see {self.log_file(name)}")

    def pid(self, name: str) -> int | None:
        path = self.pid_file(name)
        return int(path.read_text()) if path.is_file() else None

    def running(self, name: str) -> bool:
        pid = self.pid(name)
        if pid is None:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        # Fields after the command's name: state, parent, group. A zombie (a server that died at its
        # start, not yet reaped by this process) is not running; a reused pid leads no group of its own.
        state, _, group = stat.rpartition(")")[2].split()[:3]
        return state != "Z" and int(group) == pid

    def stop(self, name: str, grace_s: float = 30) -> None:
        """SIGTERM to the server's process group and to those of its children (the worker starts
        each flow run in a session of its own), SIGKILL to what is left after `grace_s`."""
        if self.running(name):
            groups = process_groups(self.pid(name))
            _signal_groups(groups, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while any(_group_alive(group) for group in groups) and time.monotonic() < deadline:
                time.sleep(0.5)
            _signal_groups(groups, signal.SIGKILL)
        self.pid_file(name).unlink(missing_ok=True)

    # -- the commands ---------------------------------------------------------------------
    def up(self) -> Settings:
        settings = self.settings(create=True)
        self.postgres_up(settings)
        self.mlflow_up(settings)
        self.prefect_up(settings)
        self.worker_up(settings)
        return settings

    def down(self) -> None:
        # The worker first (it stops its flow runs), then the servers, then their database.
        for name in ("worker", "prefect", "mlflow"):
            self.stop(name)
        self.postgres_down()

    def status(self) -> str:
        settings = self.settings()

        def state(up: bool) -> str:
            return "running" if up else "stopped"

        return "\n".join(
            [
                f"stack folder   {self.folder}",
                f"PostgreSQL     {HOST}:{settings.pg_port} (databases {', '.join(DATABASES)})"
                f"  {state(self.postgres_running())}",
                f"MLflow         {settings.mlflow_url}  {state(self.running('mlflow'))}",
                f"Prefect API    {settings.prefect_api_url}  {state(self.running('prefect'))}",
                f"Prefect UI     http://{HOST}:{settings.prefect_port}",
                f"work pool      {settings.pool}, worker {state(self.running('worker'))}",
            ]
        )

    def env_lines(self) -> str:
        settings = self.settings()
        return f"export MLFLOW_TRACKING_URI={settings.mlflow_url}\nexport PREFECT_API_URL={settings.prefect_api_url}"


def crashed_runs_automation() -> str:
    """crashed-runs.yaml as the JSON `prefect automation create` takes, with the wait chosen."""
    import yaml  # a project dependency; imported here to keep `stack.py status` light

    (automation,) = yaml.safe_load(AUTOMATIONS.read_text())["automations"]
    chosen = os.environ.get("STACK_CRASHED_AFTER_S", "").strip()
    if chosen and not chosen.isdigit():
        raise StackError(f"STACK_CRASHED_AFTER_S={chosen!r}: expected a number of seconds")
    automation["trigger"]["within"] = int(chosen or CRASHED_AFTER_S)
    return json.dumps(automation)


def _processes() -> list[tuple[int, int, int, str]]:
    """(pid, parent pid, process group, state) of every process, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            state, parent, group = stat.read_text().rpartition(")")[2].split()[:3]
            found.append((int(stat.parent.name), int(parent), int(group), state))
    return found


def process_groups(pid: int) -> list[int]:
    """The process group of `pid` and those of all its descendants."""
    processes = _processes()
    family, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        family.add(parent)
        todo += [child for child, ppid, _, _ in processes if ppid == parent and child not in family]
    return sorted({group for child, _, group, _ in processes if child in family})


def _group_alive(group: int) -> bool:
    return any(g == group and state != "Z" for _, _, g, state in _processes())


def _signal_groups(groups: list[int], signum: int) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


def _port(variable: str) -> int:
    chosen = os.environ.get(variable, "").strip()
    if chosen:
        if not chosen.isdigit():
            raise StackError(f"{variable}={chosen!r}: expected a port number")
        return int(chosen)
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _postgres_os_user() -> str:
    return os.environ.get("STACK_PG_OS_USER", "postgres")


def _pg_binary(name: str) -> str:
    """A PostgreSQL program: on PATH, else the newest of Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    for folder in versions:
        if (folder / name).is_file():
            return str(folder / name)
    raise StackError(f"PostgreSQL's {name} not found: install it with `apt-get install postgresql` (make postgres)")


def _venv_binary(name: str) -> str:
    """A command installed beside this Python (the project's virtual environment)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.is_file() else name


def _run(command: list[str], what: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if check and done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise StackError(f"{what} failed: {lines[-1] if lines else f'exit status {done.returncode}'}")
    return done


def default_folder() -> Path:
    return Path(os.environ.get("STACK_DIR") or PROJECT / ".stack")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    commands = ("up", "down", "status", "env")
    if len(args) != 1 or args[0] not in commands:
        print(f"usage: python stack/stack.py {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    stack = Stack(default_folder())
    try:
        if args[0] == "up":
            stack.up()
            print(stack.status())
        elif args[0] == "down":
            stack.down()
            print(f"stack stopped; its data stays in {stack.folder}")
        elif args[0] == "status":
            print(stack.status())
        else:
            print(stack.env_lines())
    except StackError as exc:
        print(f"stack: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
