"""Inputs that once ended with neither a document nor an error row, and caps that dropped things silently,
built here as real files and converted through unitok.convert: each ends as a document with its text, or
as an error row whose reason comes from its format; a cap says how much it left out."""

from __future__ import annotations

import io
import re
import zipfile
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import unitok
from unitok.pipeline.stages.assemble import MAX_DOC_WARNINGS, capped_warnings

OPF = "http://www.idpf.org/2007/opf"
CONTAINER = (
    '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
    '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
    "</rootfiles></container>"
)
# Transitional namespaces and their ISO/IEC 29500 Strict names (relationship types start with the
# relationships namespace, so they map with it).
STRICT = {
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main": "http://purl.oclc.org/ooxml/wordprocessingml/main",
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main": "http://purl.oclc.org/ooxml/spreadsheetml/main",
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships": "http://purl.oclc.org/ooxml/officeDocument/relationships",
    "http://schemas.openxmlformats.org/officeDocument/2006/math": "http://purl.oclc.org/ooxml/officeDocument/math",
    "http://schemas.openxmlformats.org/officeDocument/2006/extended-properties": "http://purl.oclc.org/ooxml/officeDocument/extendedProperties",
    "http://schemas.openxmlformats.org/drawingml/2006/main": "http://purl.oclc.org/ooxml/drawingml/main",
    "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing": "http://purl.oclc.org/ooxml/drawingml/wordprocessingDrawing",
    "http://schemas.openxmlformats.org/drawingml/2006/picture": "http://purl.oclc.org/ooxml/drawingml/picture",
}  # fmt: skip


def convert(path: Path, **config: Any) -> unitok.Document:
    return unitok.convert(path, config=config or None)


def file_error(doc: unitok.Document) -> str:
    """The one error row of a file that gave no document: its reason, said by its format."""
    assert doc.row is None and doc.markdown is None
    (err,) = doc.errors
    assert (err["segment_index"], err["stage"], err["error_type"]) == (-1, "split", "DocumentOpenError")
    assert "Traceback" not in err["message"]
    return err["message"]


def epub(
    path: Path, manifest: list[tuple[str, str, str]], spine: list[str], chapters: dict[str, str]
) -> Path:
    """An EPUB: manifest items (id, href, media type), the spine's idrefs, and the chapter files written."""
    items = "".join(f'<item id="{i}" href="{h}" media-type="{m}"/>' for i, h, m in manifest)
    refs = "".join(f'<itemref idref="{r}"/>' for r in spine)
    opf = (
        f'<?xml version="1.0"?><package xmlns="{OPF}" version="3.0">'
        f"<manifest>{items}</manifest><spine>{refs}</spine></package>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", CONTAINER)
        z.writestr("OEBPS/content.opf", opf)
        for name, body in chapters.items():
            z.writestr(f"OEBPS/{name}", f"<html><body>{body}</body></html>")
    return path


def strict(package: bytes, dst: Path) -> Path:
    """An Office package saved again as Strict Open XML: every part's Transitional namespaces renamed."""
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith((".xml", ".rels")):
                for transitional, strict_ns in sorted(STRICT.items(), key=lambda kv: -len(kv[0])):
                    data = data.replace(transitional.encode(), strict_ns.encode())
            out.writestr(info.filename, data)
    return dst


def nested_message(levels: int) -> bytes:
    """A message holding a message holding a message... `levels` deep, as raw MIME (the email package's
    generator itself recurses per level)."""
    inner = b"From: a@example.com\r\nSubject: level 0\r\n\r\ndeepest\r\n"
    for n in range(1, levels + 1):
        head = (
            f"From: a@example.com\r\nSubject: level {n}\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="b{n}"\r\n\r\n'
            f"--b{n}\r\nContent-Type: text/plain\r\n\r\nbody {n}\r\n"
            f"--b{n}\r\nContent-Type: message/rfc822\r\n\r\n"
        )
        inner = head.encode() + inner + f"\r\n--b{n}--\r\n".encode()
    return inner


# -- size and depth guards ------------------------------------------------------------------------------


def test_a_40_mb_one_line_csv_is_an_error_row_that_names_the_cell_limit(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(5_000_000)))  # one header line of 5M cells, ~40 MB
    assert path.stat().st_size > 38_000_000
    message = file_error(convert(path))
    assert message.startswith("line 1 holds more than documents.max_cells=2,000,000 cells, in its header row")


def test_a_csv_past_its_limits_after_the_header_keeps_its_rows_and_says_what_was_left_out(
    tmp_path: Path,
) -> None:
    # Past documents.max_cells at line 5: the first rows stay, and the last segment says it.
    path = tmp_path / "stock.csv"
    path.write_text("item,count\n" + "".join(f"pump {i},{i}\n" for i in range(1, 9)))
    doc = convert(path, documents={"max_cells": 9, "max_rows_per_segment": 2})
    assert "| pump 3 | 3 |" in doc.markdown and "pump 4" not in doc.markdown
    assert doc.warnings == ["line 5 goes past documents.max_cells=9: the rest of the rows left out"]
    # A cell past the csv module's field limit (128 KiB) ends the table where it is, with its reason.
    long = tmp_path / "long.csv"
    long.write_text('item,note\npump,ok\nvalve,"' + "x" * 200_000 + '"\n')
    doc = convert(long)
    assert "| pump | ok |" in doc.markdown and "valve" not in doc.markdown
    (warning,) = doc.warnings
    assert warning.startswith("line 3 is not readable (field larger than field limit")
    assert warning.endswith("): the rest of the rows left out")


def test_html_nested_100000_divs_deep_is_read_as_plain_paragraphs_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "deep.html"
    path.write_text(
        "<html><head><title>Deep</title><style>div {}</style></head><body><p>Before the pile.</p>"
        + "<div>" * 100_000 + "The deep text." + "</div>" * 100_000
        + "<p>After the pile.</p></body></html>"
    )  # fmt: skip
    doc = convert(path)
    assert doc.ok and doc.markdown == "Before the pile.\n\nThe deep text.\n\nAfter the pile."
    (warning,) = doc.warnings
    said = "HTML elements nested more than {} deep: read as plain paragraphs, without its structure"
    assert warning == said.format(re.search(r"\d+", warning)[0])  # libxml2's limit: 256 today


def test_a_message_nested_300_deep_stops_at_the_depth_guard_and_one_past_parsing_says_why(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nested.eml"
    path.write_bytes(nested_message(300))
    doc = convert(path)
    assert doc.markdown.startswith("**From:** a@example.com  \n**Subject:** level 300\n\nbody 300")
    assert [a.markdown.split("\n\n")[-1] for a in doc.attachments] == [
        f"body {n}" for n in range(299, 294, -1)
    ]
    (err,) = doc.errors  # the sixth level down: refused by the guard, not a RecursionError
    assert err["error_type"] == "DocumentOpenError"
    assert err["message"] == "attachment 'message.eml': messages nested more than 5 deep are not opened"
    # Past what Python's email package can parse at all: the file's error row, with that reason.
    path.write_bytes(nested_message(1000))
    assert file_error(convert(path)).startswith("MIME parts nested too deeply to read")


# -- files that gave nothing ----------------------------------------------------------------------------


def test_whitespace_only_text_and_an_empty_page_are_error_rows_saying_there_is_no_text(
    tmp_path: Path,
) -> None:
    (tmp_path / "blank.txt").write_text("  \n\n\t \n")
    assert file_error(convert(tmp_path / "blank.txt")) == "no text: the file holds only whitespace (7 bytes)"
    (tmp_path / "blank.md").write_text("\n \n")
    assert file_error(convert(tmp_path / "blank.md")).startswith("no text: the file holds only whitespace")
    (tmp_path / "empty.html").write_text("<html><body><nav>Home</nav><script>x()</script></body></html>")
    assert file_error(convert(tmp_path / "empty.html")) == "no text: the page's main content is empty"


def test_an_epub_whose_spine_lists_itself_is_an_error_row_that_says_so(tmp_path: Path) -> None:
    path = epub(
        tmp_path / "self.epub", [("opf", "content.opf", "application/oebps-package+xml")], ["opf"], {}
    )
    assert file_error(convert(path)) == (
        "no text in the EPUB's reading order (chapter 1: the spine lists the package document "
        "OEBPS/content.opf itself: skipped)"
    )


def test_an_epub_spine_of_repeats_and_non_chapters_reads_each_chapter_once_and_says_what_it_skipped(
    tmp_path: Path,
) -> None:
    xhtml = "application/xhtml+xml"
    manifest = [("one", "one.xhtml", xhtml), ("opf", "content.opf", "application/oebps-package+xml"),
                ("cover", "cover.png", "image/png"), ("two", "two.xhtml", xhtml)]  # fmt: skip
    spine = ["one", "opf", "one", "cover", "one", "two"]
    doc = convert(epub(tmp_path / "book.epub", manifest, spine, {"one.xhtml": "<h1>One</h1><p>First.</p>",
                                                                 "two.xhtml": "<p>Second.</p>"}))  # fmt: skip
    assert doc.markdown == "# One\n\nFirst.\n\nSecond."
    assert doc.warnings == [
        "page 1: chapter 2: the spine lists the package document OEBPS/content.opf itself: skipped",
        "page 1: chapters 3, 5: OEBPS/one.xhtml is listed again in the spine: read once",
        "page 1: chapter 4: OEBPS/cover.png is image/png, not a chapter: skipped",
    ]


def test_word_and_excel_files_saved_as_strict_open_xml_are_read(tmp_path: Path) -> None:
    docx = pytest.importorskip("docx")
    openpyxl = pytest.importorskip("openpyxl")
    d = docx.Document()
    d.add_heading("Pump report", 1)
    d.add_paragraph("The pumps at site A were serviced.")
    d.add_paragraph("Check the seals", style="List Number")
    table = d.add_table(rows=2, cols=2)
    for cell, text in zip(table._cells, ["site", "pumps", "A", "4"], strict=True):
        cell.text = text
    buf = io.BytesIO()
    d.save(buf)
    word = strict(buf.getvalue(), tmp_path / "report.docx")
    with zipfile.ZipFile(word) as z:  # the file really is Strict: no Transitional main namespace left
        assert b"purl.oclc.org/ooxml/wordprocessingml/main" in z.read("word/document.xml")
        assert b"schemas.openxmlformats.org/wordprocessingml" not in z.read("word/document.xml")
    doc = convert(word)
    assert doc.ok and doc.markdown == (
        "# Pump report\n\nThe pumps at site A were serviced.\n\n1. Check the seals\n\n"
        "| site | pumps |\n| --- | --- |\n| A | 4 |"
    )
    wb = openpyxl.Workbook()
    wb.active.title = "Budget"
    for row in (["item", "cost"], ["pumps", 1200], ["seals", 80]):
        wb.active.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    book = convert(strict(buf.getvalue(), tmp_path / "budget.xlsx"))
    assert book.ok and book.row["modality"] == "spreadsheet"
    assert book.markdown.endswith("| item | cost |\n| --- | --- |\n| pumps | 1200 |\n| seals | 80 |")


# -- caps that say what they dropped --------------------------------------------------------------------


def test_an_email_with_200_attachments_converts_50_and_says_150_more_were_not(tmp_path: Path) -> None:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "ana@example.com", "Meter readings"
    msg.set_content("Readings attached.")
    for n in range(200):
        msg.add_attachment(f"meter {n}: {n * 7} kWh".encode(), maintype="text", subtype="plain",
                           filename=f"meter-{n}.txt")  # fmt: skip
    (tmp_path / "readings.eml").write_bytes(bytes(msg))
    doc = convert(tmp_path / "readings.eml")
    assert [a.markdown for a in doc.attachments] == [f"meter {n}: {n * 7} kWh" for n in range(50)]
    assert doc.warnings == [
        "200 attachments, 50 converted, and 150 more attachments not converted (over "
        "documents.max_attachments=50, nested messages included): 'meter-50.txt', 'meter-51.txt', "
        "'meter-52.txt', …"
    ]


def test_a_document_with_more_than_50_warnings_ends_with_and_n_more(tmp_path: Path) -> None:
    # An EPUB whose spine names 60 chapters the file lacks: 60 distinct warnings.
    manifest = [("one", "one.xhtml", "application/xhtml+xml")]
    manifest += [(f"gone{n}", f"gone-{n}.xhtml", "application/xhtml+xml") for n in range(60)]
    doc = convert(
        epub(tmp_path / "gaps.epub", manifest, [i for i, _, _ in manifest], {"one.xhtml": "<p>Kept.</p>"})
    )
    assert doc.markdown == "Kept."
    assert len(doc.warnings) == MAX_DOC_WARNINGS
    assert doc.warnings[0] == "page 1: chapter 2: OEBPS/gone-0.xhtml is in the spine but not in the file"
    assert doc.warnings[-1] == f"and {60 - (MAX_DOC_WARNINGS - 1)} more warnings"


def test_the_warnings_cap_keeps_the_files_own_warnings_before_those_of_single_pages() -> None:
    # 80 page warnings, then the one that says frames were skipped: it stays, and the count says the rest.
    warnings = {f"page {n}: low OCR confidence (40%)": False for n in range(1, 81)}
    warnings["more than video.max_frames=500 keyframes: the rest were skipped"] = True
    kept = capped_warnings(warnings)
    assert len(kept) == MAX_DOC_WARNINGS and kept[-1] == f"and {81 - MAX_DOC_WARNINGS + 1} more warnings"
    assert kept[-2] == "more than video.max_frames=500 keyframes: the rest were skipped"
    assert kept[:3] == ["page 1: low OCR confidence (40%)", "page 2: low OCR confidence (40%)",
                        "page 3: low OCR confidence (40%)"]  # fmt: skip
    assert capped_warnings({"a": True, "b": False}) == ["a", "b"]
