"""Soak: thousands of generated objects of mixed types (text PDFs, scanned-looking PNGs, short WAVs)
through the Ray driver, as a user runs it (`unitok run`, a fresh process each time). Peak memory is the
summed PSS of the whole process tree (tree_memory.py). The same mix at growing sizes gives the slope of
peak memory in the number of objects, which should be flat: nothing may grow with the job (listing rows
aside, a few hundred bytes per object).

    python bench/bench_soak.py --sizes 1000,4000,16000

Also: the driver process's own peak (apart from Ray's services and workers) and its slope, the time to the
first committed object, and the bytes of data files the workers wrote against the bytes of metadata that
reached the driver.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tree_memory import measure_driver

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' document makers
from handmade import hand_pdf, text_at  # noqa: E402

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]
WORDS = "budget warehouse support hiring cloud launch audit forecast review office river garden".split()


def text_pdf(text: str) -> bytes:
    """A one-page PDF with a real text layer (Helvetica), written by hand: no PDF library needed."""
    return hand_pdf(text_at(72, 720, text, 14))


def make_source(folder: Path, n: int) -> dict[str, int]:
    """n objects: 80% text PDFs, 10% PNGs of a printed line (OCR), 10% one-second WAVs (ASR)."""
    import wave

    font = ImageFont.load_default(size=28)
    counts = {"pdf": 0, "png": 0, "wav": 0}
    rng = np.random.default_rng(0)
    for i in range(n):
        words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))
        sub = folder / f"batch-{i // 500:03d}"
        sub.mkdir(exist_ok=True)
        if i % 10 == 8:
            img = Image.new("L", (520, 60), 255)
            ImageDraw.Draw(img).text((10, 12), f"Item {i} {words}", fill=0, font=font)
            img.save(sub / f"scan-{i:05d}.png")
            counts["png"] += 1
        elif i % 10 == 9:
            t = np.arange(16000) / 16000
            tone = 0.2 * np.sin(2 * math.pi * (220 + i % 200) * t) + 0.01 * rng.standard_normal(16000)
            with wave.open(str(sub / f"clip-{i:05d}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes((tone * 32767).astype("<i2").tobytes())
            counts["wav"] += 1
        else:
            (sub / f"memo-{i:05d}.pdf").write_bytes(text_pdf(f"Memo {i}: {words}"))
            counts["pdf"] += 1
    return counts


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,4000,16000", help="object counts, comma-separated")
    ap.add_argument("--executor", default="ray", choices=["ray", "local"], help="the driver to soak")
    ap.add_argument("--compact-at-files", type=int, default=512, help="output.compact_at_files (0: off)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        for n in sizes:
            src, out = d / f"src-{n}", d / f"out-{n}"
            src.mkdir()
            mix = make_source(src, n)
            job = d / f"job-{n}.yaml"
            job.write_text(
                f"source: {{uri: {src}}}\noutput: {{uri: {out}, compact_at_files: {args.compact_at_files}}}\n"
                f"runtime: {{executor: {args.executor}}}\n"
            )
            started = time.time()
            wall, peak, driver, done = measure_driver([*UNITOK, "run", str(job)])
            if done.returncode != 0:
                raise SystemExit(f"unitok run failed ({done.returncode}):\n{done.stderr[-3000:]}")
            from unitok.connectors.output import open_table, read_table

            docs = read_table(str(out), "documents").num_rows
            errors = read_table(str(out), "errors").num_rows
            summary = json.loads(open_table(str(out), "objects").history(1)[0]["summary"])
            # The first commit of segments (version 0 created the table) against the command's start.
            history = open_table(str(out), "segments").history()
            first = next(h for h in history if h["version"] == 1)
            commits = sum(1 for h in history if h["version"] >= 1)
            first_s = first["timestamp"] / 1000 - started
            rows.append((n, peak, driver))
            print(f"{n:6d} objects {mix}: {wall:7.1f} s, {n / wall:6.1f} objects/s, peak PSS {peak:7.0f} MiB "
                  f"(driver {driver:5.0f} MiB), {docs} documents, {errors} error rows, "
                  f"{commits} commits, the first {first_s:.1f} s in, "
                  f"{summary['bytes_written'] / 2**20:.1f} MiB of data files written by workers, "
                  f"{summary['metadata_bytes'] / 2**20:.2f} MiB of metadata to the driver",
                  flush=True)  # fmt: skip
    xs = np.array([r[0] for r in rows], dtype=float)
    for label, col in (("whole tree", 1), ("driver process", 2)):
        ys = np.array([r[col] for r in rows], dtype=float)
        slope = float(np.polyfit(xs, ys, 1)[0]) * 1000 if len(rows) > 1 else float("nan")
        print(f"peak memory slope, {label}: {slope:+.2f} MiB per 1,000 objects (peak "
              f"{ys.min():.0f}–{ys.max():.0f} MiB over {int(xs.min())}–{int(xs.max())} objects)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
