"""`unitok plan`'s estimate follows the run's settings and the run's own checks: the configured Whisper
model's rate, OCR priced by its pixels at the configured DPI, the pages the run reads from pixels, the
ruled table cells it reads, the files it hands to LibreOffice, and no "would be error rows" for a file the
run converts. Mechanics only: every expected number comes from the recorded rates (pipeline/core/rates.json),
none from this machine's speed; the wall-time accuracy is measured by `bench/bench_rates.py --compare`
(docs/benchmarks.md)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, corpus, sh
from unitok.connectors.objects import ObjectInfo
from unitok.pipeline.core.config import JobConfig, parse_config
from unitok.pipeline.stages.estimate import (
    asr_rates,
    cpu_rates,
    estimate,
    inventory,
    load_rates,
    object_work_s,
    probe_file,
)

SAMPLE = REPO / "sample"


def job(**sections: Any) -> JobConfig:
    return parse_config({"source": {"uri": "."}, "output": {"uri": "x"}, **sections})


def planned(paths: list[Path], cfg: JobConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the inventory of these files, the estimate on two local workers), as `plan` makes them."""
    probes = []
    for p in paths:
        info = ObjectInfo(uri=p.as_uri(), key=p.name, size=p.stat().st_size, modified_at=0.0, version=None)
        probes.append((info, probe_file(p, cfg)))
    inv = inventory(probes)
    return inv, estimate(inv, cfg, 2, "local", load_rates())


def test_whisper_base_is_estimated_slower_than_tiny_en_by_the_measured_ratio(tmp_path):
    rates = load_rates()
    tiny, base = rates["asr"]["tiny.en"], rates["asr"]["base"]
    assert base["audio_s_per_s"] > 1.5 * tiny["audio_s_per_s"]  # as measured: base is the slower model
    assert rates["cpu"]["audio_s_per_s"] == tiny["audio_s_per_s"]  # the default model's rate
    flac = tmp_path / "talk.flac"  # the talk's speech ten times over (98 s): the estimate rounds to 0.1 s
    sh("ffmpeg", "-y", "-stream_loop", "9", "-i", str(SAMPLE / "talk.mp4"), "-vn", "-c:a", "flac", str(flac))
    files = [flac, SAMPLE / "talk.mp4"]
    inv, default = planned(files, job())
    _, chosen = planned(files, job(audio={"asr_model": "base"}))
    assert inv["audio_seconds"] == pytest.approx(98, abs=0.5) and inv["video_seconds"] == pytest.approx(12)
    ratio = base["audio_s_per_s"] / tiny["audio_s_per_s"]
    assert chosen["work_s"]["audio"] == pytest.approx(
        default["work_s"]["audio"] * ratio, abs=0.05 * ratio + 0.05
    )
    # A video's speech is transcribed by the same model: its rate moves by the models' difference.
    extra = inv["video_seconds"] * (base["audio_s_per_s"] - tiny["audio_s_per_s"])
    assert chosen["work_s"]["video"] == pytest.approx(default["work_s"]["video"] + extra, abs=0.1)
    assert (default["rates"]["asr_model"], chosen["rates"]["asr_model"]) == ("tiny.en", "base")
    # The per-object work `auto` chooses a driver by, and the largest object, follow the model too.
    tiny_probe, base_probe = probe_file(flac, job()), probe_file(flac, job(audio={"asr_model": "base"}))
    assert object_work_s(base_probe, rates) > object_work_s(tiny_probe, rates)


def test_a_whisper_folder_is_priced_by_its_weights_against_base(tmp_path):
    rates = load_rates()
    base = rates["asr"]["base"]
    model = tmp_path / "whisper-large"
    model.mkdir()
    with open(model / "model.bin", "wb") as f:
        f.truncate(3 * base["model_bytes"])  # sparse: only its size is read
    asr = asr_rates(rates, str(model))
    assert asr["audio_s_per_s"] == pytest.approx(3 * base["audio_s_per_s"])
    assert asr_rates(rates, str(tmp_path / "nothing-there"))["audio_s_per_s"] == base["audio_s_per_s"]


def test_ocr_at_300_dpi_costs_the_pixels_of_200_dpi_more():
    scan = SAMPLE / "scanned-memo.pdf"
    inv200, at200 = planned([scan], job(pdf={"ocr_dpi": 200}))
    inv300, at300 = planned([scan], job(pdf={"ocr_dpi": 300}))
    assert inv200["ocr_pages"] == inv300["ocr_pages"] == 1
    assert at300["work_s"]["ocr_pages"] == pytest.approx(
        at200["work_s"]["ocr_pages"] * (300 / 200) ** 2, rel=0.1
    )
    rates = load_rates()  # at the DPI the rate was measured at, the rate itself
    assert cpu_rates(rates, rates["ocr_dpi"], "tiny.en")["ocr_page_s"] == rates["cpu"]["ocr_page_s"]
    assert cpu_rates(rates, 150, "tiny.en")["ocr_page_s"] == pytest.approx(
        rates["cpu"]["ocr_page_s"] * (150 / rates["ocr_dpi"]) ** 2
    )


def test_the_pages_counted_for_ocr_are_those_the_run_reads_from_pixels(tmp_path):
    """A scan, a page whose invisible OCR layer is poor (read again from its pixels), text pages, and a
    blank page (no text, no image: nothing to OCR)."""
    import pypdfium2 as pdfium
    import unitok

    blank = tmp_path / "blank.pdf"
    pdf = pdfium.PdfDocument.new()
    pdf.new_page(612, 792)
    pdf.save(str(blank))
    files = [
        SAMPLE / "scanned-memo.pdf",
        corpus("pdf/pdf-with-ocr-text.pdf"),
        SAMPLE / "field-report.pdf",
        blank,
    ]
    cfg = job()
    for path in files:
        counted = probe_file(path, cfg)["ocr_pages"]
        ocr_segments = [s for s in unitok.convert(path).segments if s["engine"] == "tesseract"]
        assert counted == len(ocr_segments), path.name


def test_ruled_table_cells_libreoffice_files_and_document_text_are_priced():
    rates = load_rates()
    cpu = rates["cpu"]
    form, deck = corpus("bad/invalid-pdf-structure-pdfminer-one-page.pdf"), corpus("ppt/fake-power-point.ppt")
    inv, est = planned([form, deck, SAMPLE / "field-report.pdf"], job())
    assert inv["table_cells"] > 100 and probe_file(SAMPLE / "field-report.pdf", job())["table_cells"] == 0
    assert est["work_s"]["table_cells"] == pytest.approx(inv["table_cells"] * cpu["table_cell_s"], abs=0.06)
    assert inv["libreoffice_files"] == 1 and inv["uncounted_decks"] == 1
    assert est["work_s"]["libreoffice"] == pytest.approx(cpu["libreoffice_s"], abs=0.06)
    md = corpus("SOURCES.md")
    assert probe_file(md, job())["document_bytes"] == md.stat().st_size


def test_a_word_file_is_priced_by_its_text_not_its_styles(tmp_path):
    import zipfile

    import docx

    d = docx.Document()
    for i in range(200):
        d.add_paragraph(f"Paragraph {i} of a report that is long enough to count.")
    path = tmp_path / "report.docx"
    d.save(path)
    with zipfile.ZipFile(path) as z:
        body = z.getinfo("word/document.xml").file_size
    assert probe_file(path, job())["document_bytes"] == body


def test_plan_reports_as_failing_exactly_the_files_the_run_fails_on(tmp_path):
    """A HEIC photo (the plan once said it would fail; the run converts it), a damaged deck the run still
    reads, an encrypted PDF, a text file named .pdf and an empty file (the run's error rows)."""
    import unitok
    from unitok.pipeline.job import plan_job

    src = tmp_path / "src"
    src.mkdir()
    for rel in ("image/DA-1p.heic", "bad/fake-power-point-malformed.pptx", "bad/password.pdf"):
        shutil.copy(corpus(rel), src)
    shutil.copy(SAMPLE / "not-really-a.pdf", src)
    (src / "empty.txt").write_bytes(b"")
    cfg = parse_config({"source": {"uri": str(src)}, "output": {"uri": str(tmp_path / "out")},
                        "runtime": {"executor": "local"}})  # fmt: skip
    plan = plan_job(cfg)
    said = {Path(p["uri"]).name for p in plan["problems"]}
    failed = set()
    for path in sorted(src.iterdir()):
        doc = unitok.convert(path)
        if doc.errors and doc.markdown is None:
            failed.add(path.name)
    assert failed == {"password.pdf", "not-really-a.pdf", "empty.txt"}
    assert said == failed and plan["problem_count"] == len(failed)
    assert plan["images"] == 1 and plan["by_type"]["image/heic"]["objects"] == 1
