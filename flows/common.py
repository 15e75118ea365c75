"""What every stage flow needs: params, the data layout, the MLflow tracker, a CLI."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from selectit.config import Params, ParamsError, load_params
from selectit.layout import Layout
from selectit.rating.models import ModelLoadError
from selectit.ingest.records import InputError
from selectit.scoring.tables import RatingsError
from selectit.checks.examples import ValidationFailed
from selectit.tracking.runs import PipelineTracker, default_tracking_uri, dvc_stage_hashes, git_commit

# Errors that mean "fix the input or the settings", shown as one line, not a traceback.
USER_ERRORS = (ParamsError, InputError, ValidationFailed, ModelLoadError, RatingsError, ValueError, FileNotFoundError)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"
DEFAULT_DATA = PROJECT_ROOT / "data"


def setup(params_path: str | Path, data_dir: str | Path) -> tuple[Params, Layout, PipelineTracker]:
    params = load_params(params_path)
    layout = Layout(Path(data_dir))
    uri = params.tracking.tracking_uri or default_tracking_uri(PROJECT_ROOT)
    # Every run records what produced it: the code's commit and the DVC stage hashes.
    provenance = {"git_commit": git_commit(PROJECT_ROOT) or "unknown", **dvc_stage_hashes(PROJECT_ROOT / "dvc.lock")}
    tracker = PipelineTracker(uri, params.tracking.experiment, layout.root / ".mlflow_run_id", provenance)
    return params, layout, tracker


def stage_main(flow: Callable, description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Command line of a stage flow, as DVC runs it: `python -m flows.<stage> [--params] [--data]`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default=str(DEFAULT_PARAMS))
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="data folder (default: data/)")
    if extra:
        extra(parser)
    args = vars(parser.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        # Check the settings before Prefect starts: a typo in params.yaml is one
        # line of error, not a failed flow run with a traceback.
        load_params(args["params"])
        flow(params_path=args.pop("params"), data_dir=args.pop("data"), **args)
    except USER_ERRORS as exc:
        print(f"{getattr(flow, 'name', flow.__name__)}: error: {exc}", file=sys.stderr)
        sys.exit(2)
