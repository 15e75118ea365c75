"""The audit: do the scores pick the better response?

Judged pairs (two responses to one instruction and a judge's preference) are
rated with the configured raters and prompts, and each way of scoring (the
model level, each rater, each prompt, each rater and prompt, response length)
is checked against the judge: how often does the preferred response score higher?

- pairs.py:      reading the judged pairs file, each response as an `Example`
- agreement.py:  agreement with the judge, ties apart, with a bootstrap interval (pure)
- scorers.py:    per-response scores at every level, from the ratings table (pure)
- report.py:     the report: JSON, Markdown, MLflow and DVC metrics
- run.py:        rate the pairs and build the report (shared by `selectit audit` and the stage)
"""
