"""Benchmark decontamination and near-duplicate removal, before anything is scored (docs/guides/clean-data.md)."""
