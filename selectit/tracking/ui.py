"""The address at which MLflow's UI shows the project's runs; `make mlflow-ui` prints it.

MLflow 3.17's UI keeps a workflow type per browser (GenAI, the default, or machine learning, kept in
the browser's local storage) and shows every experiment through it, whatever the experiment's
`mlflow.experimentKind` tag says: GenAI opens on traces. An address with
`workflowType=machine_learning` opens the machine-learning views, so the link goes straight to the
experiment's runs table.

    python -m selectit.tracking.ui [--params params.yaml] [--url http://127.0.0.1:5000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from mlflow import MlflowClient

from selectit.tracking.runs import default_tracking_uri

MACHINE_LEARNING_VIEW = "workflowType=machine_learning"


def runs_address(base_url: str, experiment_id: str | None) -> str:
    """The UI's runs table of one experiment, or its list of experiments when there is none yet."""
    route = f"#/experiments/{experiment_id}/runs" if experiment_id else "#/experiments"
    return f"{base_url.rstrip('/')}/{route}?{MACHINE_LEARNING_VIEW}"


def find_experiment_id(tracking_uri: str, experiment: str) -> str | None:
    """The experiment's id in the store, without creating a store that is not there yet."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return None
    found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
    return found.experiment_id if found else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m selectit.tracking.ui", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="where `mlflow ui` listens")
    args = parser.parse_args(argv)
    params_file = Path(args.params)
    tracking = (yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}).get("tracking") or {}
    experiment = tracking.get("experiment") or "selectit"
    tracking_uri = tracking.get("tracking_uri") or default_tracking_uri(params_file.resolve().parent)
    address = runs_address(args.url, find_experiment_id(tracking_uri, experiment))
    print(f"The runs of experiment {experiment!r}: {address}")


if __name__ == "__main__":
    main()
