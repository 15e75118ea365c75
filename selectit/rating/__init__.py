"""Stage `score`: rating prompts, rater models, the batched engine and the shard cache."""
