"""The whole pipeline on real Ray with real files: corpus PDFs, images and broken files."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import CORPUS, corpus, last_commit
from unitok.connectors.output import read_table
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.job import run_job

FILES = [
    "pdf/fake-memo.pdf",
    "pdf/single_table.pdf",
    "pdf/layout-parser-paper-fast.pdf",
    "pdf/korean-text-with-tables.pdf",
    "pdf/rotated-page-90.pdf",
    "image/DA-1p.png",
    "image/DA-1p.heic",
    "image/layout-parser-paper-fast.tiff",
    "image/example.jpg",
    "bad/password.pdf",
    "bad/invalid-pdf-structure-pdfminer-one-page.pdf",
    "bad/fake-power-point-malformed.pptx",
]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    for rel in FILES:
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus(rel), dst)
    (root / "mislabeled").mkdir()
    shutil.copy(CORPUS / "image/DA-1p.png", root / "mislabeled" / "page.pdf")  # a PNG named .pdf
    (root / "mislabeled" / "deck.pptx").write_text("plain text, not a deck\n")
    (root / "mislabeled" / "empty.pdf").write_bytes(b"")
    png = (CORPUS / "image/DA-1p.png").read_bytes()
    (root / "mislabeled" / "truncated.png").write_bytes(png[: len(png) // 3])
    (root / "skip-me.txt").write_text("excluded by the config's glob")
    return root


def read(out, name):
    return read_table(out, name)


@pytest.fixture(scope="module")
def run(ray_local, source, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    cfg = parse_config(
        {
            "source": {"uri": str(source), "exclude": ["*.txt"]},
            "output": {"uri": str(out)},
            "runtime": {"engine_batch_size": 4, "executor": "ray"},
        }
    )
    summary = run_job(cfg, {"document": {"note": "test"}})
    return cfg, summary, out


def docs_by_name(out):
    return {r["source_uri"].rsplit("/", 1)[-1]: r for r in read(out, "documents").to_pylist()}


def test_summary_counts(run):
    _, s, _ = run
    assert s.committed
    assert s.objects == len(FILES) + 4
    assert s.failed_objects == 4  # password.pdf, text named .pptx, empty file, truncated png
    assert s.documents == s.objects - s.failed_objects
    assert s.segments_by_engine["pdf_text"] >= 5 and s.segments_by_engine["tesseract"] >= 5


def test_segments_carry_provenance(run):
    cfg, s, out = run
    segs = read(out, "segments")
    for col in [
        "doc_id", "source_uri", "source_version", "segment_index", "segment_kind", "page_number",
        "time_start_s", "time_end_s", "markdown", "engine", "model_id", "prompt_id", "pipeline_version",
        "run_id", "processed_at", "elapsed_ms", "warnings",
    ]:  # fmt: skip
        assert col in segs.column_names
    rows = segs.to_pylist()
    assert {r["run_id"] for r in rows} == {s.run_id}
    assert {r["pipeline_version"] for r in rows} == {PIPELINE_VERSION}
    assert all(r["source_version"].startswith("sha256:") for r in rows)
    layout = sorted((r for r in rows if r["source_uri"].endswith("layout-parser-paper-fast.pdf")),
                    key=lambda r: r["segment_index"])  # fmt: skip
    assert [(r["segment_index"], r["page_number"], r["segment_kind"]) for r in layout] == [
        (0, 1, "page"),
        (1, 2, "page"),
    ]
    assert {r["engine"] for r in layout} == {"pdf_text"}
    ocr_rows = [r for r in rows if r["engine"] == "tesseract"]
    assert ocr_rows and all(r["model_id"].startswith("tesseract-5") for r in ocr_rows)


def test_documents_hold_the_text_in_order(run):
    _, _, out = run
    docs = docs_by_name(out)
    memo = docs["fake-memo.pdf"]
    assert "20,000 bottles of water" in memo["markdown"] and memo["modality"] == "pdf"
    assert memo["mime_type"] == "application/pdf" and memo["n_segments"] == 1
    layout = docs["layout-parser-paper-fast.pdf"]["markdown"]
    assert layout.index("LayoutParser") < layout.index("Abstract")
    assert "적립" in docs["korean-text-with-tables.pdf"]["markdown"]
    assert "Rotated page fixture" in docs["rotated-page-90.pdf"]["markdown"]
    # Scans and images went through real OCR.
    assert "Processing" in docs["single_table.pdf"]["markdown"]
    for name in ("DA-1p.png", "DA-1p.heic"):
        assert "maleficar" in docs[name]["markdown"], name
        assert docs[name]["modality"] == "image"
    assert "LayoutParser" in docs["layout-parser-paper-fast.tiff"]["markdown"]
    assert docs["example.jpg"]["markdown"] == "" and "no text found by OCR" in docs["example.jpg"]["warnings"]
    # A repaired broken PDF still yields its text.
    assert "Cybersecurity" in docs["invalid-pdf-structure-pdfminer-one-page.pdf"]["markdown"]


def test_mislabeled_png_is_converted_as_an_image_with_a_warning(run):
    _, _, out = run
    doc = docs_by_name(out)["page.pdf"]
    assert doc["mime_type"] == "image/png" and "maleficar" in doc["markdown"]
    assert any("extension .pdf but content is image/png" in w for w in doc["warnings"])


def test_bad_files_become_error_rows_with_reasons(run):
    _, s, out = run
    errors = {r["source_uri"].rsplit("/", 1)[-1]: r for r in read(out, "errors").to_pylist()}
    assert set(errors) == {
        "password.pdf", "deck.pptx", "empty.pdf", "truncated.png",
    }  # fmt: skip
    assert errors["password.pdf"]["message"] == "encrypted PDF: a password is required to open it"
    assert (
        errors["password.pdf"]["stage"] == "split" and errors["password.pdf"]["error_type"] == "PdfOpenError"
    )
    assert errors["deck.pptx"]["message"].startswith("content is text/plain")
    assert errors["empty.pdf"]["message"] == "empty file (0 bytes)"
    assert errors["truncated.png"]["error_type"] == "ImageOpenError"
    assert "cannot be decoded" in errors["truncated.png"]["message"]
    assert all(r["run_id"] == s.run_id and r["at"] is not None for r in errors.values())


def test_each_table_commits_once_with_the_run_and_no_staging_left(run):
    _, s, out = run
    for name in ("segments", "documents", "errors", "objects"):
        commit = last_commit(out, name)
        assert commit["run_id"] == s.run_id and commit["pipeline_version"] == PIPELINE_VERSION
        assert commit["version"] == s.table_versions[name] == 1  # created, then this run's one commit
        assert json.loads(commit["summary"])["documents"] == s.documents
    assert not (out / "_staging").exists()


def test_rerun_replaces_the_output_with_stable_doc_ids(run, source):
    cfg, first, out = run
    before = {r["source_uri"]: r["doc_id"] for r in read(out, "documents").to_pylist()}
    second = run_job(cfg, {})
    after = read(out, "documents").to_pylist()
    assert second.run_id != first.run_id
    assert {r["source_uri"]: r["doc_id"] for r in after} == before  # same versions, same ids
    assert {r["run_id"] for r in after} == {second.run_id}  # no rows left over from the first run
    segs = read(out, "segments").to_pylist()
    keys = [(r["doc_id"], r["segment_index"]) for r in segs]
    assert len(keys) == len(set(keys))
    assert (
        last_commit(out, "documents")["version"] == 2
        and last_commit(out, "documents")["run_id"] == second.run_id
    )


def test_local_executor_gives_the_same_documents(run, source, tmp_path):
    cfg, _, out = run
    local_cfg = cfg.model_copy(
        update={
            "output": cfg.output.model_copy(update={"uri": str(tmp_path / "local")}),
            "runtime": cfg.runtime.model_copy(update={"executor": "local"}),
        }
    )
    summary = run_job(local_cfg, {})
    assert summary.executor == "local" and summary.committed
    ray_docs = {r["doc_id"]: r["markdown"] for r in read(out, "documents").to_pylist()}
    local_docs = {r["doc_id"]: r["markdown"] for r in read(tmp_path / "local", "documents").to_pylist()}
    assert local_docs == ray_docs
    assert read(tmp_path / "local", "errors").num_rows == read(out, "errors").num_rows


def test_decks_are_converted_slide_by_slide(run):
    _, _, out = run
    doc = docs_by_name(out)["fake-power-point-malformed.pptx"]  # malformed, still readable: a partial result
    assert doc["modality"] == "presentation" and doc["engines"] == ["slide_text"]
    assert doc["markdown"].startswith("## ")
