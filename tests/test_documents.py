# ruff: noqa: E501 - the fixtures hold OOXML and MIME as Word, Excel and mail clients write them
"""Documents that carry their own text, built here with known words: Word (styles, outline levels, numbered
and nested lists, merged and nested table cells, text boxes, headers and footers, footnotes and endnotes,
comments, tracked changes, equations, pictures' alt text, hyperlinks; legacy .doc through LibreOffice),
spreadsheets (cached values, number formats, merged cells, comments, hidden sheets, an inflated used
range; .xls and .ods through LibreOffice), HTML, Markdown and text, CSV, EPUB and e-mail (attachments
converted as documents of their own); and hostile variants (zip and XML bombs, a malformed EPUB, deeply
nested messages), each one error row or a bounded result."""

from __future__ import annotations

import csv
import datetime
import re
import shutil
import zipfile
from email.message import EmailMessage
from pathlib import Path

import pytest
import unitok
from conftest import REPO
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.formats.pptx import libreoffice_convert

docx = pytest.importorskip("docx")
W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def convert(path: Path, **config):
    return unitok.convert(path, config=config or None)


def xml(fragment: str):
    """A WordprocessingML element from a fragment whose `NS` stands for the w: namespace declaration."""
    from docx.oxml import parse_xml

    return parse_xml(fragment.replace("NS", f'xmlns:w="{W}"', 1))


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    """The package rewritten with some parts changed or added, as an editor saves it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in members.items():
            z.writestr(n, data)


def build_docx(path: Path) -> Path:
    from docx import Document

    d = Document()
    d.sections[0].header.paragraphs[0].text = "ACME Water Trust"
    d.sections[0].footer.paragraphs[0].text = "Confidential draft"
    d.add_heading("Annual Report", level=1)
    d.add_paragraph("The pumps were serviced in spring.")
    d.add_heading("Sites", level=2)
    d.add_paragraph("Oslo depot", style="List Number")
    d.add_paragraph("Bergen depot", style="List Number")
    nested = d.add_paragraph("Harbour wing", style="List Number")  # one level down in the same list
    num_id = d.styles["List Number"].element.pPr.numPr.numId.val
    nested._p.get_or_add_pPr().append(
        xml(f'<w:numPr NS><w:ilvl w:val="1"/><w:numId w:val="{num_id}"/></w:numPr>')
    )
    t = d.add_table(rows=3, cols=3)
    for r, row in enumerate([["Site", "Filters", "Pumps"], ["North", "1200", "4"], ["South", "800", "2"]]):
        for c, text in enumerate(row):
            t.cell(r, c).text = text
    merged = t.cell(2, 1).merge(t.cell(2, 2))
    merged.text = "pending audit"
    inner = t.cell(1, 0).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "inner A", "inner B"
    p = d.add_paragraph("Read the ")
    # A hyperlink, a tracked insertion and deletion, a footnote reference and an equation, as Word writes them.
    part = d.part
    rid = part.relate_to(
        "https://example.org/report",
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink",
        is_external=True,
    )
    p._p.append(
        xml(
            f'<w:hyperlink NS xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" r:id="{rid}"><w:r><w:t>full report</w:t></w:r></w:hyperlink>'
        )
    )
    p._p.append(
        xml(
            '<w:ins NS w:id="1" w:author="Ana" w:date="2026-01-01T00:00:00Z"><w:r><w:t xml:space="preserve"> now online</w:t></w:r></w:ins>'
        )
    )
    p._p.append(
        xml(
            '<w:del NS w:id="2" w:author="Ana" w:date="2026-01-01T00:00:00Z"><w:r><w:delText> on paper</w:delText></w:r></w:del>'
        )
    )
    p._p.append(xml("<w:r NS><w:t>.</w:t></w:r>"))
    p._p.append(xml('<w:r NS><w:footnoteReference w:id="1"/></w:r>'))
    eq = d.add_paragraph("Flow: ")
    eq._p.append(
        xml(
            '<m:oMath xmlns:m="http://schemas.openxmlformats.org/officeDocument/2006/math">'
            "<m:f><m:num><m:r><m:t>Q</m:t></m:r></m:num><m:den><m:r><m:t>A</m:t></m:r></m:den></m:f>"
            "</m:oMath>"
        )
    )
    box = d.add_paragraph()
    box._p.append(
        xml(
            '<w:r NS><w:pict><v:shape xmlns:v="urn:schemas-microsoft-com:vml"><v:textbox><w:txbxContent>'
            "<w:p><w:r><w:t>Callout: boil water notice</w:t></w:r></w:p></w:txbxContent></v:textbox></v:shape>"
            "</w:pict></w:r>"
        )
    )
    outline = d.add_paragraph("Outline-level heading")
    outline._p.get_or_add_pPr().append(xml('<w:outlineLvl NS w:val="1"/>'))
    d.add_paragraph("# not a heading, a paragraph that starts with a hash")
    d.add_comment(d.paragraphs[1].runs, text="Check the dates", author="Ben")
    d.save(path)
    # Footnotes: a part of their own, added to the package as Word does.
    members = zip_members(path)
    members["word/footnotes.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8"?><w:footnotes xmlns:w="{W}">'
        '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
        '<w:footnote w:id="1"><w:p><w:r><w:t>Audited in May.</w:t></w:r></w:p></w:footnote></w:footnotes>'
    ).encode()
    rels = members["word/_rels/document.xml.rels"].decode()
    rels = rels.replace(
        "</Relationships>",
        '<Relationship Id="rIdFn" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/footnotes" Target="footnotes.xml"/></Relationships>',
    )
    members["word/_rels/document.xml.rels"] = rels.encode()
    types = (
        members["[Content_Types].xml"]
        .decode()
        .replace(
            "</Types>",
            '<Override PartName="/word/footnotes.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"/></Types>',
        )
    )
    members["[Content_Types].xml"] = types.encode()
    write_zip(path, members)
    return path


def test_word_keeps_every_word_and_the_structure(tmp_path):
    doc = convert(build_docx(tmp_path / "report.docx"))
    md = doc.markdown
    assert doc.row["modality"] == "document" and doc.row["engines"] == ["markup"]
    assert "# Annual Report" in md and "## Sites" in md and "## Outline-level heading" in md
    assert re.search(r"1\. Oslo depot\n2\. Bergen depot\n  (1\.|a\.|-) Harbour wing", md), md
    assert "| North" in md and "pending audit | pending audit" in md and "inner A; inner B" in md
    assert "[full report](https://example.org/report) now online." in md and "on paper" not in md
    assert "[^1]" in md and "[^1]: Audited in May." in md
    assert "$\\frac{Q}{A}$" in md
    assert "<!-- text box -->\n\nCallout: boil water notice" in md
    assert "<!-- header -->\n\nACME Water Trust" in md and "<!-- footer -->\n\nConfidential draft" in md
    assert "<!-- comments -->" in md and "Ben" in md and "Check the dates" in md
    assert "\\# not a heading" in md
    sections = [s for s in doc.segments if s["segment_kind"] == "section"]
    assert ["Annual Report", "Sites"] in [s["heading_path"] for s in sections]
    assert not doc.errors


def test_a_long_section_becomes_bounded_segments_that_lose_no_word(tmp_path):
    from docx import Document

    d = Document()
    d.add_heading("Minutes", level=1)
    words = [f"item{i}" for i in range(3000)]
    for i in range(0, 3000, 50):
        d.add_paragraph(" ".join(words[i : i + 50]))
    doc = convert(
        d.save(tmp_path / "long.docx") or tmp_path / "long.docx", documents={"max_segment_chars": 2000}
    )
    assert len(doc.segments) > 10 and all(len(s["markdown"]) <= 2000 for s in doc.segments)
    assert doc.markdown.split() == ["#", "Minutes", *words]
    assert all(s["heading_path"] == ["Minutes"] for s in doc.segments)


@pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice converts legacy .doc")
def test_legacy_doc_through_libreoffice(tmp_path):
    src = build_docx(tmp_path / "report.docx")
    legacy = libreoffice_convert(src, "doc", tmp_path, 300)  # the fixture made as the pipeline converts
    named = tmp_path / "renamed.bin"  # typed by its OLE streams, not the name
    shutil.copy(legacy, named)
    doc = convert(named)
    assert doc.row["mime_type"] == "application/msword", doc.errors
    assert (
        "Annual Report" in doc.markdown and "Oslo depot" in doc.markdown and "pending audit" in doc.markdown
    )


def build_xlsx(path: Path) -> Path:
    from openpyxl import Workbook
    from openpyxl.comments import Comment

    wb = Workbook()
    ws = wb.active
    ws.title = "Budget"
    ws.append(["Item", "Cost", "Date", "Share"])
    ws.append(["Pumps", 1234.5, datetime.date(2026, 3, 1), 0.25])
    ws.append(["Filters", 99, datetime.date(2026, 4, 2), 0.755])
    ws["B2"].number_format = "#,##0.00"
    ws["C2"].number_format = "yyyy-mm-dd"
    ws["C3"].number_format = "d-mmm-yy"
    ws["D2"].number_format = "0%"
    ws["D3"].number_format = "0.0%"
    ws["A4"] = "Total"
    ws["B4"] = "=SUM(B2:B3)"
    ws["A6"], ws["A7"] = "Notes", "Merged remark"
    ws.merge_cells("A7:C7")
    ws["A2"].comment = Comment("check the supplier", "Ana")
    hidden = wb.create_sheet("Archive")
    hidden["A1"], hidden["A2"] = "Year", "2019"
    hidden.sheet_state = "hidden"
    wb.save(path)
    # openpyxl writes formulas without results; Excel and LibreOffice store the result they computed.
    members = zip_members(path)
    sheet = members["xl/worksheets/sheet1.xml"].decode()
    assert "<f>SUM(B2:B3)</f><v></v>" in sheet
    members["xl/worksheets/sheet1.xml"] = sheet.replace(
        "<f>SUM(B2:B3)</f><v></v>", "<f>SUM(B2:B3)</f><v>1333.5</v>"
    ).encode()
    write_zip(path, members)
    return path


def test_spreadsheets_give_values_as_displayed(tmp_path):
    doc = convert(build_xlsx(tmp_path / "budget.xlsx"))
    md = doc.markdown
    assert doc.row["modality"] == "spreadsheet"
    assert "| Pumps | 1,234.50 | 2026-03-01 | 25% |" in md
    assert "| Filters | 99 | 2-Apr-26 | 75.5% |" in md
    assert "| Total | 1333.5 |" in md and "SUM(" not in md  # the cached value, never the formula
    assert "| Merged remark | Merged remark | Merged remark |" in md
    assert "- A2 (Ana): check the supplier" in md
    assert "<!-- hidden sheet: Archive -->" in md and "sheet 'Archive' is hidden" in " ".join(
        doc.row["warnings"]
    )
    kinds = {tuple(s["heading_path"]) for s in doc.segments}
    assert kinds == {("Budget",), ("Archive",)}
    regions = [s for s in doc.segments if s["heading_path"] == ["Budget"]]
    assert len(regions) == 2  # two table regions, split at the empty row


def test_a_chartsheet_gives_its_charts_data_from_the_cells_it_plots(tmp_path):
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference

    wb = Workbook()
    ws = wb.active
    ws.title = "Sales 2026"
    for row in [["Region", "Q1", "Q2"], ["North", 120, 135], ["South", 98, 101]]:
        ws.append(row)
    sheet = wb.create_chartsheet("Chart of sales")
    chart = BarChart()
    chart.title = "Sales by region"
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_col=3, max_row=3), titles_from_data=True)
    chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=3))
    sheet.add_chart(chart)
    wb.save(tmp_path / "sales.xlsx")  # openpyxl stores the series' cell references, no cached values
    doc = convert(tmp_path / "sales.xlsx")
    charted = [s for s in doc.segments if s["heading_path"] == ["Chart of sales"]]
    assert len(charted) == 1 and charted[0]["page_number"] == 2
    assert charted[0]["markdown"] == (
        "<!-- chartsheet: Chart of sales -->\n\n<!-- chart -->\n**Sales by region**\n\n"
        "|  | Q1 | Q2 |\n| --- | --- | --- |\n| North | 120 | 135 |\n| South | 98 | 101 |"
    )
    assert not any("chartsheet" in w for w in doc.row["warnings"])


def test_a_sheet_claiming_a_million_rows_converts_its_real_cells(tmp_path):
    path = build_xlsx(tmp_path / "inflated.xlsx")
    members = zip_members(path)
    sheet = members["xl/worksheets/sheet1.xml"].decode()
    members["xl/worksheets/sheet1.xml"] = re.sub(
        r'<dimension ref="[^"]+"/>', '<dimension ref="A1:XFD1048576"/>', sheet
    ).encode()
    write_zip(path, members)
    doc = convert(path)
    assert "| Pumps | 1,234.50 |" in doc.markdown and len(doc.segments) == 3


@pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice converts .xls and .ods")
def test_xls_through_libreoffice_and_ods_typed_by_its_bytes(tmp_path):
    src = build_xlsx(tmp_path / "budget.xlsx")
    doc = convert(libreoffice_convert(src, "xls", tmp_path, 300))
    assert doc.row["mime_type"] == "application/vnd.ms-excel", doc.errors
    assert "Pumps" in doc.markdown and "1,234.50" in doc.markdown and "Merged remark" in doc.markdown
    # ODS takes the same LibreOffice path as XLS; its type comes from its first member.
    from unitok.pipeline.formats.detect import sniff_file

    ods = tmp_path / "sheet.bin"
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr(
            "mimetype", "application/vnd.oasis.opendocument.spreadsheet", compress_type=zipfile.ZIP_STORED
        )
        z.writestr("content.xml", "<office:document-content/>")
    assert sniff_file(ods).mime_type == "application/vnd.oasis.opendocument.spreadsheet"


def test_html_keeps_the_main_content_and_leaves_navigation_out(tmp_path):
    page = tmp_path / "page.html"
    page.write_bytes(
        '<!DOCTYPE html><html><head><meta charset="windows-1252"><title>Site</title><style>p{}</style>'
        "<script>var tracker = 1;</script></head><body><nav><a href='/'>Home</a> <a href='/about'>About us</a></nav>"
        "<main><h1>Annual report</h1><p>Revenue grew by <b>12%</b> in <a href='https://ex.com/q3'>Q3</a> at Tromsø café.</p>"
        "<ul><li>North<ul><li>Oslo</li></ul></li><li>South</li></ul>"
        "<table><tr><th>Region</th><th>Sales</th></tr><tr><td>North</td><td>10</td></tr></table>"
        "<pre>x = 1\n  y = 2</pre><img src='a.png' alt='Map of the sites'></main>"
        "<footer>Copyright ACME</footer></body></html>".encode("cp1252")
    )
    md = convert(page).markdown
    assert md.startswith("<!-- title: Site -->\n\n# Annual report")  # the title the body does not repeat
    assert "Revenue grew by **12%** in [Q3](https://ex.com/q3) at Tromsø café." in md
    assert "- North\n  - Oslo\n- South" in md and "| North | 10 |" in md
    assert "```\nx = 1\n  y = 2\n```" in md and "<!-- image --> *Map of the sites*" in md
    assert "Home" not in md and "About us" not in md and "tracker" not in md and "Copyright" not in md


def test_markdown_and_text_are_kept_as_written(tmp_path):
    text = "# Field notes\n\nWater filters were *replaced*.\n\n## Site A\n\n- pump 1\n\n```\n# not a heading\n```"
    (tmp_path / "notes.md").write_text(text)
    doc = convert(tmp_path / "notes.md")
    assert doc.markdown == text
    assert [s["heading_path"] for s in doc.segments] == [["Field notes"], ["Field notes", "Site A"]]
    (tmp_path / "plain.txt").write_text("First line.\n\nSecond paragraph.\n")
    assert convert(tmp_path / "plain.txt").markdown == "First line.\n\nSecond paragraph."


def test_csv_and_tsv_become_tables_of_bounded_rows(tmp_path):
    with open(tmp_path / "stock.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item", "qty"])
        w.writerows([[f"item {i}", i] for i in range(25)])
    doc = convert(tmp_path / "stock.csv", documents={"max_rows_per_segment": 10})
    assert len(doc.segments) == 3 and all(s["markdown"].startswith("| item | qty |") for s in doc.segments)
    assert "| item 24 | 24 |" in doc.markdown
    (tmp_path / "stock.tsv").write_text("a\tb\n1\t2\n")
    assert "| 1 | 2 |" in convert(tmp_path / "stock.tsv").markdown


def build_epub(path: Path, chapters: list[tuple[str, str]], spine_extra: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>',
        )
        items = "".join(
            f'<item id="c{i}" href="ch{i}.xhtml" media-type="application/xhtml+xml"/>'
            for i in range(len(chapters))
        )
        spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters))) + spine_extra
        z.writestr(
            "OEBPS/content.opf",
            f'<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><manifest>{items}</manifest><spine>{spine}</spine></package>',
        )
        for i, (title, body) in enumerate(chapters):
            z.writestr(
                f"OEBPS/ch{i}.xhtml",
                f'<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><body><h1>{title}</h1><p>{body}</p></body></html>',
            )
    return path


def test_epub_chapters_in_reading_order(tmp_path):
    doc = convert(
        build_epub(
            tmp_path / "book.epub",
            [("Chapter One", "It was a dark night."), ("Chapter Two", "Morning came.")],
        )
    )
    assert doc.markdown == "# Chapter One\n\nIt was a dark night.\n\n# Chapter Two\n\nMorning came."
    assert [s["segment_kind"] for s in doc.segments] == ["chapter", "chapter"]
    assert [s["page_number"] for s in doc.segments] == [1, 2]


def build_email(path: Path) -> Path:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Ana <ana@example.com>", "ops@example.com", "Pump report"
    m["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    m.set_content("The pumps at site A were serviced.")
    m.add_attachment(
        (REPO / "sample" / "field-report.pdf").read_bytes(),
        maintype="application",
        subtype="pdf",
        filename="report.pdf",
    )
    m.add_attachment(b"not a real image", maintype="image", subtype="png", filename="broken.png")
    path.write_bytes(bytes(m))
    return path


def test_email_attachments_are_documents_of_their_own_linked_to_their_message(tmp_path):
    doc = convert(build_email(tmp_path / "mail.eml"))
    md = doc.markdown
    assert doc.row["modality"] == "email" and doc.row["parent_doc_id"] is None
    assert "**Subject:** Pump report" in md and "The pumps at site A were serviced." in md
    (report,) = doc.attachments
    assert "water filters" not in md.lower()  # the attachment's words are in its own document only
    assert "water filters" in report.markdown.lower()  # its pages, by the PDF text engine
    assert report.row["parent_doc_id"] == doc.row["doc_id"] != report.row["doc_id"]
    assert (report.row["modality"], report.row["mime_type"]) == ("pdf", "application/pdf")
    assert report.row["source_uri"] == doc.row["source_uri"]  # the bytes are in the listed message
    assert report.row["engines"] == ["pdf_text"] and doc.row["engines"] == ["markup"]
    assert report.segments and all(s["heading_path"] == ["attachment: report.pdf"] for s in report.segments)
    assert [s["segment_kind"] for s in doc.segments] == ["message"]
    (err,) = doc.errors  # an attachment that gave no document: its error and gap are the message's
    assert "attachment 'broken.png'" in err["message"] and err["segment_index"] > 0  # the message goes on
    assert md.endswith(f"<!-- segment {err['segment_index']} not converted: {err['error_type']} -->")
    # Each segment's character offsets point at its Markdown in its document's.
    for d in (doc, report):
        for s in d.segments:
            assert d.markdown[s["char_start"] : s["char_end"]] == s["markdown"]


def test_an_outlook_msg_gives_its_headers_body_and_attachments_as_documents_of_their_own(tmp_path):
    from ole_writer import msg_streams, write_cfb

    pdf = (REPO / "sample" / "field-report.pdf").read_bytes()
    streams = msg_streams("Pump report", "Ana Berg", "ana@example.com", "ops@example.com",
                          "The pumps at site A were serviced.", [("report.pdf", pdf)])  # fmt: skip
    doc = convert(write_cfb(tmp_path / "mail-without-extension", streams))
    assert doc.row["mime_type"] == "application/vnd.ms-outlook"  # typed by its streams, not its name
    assert doc.markdown == (
        "**From:** Ana Berg <ana@example.com>  \n**To:** ops@example.com  \n**Subject:** Pump report\n\n"
        "The pumps at site A were serviced."
    )
    (report,) = doc.attachments
    assert report.row["parent_doc_id"] == doc.row["doc_id"] and report.row["mime_type"] == "application/pdf"
    assert "1,200 water filters" in report.markdown
    assert report.segments[0]["heading_path"] == ["attachment: report.pdf"]


def test_hostile_documents_give_an_error_row_or_a_bounded_result(tmp_path):
    # A zip bomb: a DOCX whose members claim far more than the limit.
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document xmlns:w='x'>" + " " * (3 << 20) + "</w:document>")
    doc = convert(bomb, documents={"max_uncompressed_bytes": 1 << 20})
    assert doc.row is None and "zip bomb" in doc.errors[0]["message"]
    # An XML bomb (billion laughs) in an XHTML chapter: entities are not expanded.
    laughs = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><html><body><p>&d;&d;&d;&d;&d;&d;&d;&d;</p></body></html>'
    (tmp_path / "laughs.html").write_text(laughs)
    doc = convert(tmp_path / "laughs.html")
    assert len(doc.markdown if doc.row else "") < 100_000
    # A malformed EPUB: no container; and one whose spine names a missing chapter.
    broken = tmp_path / "broken.epub"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
    doc = convert(broken)
    assert doc.row is None and "malformed EPUB" in doc.errors[0]["message"]
    gap = convert(build_epub(tmp_path / "gap.epub", [("One", "First.")], '<itemref idref="missing"/>'))
    assert gap.markdown.startswith("# One")
    # Messages nested far deeper than opened: bounded, and said.
    inner = EmailMessage()
    inner["From"], inner["Subject"] = "a@example.com", "level 0"
    inner.set_content("deepest")
    for level in range(1, 12):
        outer = EmailMessage()
        outer["From"], outer["Subject"] = "a@example.com", f"level {level}"
        outer.set_content(f"body {level}")
        outer.add_attachment(inner)
        inner = outer
    (tmp_path / "nested.eml").write_bytes(bytes(inner))
    doc = convert(tmp_path / "nested.eml")
    texts = [doc.markdown] + [a.markdown for a in doc.attachments]
    assert "body 11" in doc.markdown and not any("deepest" in t for t in texts)
    assert len(doc.attachments) == 5  # each nested message a document, five levels down
    parents = [doc.row["doc_id"]] + [a.row["doc_id"] for a in doc.attachments[:-1]]
    assert [a.row["parent_doc_id"] for a in doc.attachments] == parents
    assert any("nested more than" in e["message"] for d in [doc, *doc.attachments] for e in d.errors)


def test_types_come_from_the_bytes_and_the_same_rows_on_every_driver(tmp_path, ray_local):
    """A folder of every document type through the local and Ray drivers: the same rows."""
    import pyarrow.compute as pc
    from unitok.pipeline.job import run_job

    src = tmp_path / "in"
    src.mkdir()
    build_docx(src / "report.docx")
    build_xlsx(src / "budget.xlsx")
    build_epub(src / "book.epub", [("One", "First.")])
    (src / "notes.md").write_text("# Notes\n\nKept.")
    (src / "stock.csv").write_text("a,b\n1,2\n")
    (src / "page.htm").write_text("<html><body><p>Hello page</p></body></html>")
    shutil.copy(src / "report.docx", src / "report-without-extension")
    build_email(src / "mail.eml")
    tables = {}
    for executor in ("local", "ray"):
        cfg = parse_config({"source": {"uri": str(src)}, "output": {"uri": str(tmp_path / executor)},
                            "runtime": {"executor": executor}})  # fmt: skip
        run_job(cfg, {})
        tables[executor] = unitok.read_table(tmp_path / executor, "documents").sort_by("source_uri")
    local, ray = tables["local"], tables["ray"]
    assert local.num_rows == 9  # the message's attachment is a document of its own
    for col in ("doc_id", "markdown", "modality", "mime_type", "engines", "parent_doc_id"):
        assert local[col].to_pylist() == ray[col].to_pylist(), col
    named = pc.ends_with(local["source_uri"], "report-without-extension")
    assert local.filter(named)["modality"].to_pylist() == ["document"]
