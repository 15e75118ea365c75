"""The names of the token-level scores (params.yaml aggregate.token_score).

A module of its own so that the settings can check the name without loading the
scoring math: every pipeline stage reads the settings, and DVC re-runs a stage
when a file it loads changes.
"""

PAPER, EXPECTED = "paper", "expected"  # the paper's score; the expected rating
TOKEN_LEVEL_SCORES = (PAPER, EXPECTED)
