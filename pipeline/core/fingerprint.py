"""Fingerprints of the settings that shape each table, recorded per object in the run state (`objects`):
a run re-converts, re-chunks or re-embeds exactly the objects whose recorded fingerprint differs from the
config's (stages.plan).

Computed from the config as written, never from files, so the driver and every worker of a cluster agree
without reading model folders (a model replaced in place under the same path is not seen: give a new model
a new folder). Settings that only change how the work runs (timeouts, devices, batch sizes, GPU shares) are
left out: changing them re-converts nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.version import CHUNKER_VERSION

# Per section: fields that do not change a row of output.
_OPERATIONAL = {
    "pptx": {"convert_timeout_s"},
    "audio": {"decode_timeout_s"},
    "phi4": {"local_files_only", "device", "attn_implementation", "token_budget", "num_gpus"},
    "vllm": {"gpu_memory_utilization"},
    "documents": {"convert_timeout_s"},
}
OFF = "off"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# Settings added after outputs existed: left out at their default, so an upgrade re-converts nothing.
_ADDED = {"ocr": {"mode": "auto"}, "pdf": {"page_range": None}}


def _section(name: str, model: Any) -> dict[str, Any]:
    data = model.model_dump(exclude=_OPERATIONAL.get(name, set()))
    for field, default in _ADDED.get(name, {}).items():
        if data.get(field) == default:
            del data[field]
    return data


def conversion_settings(cfg: JobConfig) -> dict[str, Any]:
    """What shapes segments, documents and errors: the engine (the model engines' settings only when one
    runs) and every format section."""
    engine: dict[str, Any] = {"name": cfg.engine.name}
    if cfg.engine.uses_phi4:
        engine["phi4"] = _section("phi4", cfg.engine.phi4)
    if cfg.engine.name == "vllm":
        engine["vllm"] = _section("vllm", cfg.engine.vllm)
    formats = ("pdf", "image", "pptx", "documents", "audio", "video", "ocr")
    sections = {n: _section(n, getattr(cfg, n)) for n in formats}
    return {"engine": engine, **sections}


# The versioned prompts each enrichment runs with, by engine (actors/phi4.py's PROMPTS and
# actors/asr_whisper.py's TRANSLATE_TASK_ID; a test holds them equal). A new wording is a new id, so
# objects enriched with the old one are enriched again.
ENRICH_PROMPTS = {
    "translation": {"cpu": "whisper.translate.v1", "phi4": "phi4.audio.translate.v1"},
    "summary": {"phi4": "phi4.audio.summary.v1", "merge": "phi4.text.summary-merge.v1"},
    "description": {"phi4": "phi4.image.describe.v1"},
}


def enrich_settings(cfg: JobConfig) -> dict[str, Any] | str:
    """What shapes the enrichment columns: each enrichment on, its prompt, and the model that runs it
    (Phi-4's settings, or the Whisper model for the cpu engine's translation); OFF when none is on. Its
    own fingerprint, apart from the conversion's, so that turning one on redoes that stage alone."""
    enrich = cfg.enrich
    if not enrich.any:
        return OFF
    family = "phi4" if cfg.engine.uses_phi4 else "cpu"
    model: dict[str, Any] = {"engine": cfg.engine.name}
    if cfg.engine.uses_phi4:
        model["phi4"] = _section("phi4", cfg.engine.phi4)
    else:
        model["asr_model"] = cfg.audio.asr_model
    on: dict[str, Any] = {}
    if enrich.audio.translate_to:
        on["translation"] = {"to": enrich.audio.translate_to, "prompt": ENRICH_PROMPTS["translation"][family]}
    if enrich.audio.summary:
        on["summary"] = ENRICH_PROMPTS["summary"]
    if enrich.images.describe:
        on["description"] = ENRICH_PROMPTS["description"]
    return {"model": model, **on}


def fingerprints(cfg: JobConfig) -> dict[str, str]:
    """{"convert_fingerprint", "chunks_fingerprint", "embeddings_fingerprint", "enrich_fingerprint"} of
    this config."""
    chunking, embedding = cfg.chunking, cfg.embedding
    chunks = {**_section("chunking", chunking), "chunker": CHUNKER_VERSION} if chunking.enabled else OFF
    embeds: Any = OFF
    if chunking.enabled and embedding.enabled:
        embeds = {"model": embedding.model or "all-MiniLM-L6-v2", "max_length": embedding.max_length}
    return {
        "convert_fingerprint": _digest(conversion_settings(cfg)),
        "chunks_fingerprint": OFF if chunks == OFF else _digest(chunks),
        "embeddings_fingerprint": OFF if embeds == OFF else _digest(embeds),
        "enrich_fingerprint": OFF if (enrich := enrich_settings(cfg)) == OFF else _digest(enrich),
    }
