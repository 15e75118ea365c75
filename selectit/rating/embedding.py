"""Which hidden states of a rater make an example's embedding, and how they are pooled.

The embedding comes from the rater's own forward pass over the rating text of the first
prompt: the hidden states after one layer, pooled over the example's tokens only (its
instruction, input and response; never the rating prompt or the cue), so rating and
embedding share one pass. The choice below was measured on both offline raters (docs/guides/embeddings.md,
`benchmarks/embedding_choice.py`): the layer at three quarters of the depth, mean-pooled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

POOLINGS = ("mean", "last-token")


@dataclass(frozen=True)
class EmbeddingSpec:
    depth: float  # which layer's output, as a share of the rater's layers: 0.5 the middle one, 1.0 the last
    pooling: str  # mean (over the example's tokens) | last-token (the example's last token)
    prompt: int = 0  # the rating prompt whose text is run (its embedding stands for the example)

    def __post_init__(self) -> None:
        if not 0 < self.depth <= 1 or self.pooling not in POOLINGS:
            raise ValueError(f"embedding spec: depth in (0, 1] and pooling in {POOLINGS}, got {self}")

    def layer(self, n_layers: int) -> int:
        """The index into a transformers model's `hidden_states` (0: the token embeddings,
        i: the output of layer i, n_layers: the last layer's, after the final norm)."""
        return max(1, round(self.depth * n_layers))

    def key_fields(self) -> dict:
        return asdict(self)


# What the raters' embeddings are; part of the key of their embedding shards.
RATER_EMBEDDING = EmbeddingSpec(depth=0.75, pooling="mean")
