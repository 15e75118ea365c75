"""Stage `evaluate`/`compare`: scores of fine-tuned variants, bootstrap intervals and the comparison table."""
