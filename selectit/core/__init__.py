"""The data model, record files, paths, errors and names every layer above shares
(docs/how-it-works/architecture.md)."""
