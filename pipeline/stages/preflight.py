"""Checks before any work: an engine that cannot start here fails the job at once, with one clear line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from unitok.actors.contract import EngineSetupError
from unitok.actors.ocr_tesseract import find_tessdata
from unitok.actors.routing import model_engine
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.formats.pptx import unstructured_problem


def preflight(cfg: JobConfig) -> None:
    """Fail when a local engine cannot start (missing OCR language data, model packages or folder). A
    job that joins a cluster skips this: the workers have their own installs, so the check is theirs."""
    if cfg.pptx.partitioner == "unstructured":
        problem = unstructured_problem()
        if problem:
            raise EngineSetupError(problem)
    if cfg.output.lancedb is not None and importlib.util.find_spec("lancedb") is None:
        raise EngineSetupError("output.lancedb needs the lancedb package: pip install -e '.[lancedb]'")
    model = model_engine(cfg)
    if model is None:
        find_tessdata(cfg.ocr.tessdata_dir, cfg.ocr.languages)
        return
    needs = ("vllm",) if model == "vllm" else ("torch", "transformers")
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise EngineSetupError(
            f"engine.name: {cfg.engine.name} needs {', '.join(missing)} "
            f"(install the extra on a machine that can run it: pip install -e '.[{cfg.engine.name}]')"
        )
    folder = cfg.engine.phi4.model
    if folder.startswith(("/", ".", "~")) and not Path(folder).expanduser().is_dir():
        raise EngineSetupError(f"engine.phi4.model: folder {folder} does not exist")
