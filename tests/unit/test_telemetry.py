"""The telemetry switches: set by the entry points, never by importing a module."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from selectit.core.telemetry import TELEMETRY_OFF, switch_off_telemetry

# What a flow's command line does: import its modules (MLflow among them), then switch off.
IMPORT_THEN_SWITCH_OFF = f"""
import json, os
import flows.common, flows.serve, selectit.cli, selectit.tracking.lineage
from mlflow.telemetry import get_telemetry_client
from selectit.core.telemetry import switch_off_telemetry

names = {sorted(TELEMETRY_OFF)!r}
after_import = {{"set": [n for n in names if n in os.environ], "mlflow_records": get_telemetry_client() is not None}}
switch_off_telemetry()
after_switch = {{"set": [n for n in names if n in os.environ], "mlflow_records": get_telemetry_client() is not None}}
print(json.dumps([after_import, after_switch]))
"""


def test_imports_switch_nothing_and_the_entry_points_switch_off_mlflow_already_imported():
    # Without the switches and outside pytest and CI (MLflow records nothing under either).
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF and k not in ("PYTEST_CURRENT_TEST", "CI")}
    out = subprocess.run([sys.executable, "-c", IMPORT_THEN_SWITCH_OFF], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    after_import, after_switch = json.loads(out.stdout.strip().splitlines()[-1])
    assert after_import == {"set": [], "mlflow_records": True}
    assert after_switch == {"set": sorted(TELEMETRY_OFF), "mlflow_records": False}


def test_a_users_own_choice_is_kept(monkeypatch):
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    switch_off_telemetry()
    assert os.environ["DO_NOT_TRACK"] == "0"
