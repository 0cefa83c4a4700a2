"""Chunk texts → embeddings, in batches formed once here (so every driver feeds the encoder the same
batches and writes the same bytes), run in a worker process (local driver) or a pool of Ray actors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from unitok.pipeline.core.config import EmbeddingConfig


def embedder_options(cfg: EmbeddingConfig) -> dict[str, Any]:
    return {"model": cfg.model, "device": cfg.device, "max_length": cfg.max_length}


def batches_of(table: pa.Table, batch_size: int) -> list[list[str]]:
    """The chunk texts in table order, cut into the batches every driver uses."""
    texts = table["text"].to_pylist()
    return [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]


def with_embeddings(table: pa.Table, vectors: list[np.ndarray], model_id: str) -> pa.Table:
    flat = np.concatenate(vectors) if vectors else np.zeros((0, 0), dtype=np.float32)
    values = pa.array([row.tolist() for row in flat], type=pa.list_(pa.float32()))
    table = table.set_column(table.schema.get_field_index("embedding"), "embedding", values)
    models = pa.array([model_id] * table.num_rows, pa.string())
    return table.set_column(table.schema.get_field_index("embedding_model"), "embedding_model", models)
