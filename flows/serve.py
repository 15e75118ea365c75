"""Run the whole pipeline on a schedule: serve it as a Prefect deployment.

    python -m flows.serve [--params params.yaml] [--data data] [--cron "0 3 * * *"] [--name selectit-nightly]

Registers the deployment `selectit-pipeline/<name>` with the Prefect server that
PREFECT_API_URL names, then keeps running and executes its runs, one at a time
(two runs at once would write the same data folder). The default schedule,
--cron "0 3 * * *", is every night at 03:00 UTC. A run can also be started by
hand: `prefect deployment run selectit-pipeline/<name>`. Stop with Ctrl-C,
which pauses the schedule.
The scheduled runs skip the audit stage, whatever audit.enabled says.

A schedule needs a real server, not Prefect's throwaway in-process one:

    prefect server start --host 127.0.0.1
    export PREFECT_API_URL=http://127.0.0.1:4200/api
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.common import DEFAULT_DATA, DEFAULT_PARAMS
from flows.prefect_runtime import configured_api_url
from selectit.config import load_params
from selectit.core.errors import SelectitError
from selectit.core.telemetry import switch_off_telemetry

DEFAULT_CRON = "0 3 * * *"
DEFAULT_NAME = "selectit-nightly"


def main(argv: list[str] | None = None) -> None:
    switch_off_telemetry()
    parser = argparse.ArgumentParser(
        prog="python -m flows.serve", description="Serve the SelectIT pipeline on a cron schedule."
    )
    parser.add_argument("--params", default=str(DEFAULT_PARAMS))
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="data folder (default: data/)")
    parser.add_argument("--cron", default=DEFAULT_CRON, help=f"when to run, UTC (default: {DEFAULT_CRON!r})")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"deployment name (default: {DEFAULT_NAME})")
    args = parser.parse_args(argv)

    if not configured_api_url():
        print(
            "flows.serve: error: no Prefect server configured; start one with "
            "`prefect server start --host 127.0.0.1` and set PREFECT_API_URL=http://127.0.0.1:4200/api",
            file=sys.stderr,
        )
        sys.exit(2)

    from flows.pipeline import pipeline_flow  # imports torch: after the quick checks above

    try:
        load_params(args.params)  # a broken params.yaml fails now, not at 03:00
    except SelectitError as exc:
        print(f"flows.serve: error: {exc}", file=sys.stderr)
        sys.exit(2)

    # Absolute paths: runs must not depend on the folder the server or runner starts in.
    pipeline_flow.serve(
        name=args.name,
        cron=args.cron,
        parameters={
            "params_path": str(Path(args.params).resolve()),
            "data_dir": str(Path(args.data).resolve()),
            "progress": False,
            # The audit rates judged pairs that do not change between nights: it measures a
            # configuration, not the data, so nightly runs skip it (audit.enabled is for `make run`).
            "run_audit": False,
        },
        limit=1,
    )


if __name__ == "__main__":
    main()
