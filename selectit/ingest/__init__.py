"""Stage `ingest`: read sources in the formats people have and normalise them into examples."""
