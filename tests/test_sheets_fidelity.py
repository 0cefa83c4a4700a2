# ruff: noqa: E501 - the fixtures hold SpreadsheetML and DrawingML as Excel writes them
"""Spreadsheet fidelity, each case a workbook built here with known words (openpyxl, plus the raw parts
openpyxl cannot write): a used range inflated to XFD1048576 and rows of empty styled cells, charts on a
worksheet and on a chartsheet with their cached titles and series, legacy and threaded comments, several
tables on one sheet with a title line. Every value the author wrote comes out, and no word they did not."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest
import unitok
from unitok.pipeline.formats import sheets

openpyxl = pytest.importorskip("openpyxl")

_MARKUP = re.compile(r"<!--.*?-->|^\s*(#{1,6}|[-*+]|\d+\.|>)\s+|\|\s*-{3,}\s*|\*\*", re.M)
_EDGE = ".,;:!?()[]{}\"'*_`"


def words(text: str) -> list[str]:
    """The words of a text, Markdown syntax and unitok's markers left out."""
    text = _MARKUP.sub(" ", text)
    return [t.strip(_EDGE) for t in re.findall(r"[^\s|]+", text) if t.strip(_EDGE)]


def convert(path: Path, **config):
    return unitok.convert(path, config=config or None)


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_zip(path: Path, parts: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in parts.items():
            z.writestr(n, data)


def add_rel(parts: dict[str, bytes], rels: str, rid: str, rtype: str, target: str) -> None:
    """A relationship added to a part's .rels (made when the part has none)."""
    ns = "http://schemas.openxmlformats.org/package/2006/relationships"
    xml = parts.get(
        rels, f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{ns}"></Relationships>'.encode()
    ).decode()
    rel = f'<Relationship Id="{rid}" Type="{rtype}" Target="{target}"/>'
    parts[rels] = xml.replace("</Relationships>", rel + "</Relationships>").encode()


def add_override(parts: dict[str, bytes], name: str, content_type: str) -> None:
    ct = parts["[Content_Types].xml"].decode()
    parts["[Content_Types].xml"] = ct.replace(
        "</Types>", f'<Override PartName="/{name}" ContentType="{content_type}"/></Types>'
    ).encode()


# -- an inflated used range ---------------------------------------------------------------------------
EMPTY_COLS = 400  # styled empty cells per row, to column OJ
EMPTY_ROWS = 2500  # rows of them under the data: a million empty cell elements per sheet


def styled_rows(first: int) -> str:
    """Rows of empty cells that carry only a style, as a workbook formatted to the sheet's edge has."""
    cols = [sheets.col_letters(c) for c in range(1, EMPTY_COLS + 1)]
    return "".join(
        f'<row r="{r}">' + "".join(f'<c r="{c}{r}" s="1"/>' for c in cols) + "</row>"
        for r in range(first, first + EMPTY_ROWS)
    )


def build_inflated(path: Path) -> Path:
    wb = openpyxl.Workbook()
    wb.active.title = "Plan"
    for n, name in enumerate(["Plan", "Staff", "Sites", "Costs"]):
        ws = wb[name] if name in wb.sheetnames else wb.create_sheet(name)
        ws.append(["Key", "Label"])
        ws.append([f"{name.lower()}-{n}", f"{name} ledger entry"])
        ws["A1"].font = openpyxl.styles.Font(bold=True)  # a second cell style for the empty cells
    wb.save(path)
    parts = members(path)
    for n in range(1, 5):
        name = f"xl/worksheets/sheet{n}.xml"
        xml = parts[name].decode()
        xml = re.sub(r'<dimension ref="[^"]+"/>', '<dimension ref="A1:XFD1048576"/>', xml)
        parts[name] = xml.replace("</sheetData>", styled_rows(3) + "</sheetData>").encode()
    write_zip(path, parts)
    return path


def test_an_inflated_used_range_costs_only_the_cells_that_hold_values(tmp_path):
    path = build_inflated(tmp_path / "inflated.xlsx")
    with zipfile.ZipFile(path) as z:
        book = sheets._Book(sheets._Package(z), [])
        left = sheets.read_sheet(book, book.sheets[0], 10)
        seen, kept = book.sheets[0].seen, len(book.sheets[0].cells)
    assert seen == 4 + EMPTY_ROWS * EMPTY_COLS  # every element was passed over, a million of them ...
    assert kept == 4 and left == 6  # ... and only the four that hold values were kept and counted
    # A cell limit far below the empty cells' count: every sheet still comes out whole, no warning.
    doc = convert(path, documents={"max_cells": 100})
    md = doc.markdown
    for n, name in enumerate(["Plan", "Staff", "Sites", "Costs"]):
        assert f"| {name.lower()}-{n} | {name} ledger entry |" in md
        assert f"<!-- sheet: {name} -->\n\n<!-- range: A1:B2 -->" in md
    assert not any("max_cells" in w for w in doc.row["warnings"]), doc.row["warnings"]
    assert set(words(md)) == {"Key", "Label"} | {f"{s.lower()}-{n}" for n, s in enumerate(["Plan", "Staff", "Sites", "Costs"])} | {
        "Plan", "Staff", "Sites", "Costs", "ledger", "entry"}  # fmt: skip


def test_the_cell_limit_counts_values_and_says_what_it_left_out(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "First"
    for r in range(1, 11):
        wb.active.append([f"a{r}", f"b{r}"])
    wb.create_sheet("Second").append(["late", "value"])
    wb.save(tmp_path / "limit.xlsx")
    doc = convert(tmp_path / "limit.xlsx", documents={"max_cells": 15})
    assert "| a7 | b7 |" in doc.markdown and "a9" not in doc.markdown and "late" not in doc.markdown
    said = " ".join(doc.row["warnings"])
    assert "the rest of sheet 'First' left out" in said and "'Second' left out" in said


# -- charts -------------------------------------------------------------------------------------------
C = 'xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def cached_chart(title: str, series: list[tuple[str, list[float]]], categories: list[str]) -> bytes:
    """A bar chart part as Excel saves it: rich-text title, series names and points in their caches."""
    cat = "".join(f'<c:pt idx="{i}"><c:v>{v}</c:v></c:pt>' for i, v in enumerate(categories))
    sers = "".join(
        f'<c:ser><c:idx val="{k}"/><c:order val="{k}"/>'
        f'<c:tx><c:strRef><c:f>Data!${"BC"[k]}$1</c:f><c:strCache><c:ptCount val="1"/><c:pt idx="0"><c:v>{name}</c:v></c:pt></c:strCache></c:strRef></c:tx>'
        f'<c:cat><c:strRef><c:f>Data!$A$2:$A${len(categories) + 1}</c:f><c:strCache><c:ptCount val="{len(categories)}"/>{cat}</c:strCache></c:strRef></c:cat>'
        f'<c:val><c:numRef><c:f>Data!${"BC"[k]}$2:${"BC"[k]}${len(values) + 1}</c:f><c:numCache><c:formatCode>General</c:formatCode><c:ptCount val="{len(values)}"/>'
        + "".join(f'<c:pt idx="{i}"><c:v>{v}</c:v></c:pt>' for i, v in enumerate(values))
        + "</c:numCache></c:numRef></c:val></c:ser>"
        for k, (name, values) in enumerate(series)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><c:chartSpace {C}><c:chart>'
        f'<c:title><c:tx><c:rich><a:bodyPr/><a:p><a:r><a:t>{title}</a:t></a:r></a:p></c:rich></c:tx><c:overlay val="0"/></c:title>'
        f'<c:plotArea><c:layout/><c:barChart><c:barDir val="col"/><c:grouping val="clustered"/>{sers}'
        '<c:axId val="1"/><c:axId val="2"/></c:barChart></c:plotArea></c:chart></c:chartSpace>'
    ).encode()


def build_charts(path: Path) -> Path:
    from openpyxl.chart import BarChart, Reference

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    for row in [["Month", "Revenue", "Costs"], ["January", 310, 120], ["February", 295, 140]]:
        ws.append(row)
    for holder in (ws, wb.create_chartsheet("Overview")):
        chart = BarChart()
        chart.add_data(Reference(ws, min_col=2, min_row=1, max_col=3, max_row=3), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=3))
        if holder is ws:
            ws.add_chart(chart, "E2")
        else:
            holder.add_chart(chart)
    wb.save(path)
    parts = members(path)
    charts = sorted(n for n in parts if n.startswith("xl/charts/chart"))
    assert len(charts) == 2
    # The cache holds what Excel computed when it saved; the cells here differ on purpose, so the test
    # tells which one was read.
    parts[charts[0]] = cached_chart("Monthly revenue", [("Revenue", [310.5, 295.25]), ("Costs", [120, 140])], ["January", "February"])  # fmt: skip
    parts[charts[1]] = cached_chart("Margin overview", [("Revenue", [310.5, 295.25])], ["January", "February"])  # fmt: skip
    write_zip(path, parts)
    return path


def test_charts_on_a_worksheet_and_a_chartsheet_give_title_series_and_cached_values(tmp_path):
    doc = convert(build_charts(tmp_path / "charts.xlsx"))
    by_sheet = {}
    for s in doc.segments:
        by_sheet.setdefault(s["heading_path"][0], []).append(s["markdown"])
    on_sheet = by_sheet["Data"][-1]
    assert on_sheet == (
        "<!-- sheet: Data -->\n\n<!-- chart -->\n**Monthly revenue**\n\n"
        "|  | Revenue | Costs |\n| --- | --- | --- |\n| January | 310.5 | 120 |\n| February | 295.25 | 140 |"
    )
    assert by_sheet["Overview"] == [
        "<!-- chartsheet: Overview -->\n\n<!-- chart -->\n**Margin overview**\n\n"
        "|  | Revenue |\n| --- | --- |\n| January | 310.5 |\n| February | 295.25 |"
    ]
    authored = {"Month", "Revenue", "Costs", "January", "February", "310", "120", "295", "140", "310.5",
                "295.25", "Monthly", "revenue", "Margin", "overview"}  # fmt: skip
    assert set(words(doc.markdown)) <= authored
    assert not doc.row["warnings"]


# -- comments -----------------------------------------------------------------------------------------
TC_NS = "http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments"
PLACEHOLDER = (
    "[Threaded comment]\n\nYour version of Excel allows you to read this threaded comment; however, any "
    "edits to it will get removed if the file is opened in a newer version of Excel. Learn more: "
    "https://go.microsoft.com/fwlink/?linkid=870924\n\nComment:\n    Is the pump price final?\nReply:\n"
    "    Yes, quoted by Hydra."
)


def build_comments(path: Path, threaded_part: bool = True) -> Path:
    from openpyxl.comments import Comment

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Orders"
    for row in [["Part", "Price"], ["Pump", 480], ["Valve", 35]]:
        ws.append(row)
    ws["A3"].comment = Comment("Maria Lopez:\nValve supplier changed in May", "Maria Lopez")
    ws["B2"].comment = Comment(PLACEHOLDER, "tc={11111111-2222-3333-4444-555555555555}")
    wb.save(path)
    if not threaded_part:
        return path
    parts = members(path)
    parts["xl/threadedComments/threadedComment1.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><ThreadedComments xmlns="{TC_NS}">'
        '<threadedComment ref="B2" dT="2026-03-01T10:00:00.00" personId="{AAAA0000-0000-0000-0000-000000000001}" id="{11111111-2222-3333-4444-555555555555}"><text>Is the pump price final?</text></threadedComment>'
        '<threadedComment ref="B2" dT="2026-03-01T11:00:00.00" personId="{AAAA0000-0000-0000-0000-000000000002}" id="{11111111-2222-3333-4444-555555555556}" parentId="{11111111-2222-3333-4444-555555555555}"><text>Yes, quoted by Hydra.</text></threadedComment>'
        "</ThreadedComments>"
    ).encode()
    parts["xl/persons/person.xml"] = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><personList xmlns="{TC_NS}">'
        '<person displayName="Ana Silva" id="{AAAA0000-0000-0000-0000-000000000001}" userId="ana@example.org" providerId="None"/>'
        '<person displayName="Ben Okafor" id="{AAAA0000-0000-0000-0000-000000000002}" userId="ben@example.org" providerId="None"/>'
        "</personList>"
    ).encode()
    add_rel(parts, "xl/worksheets/_rels/sheet1.xml.rels", "rIdTc1", "http://schemas.microsoft.com/office/2017/10/relationships/threadedComment", "../threadedComments/threadedComment1.xml")  # fmt: skip
    add_rel(parts, "xl/_rels/workbook.xml.rels", "rIdP1", "http://schemas.microsoft.com/office/2017/10/relationships/person", "persons/person.xml")  # fmt: skip
    add_override(
        parts, "xl/threadedComments/threadedComment1.xml", "application/vnd.ms-excel.threadedcomments+xml"
    )
    add_override(parts, "xl/persons/person.xml", "application/vnd.ms-excel.person+xml")
    write_zip(path, parts)
    return path


def test_comments_and_threaded_comments_give_their_text_and_authors_never_the_placeholder(tmp_path):
    md = convert(build_comments(tmp_path / "orders.xlsx")).markdown
    assert "| Pump | 480 |" in md
    assert "- A3 (Maria Lopez): Valve supplier changed in May" in md
    assert "- B2 (Ana Silva): Is the pump price final?\n- B2 (Ben Okafor): Yes, quoted by Hydra." in md
    assert "Your version" not in md and "Threaded comment" not in md and "tc=" not in md
    # Without the threaded part (a file cut down by another tool): the thread's words from the placeholder.
    md = convert(build_comments(tmp_path / "bare.xlsx", threaded_part=False)).markdown
    assert "- B2: Is the pump price final? / Yes, quoted by Hydra." in md
    assert "Your version" not in md and "Learn more" not in md


# -- table regions ------------------------------------------------------------------------------------
def build_regions(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Report"
    ws["B1"] = "Regional sales 2026"  # a title line right above its table
    for r, row in enumerate([["Region", "Q1", "Q2"], ["North", 120, 135], ["South", 98, 101]], start=2):
        for c, v in enumerate(row, start=2):
            ws.cell(r, c, v)
    for r, row in enumerate([["Team", "Head"], ["Pumps", "Ana"], ["Valves", "Ben"]], start=2):
        for c, v in enumerate(row, start=6):  # beside the first, one empty column (E) between
            ws.cell(r, c, v)
    ws["B7"] = "Targets"  # a title line above a second table, after an empty row
    ws.merge_cells("B7:D7")
    for r, row in enumerate([["Year", "Units"], [2026, 5000], [2027, 6200]], start=8):
        for c, v in enumerate(row, start=2):
            ws.cell(r, c, v)
    ws["B13"] = "Figures are provisional."  # a note on its own
    wb.save(path)
    return path


def test_several_tables_on_a_sheet_are_each_a_table_with_its_range_and_title_lines_are_text(tmp_path):
    doc = convert(build_regions(tmp_path / "report.xlsx"))
    got = [s["markdown"].split("\n\n", 1)[1] for s in doc.segments]
    assert got == [
        "<!-- range: B1:D4 -->\n\nRegional sales 2026\n\n"
        "| Region | Q1 | Q2 |\n| --- | --- | --- |\n| North | 120 | 135 |\n| South | 98 | 101 |",
        "<!-- range: F2:G4 -->\n\n| Team | Head |\n| --- | --- |\n| Pumps | Ana |\n| Valves | Ben |",
        "<!-- range: B7:D10 -->\n\nTargets\n\n| Year | Units |\n| --- | --- |\n| 2026 | 5000 |\n| 2027 | 6200 |",
        "<!-- range: B13 -->\n\nFigures are provisional.",
    ]


def test_region_cutting_is_bounded_on_a_staircase_and_a_diagonal():
    stairs = [
        (r, c) for k in range(300) for r, c in ((2 * k, 2 * k), (2 * k, 2 * k + 1), (2 * k + 1, 2 * k + 1))
    ]
    blocks = sheets.table_regions(stairs)
    assert sorted(rc for b in blocks for rc in b) == sorted(stairs)
    diagonal = [(k, k) for k in range(1, 20001)]  # one block whose table would be 400 million cells
    assert sheets.table_regions(diagonal) == [diagonal]


def test_a_sparse_block_keeps_every_value_as_lines(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    for k in range(1, 501):
        ws.cell(k, k, f"w{k}")
    wb.save(tmp_path / "diag.xlsx")
    doc = convert(tmp_path / "diag.xlsx", documents={"max_cells": 1000})
    assert sorted(words(doc.markdown)) == sorted(f"w{k}" for k in range(1, 501))


def test_values_display_as_excel_shows_them(tmp_path):
    import datetime

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Sum", "When", "Flag", "Big", "Text"])
    ws.append([0.1 + 0.2, datetime.datetime(2026, 5, 4, 13, 30), True, 12345678901234567890, "a_x000D_b"])
    ws["B2"].number_format = "yyyy-mm-dd hh:mm"
    wb.save(tmp_path / "values.xlsx")
    md = convert(tmp_path / "values.xlsx").markdown
    assert "| 0.3 | 2026-05-04 13:30 | TRUE | 1.23456789012346e+19 | a<br>b |" in md


def test_cells_without_references_take_their_place_in_the_row(tmp_path):
    wb = openpyxl.Workbook()
    wb.active["A1"] = "placeholder"
    wb.save(tmp_path / "bare.xlsx")
    parts = members(tmp_path / "bare.xlsx")
    xml = parts["xl/worksheets/sheet1.xml"].decode()
    rows = (
        '<row><c t="inlineStr"><is><t>Name</t></is></c><c s="1"/><c t="inlineStr"><is><t>Age</t></is></c></row>'
        '<row><c t="inlineStr"><is><t>Ada</t></is></c><c r="B2" s="1"/><c><v>36</v></c></row>'
    )
    parts["xl/worksheets/sheet1.xml"] = re.sub(
        r"<sheetData>.*</sheetData>", f"<sheetData>{rows}</sheetData>", xml
    ).encode()
    write_zip(tmp_path / "bare.xlsx", parts)
    md = convert(tmp_path / "bare.xlsx").markdown
    assert "<!-- range: A1:C2 -->\n\n| Name |  | Age |\n| --- | --- | --- |\n| Ada |  | 36 |" in md


def build_pictures(path: Path) -> Path:
    """A sheet with a table and two pictures (openpyxl), one with alt text (set in the drawing's XML)."""
    import io

    from openpyxl.drawing.image import Image as XlImage
    from PIL import Image

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Plant"
    ws.append(["Pump", "Flow"])
    ws.append(["P1", 12])
    for anchor, colour in (("D2", (200, 30, 30)), ("D20", (30, 30, 200))):
        buf = io.BytesIO()
        Image.new("RGB", (120, 90), colour).save(buf, format="PNG")
        buf.seek(0)
        img = XlImage(buf)
        img.anchor = anchor
        ws.add_image(img)
    wb.save(path)
    parts = members(path)
    name = next(n for n in parts if n.startswith("xl/drawings/drawing") and n.endswith(".xml"))
    # openpyxl writes descr="Picture" on each: the first gets its author's text, the second none.
    xml = parts[name].decode().replace(' descr="Picture"', ' descr="Pump room floor plan"', 1)
    parts[name] = xml.replace(' descr="Picture"', "").encode()
    write_zip(path, parts)
    return path


def test_pictures_on_a_sheet_keep_their_alt_text_and_are_found_for_descriptions(tmp_path):
    from unitok.connectors.objects import ObjectInfo
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.core.records import Renditions
    from unitok.pipeline.formats.split import split_file

    path = build_pictures(tmp_path / "plant.xlsx")
    doc = convert(path)
    assert doc.ok and not doc.errors, doc.errors
    assert "<!-- image --> *Pump room floor plan*\n\n<!-- image -->" in doc.markdown, doc.markdown
    assert words(doc.markdown) == "Pump Flow P1 12 Pump room floor plan".split()
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}})
    obj = ObjectInfo(uri=path.as_uri(), key=path.name, size=path.stat().st_size, modified_at=0.0)
    segs = list(split_file(path, obj, cfg, Renditions(pictures=True)))
    assert [len(s.pictures_png) for s in segs] == [0, 2]
    assert all(s.pictures_png == [] for s in split_file(path, obj, cfg, Renditions()))
