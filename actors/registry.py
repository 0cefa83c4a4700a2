"""The engine registry: every engine by name, the plain keyword arguments each takes from a job config,
and its construction inside a replica (imports happen there, so a replica loads only what it runs)."""

from __future__ import annotations

import importlib
from typing import Any

from unitok.actors.contract import Engine
from unitok.actors.routing import MARKUP, PDF_TEXT, PHI4, SLIDE_TEXT, TESSERACT, VLLM, WHISPER
from unitok.pipeline.core.config import JobConfig

ENGINES: dict[str, str] = {
    PDF_TEXT: "unitok.actors.text_layer:TextLayerEngine",
    SLIDE_TEXT: "unitok.actors.slide_text:SlideTextEngine",
    MARKUP: "unitok.actors.markup:MarkupEngine",
    TESSERACT: "unitok.actors.ocr_tesseract:TesseractEngine",
    WHISPER: "unitok.actors.asr_whisper:WhisperEngine",
    PHI4: "unitok.actors.phi4:Phi4Engine",
    VLLM: "unitok.actors.vllm_engine:VllmPhi4Engine",
}


# The key of the enrichments in engine_options: not an engine, what the engine stage adds beside the
# conversion (pipeline/stages/enrich.py). Carried there so that every holder of an engine set (drivers,
# the Python API, the HTTP API) gets them with the engines, and engine sets differ when they differ.
ENRICH = "enrich"


def engine_options(cfg: JobConfig) -> dict[str, dict[str, Any]]:
    """Plain keyword arguments per engine name: replicas get these, never config models."""
    phi4, vllm = cfg.engine.phi4, cfg.engine.vllm
    tesseract = {
        "languages": cfg.ocr.languages,
        "tessdata_dir": cfg.ocr.tessdata_dir,
        "psm": cfg.ocr.page_segmentation_mode,
    }
    return {
        PDF_TEXT: {},
        MARKUP: {},
        TESSERACT: tesseract,
        WHISPER: {"model": cfg.audio.asr_model, "language": cfg.audio.language},
        SLIDE_TEXT: {"ocr_options": tesseract},  # pictures inside slides use the same OCR settings
        PHI4: {
            "model": phi4.model,
            "device": phi4.device,
            "max_new_tokens": phi4.max_new_tokens,
            "token_budget": phi4.token_budget,
            "max_crops": phi4.max_crops,
            "local_files_only": phi4.local_files_only,
            "attn_implementation": phi4.attn_implementation,
        },
        VLLM: {
            "model": phi4.model,
            "max_new_tokens": phi4.max_new_tokens,
            "max_model_len": vllm.max_model_len,
            "max_images_per_prompt": vllm.max_images_per_prompt,
            "gpu_memory_utilization": vllm.gpu_memory_utilization,
            "batch_invariant": vllm.batch_invariant,
        },
        ENRICH: {
            "engine": cfg.engine.name,
            "translate_to": cfg.enrich.audio.translate_to,
            "summary": cfg.enrich.audio.summary,
            "describe": cfg.enrich.images.describe,
        },
    }


def make_engine(name: str, options: dict[str, Any]) -> Engine:
    if name not in ENGINES:  # ENRICH among them: never an engine
        raise ValueError(f"no engine named {name!r} (known: {', '.join(sorted(ENGINES))})")
    module, _, cls = ENGINES[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
