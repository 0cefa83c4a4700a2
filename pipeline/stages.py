"""Stage functions shared by every driver (Ray Data, local, and later Beam and Serve)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.objects import ObjectInfo
from pipeline.config import JobConfig
from pipeline.records import (
    ROUTE_ASR,
    ROUTE_OCR,
    ROUTE_PHI4,
    ROUTE_SLIDE_TEXT,
    SEGMENT_WORK_SCHEMA,
    rows_to_table,
)
from pipeline.split import split_object


def split_batch(batch: pa.Table, cfg_data: dict[str, Any]) -> Iterator[pa.Table]:
    """Listed objects → blocks of work segments, yielded as they are made (a generator UDF in Ray)."""
    cfg = JobConfig.model_validate(cfg_data)
    per_block = cfg.runtime.segments_per_block
    cpu_engines = not cfg.engine.uses_phi4
    for obj_row in batch.to_pylist():
        pending: list[dict[str, Any]] = []
        for seg in split_object(ObjectInfo(**obj_row), cfg):
            pending.append(seg.to_row())
            # Small blocks for rendered pages (large: bounds worker memory) and, on CPU engines, for
            # audio windows and keyframes (about a second of engine time each, so a long recording's
            # windows spread over the workers: 10 minutes on 2 workers took 15.0 s, 19.9 s in blocks of 16).
            heavy = seg.image_png or (cpu_engines and (seg.audio_f32 or seg.frames_png))
            if len(pending) >= per_block or (heavy and len(pending) >= 4):
                yield rows_to_table(pending, SEGMENT_WORK_SCHEMA)
                pending = []
        if pending:
            yield rows_to_table(pending, SEGMENT_WORK_SCHEMA)


def engine_options(cfg: JobConfig) -> dict[str, dict[str, Any]]:
    """Plain keyword arguments per engine route (actors/ takes no config models)."""
    phi4 = cfg.engine.phi4
    tesseract = {
        "languages": cfg.ocr.languages,
        "tessdata_dir": cfg.ocr.tessdata_dir,
        "psm": cfg.ocr.page_segmentation_mode,
    }
    return {
        ROUTE_OCR: tesseract,
        ROUTE_ASR: {"model": cfg.audio.asr_model, "language": cfg.audio.language},
        ROUTE_SLIDE_TEXT: {"ocr_options": tesseract},  # pictures inside slides use the same OCR settings
        ROUTE_PHI4: {
            "model": phi4.model,
            "max_new_tokens": phi4.max_new_tokens,
            "max_model_len": cfg.engine.vllm.max_model_len,
            "max_images_per_prompt": cfg.engine.vllm.max_images_per_prompt,
            "gpu_memory_utilization": cfg.engine.vllm.gpu_memory_utilization,
        }
        if cfg.engine.name == "vllm"
        else {
            "model": phi4.model,
            "device": phi4.device,
            "max_new_tokens": phi4.max_new_tokens,
            "token_budget": phi4.token_budget,
            "max_crops": phi4.max_crops,
            "local_files_only": phi4.local_files_only,
            "attn_implementation": phi4.attn_implementation,
        },
    }


def cluster_address(cfg: JobConfig) -> str | None:
    return cfg.runtime.ray_address or os.environ.get("RAY_ADDRESS") or None


def joins_cluster(cfg: JobConfig) -> bool:
    return cfg.runtime.executor != "local" and cluster_address(cfg) is not None


def choose_executor(cfg: JobConfig, listing: list[dict[str, Any]]) -> tuple[str, str]:
    """(executor, why) for this run."""
    rt = cfg.runtime
    if rt.executor != "auto":
        return rt.executor, "set in runtime.executor"
    if cluster_address(cfg):
        return "ray", "a Ray cluster address is set"
    total = sum(o["size"] for o in listing)
    if len(listing) <= rt.local_max_objects and total <= rt.local_max_bytes:
        return "local", f"{len(listing)} objects, {total / 2**20:.1f} MiB: under the local_max_* bounds"
    return "ray", f"{len(listing)} objects, {total / 2**20:.1f} MiB: over the local_max_* bounds"


def preflight(cfg: JobConfig) -> None:
    """Fail before any work when a local engine cannot start (missing OCR language data). On a cluster
    the workers have their own installs, so the check is theirs."""
    from actors.engines import EngineSetupError
    from actors.ocr_tesseract import find_tessdata

    if joins_cluster(cfg):
        return
    if cfg.pptx.partitioner == "unstructured":
        from pipeline.split_pptx import unstructured_problem

        problem = unstructured_problem()
        if problem:
            raise EngineSetupError(problem)
    if cfg.engine.name == "cpu":
        find_tessdata(cfg.ocr.tessdata_dir, cfg.ocr.languages)
        return
    needs = ("vllm",) if cfg.engine.name == "vllm" else ("torch", "transformers")
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise EngineSetupError(
            f"engine.name: {cfg.engine.name} needs {', '.join(missing)} "
            f"(install the extra on a machine that can run it: pip install -e '.[{cfg.engine.name}]')"
        )
    model = cfg.engine.phi4.model
    if model.startswith(("/", ".", "~")) and not Path(model).expanduser().is_dir():
        raise EngineSetupError(f"engine.phi4.model: folder {model} does not exist")
