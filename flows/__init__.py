"""Prefect flows: one per pipeline stage, and the whole pipeline."""

import os

# The machines this runs on may have no internet: Prefect's ephemeral server
# would otherwise try to send usage telemetry on every run.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
