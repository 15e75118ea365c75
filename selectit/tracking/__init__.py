"""MLflow: one parent run per pipeline run, one nested run per stage."""
