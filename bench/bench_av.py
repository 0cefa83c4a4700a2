"""Audio/video: real-time factor (processing seconds per audio second) and peak memory of the whole
pipeline (`unitok run`: ffmpeg decode, windows, Whisper, assembly, Parquet) on a 10-minute recording,
against the ASR engine alone (faster-whisper with the same model and settings, decoding the file itself)
on the same file in the same run. Each case runs in its own process, start-up (imports, model load)
included for both; peak memory is the summed PSS of the process tree (bench/tree_memory.py).

    python bench/bench_av.py [--minutes 10] [--video]

--video also converts the same speech as an MP4 with a new title card every 20 s (keyframes + OCR),
which has no ASR-only peer: its figure is the cost of the picture on top of the sound.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tree_memory import measure
from unitok.pipeline.formats.av import probe

REPO = Path(__file__).resolve().parent.parent
UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]
TOPICS = [
    "the quarterly budget", "the new warehouse", "customer support", "the hiring plan", "our cloud costs",
    "the product launch", "the security audit", "the sales forecast", "the annual review", "the office move",
]  # fmt: skip

ASR_ALONE = """
import sys, time
t0 = time.perf_counter()
from faster_whisper import WhisperModel
from unitok.actors.asr_whisper import is_speech, packaged_model
model = WhisperModel(str(packaged_model()), device="cpu", compute_type="int8", cpu_threads=int(sys.argv[2]))
segments, info = model.transcribe(sys.argv[1], language="en", beam_size=1, vad_filter=True,
                                  condition_on_previous_text=False, temperature=0.0)
words = sum(len(s.text.split()) for s in segments if is_speech(s))
print(words, info.duration, time.perf_counter() - t0)
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def make_recording(folder: Path, minutes: float) -> Path:
    """Spoken paragraphs (espeak-ng) with pauses of 0.5–3 s, concatenated to `minutes` of 16 kHz WAV."""
    parts, total, i = [], 0.0, 0
    while total < minutes * 60:
        topic = TOPICS[i % len(TOPICS)]
        text = (
            f"Item {i + 1}. Next we discuss {topic}. The team reviewed the numbers on Monday and agreed "
            f"to report back before the end of the month with a clear recommendation for {topic}."
        )
        wav = folder / f"p{i}.wav"
        sh("espeak-ng", "-s", "160", "-w", str(wav), text)
        gap = folder / f"g{i}.wav"
        sh(
            "ffmpeg",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=22050:cl=mono",
            "-t",
            str(0.5 + i % 6 * 0.5),
            str(gap),
        )
        parts += [wav, gap]
        total += float(probe_duration(wav)) + 0.5 + i % 6 * 0.5
        i += 1
    (folder / "list.txt").write_text("".join(f"file '{p}'\n" for p in parts))
    out = folder / "talk.wav"
    sh("ffmpeg", "-y", "-f", "concat", "-safe", "0", "-i", str(folder / "list.txt"), "-t", str(minutes * 60),
       "-ar", "16000", "-ac", "1", str(out))  # fmt: skip
    return out


def make_video(folder: Path, wav: Path, minutes: float) -> Path:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=36)
    cards = int(minutes * 60 // 20) + 1
    lines = []
    for i in range(cards):
        img = Image.new("RGB", (1280, 720), ("white", "lightyellow", "lightblue")[i % 3])
        ImageDraw.Draw(img).text(
            (60, 320), f"Part {i + 1}: {TOPICS[i % len(TOPICS)].upper()}", fill="black", font=font
        )
        img.save(folder / f"card{i}.png")
        lines.append(f"file 'card{i}.png'\nduration 20\n")
    (folder / "cards.txt").write_text("".join(lines))
    out = folder / "talk.mp4"
    sh("ffmpeg", "-y", "-f", "concat", "-i", str(folder / "cards.txt"), "-i", str(wav), "-vf", "fps=25",
       "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
       str(out))  # fmt: skip
    return out


def probe_duration(path: Path) -> float:
    return float(probe(path, 30)["format"]["duration"])


def measure_ok(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak tree PSS MiB, stdout) of a command that must succeed."""
    wall, peak, done = measure(cmd)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, peak, done.stdout


def run_unitok(src: Path, out: Path, workers: int) -> tuple[float, float]:
    config = out.with_suffix(".yaml")
    config.write_text(
        json.dumps(
            {
                "source": {"uri": str(src)},
                "output": {"uri": str(out)},
                "runtime": {"executor": "local", "max_workers": workers},
            }
        )
    )
    wall, peak, _ = measure_ok([*UNITOK, "run", str(config)])
    return wall, peak


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--video", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "gen").mkdir()
        wav = make_recording(d / "gen", args.minutes)
        seconds = probe_duration(wav)
        src = d / "audio"
        src.mkdir()
        wav.rename(src / "talk.wav")
        wav = src / "talk.wav"
        print(f"recording: {seconds / 60:.1f} min of espeak-ng speech with pauses, 16 kHz WAV\n")
        rows = []
        wall, peak, out = measure_ok([sys.executable, "-c", ASR_ALONE, str(wav), "1"])
        words = int(out.split()[0])
        rows.append(("faster-whisper alone, 1 thread (peer)", wall, peak, words))
        base_wall = wall
        for workers in (1, 2):
            wall, peak = run_unitok(src, d / f"out-a{workers}", workers)
            import pyarrow.dataset as pads

            doc = pads.dataset(d / f"out-a{workers}" / "documents").to_table().to_pylist()[0]
            rows.append(
                (
                    f"unitok run, {workers} worker{'s' if workers > 1 else ''}",
                    wall,
                    peak,
                    len(doc["markdown"].split()),
                )
            )
        if args.video:
            vsrc = d / "video"
            vsrc.mkdir()
            make_video(d / "gen", wav, args.minutes).rename(vsrc / "talk.mp4")
            for workers in (1, 2):
                wall, peak = run_unitok(vsrc, d / f"out-v{workers}", workers)
                rows.append(
                    (
                        f"unitok run, MP4 + keyframes, {workers} worker{'s' if workers > 1 else ''}",
                        wall,
                        peak,
                        None,
                    )
                )
        print(f"{'case':<44}{'wall s':>8}{'RTF':>8}{'vs peer':>9}{'peak MiB':>10}{'words':>7}")
        for name, wall, peak, words in rows:
            ratio = wall / base_wall
            print(f"{name:<44}{wall:>8.1f}{wall / seconds:>8.3f}{ratio:>8.2f}×{peak:>10.0f}{words or '':>7}")
        overhead = rows[1][1] / base_wall - 1
        print(f"\npipeline overhead at equal cores (1 worker vs 1 thread): {overhead:+.1%} (target < 20%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
