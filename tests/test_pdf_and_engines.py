"""Splitters and engines on real corpus files, without Ray."""

from __future__ import annotations

import io
import shutil

import pytest
import unitok
from conftest import REPO, corpus, routed
from handmade import MIXED, hand_pdf, mixed_direction_pdf, ruled_table, text_at
from PIL import Image
from unitok.actors.contract import EngineSetupError
from unitok.actors.ocr_tesseract import TesseractEngine, find_tessdata
from unitok.actors.routing import PDF_TEXT, TESSERACT
from unitok.actors.text_layer import text_layer_markdown
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.records import ROUTE_NONE, STATUS_ERROR, Segment
from unitok.pipeline.formats.pdf import PdfOpenError, split_pdf, text_quality

CFG = parse_config({"source": {"uri": "/"}, "output": {"uri": "/tmp/x"}})


def base(uri: str) -> Segment:
    return Segment("d", uri, "v1", 1, "application/pdf", "pdf", -1, "object")


def pages(rel: str, cfg=CFG) -> list[Segment]:
    p = corpus(rel)
    return list(routed(split_pdf, p, base(p.as_uri()), cfg))


@pytest.fixture(scope="module")
def ocr():
    engine = TesseractEngine()
    yield engine
    engine.close()


def test_text_layer_page_keeps_paragraphs_and_facts():
    (seg,) = pages("pdf/fake-memo.pdf")
    assert seg.route == PDF_TEXT and seg.page_number == 1 and seg.image_png is None
    md = text_layer_markdown(seg.text_lines, seg.line_sizes, seg.line_gaps)
    assert "20,000 bottles of water" in md
    assert "To Whom it May Concern:\n\nThere were" in md  # paragraph break kept


def test_headings_from_font_sizes():
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}, "pdf": {"max_pages": 6}})
    seg = pages("pdf/DA-619p.pdf", cfg)[5]
    md = text_layer_markdown(seg.text_lines, seg.line_sizes, seg.line_gaps)
    assert md.startswith("## MAIN GAME\n\n### CREATURES")
    assert "maleficar" in md
    assert "max_pages=6: pages 7-619 skipped" in seg.warnings


def test_scanned_page_goes_to_ocr_as_an_image():
    (seg,) = pages("pdf/single_table.pdf")
    assert seg.route == TESSERACT
    img = Image.open(io.BytesIO(seg.image_png))
    assert img.mode == "L" and img.width > 2000  # 300 dpi


def test_poor_invisible_ocr_layer_is_ocrd_again():
    (seg,) = pages("pdf/pdf-with-ocr-text.pdf")
    assert seg.route == TESSERACT
    assert any("invisible OCR text layer" in w for w in seg.warnings)
    assert text_quality("«POAH «3E*»CM tanntxim. /^ . ^") < text_quality("A letter from the Company.")


def test_blank_pages_are_not_sent_to_ocr():
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}, "pdf": {"max_pages": 2}})
    segs = pages("pdf/pdf2image-memory-error-test-400p.pdf", cfg)
    assert segs[1].route == ROUTE_NONE and "blank page" in segs[1].warnings[0]


def test_encrypted_pdf_raises_a_readable_reason():
    with pytest.raises(PdfOpenError, match="encrypted PDF: a password is required"):
        pages("bad/password.pdf")


def test_truncated_pdf_is_an_error_not_a_crash(tmp_path):
    src = corpus("pdf/layout-parser-paper-fast.pdf").read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(src[:2000])
    try:
        segs = list(routed(split_pdf, cut, base(cut.as_uri()), CFG))
    except PdfOpenError as e:
        assert "not a readable PDF" in str(e)
    else:  # pdfium may repair a truncated file; then every page it gives is accounted for
        assert all(s.status == STATUS_ERROR or s.route in (TESSERACT, PDF_TEXT, ROUTE_NONE) for s in segs)


def test_ocr_reads_a_scanned_page(ocr):
    md, warnings = ocr.ocr_image(Image.open(corpus("image/DA-1p.png")))
    assert md.startswith("MAIN GAME\n\nCREATURES\n\nAbomination")
    assert "tracking the maleficar for days" in md
    assert warnings == []
    assert ocr.model_id.startswith("tesseract-5") and ocr.model_id.endswith(":eng")


def test_ocr_on_a_photo_without_text_says_so(ocr):
    md, warnings = ocr.ocr_image(Image.open(corpus("image/example.jpg")))
    assert md == "" and warnings == ["no text found by OCR"]


def test_missing_language_data_names_the_package(tmp_path):
    with pytest.raises(EngineSetupError, match="apt-get install tesseract-ocr-xyz"):
        find_tessdata(str(tmp_path), "xyz")


# -- right-to-left and mixed-direction lines -------------------------------------------------------------


def test_visual_order_becomes_logical_order():
    from unitok.pipeline.formats.pdf import visual_to_logical

    # What a page shows, left to right (right-to-left letters as drawn), for lines of each direction.
    assert visual_to_logical("Hello 42 " + "שלום עולם"[::-1]) == "שלום עולם Hello 42"
    assert visual_to_logical("The word " + "שלום"[::-1] + " means peace") == "The word שלום means peace"
    assert visual_to_logical("\ufe8e \ufefb") == "لا ا"  # a ligature's letters come out in reading order
    assert visual_to_logical("plain English 12") == "plain English 12"


@pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice not installed")
def test_mixed_direction_lines_stay_whole_and_in_reading_order(tmp_path):
    """A PDF made by a real layout engine (LibreOffice, DejaVu Sans, right-to-left paragraphs): each line
    comes out as one line, in logical order, ligatures included."""
    pdf = mixed_direction_pdf(tmp_path)
    (seg,) = routed(split_pdf, pdf, base(pdf.as_uri()), CFG)
    assert seg.route == PDF_TEXT
    assert seg.text_lines == [line for line, _ in MIXED]
    md = text_layer_markdown(seg.text_lines, seg.line_sizes, seg.line_gaps)
    assert all(line in md for line, _ in MIXED), md


# -- ruled tables ---------------------------------------------------------------------------------------
def test_a_ruled_table_becomes_a_markdown_table_in_its_place(tmp_path):
    content = (
        text_at(72, 720, "Quarterly figures by region are below.")
        + ruled_table(72, 690, [120, 80, 80], [
            ["Region", "Q1", "Q2"],
            ["North", "1,200", "1,350"],
            ["South and East", "980", None],
            ["Total", "2,180", "2,330"],
        ])
        + text_at(72, 580, "Figures are unaudited.")
    )  # fmt: skip
    pdf = tmp_path / "table.pdf"
    pdf.write_bytes(hand_pdf(content))
    (seg,) = routed(split_pdf, pdf, base(pdf.as_uri()), CFG)
    assert seg.route == PDF_TEXT and seg.text_lines == [
        "Quarterly figures by region are below.",
        "Figures are unaudited.",
    ]
    from unitok.actors.text_layer import TextLayerEngine

    (out,) = TextLayerEngine()([seg])
    assert out.markdown == (
        "Quarterly figures by region are below.\n\n"
        "| Region | Q1 | Q2 |\n| --- | --- | --- |\n| North | 1,200 | 1,350 |\n"
        "| South and East | 980 |  |\n"  # a merged cell's text once
        "| Total | 2,180 | 2,330 |\n\n"
        "Figures are unaudited."
    )


def test_boxes_and_single_rules_are_not_tables(tmp_path):
    content = (
        text_at(72, 720, "A boxed note")
        + "66 710 m 300 710 l 300 735 l 66 735 l h S\n"  # one box around one line
        + "72 690 m 540 690 l S\n"  # a horizontal rule under it
        + text_at(72, 670, "Body text after the rule.")
    )
    pdf = tmp_path / "box.pdf"
    pdf.write_bytes(hand_pdf(content))
    (seg,) = routed(split_pdf, pdf, base(pdf.as_uri()), CFG)
    assert seg.structure_json is None and seg.text_lines == ["A boxed note", "Body text after the rule."]
    assert seg.warnings == []


def test_bold_lines_apart_from_the_body_are_headings(tmp_path):
    content = (
        text_at(72, 720, "Findings and Next Steps", bold=True)
        + text_at(72, 700, "The survey covered four regions and two hundred sites.")
        + text_at(72, 686, "Most sites met the target.")
        + text_at(72, 660, "Budget", bold=True)
        + text_at(72, 640, "Spending stayed within the plan.")
        + text_at(72, 626, "A bold sentence inside the body stays a paragraph.", bold=True)
    )
    pdf = tmp_path / "bold.pdf"
    pdf.write_bytes(hand_pdf(content))
    (seg,) = routed(split_pdf, pdf, base(pdf.as_uri()), CFG)
    from unitok.actors.text_layer import TextLayerEngine

    (out,) = TextLayerEngine()([seg])
    assert out.markdown == (
        "### Findings and Next Steps\n\n"
        "The survey covered four regions and two hundred sites. Most sites met the target.\n\n"
        "### Budget\n\n"
        "Spending stayed within the plan. A bold sentence inside the body stays a paragraph."
    )


def test_an_unreadable_pdf_leaves_no_file_open(tmp_path):
    """Found by fuzzing: pypdfium2 kept the descriptor of a PDF it could not load, one per broken file."""
    import os
    import random

    from fuzzing import mutate

    bad = tmp_path / "bad.pdf"  # the fuzz case that found it: `fuzzing.py`, pdf #5, seed 1
    seed, other = (
        (REPO / "sample" / "field-report.pdf").read_bytes(),
        (REPO / "sample" / "signup-sheet.png").read_bytes(),
    )
    bad.write_bytes(mutate(seed, other, "bitflip", random.Random("1:pdf:5")))
    for _ in range(3):
        with pytest.raises(PdfOpenError, match="not a readable PDF"):
            list(split_pdf(bad, base(bad.as_uri()), CFG))
    held = [os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")]  # fmt: skip
    assert str(bad) not in held


def test_a_mesh_of_lines_with_a_few_words_is_not_a_table(tmp_path):
    """Seen on a corpus PDF: a drawing's grid (57 x 175 cells, 0.7% with text) came out as a table."""
    lines = "".join(f"{72 + 12 * i} 700 m {72 + 12 * i} 460 l S\n" for i in range(41))
    lines += "".join(f"72 {460 + 12 * j} m 552 {460 + 12 * j} l S\n" for j in range(21))
    pdf = tmp_path / "mesh.pdf"
    pdf.write_bytes(
        hand_pdf("0.5 w\n" + lines + text_at(75, 690, "Htt", 8) + text_at(72, 420, "Below the drawing."))
    )
    (seg,) = routed(split_pdf, pdf, base(pdf.as_uri()), CFG)
    assert seg.structure_json is None or '"tables": []' in seg.structure_json
    assert seg.text_lines == ["Htt", "Below the drawing."]


INVOICE = [["Date", "Description", "Amount"], ["2026-03-01", "Pump service", "1,200.00"],
           ["2026-03-04", "Filters (40)", "310.50"], ["2026-03-09", "Transport", "88.00"]]  # fmt: skip
PROSE_LEFT = ["The water committee met on Monday to", "discuss the state of the pumps in the",
              "northern villages and the budget for", "the coming dry season months ahead."]  # fmt: skip
PROSE_RIGHT = ["Volunteers reported that two of the", "filters at the school were clogged and",
               "that the spare parts had not arrived", "from the supplier in the capital yet."]  # fmt: skip


def test_a_table_without_ruling_lines_is_found_from_its_aligned_columns(tmp_path):
    content = text_at(72, 760, "Invoice 2026-117 for the northern depot.", 12)
    for r, row in enumerate(INVOICE):
        for x, cell in zip((72, 200, 420), row, strict=True):
            content += text_at(x, 720 - 18 * r, cell)
    content += text_at(72, 620, "Payment is due within thirty days of the invoice date.")
    (tmp_path / "invoice.pdf").write_bytes(hand_pdf(content))
    md = unitok.convert(tmp_path / "invoice.pdf").markdown
    assert md == (
        "Invoice 2026-117 for the northern depot.\n\n| Date | Description | Amount |\n| --- | --- | --- |\n"
        "| 2026-03-01 | Pump service | 1,200.00 |\n| 2026-03-04 | Filters (40) | 310.50 |\n"
        "| 2026-03-09 | Transport | 88.00 |\n\nPayment is due within thirty days of the invoice date."
    )


def test_two_columns_of_prose_are_not_made_a_table(tmp_path):
    # Drawn line by line across both columns, so each line holds two runs with a gutter between them.
    content = "".join(text_at(72, 700 - 16 * i, a) + text_at(320, 700 - 16 * i, b)
                      for i, (a, b) in enumerate(zip(PROSE_LEFT, PROSE_RIGHT, strict=True)))  # fmt: skip
    (tmp_path / "columns.pdf").write_bytes(hand_pdf(content))
    md = unitok.convert(tmp_path / "columns.pdf").markdown
    assert "|" not in md
    assert all(word in md for line in PROSE_LEFT + PROSE_RIGHT for word in line.split())


def _area_runs(textpage, chars):
    """The text layer as read before it was read once per page: pdfium's rectangles for the whole page,
    each rectangle's text asked for by its area (what _page_lines does for a rectangle without chars)."""
    for i in range(textpage.count_rects()):
        yield -1, -1, textpage.get_rect(i)


def test_reading_the_text_layer_once_keeps_every_table_and_adds_no_character(tmp_path, monkeypatch):
    import pypdfium2 as pdfium
    from unitok.pipeline.formats import pdf
    from unitok.pipeline.formats.pdf_tables import find_tables

    content = "".join(text_at(x, 720 - 18 * r, cell) for r, row in enumerate(INVOICE)
                      for x, cell in zip((72, 200, 420), row, strict=True))  # fmt: skip
    (tmp_path / "invoice.pdf").write_bytes(hand_pdf(content))
    grid = ruled_table(72, 690, [120, 80], [["Region", "Q1"], ["North", "1,200"], ["South", "980"]])
    (tmp_path / "ruled.pdf").write_bytes(hand_pdf(grid))
    files = [tmp_path / "invoice.pdf", tmp_path / "ruled.pdf"]
    names = ["single_table.pdf", "korean-text-with-tables.pdf", "layout-parser-paper-fast.pdf",
             "multi-column-2p.pdf", "DA-619p.pdf", "pdf2image-memory-error-test-400p.pdf"]  # fmt: skip
    files += [corpus(f"pdf/{name}") for name in names]

    def read(path, runs):
        monkeypatch.setattr(pdf, "_runs", runs)
        doc = pdfium.PdfDocument(str(path))
        out = []
        for i in range(0, len(doc), 1 + len(doc) // 40):  # 40 pages spread over a long one
            page = doc[i]
            textpage = page.get_textpage()
            found = pdf._page_lines(textpage, find_tables(page, textpage))
            bold = [k for k, b in enumerate(found.bold) if b]
            out.append(
                (found.tables, text_layer_markdown(found.lines, found.sizes, found.gaps, found.tables, bold))
            )
            textpage.close()
            page.close()
        doc.close()
        return out

    once, by_area = pdf._runs, _area_runs
    # Reading by area has no character indexes to part a run at its gutters: both read runs whole here
    # (parting runs is tested in test_pdf_tables.py).
    monkeypatch.setattr(pdf, "split_run", lambda raw, chars, first, end, box, gap: [(*box, first, end)])
    tables = same = total = 0
    for path in files:
        for (t_once, md_once), (t_area, md_area) in zip(read(path, once), read(path, by_area), strict=True):
            assert t_once == t_area, path.name  # ruled and aligned tables alike
            tables += len(t_once)
            total += 1
            same += md_once == md_area
            # Where they differ, reading by area had taken characters of overlapping runs twice
            # (seen: "Horrorr", "—w—who"): the text read once is never the longer.
            assert len(md_once) <= len(md_area), (path.name, md_once, md_area)
    assert tables >= 4 and same >= 0.6 * total, (tables, same, total)
