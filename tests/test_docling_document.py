"""The DoclingDocument built from unitok's rows (pipeline/stages/docling_document.py): valid for
docling-core, every word of unitok's Markdown in docling-core's own export and none added, tables' cells."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import docling_core.types.doc as dc
import docx
from conftest import corpus
from unitok import convert
from unitok.pipeline.stages.docling_document import docling_document

ROOT = Path(__file__).resolve().parents[1]


def _words(md: str) -> set[str]:
    md = re.sub(r"<!--.*?-->", " ", md, flags=re.S)  # unitok's markers
    md = re.sub(r"\]\([^)]*\)", "]", md)  # link targets
    md = re.sub(r"^\s*(\d+[.)])\s", " ", md, flags=re.M)  # list numbers
    return set(re.findall(r"[^\W_]+", md.lower()))


def _build(path: Path):
    doc = convert(path)
    rows = doc.to_dict()
    built = docling_document(rows["document"], doc.segments)
    dl = dc.DoclingDocument.model_validate(json.loads(json.dumps(built)))
    segs_md = "\n\n".join(s["markdown"] or "" for s in doc.segments)
    exported = _words(dl.export_to_markdown()) | _words(dl.export_to_text())
    want = _words(segs_md)
    assert want, path
    assert want <= exported, want - exported
    assert _words(dl.export_to_markdown()) <= want, _words(dl.export_to_markdown()) - want
    return doc, built, dl


def test_text_pdf_headings_pages_and_origin():
    doc, built, dl = _build(ROOT / "sample/field-report.pdf")
    assert [t.label for t in dl.texts][:2] == ["title", "text"]
    assert {h.text: h.level for h in dl.texts if h.label == "section_header"} == {
        "Next steps": 2,
        "Appendix": 2,
    }
    assert sorted(dl.pages) == [1, 2]
    assert dl.texts[-1].prov[0].page_no == 2
    assert dl.texts[-1].prov[0].charspan[0] >= doc.segments[1]["char_start"]
    assert dl.origin.filename == "field-report.pdf" and dl.origin.mimetype == "application/pdf"
    assert dl.origin.binary_hash == int(doc.segments[0]["source_version"].split(":")[1][:16], 16)
    assert dl.name == "field-report"


def test_page_sizes_give_the_whole_page_box():
    doc = convert(ROOT / "sample/field-report.pdf")
    built = docling_document(doc.to_dict()["document"], doc.segments, {1: (612.0, 792.0)})
    dl = dc.DoclingDocument.model_validate(built)
    box = dl.texts[0].prov[0].bbox
    assert (box.l, box.b, box.r, box.t) == (0, 0, 612, 792) and dl.pages[1].size.width == 612


def test_scan_and_image():
    _, _, dl = _build(ROOT / "sample/scanned-memo.pdf")
    assert dl.texts and dl.texts[0].prov[0].page_no == 1
    _, _, dl = _build(ROOT / "sample/signup-sheet.png")
    assert dl.texts and all(t.prov[0].page_no == 1 for t in dl.texts)


def test_deck_table_cells():
    deck = corpus("pptx/fake-power-point-table.pptx")
    _, _, dl = _build(deck)
    (table,) = dl.tables
    assert (table.data.num_rows, table.data.num_cols) == (4, 3)
    grid = [[c.text for c in row] for row in table.data.grid]
    assert grid[0] == ["Column 1", "Column 2", "Column 3"] and grid[3] == ["Tangerine", "Pink", "Aqua"]
    assert all(c.column_header == (c.start_row_offset_idx == 0) for c in table.data.table_cells)
    assert table.prov[0].page_no == 1


def test_docx_lists_and_table(tmp_path):
    d = docx.Document()
    d.add_heading("Depot plan", 1)
    d.add_paragraph("Stock levels for the spring.")
    d.add_paragraph("filters", style="List Bullet")
    d.add_paragraph("pumps", style="List Bullet")
    d.add_paragraph("first step", style="List Number")
    d.add_paragraph("second step", style="List Number")
    t = d.add_table(rows=3, cols=2)
    for i, r in enumerate([("Item", "Count"), ("Filters", "1,200"), ("Pumps", "30")]):
        for j, c in enumerate(r):
            t.cell(i, j).text = c
    d.add_paragraph("Checked on site.")
    d.save(tmp_path / "plan.docx")
    _, _, dl = _build(tmp_path / "plan.docx")
    items = [(x.text, x.enumerated) for x in dl.texts if x.label == "list_item"]
    assert items == [("filters", False), ("pumps", False), ("first step", True), ("second step", True)]
    assert len([g for g in dl.groups if g.label == "list"]) == 2
    grid = [[c.text for c in row] for row in dl.tables[0].data.grid]
    assert grid == [["Item", "Count"], ["Filters", "1,200"], ["Pumps", "30"]]
    assert not dl.pages and all(not x.prov for x in dl.texts)  # no pages in a Word file's rows


def test_recording_phrases_with_times(tmp_path):
    src = ROOT / "sample/talk.mp4"
    wav = tmp_path / "talk.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-vn", "-ac", "1", str(wav)], check=True)
    doc, _, dl = _build(wav)
    spans = [s for seg in doc.segments for s in seg["spans"] or []]
    assert len(dl.texts) == len(spans) > 0
    for t, s in zip(dl.texts, spans, strict=True):
        assert t.text == s["text"].strip()
        assert (t.source[0].start_time, t.source[0].end_time) == (s["start_s"], s["end_s"])
