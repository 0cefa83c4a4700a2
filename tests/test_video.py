"""Video: keyframes at scene changes (real ffmpeg scene scores), OCR of on-screen text (real Tesseract),
the transcript (packaged Whisper tiny.en) and frame notes on one timeline; containers and codecs;
Phi-4 (the tiny random-weight model) receiving audio windows and keyframe groups with their times."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import routed, sh
from phi4_tiny import tiny_engine_config
from PIL import Image, ImageDraw, ImageFont
from unitok.actors.routing import PHI4, TESSERACT, WHISPER
from unitok.connectors.output import read_table
from unitok.pipeline.core.config import VideoConfig, parse_config
from unitok.pipeline.core.records import Segment
from unitok.pipeline.formats.av import MediaError, probe, split_av
from unitok.pipeline.formats.detect import sniff_file
from unitok.pipeline.formats.video import VideoError, keyframes
from unitok.pipeline.job import run_job

if not (shutil.which("ffmpeg") and shutil.which("espeak-ng")):
    pytest.skip("ffmpeg and espeak-ng are needed", allow_module_level=True)

CFG = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}})
# Title cards as talks show them: dark on light, light on dark (ffmpeg's scene score on YUV frames is
# 0.28 for white → yellow, under the 0.3 default; these changes score far above it).
SLIDES = [
    ("QUARTERLY RESULTS", "white", "black"),
    ("REVENUE GREW TWELVE PERCENT", "navy", "white"),
    ("THANK YOU ALL", "yellow", "black"),
]
SPEECH = "Welcome to the quarterly results. Revenue grew twelve percent this year. Thank you for listening."


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """slides.mp4: three 4 s title cards (scene changes at 4 s and 8 s), no sound; talk.mp4: the same
    picture with espeak-ng speech as AAC; talk.<ext>: the speech in other containers and codecs."""
    d = tmp_path_factory.mktemp("video")
    font = ImageFont.load_default(size=30)
    for i, (text, background, ink) in enumerate(SLIDES):
        img = Image.new("RGB", (640, 360), background)
        ImageDraw.Draw(img).text((30, 150), text, fill=ink, font=font)
        img.save(d / f"s{i}.png")
    (d / "list.txt").write_text(
        "".join(f"file 's{i}.png'\nduration 4\n" for i in range(len(SLIDES))) + "file 's2.png'\n"
    )
    sh("ffmpeg", "-y", "-f", "concat", "-i", str(d / "list.txt"), "-vf", "fps=10", "-c:v", "libx264",
       "-pix_fmt", "yuv420p", str(d / "slides.mp4"))  # fmt: skip
    for i, title in enumerate(["Agenda", "Risks"]):
        img = Image.new("RGB", (1280, 720), "white")
        draw = ImageDraw.Draw(img)
        draw.text((60, 60), title, fill="black", font=ImageFont.load_default(size=48))
        for k in range(5):
            draw.text((80, 200 + k * 80), f"- {title} point {k} with a few words", fill="black", font=font)
        img.save(d / f"t{i}.png")
    (d / "template.txt").write_text("file 't0.png'\nduration 3\nfile 't1.png'\nduration 3\nfile 't1.png'\n")
    sh("ffmpeg", "-y", "-f", "concat", "-i", str(d / "template.txt"), "-vf", "fps=25", "-c:v", "libx264",
       "-pix_fmt", "yuv420p", str(d / "template.mp4"))  # fmt: skip
    sh("espeak-ng", "-s", "150", "-w", str(d / "speech.wav"), SPEECH)
    sh("ffmpeg", "-y", "-i", str(d / "slides.mp4"), "-i", str(d / "speech.wav"), "-c:v", "copy",
       "-c:a", "aac", str(d / "talk.mp4"))  # fmt: skip
    for name, codec in [("talk.flac", []), ("talk.m4a", ["-c:a", "aac"]), ("talk.ogg", ["-c:a", "libopus"])]:
        sh("ffmpeg", "-y", "-i", str(d / "speech.wav"), *codec, str(d / name))
    # A podcast-style MP3 and an MP4 with cover art: pictures that are not video (no keyframes).
    for name in ("talk-cover.mp3", "talk-cover.mp4"):
        sh("ffmpeg", "-y", "-i", str(d / "speech.wav"), "-i", str(d / "s0.png"), "-map", "0", "-map", "1",
           "-c:v", "mjpeg" if name.endswith("mp3") else "png", "-disposition:v", "attached_pic",
           str(d / name))  # fmt: skip
    for ext in ("mov", "mkv", "webm", "avi"):
        sh("ffmpeg", "-y", "-i", str(d / "slides.mp4"), "-i", str(d / "speech.wav"), str(d / f"talk.{ext}"))
    return d


def base(path: Path) -> Segment:
    ft = sniff_file(path)
    return Segment("d", path.as_uri(), "v", 1, ft.mime_type, ft.modality, -1, "object")


def times(path: Path, **video) -> list[float]:
    stream = next(s for s in probe(path, 10)["streams"] if s["codec_type"] == "video")
    return [t for t, _ in keyframes(path, stream, VideoConfig(**video), 30)]


def test_keyframes_are_taken_at_scene_changes_with_minimum_and_maximum_spacing(media):
    slides = media / "slides.mp4"
    assert times(slides) == pytest.approx([0, 4, 8], abs=0.15)
    # At least every 3 s even without a scene change; scene changes still taken.
    assert times(slides, max_spacing_s=3, min_spacing_s=1) == pytest.approx([0, 3, 4, 7, 8, 11], abs=0.15)
    # Never closer than 5 s: the change at 4 s (4 s after the first frame) is skipped, 8 s is kept.
    assert times(slides, min_spacing_s=5, max_spacing_s=None) == pytest.approx([0, 8], abs=0.15)
    # Slides of one template: new text on the same background scores about 0.02, under the default 0.3.
    template = media / "template.mp4"
    assert times(template, max_spacing_s=None) == [0]
    assert times(template, max_spacing_s=None, scene_threshold=0.01) == pytest.approx([0, 3], abs=0.15)
    stream = next(s for s in probe(slides, 10)["streams"] if s["codec_type"] == "video")
    t, frame = next(keyframes(slides, stream, VideoConfig(frame_max_side=320), 30))
    assert frame.shape == (180, 320, 3) and tuple(frame[5, 5]) == pytest.approx((255, 255, 255), abs=8)


@pytest.mark.parametrize("name", ["talk.flac", "talk.m4a", "talk.ogg", "talk.mov", "talk.mkv", "talk.webm",
                                  "talk.avi"])  # fmt: skip
def test_common_containers_and_codecs_decode_to_windows_and_keyframes(media, name):
    path = media / name
    b = base(path)
    assert b.modality == ("audio" if name.split(".")[1] in ("flac", "m4a", "ogg") else "video")
    segs = list(routed(split_av, path, b, CFG))
    audio = [s for s in segs if s.segment_kind == "audio_window"]
    frames = [s for s in segs if s.segment_kind == "video_frames"]
    assert len(audio) == 1 and audio[0].route == WHISPER
    samples = np.frombuffer(audio[0].audio_f32, dtype=np.float32)
    assert 5.5 < len(samples) / 16000 < 9 and np.abs(samples).max() > 0.05
    if b.modality == "video":
        assert [s.time_start_s for s in frames] == pytest.approx([0, 4, 8], abs=0.15)
        assert all(s.route == TESSERACT and len(s.frames_png) == 1 for s in frames)
        assert [s.segment_index for s in segs] == list(range(len(segs)))
    else:
        assert frames == []


@pytest.mark.parametrize("name", ["talk-cover.mp3", "talk-cover.mp4"])
def test_cover_art_is_not_taken_for_video(media, name):
    segs = list(routed(split_av, media / name, base(media / name), CFG))
    assert [s.segment_kind for s in segs] == ["audio_window"] and not segs[0].warnings


def test_a_video_without_sound_gives_keyframes_and_an_audio_file_without_sound_is_an_error(media):
    segs = list(routed(split_av, media / "slides.mp4", base(media / "slides.mp4"), CFG))
    assert [s.segment_kind for s in segs] == ["video_frames"] * 3
    assert "no audio track: keyframes only" in segs[0].warnings
    audio_base = base(media / "slides.mp4")
    audio_base.modality = "audio"
    with pytest.raises(MediaError, match="no audio stream"):
        list(routed(split_av, media / "slides.mp4", audio_base, CFG))


def test_video_document_interleaves_transcript_and_on_screen_text(media, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(media / "talk.mp4", src)
    shutil.copy(media / "slides.mp4", src / "static.mp4")
    out = tmp_path / "out"
    # max spacing 3 s resamples each static card: the repeated readings must not repeat in the document.
    spec = {"source": {"uri": str(src)}, "output": {"uri": str(out)}, "runtime": {"executor": "local"},
            "video": {"max_spacing_s": 3, "min_spacing_s": 1}}  # fmt: skip
    summary = run_job(parse_config(spec))
    assert summary.failures == 0
    segs = read_table(out, "segments").to_pylist()
    talk = sorted((r for r in segs if r["source_uri"].endswith("talk.mp4")), key=lambda r: r["segment_index"])
    frames = [r for r in talk if r["segment_kind"] == "video_frames"]
    assert [r["engine"] for r in talk if r["segment_kind"] == "audio_window"] == ["whisper"]
    assert [r["time_start_s"] for r in frames] == pytest.approx([0, 3, 4, 7, 8, 11], abs=0.15)
    assert {r["engine"] for r in frames} == {"tesseract"}
    assert "QUARTERLY RESULTS" in frames[0]["markdown"] and "TWELVE PERCENT" in frames[2]["markdown"]
    docs = {d["source_uri"].rsplit("/", 1)[-1]: d for d in read_table(out, "documents").to_pylist()}
    md = docs["talk.mp4"]["markdown"]
    assert md.startswith("### [00:00:00]\n\n> **[00:00:00] On screen:**\n> QUARTERLY RESULTS")
    # Phrase times put each card's note between the sentences said around it.
    order = ["QUARTERLY RESULTS", "the quarterly results.", "this year.", "[00:00:04] On screen:",
             "listening.", "[00:00:08] On screen:", "THANK YOU ALL"]  # fmt: skip
    positions = [md.find(x) for x in order]
    assert -1 not in positions and positions == sorted(positions), md
    spans = next(r["spans"] for r in talk if r["segment_kind"] == "audio_window")
    assert round(spans[0]["start_s"]) == 0 and len(spans) >= 2, spans
    assert md.count("QUARTERLY RESULTS") == 1 and md.count("TWELVE PERCENT") == 1  # resampled cards once
    assert "revenue grew" in md.lower()
    static = docs["static.mp4"]
    assert (
        static["markdown"].count("On screen:") == 3 and "no audio track: keyframes only" in static["warnings"]
    )


def test_with_phi4_audio_windows_and_keyframe_groups_reach_the_model_with_times(media, tiny_model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(media / "talk.mp4", src)
    cfg = parse_config(
        {
            "source": {"uri": str(src)},
            "output": {"uri": str(tmp_path / "out")},
            "engine": tiny_engine_config(tiny_model),
            "video": {"frames_per_segment": 2, "frame_max_side": 448},
            "runtime": {"executor": "local"},
        }
    )
    summary = run_job(cfg)
    assert summary.failures == 0, summary
    rows = sorted(read_table(tmp_path / "out", "segments").to_pylist(), key=lambda r: r["segment_index"])
    got = [(r["segment_kind"], r["engine"], r["prompt_id"], r["time_start_s"], r["time_end_s"]) for r in rows]
    assert got[0][:3] == ("audio_window", "phi4", "phi4.audio.v1") and got[0][3] == 0 and got[0][4] > 5
    assert [g[:3] for g in got[1:]] == [("video_frames", "phi4", "phi4.frames.v2")] * 2
    assert [g[3:] for g in got[1:]] == [pytest.approx((0, 4), abs=0.15), pytest.approx((8, 8), abs=0.15)]
    (doc,) = read_table(tmp_path / "out", "documents").to_pylist()
    assert doc["n_segments"] == 3 and doc["engines"] == ["phi4"]


def test_phi4_keyframe_prompt_names_each_frame_time():
    from unitok.actors.phi4 import prompt_for

    seg = Segment(
        "d", "u", "v", 1, "video/mp4", "video", 3, "video_frames", route=PHI4, frame_times_s=[4.0, 65.5]
    )
    prompt = prompt_for(seg)
    assert prompt.id == "phi4.frames.v2" and "taken at 00:00:04, 00:01:05." in prompt.render(seg)


def test_ray_executor_gives_the_same_video_document(media, ray_local, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(media / "talk.mkv", src)
    docs = {}
    for executor in ("ray", "local"):
        out = tmp_path / executor
        spec = {"source": {"uri": str(src)}, "output": {"uri": str(out)}, "runtime": {"executor": executor}}
        summary = run_job(parse_config(spec))
        assert summary.failures == 0 and summary.executor == executor
        (docs[executor],) = read_table(out, "documents").to_pylist()
    assert docs["ray"]["markdown"] == docs["local"]["markdown"]
    assert docs["ray"]["markdown"].startswith("### [00:00:00]\n\n> **[00:00:00] On screen:**")
    assert docs["ray"]["n_segments"] == 4, docs["ray"]  # one audio window, three keyframes


def test_a_long_static_shot_is_not_taken_for_a_stall_but_a_hung_decode_is_stopped(media, tmp_path):
    still = tmp_path / "still.mkv"  # 200 s of one PNG-coded frame: made instantly, decoded in seconds
    sh("ffmpeg", "-y", "-loop", "1", "-framerate", "25", "-i", str(media / "s0.png"), "-t", "200",
       "-c:v", "copy", str(still))  # fmt: skip
    stream = next(s for s in probe(still, 10)["streams"] if s["codec_type"] == "video")
    cfg = VideoConfig(max_spacing_s=None)
    # No keyframe after the first for longer than the 1 s limit (the decode takes about 5 s here):
    # ffmpeg's progress reports keep it alive.
    started = time.monotonic()
    assert [t for t, _ in keyframes(still, stream, cfg, 1.0)] == [0.0]
    assert time.monotonic() - started > 1.0  # the decode really outlasted the limit
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)  # ffmpeg blocks opening it: no frames, no progress
    with pytest.raises(VideoError, match="stalled for 2 s"):
        list(keyframes(fifo, stream, cfg, 2.0))


def test_keyframes_past_max_frames_are_skipped_with_a_warning(media):
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}, "video": {"max_frames": 2}})
    segs = list(routed(split_av, media / "slides.mp4", base(media / "slides.mp4"), cfg))
    assert [s.time_start_s for s in segs] == pytest.approx([0, 4], abs=0.15)
    assert "more than video.max_frames=2 keyframes: the rest were skipped" in segs[-1].warnings


def test_a_truncated_video_keeps_the_keyframes_that_decoded(media, tmp_path):
    whole = tmp_path / "slides.mp4"  # the index up front, so a cut file still decodes up to the cut
    sh("ffmpeg", "-y", "-i", str(media / "slides.mp4"), "-c", "copy", "-movflags", "faststart", str(whole))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.8)])
    segs: list[Segment] = []
    with pytest.raises(MediaError, match=r"keyframe decoding stopped after the keyframe at 4\.0 s"):
        for seg in split_av(cut, Segment("d", cut.as_uri(), "v", 1, "video/mp4", "video", -1, "object"), CFG):
            segs.append(seg)
    full = routed(
        split_av, whole, Segment("d", whole.as_uri(), "v", 1, "video/mp4", "video", -1, "object"), CFG
    )
    assert [s.time_start_s for s in full] == [0.0, 4.0, 8.0]
    assert [s.time_start_s for s in segs] == [0.0, 4.0]  # every keyframe before the cut
