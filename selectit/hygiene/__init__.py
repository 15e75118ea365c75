"""Benchmark decontamination and near-duplicate removal, before anything is scored (README "Clean data")."""
