"""Per-item rates for `unitok plan`'s estimate, measured with the CPU engine through the Python API (the
stage functions a job's workers run, one process): seconds per text page, OCR page, slide, image, second of
audio and second of video, plus a job's start-up and per-object cost, from `run_job` on the local and Ray
executors. Writes pipeline/core/rates.json (with where and when it was measured).

    python bench/bench_rates.py
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
sys.path[:0] = [str(REPO), str(REPO / "tests")]


def per_item(path: Path, items: float, repeats: int = 3) -> tuple[float, float]:
    """(seconds per item warm, seconds the first conversion took beyond that: loading its engine)."""
    import unitok

    t0 = time.perf_counter()
    unitok.convert(path)  # engines loaded, caches warm
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(repeats):
        unitok.convert(path)
    warm = (time.perf_counter() - t0) / repeats
    return warm / items, max(0.0, first - warm)


def job_wall(folder: Path, executor: str) -> float:
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.job import run_job

    out = Path(tempfile.mkdtemp(prefix="unitok-rates-out-"))
    try:
        cfg = {"source": {"uri": str(folder)}, "output": {"uri": str(out)}, "runtime": {"executor": executor}}
        t0 = time.perf_counter()
        run_job(parse_config(cfg))
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.stages.estimate import RATES, probe_file

    cfg = parse_config({"source": {"uri": "."}, "output": {"uri": "x"}})
    work = Path(tempfile.mkdtemp(prefix="unitok-rates-"))
    sample = REPO / "sample"
    flac = work / "talk.flac"
    subprocess.run(
        ["ffmpeg", "-y", "-v", "error", "-i", str(sample / "talk.mp4"), "-vn", str(flac)], check=True
    )
    deck = CORPUS / "pptx" / "sample-presentation.pptx"
    cases = {
        # A real 619-page report: a two-page sample's pages are lighter than most.
        "text_page_s": (CORPUS / "pdf" / "DA-619p.pdf", "pages"),
        "ocr_page_s": (sample / "scanned-memo.pdf", "ocr_pages"),
        "slide_s": (deck, "slides"),
        "image_s": (sample / "signup-sheet.png", "images"),
        "audio_s_per_s": (flac, "audio_seconds"),
        "video_s_per_s": (sample / "talk.mp4", "video_seconds"),
    }
    cpu, load = {}, {}
    for key, (path, unit) in cases.items():
        items = probe_file(path, cfg)[unit]
        rate, first = per_item(path, items, repeats=1 if items > 100 else 3)
        cpu[key], load[key] = round(rate, 4), round(first, 3)
        print(
            f"{key:15s} {cpu[key]:.4f}  ({path.name}: {items} {unit}; first use +{first:.2f} s)", flush=True
        )
    legacy = CORPUS / "ppt" / "fake-power-point.ppt"
    if legacy.is_file():  # a legacy deck's LibreOffice conversion, per deck
        cpu["legacy_deck_s"] = round(per_item(legacy, 1, repeats=2)[0], 3)
        print(f"legacy_deck_s   {cpu['legacy_deck_s']:.3f}", flush=True)
    one, many = work / "one", work / "many"
    one.mkdir()
    many.mkdir()
    shutil.copy(sample / "field-report.pdf", one / "r.pdf")
    n = 100
    for i in range(n):  # distinct bytes: no two objects alike
        (many / f"r{i}.pdf").write_bytes((sample / "field-report.pdf").read_bytes() + f"%{i}\n".encode())
    start_up = {}
    for executor in ("local", "ray"):
        start_up[executor] = round(job_wall(one, executor) - 2 * cpu["text_page_s"], 2)
    workers = os.cpu_count() or 1
    many_wall = job_wall(many, "local")
    # What an object costs beyond its pages, per worker: its process hand-off, files, commit share.
    per_object = (many_wall - start_up["local"]) * workers / n - 2 * cpu["text_page_s"]
    cpu["object_s"] = round(max(0.0, per_object), 4)
    print(f"object_s        {cpu['object_s']:.4f}; start-up {start_up}", flush=True)
    rates = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "where": f"{platform.machine()}, {workers} cores, {platform.python_version()}, no GPU",
        "by": "bench/bench_rates.py (CPU engine, sample files)",
        "cpu": cpu,
        "first_use_s": load,  # once per worker that meets the kind: engine and model loading
        "start_up_s": start_up,
    }
    old = json.loads(RATES.read_text()) if RATES.exists() else {}
    if "phi4_gpu" in old:
        rates["phi4_gpu"] = old["phi4_gpu"]  # measured on a GPU machine: kept until measured again
    RATES.write_text(json.dumps(rates, indent=2) + "\n")
    print(f"wrote {RATES}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
