"""A tracking server that fails or cannot be reached ends a run with one line naming it
(TrackingServerError, an error the user can fix), not a REST traceback."""

from __future__ import annotations

import pytest
from helpers import free_port

from selectit.core.errors import SelectitError
from selectit.tracking.runs import PipelineTracker, TrackingServerError


def test_an_unreachable_tracking_server_is_one_error_naming_it(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # no back-off: the port is closed
    uri = f"http://127.0.0.1:{free_port()}"
    tracker = PipelineTracker(uri, "selectit")
    with pytest.raises(TrackingServerError, match=f"MLflow tracking server {uri} failed") as raised:
        tracker.experiment_id()
    assert isinstance(raised.value, SelectitError)
    assert "\n" not in str(raised.value)


def test_a_local_store_keeps_mlflows_own_client(tmp_path):
    tracker = PipelineTracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "selectit")
    assert type(tracker.client).__name__ == "MlflowClient"
