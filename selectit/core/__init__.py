"""The data model, record files, paths, errors and names every layer above shares (README "Layout")."""
