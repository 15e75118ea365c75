"""selectit: SelectIT instruction-data selection (arXiv 2402.16705) as a pipeline."""

__version__ = "0.1.0"
