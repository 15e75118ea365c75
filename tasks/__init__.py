"""Prefect tasks: thin wrappers that do the I/O around library calls."""
