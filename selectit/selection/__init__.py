"""Stage `select`: the top R% and the dataset card."""
