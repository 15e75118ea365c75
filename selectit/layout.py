"""Where each stage reads and writes under the data folder (mirrored by dvc.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    root: Path  # the data folder

    @property
    def ingested(self) -> Path:
        return self.root / "ingested"

    @property
    def validated(self) -> Path:
        return self.root / "validated"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    def rater_scores(self, rater: str) -> Path:
        return self.root / "scores" / rater

    @property
    def shard_cache(self) -> Path:
        return self.root / "cache" / "ratings"

    @property
    def aggregated(self) -> Path:
        return self.root / "aggregated"

    @property
    def selected(self) -> Path:
        return self.root / "selected"

    @property
    def reports(self) -> Path:
        return self.root / "reports"
