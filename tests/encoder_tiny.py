"""A tiny random-weight sentence encoder for CPU tests: a one-layer BERT of hidden size 16 (BertConfig,
BertModel, the same classes as all-MiniLM-L6-v2) with the real model's tokenizer files and mean pooling,
saved as a sentence-transformers folder and loaded through the embedder's own code. Random weights give
meaningless vectors: tests assert the mechanics (shape, norm, determinism), never similarity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def build_tiny_encoder(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel
    from unitok.actors.embedder import default_model_path

    real = Path(default_model_path())
    vocab = sum(1 for _ in (real / "vocab.txt").open(encoding="utf-8"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=512)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(real / name, folder / name)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 16, "pooling_mode_mean_tokens": True})
    )
    return folder
