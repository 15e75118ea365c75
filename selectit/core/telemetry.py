"""The switches that keep the frameworks from reporting usage: the machines this runs on
may have no internet, and a run should send nothing anywhere it was not asked to.

Entry points (the CLI, each flow's command line, the scheduler, the tests) call
`switch_off_telemetry()` first; importing a project module changes nothing."""

from __future__ import annotations

import os
import sys

# Set unless the user chose otherwise; Ray's workers get the same values.
TELEMETRY_OFF = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # Prefect's temporary server
    "DO_NOT_TRACK": "1",  # Prefect's client, and other tools that honour the common switch
    "MLFLOW_DISABLE_TELEMETRY": "true",  # MLflow's config fetch and usage records
}


def switch_off_telemetry() -> None:
    for name, value in TELEMETRY_OFF.items():
        os.environ.setdefault(name, value)
    # MLflow reads its switch once, when it is imported, and a flow's module imports it
    # before the command line runs: set_telemetry_client (public, for re-initialising)
    # reads it again. Nothing is sent before that: MLflow records usage on first use.
    mlflow_telemetry = sys.modules.get("mlflow.telemetry")
    if mlflow_telemetry is not None:
        mlflow_telemetry.set_telemetry_client()
