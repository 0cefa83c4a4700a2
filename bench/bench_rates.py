"""Per-item rates for `unitok plan`'s estimate, measured with the CPU engine through the Python API on real
documents: the public corpus (../shared/corpus, see its SOURCES.md) and a scan, a recording, a screen
recording and office files made here from a real report's pages. Writes pipeline/core/rates.json (with
where and when it was measured).

The rates are CPU seconds (this process and its children: LibreOffice, ffmpeg): on a machine others share,
a wall clock also counts their work, and on a pool with a worker per core an item's wall time is its CPU
time. Per text page (a 619-page report), per ruled table cell (forms), per OCR page at pdf.ocr_dpi (scans
and a poor OCR layer), per slide, per image, per second of speech for each packaged Whisper model (tiny.en,
base), per second of a screen recording, per file through LibreOffice (.ppt, .doc, .xls) and per MiB of
document text; a job's start-up and per-object cost from run_job on the local executor.

    python bench/bench_rates.py             # measure, write pipeline/core/rates.json
    python bench/bench_rates.py --ray       # ... and Ray's start-up (else the recorded one is kept)
    python bench/bench_rates.py --compare   # `unitok plan`'s estimate against real runs (docs/benchmarks.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
SAMPLE = REPO / "sample"
REPORT = CORPUS / "pdf" / "DA-619p.pdf"  # a real 619-page report: text for speech, slides, scans, documents
sys.path[:0] = [str(REPO), str(REPO / "tests")]


# The realistic files made from the corpus's pages (make_fixtures), by name.
MADE = ("speech.wav", "screen-recording.mp4", "scan.pdf", "report.docx", "sales.xlsx", "report.doc",
        "sales.xls", "report.html")  # fmt: skip


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (and theirs)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def convert_cpu_s(path: Path, config: dict[str, Any] | None = None) -> float:
    import unitok

    start = cpu_s()
    doc = unitok.convert(path, config=config)
    if doc.errors and not doc.segments:
        raise RuntimeError(f"{path.name} did not convert: {doc.errors[0].get('message')}")
    return cpu_s() - start


def measure(
    files: list[Path], items: Callable[[Path], float], config: dict[str, Any] | None = None, repeats: int = 2
) -> tuple[float, float, dict[str, float]]:
    """(CPU seconds per item warm, the first conversion's extra seconds: engine and model loading, each
    file's warm seconds). Warm: the least of `repeats` conversions."""
    first = convert_cpu_s(files[0], config)
    warm = {f.name: min(convert_cpu_s(f, config) for _ in range(repeats)) for f in files}
    rate = sum(warm.values()) / sum(items(f) for f in files)
    return rate, max(0.0, first - warm[files[0].name]), warm


def _report_text(first: int, pages: int) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(REPORT))
    try:
        out = []
        for i in range(first, first + pages):
            text = pdf[i].get_textpage().get_text_range()
            out.append(re.sub(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd]", "", text))  # what XML may hold
        return out
    finally:
        pdf.close()


def _render(first: int, pages: int, dpi: float) -> list[Any]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(REPORT))
    try:
        return [pdf[i].render(scale=dpi / 72, grayscale=True).to_pil() for i in range(first, first + pages)]
    finally:
        pdf.close()


def make_fixtures(work: Path, first: int) -> dict[str, Path]:
    """Realistic files from the report's pages from `first` on (another `first` gives held-out files):
    speech.wav (espeak-ng reading four pages, about 85 s), screen-recording.mp4 (six pages as 1280x720
    slides with that speech, 25 fps), scan.pdf (three pages as a 200 dpi scanner makes them, image only),
    report.docx and sales.xlsx (python-docx, openpyxl), report.doc and sales.xls (LibreOffice from those),
    report.html and sales.csv."""
    import docx
    import openpyxl
    from PIL import Image

    work.mkdir(parents=True, exist_ok=True)
    text = _report_text(first, 30)
    out = {k: work / k for k in (*MADE, "sales.csv")}
    script = work / "speech.txt"
    script.write_text(re.sub(r"\s+", " ", " ".join(text[:4]))[:1400])
    subprocess.run(
        ["espeak-ng", "-v", "en-us", "-s", "160", "-f", str(script), "-w", str(out["speech.wav"])], check=True
    )
    slides = []
    for k, page in enumerate(_render(first + 4, 6, 110)):
        frame = Image.new("L", (1280, 720), 255)
        page.thumbnail((1280, 720))
        frame.paste(page, ((1280 - page.size[0]) // 2, 0))
        slides.append(work / f"slide{k}.png")
        frame.save(slides[-1])
    listing = work / "slides.txt"
    listing.write_text("".join(f"file '{s}'\nduration 14.2\n" for s in slides) + f"file '{slides[-1]}'\n")
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-v",
            "error",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-i",
            str(out["speech.wav"]),
            "-vf",
            "fps=25,format=yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-c:a",
            "aac",
            "-shortest",
            str(out["screen-recording.mp4"]),
        ],
        check=True,
    )
    scans = [p.convert("L") for p in _render(first + 10, 3, 200)]
    scans[0].save(out["scan.pdf"], save_all=True, append_images=scans[1:], resolution=200, quality=80)
    d = docx.Document()
    for k, page in enumerate(text[:20]):
        d.add_heading(f"Part {k + 1}", 2)
        for para in re.split(r"\r?\n\s*\r?\n", page):
            if para.strip():
                d.add_paragraph(re.sub(r"\s+", " ", para))
    table = d.add_table(rows=20, cols=4)
    for r in range(20):
        for c in range(4):
            table.cell(r, c).text = re.sub(r"\s+", " ", text[r])[c * 20 : c * 20 + 20]
    d.save(out["report.docx"])
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["id", "item", "region", "units", "price", "total", "date", "note"])
    for i in range(3000):
        units, price = i % 17, round(i * 0.37 % 90, 2)
        ws.append(
            [
                i,
                f"item {i}",
                ("north", "south", "east", "west")[i % 4],
                units,
                price,
                round(units * price, 2),
                f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                re.sub(r"\s+", " ", text[i % 30])[:30],
            ]
        )
    wb.save(out["sales.xlsx"])
    rows = ws.iter_rows(values_only=True)
    out["sales.csv"].write_text("\n".join(",".join(str(v).replace(",", " ") for v in row) for row in rows))
    body = "".join(
        f"<h2>Part {k + 1}</h2>"
        + "".join(f"<p>{re.sub(r'[<>&]', ' ', p)}</p>" for p in page.split("\r\n\r\n"))
        for k, page in enumerate(text[:15])
    )
    out["report.html"].write_text(
        f"<!doctype html><html><head><title>Report</title></head><body>{body}</body></html>"
    )
    for src, fmt in (("report.docx", "doc"), ("sales.xlsx", "xls")):
        profile = Path(tempfile.mkdtemp(prefix="unitok-bench-lo-"))
        subprocess.run(
            [
                "soffice",
                f"-env:UserInstallation={profile.as_uri()}",
                "--headless",
                "--convert-to",
                fmt,
                "--outdir",
                str(work),
                str(out[src]),
            ],
            check=True,
            capture_output=True,
            timeout=180,
        )
        shutil.rmtree(profile, ignore_errors=True)
    return out


def job_run(folder: Path, executor: str, workers: int = 2) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the driver and its workers) of a full run_job over folder."""
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.job import run_job

    out = Path(tempfile.mkdtemp(prefix="unitok-rates-out-"))
    try:
        cfg = {
            "source": {"uri": str(folder)},
            "output": {"uri": str(out)},
            "runtime": {"executor": executor, "max_workers": workers},
        }
        c0, t0 = cpu_s(), time.perf_counter()
        run_job(parse_config(cfg))
        return time.perf_counter() - t0, cpu_s() - c0
    finally:
        shutil.rmtree(out, ignore_errors=True)


def asr_model_bytes(model: str) -> int:
    from unitok.actors import asr_whisper

    folder = asr_whisper.packaged_model() if model == "tiny.en" else asr_whisper.packaged_base_model()
    return (folder / "model.bin").stat().st_size


def measure_rates(work: Path, with_ray: bool) -> dict[str, Any]:
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.stages.estimate import RATES, probe_file

    cfg = parse_config({"source": {"uri": "."}, "output": {"uri": "x"}})

    def count(unit: str) -> Callable[[Path], float]:
        return lambda path: probe_file(path, cfg)[unit]

    made = make_fixtures(work / "made", first=20)
    cpu: dict[str, float] = {}
    load: dict[str, float] = {}

    def record(key: str, rate: float, first: float, what: str) -> None:
        cpu[key], load[key] = round(rate, 5), round(first, 3)
        print(f"{key:16s} {rate:.5f}  (first use +{first:.2f} s; {what})", flush=True)

    # Text layers: a small PDF first (pdfium's start-up is its first use), then the report's 619 pages.
    _, first, warm = measure([CORPUS / "pdf" / "layout-parser-paper-fast.pdf", REPORT], count("pages"))
    text_page = warm[REPORT.name] / count("pages")(REPORT)
    record("text_page_s", text_page, first, "DA-619p.pdf, 619 pages")
    # Ruled tables: what a form's pages cost beyond their text.
    forms = [
        CORPUS / "bad" / "failure-after-repair.pdf",
        CORPUS / "bad" / "invalid-pdf-structure-pdfminer-one-page.pdf",
    ]
    probes = {f.name: probe_file(f, cfg) for f in forms}
    _, _, warm = measure(forms, count("table_cells"))
    beyond = sum(warm[n] - (p["pages"] - p["ocr_pages"]) * text_page for n, p in probes.items())
    cells = sum(p["table_cells"] for p in probes.values())
    cpu["table_cell_s"] = round(beyond / cells, 7)
    print(f"table_cell_s     {cpu['table_cell_s']:.7f}  ({cells} cells on {len(forms)} forms)", flush=True)
    # OCR at the default pdf.ocr_dpi: a scan, a scanned table and a page whose OCR layer is read again.
    scans = [made["scan.pdf"], CORPUS / "pdf" / "single_table.pdf", CORPUS / "pdf" / "pdf-with-ocr-text.pdf"]
    rate, first, _ = measure(scans, count("ocr_pages"))
    record(
        "ocr_page_s", rate, first, f"{len(scans)} scans, {sum(count('ocr_pages')(s) for s in scans)} pages"
    )
    decks = sorted((CORPUS / "pptx").glob("*.pptx"))
    rate, first, _ = measure(decks, count("slides"))
    record("slide_s", rate, first, f"{len(decks)} decks")
    images = sorted((CORPUS / "image").iterdir())
    rate, first, _ = measure(images, count("images"))
    record("image_s", rate, first, f"{len(images)} images: photos, scans, HEIC, TIFF, BMP")
    seconds = count("audio_seconds")
    asr = {}
    for model in ("tiny.en", "base"):
        config = None if model == "tiny.en" else {"audio": {"asr_model": model}}
        rate, first, _ = measure([made["speech.wav"]], seconds, config)
        asr[model] = {
            "audio_s_per_s": round(rate, 5),
            "first_use_s": round(first, 3),
            "model_bytes": asr_model_bytes(model),
        }
        print(
            f"audio {model:10s} {rate:.5f}  (first use +{first:.2f} s; "
            f"{seconds(made['speech.wav']):.0f} s of speech)"
        )
    cpu["audio_s_per_s"], load["audio_s_per_s"] = (
        asr["tiny.en"]["audio_s_per_s"],
        asr["tiny.en"]["first_use_s"],
    )
    videos = [made["screen-recording.mp4"], SAMPLE / "talk.mp4"]
    rate, first, _ = measure(videos, count("video_seconds"))
    record("video_s_per_s", rate, first, "a screen recording with speech (tiny.en), a short talk")
    # LibreOffice's part of a legacy file: its conversion less that of the file it makes.
    pairs = [
        (made["report.doc"], made["report.docx"]),
        (made["sales.xls"], made["sales.xlsx"]),
        (CORPUS / "ppt" / "fake-power-point.ppt", None),
    ]
    _, _, legacy = measure([a for a, _ in pairs], lambda _: 1)
    _, _, modern = measure([b for _, b in pairs if b], lambda _: 1)
    per_file = [legacy[a.name] - (modern[b.name] if b else 0.0) for a, b in pairs]
    cpu["libreoffice_s"] = round(sum(per_file) / len(per_file), 3)
    print(f"libreoffice_s    {cpu['libreoffice_s']:.3f}  (.doc, .xls, .ppt)", flush=True)
    docs = [made[n] for n in ("report.docx", "sales.xlsx", "report.html", "sales.csv")] + [
        CORPUS / "SOURCES.md"
    ]
    rate, first, _ = measure(docs, lambda p: probe_file(p, cfg)["document_bytes"] / 2**20)
    record("document_mib_s", rate, first, "Word, a workbook, a web page, CSV, Markdown")

    one, many = work / "one", work / "many"
    one.mkdir()
    many.mkdir()
    shutil.copy(SAMPLE / "field-report.pdf", one / "r.pdf")
    n = 100
    for i in range(n):  # distinct bytes: no two objects alike
        (many / f"r{i}.pdf").write_bytes((SAMPLE / "field-report.pdf").read_bytes() + f"%{i}\n".encode())
    old = json.loads(RATES.read_text()) if RATES.exists() else {}
    start_up = dict(old.get("start_up_s", {}))
    for executor in ("local", "ray") if with_ray else ("local",):
        start_up[executor] = round(min(job_run(one, executor)[0] for _ in range(3)) - 2 * text_page, 2)
    workers = 2
    one_cpu = min(job_run(one, "local", workers)[1] for _ in range(2))
    many_cpu = min(job_run(many, "local", workers)[1] for _ in range(2))
    # What an object costs beyond its pages: its hand-off, files, share of the commit.
    cpu["object_s"] = round(max(0.0, (many_cpu - one_cpu) / (n - 1) - 2 * text_page), 4)
    print(f"object_s         {cpu['object_s']:.4f}; start-up {start_up}", flush=True)
    rates = {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "where": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, no GPU",
        "by": "bench/bench_rates.py (CPU engine, CPU seconds per item on the public corpus and files made "
        "from its pages)",
        "cpu": cpu,
        "ocr_dpi": cfg.pdf.ocr_dpi,  # ocr_page_s's resolution: other DPIs scale by pixels, (dpi/this)²
        "asr": asr,  # per Whisper model; cpu.audio_s_per_s is the default model's (tiny.en)
        "first_use_s": load,  # once per worker that meets the kind: engine and model loading
        "start_up_s": start_up,
    }
    if "phi4_gpu" in old:
        rates["phi4_gpu"] = old["phi4_gpu"]  # measured on a GPU machine: kept until measured again
    return rates


def mixed_folder(work: Path) -> Path:
    """About twenty files as an office's share holds them: scans, text PDFs (one a form), decks (one
    legacy), Word and Excel files (two legacy), a web page, images (one HEIC), recordings (speech, music,
    a screen recording, a short talk). The made files come from pages the rates were not measured on."""
    made = make_fixtures(work / "held-out", first=200)
    folder = work / "mixed"
    folder.mkdir()
    picks = [
        "pdf/pdf-with-ocr-text.pdf",
        "pdf/single_table.pdf",
        "pdf/layout-parser-paper-fast.pdf",
        "pdf/korean-text-with-tables.pdf",
        "pdf/multi-column-2p.pdf",
        "bad/failure-after-repair.pdf",
        "pptx/sample-presentation.pptx",
        "pptx/science-exploration-1p.pptx",
        "ppt/fake-power-point.ppt",
        "image/DA-1p.heic",
        "image/layout-parser-paper-fast.jpg",
        "image/table-multi-row-column-cells.png",
        "audio/CantinaBand3.wav",
    ]
    for rel in picks:
        shutil.copy(CORPUS / rel, folder / Path(rel).name)
    for name in ("scanned-memo.pdf", "signup-sheet.png", "talk.mp4", "field-report.pdf"):
        shutil.copy(SAMPLE / name, folder / name)
    for name in MADE:
        shutil.copy(made[name], folder / name)
    return folder


def compare(work: Path, runs: int) -> None:
    """`unitok plan --json`'s wall-time estimate against `unitok run`'s on the local executor with two
    workers: the corpus; the mixed folder; the mixed folder with Whisper base and OCR at 200 dpi; its scans,
    forms and images alone (the work a rate from a tiny sample underestimates most)."""
    mixed = mixed_folder(work)
    scans = work / "scans"
    scans.mkdir()
    for name in ("scan.pdf", "single_table.pdf", "pdf-with-ocr-text.pdf", "scanned-memo.pdf",
                 "failure-after-repair.pdf", "DA-1p.heic", "layout-parser-paper-fast.jpg", "signup-sheet.png",
                 "table-multi-row-column-cells.png"):  # fmt: skip
        shutil.copy(mixed / name, scans / name)
    cases = [
        ("corpus", CORPUS, {}),
        ("mixed", mixed, {}),
        ("mixed, base, 200 dpi", mixed, {"audio": {"asr_model": "base"}, "pdf": {"ocr_dpi": 200}}),
        ("scans and forms", scans, {}),
    ]
    unitok = [sys.executable, "-m", "unitok.pipeline.cli"]
    head = ("folder", "objects", "estimate", "runs (wall s)", "cpu/2", "load", "real/estimate")
    print(
        f"{head[0]:22s} {head[1]:>7s} {head[2]:>8s} {head[3]:>20s} {head[4]:>6s} {head[5]:>9s} {head[6]:>13s}"
    )
    for name, folder, extra in cases:
        job = work / (re.sub(r"\W+", "-", name) + ".yaml")
        out = work / f"out-{job.stem}"
        job.write_text(
            json.dumps(
                {
                    "source": {"uri": str(folder), "include": ["**"]},
                    "output": {"uri": str(out)},
                    "runtime": {"executor": "local", "max_workers": 2},
                    **extra,
                }
            )
        )
        plan = json.loads(
            subprocess.run(
                [*unitok, "plan", str(job), "--json"], check=True, capture_output=True, text=True
            ).stdout
        )
        estimate = plan["estimate"]["wall_s"]
        walls, cpus, loads = [], [], []
        for _ in range(runs):
            shutil.rmtree(out, ignore_errors=True)
            loads.append(os.getloadavg()[0])
            c0, t0 = cpu_s(), time.perf_counter()
            subprocess.run([*unitok, "run", str(job)], check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
            cpus.append(cpu_s() - c0)
        best = min(walls)
        shown = ", ".join(f"{w:.1f}" for w in walls)
        print(
            f"{name:22s} {plan['objects']:7d} {estimate:8.1f} {shown:>20s} {min(cpus) / 2:6.1f} "
            f"{min(loads):4.1f}-{max(loads):<4.1f} {best / estimate:13.2f}",
            flush=True,
        )
        print(
            f"{'':22s} work {plan['estimate']['work_s']}, first use {plan['estimate']['first_use_s']} s, "
            f"largest object {plan['estimate']['largest_object_s']} s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ray", action="store_true", help="measure Ray's start-up too (minutes)")
    parser.add_argument("--compare", action="store_true", help="estimate against real runs; writes nothing")
    parser.add_argument("--runs", type=int, default=2, help="--compare: runs per folder (the fastest counts)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="unitok-rates-"))
    try:
        if args.compare:
            compare(work, args.runs)
            return
        from unitok.pipeline.stages.estimate import RATES

        rates = measure_rates(work, args.ray)
        RATES.write_text(json.dumps(rates, indent=2) + "\n")
        print(f"wrote {RATES}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
