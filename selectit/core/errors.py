"""Errors a user can fix: bad settings, bad input, data that fails a check, a model
that cannot be loaded. The command line and the stage flows show these as one
line with exit status 2; every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class SelectitError(Exception):
    """Base of every error a user can fix; the message names the file, key or row."""


class ParamsError(SelectitError):
    """A setting in params.yaml (or a flag) is missing, unknown or out of range."""


class InputError(SelectitError):
    """A whole input file (or table) cannot be used; the message names it."""


class ModelLoadError(SelectitError):
    """A rater model cannot be found or loaded; the message says what to install or set."""


class DigitTokenError(SelectitError):
    """A rating digit is not exactly one token for this model after the cue."""


class RatingsError(SelectitError):
    """A ratings or scores table cannot be aggregated as it is."""


class SuiteFailed(SelectitError):
    """A Great Expectations suite failed; carries the per-expectation summaries and the Data Docs index."""

    def __init__(self, message: str, expectations: list[dict] | None = None, docs_index: Path | None = None):
        super().__init__(message)
        self.expectations = expectations or []
        self.docs_index = docs_index


class ValidationFailed(SuiteFailed):
    """The examples failed the validation suite (schema, or too many rejected rows)."""


class RatingCheckFailed(SuiteFailed, RatingsError):
    """The rating tables failed their suite; re-running the score stage usually fixes it."""
