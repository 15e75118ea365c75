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


def test_a_dataset_two_runs_insert_at_once_is_logged_again_not_lost():
    """The server's get-or-create of a dataset races between two runs; the loser's insert breaks
    the unique key, and logging again links the dataset the winner inserted."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from selectit.tracking.runs import StageLogger

    class RacingClient:
        def __init__(self):
            self.calls = 0

        def log_inputs(self, run_id, datasets):
            self.calls += 1
            if self.calls == 1:
                raise MlflowException('duplicate key value violates unique constraint "dataset_pk"')

    client = RacingClient()
    StageLogger(client, "run-1", "ingest").dataset(pd.DataFrame({"id": ["a"]}), "x.jsonl", "x", "output")
    assert client.calls == 2

    class BrokenClient:
        def log_inputs(self, run_id, datasets):
            raise MlflowException("some other failure")

    with pytest.raises(MlflowException, match="some other failure"):
        StageLogger(BrokenClient(), "run-1", "ingest").dataset(pd.DataFrame({"id": ["a"]}), "x.jsonl", "x", "output")
