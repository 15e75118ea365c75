"""Stage 5: keep the top R% as selective_alpaca.json, with a dataset card."""

from __future__ import annotations

from prefect import flow

from flows.common import setup, stage_main
from tasks.select import SELECTION_FILE, select_examples

REPRODUCE = "make run    # or: dvc repro"


@flow(name="select", log_prints=True)
def select_flow(params_path: str, data_dir: str) -> dict:
    params, layout, tracker = setup(params_path, data_dir)
    with tracker.stage("select", {"select": vars(params.select)}) as log:
        summary = select_examples(params, layout, REPRODUCE)
        log.metrics({"selected": summary["selected"], "left_out": summary["left_out"],
                     "lowest_kept_score": summary["lowest_kept_score"]})
        log.artifact(layout.selected / "dataset_card.md", "select")
        log.dataset(layout.selected / SELECTION_FILE, name="selective_alpaca", context="output")
    return summary


if __name__ == "__main__":
    stage_main(select_flow, __doc__)
