"""Tables without ruling lines, from whitespace-aligned columns, and the text that must never become one:
PDFs written by hand in the tests (every byte known), pages of the corpus without tables."""

from __future__ import annotations

import time

import pypdfium2 as pdfium
import pytest
import unitok
from conftest import corpus
from handmade import hand_pdf, ruled_table, text_at
from unitok.pipeline.formats import pdf
from unitok.pipeline.formats.pdf_tables import aligned_tables, find_tables

ROWS = [["Region", "Product", "Units", "Revenue"], ["North", "Pumps", "120", "14,400.00"],
        ["South", "Filters", "85", "2,125.50"], ["East", "Spare parts", "12", "480.00"],
        ["West", "Transport", "4", "88.00"]]  # fmt: skip
XS = (72, 180, 300, 400)


def convert(tmp_path, content: str, name: str = "page.pdf") -> str:
    path = tmp_path / name
    path.write_bytes(hand_pdf(content))
    return unitok.convert(path).markdown


def page_tables(tmp_path, content: str) -> list[list[list[str]]]:
    path = tmp_path / "page.pdf"
    path.write_bytes(hand_pdf(content))
    doc = pdfium.PdfDocument(str(path))
    try:
        page = doc[0]
        textpage = page.get_textpage()
        return [rows for _, rows in pdf._page_lines(textpage, find_tables(page, textpage)).tables]
    finally:
        doc.close()


def words(text: str) -> list[str]:
    return [w for w in text.replace("|", " ").replace("\\", "").split() if w != "---"]


def one_object_row(x: float, y: float, cells: list[str], gutter: int = -3000) -> str:
    """A row in one text object, moved from cell to cell inside its TJ (as pdfTeX sets a tabular): pdfium
    reads it as one run, its columns only in the gaps between words."""
    parts = f" {gutter} ".join(f"({c})" for c in cells)
    return f"BT /F1 10 Tf {x} {y} Td [{parts}] TJ ET\n"


def test_a_table_set_row_by_row_in_one_text_object_is_found(tmp_path):
    content = text_at(72, 740, "Quarterly results by region.")
    content += "".join(one_object_row(72, 710 - 16 * r, row) for r, row in enumerate(ROWS))
    content += text_at(72, 610, "All figures exclude taxes.")
    md = convert(tmp_path, content)
    assert md == (
        "Quarterly results by region.\n\n| Region | Product | Units | Revenue |\n| --- | --- | --- | --- |\n"
        "| North | Pumps | 120 | 14,400.00 |\n| South | Filters | 85 | 2,125.50 |\n"
        "| East | Spare parts | 12 | 480.00 |\n| West | Transport | 4 | 88.00 |\n\nAll figures exclude taxes."
    )


def test_a_table_between_horizontal_rules_only_is_found_from_its_columns(tmp_path):
    """booktabs: rules above, under the heading and below, none between the columns."""
    rules = "0.5 w\n" + "".join(f"70 {y} m 470 {y} l S\n" for y in (724, 704, 628))
    cells = "".join(
        text_at(x, (710 if r == 0 else 690 - 16 * (r - 1)), c)
        for r, row in enumerate(ROWS)
        for x, c in zip(XS, row, strict=True)
    )
    assert page_tables(tmp_path, rules + cells) == [ROWS]


def test_a_wrapped_cell_and_an_empty_cell_stay_in_their_row(tmp_path):
    """Rows spaced wider than the lines of a wrapped cell (a word processor's table): the cell's lines are
    one cell, a hyphenated word joined; an empty cell is an empty cell."""
    lines = [
        (700, [(72, "Name"), (200, "Role"), (320, "Notes")]),
        (676, [(72, "Amina Yusuf"), (200, "Chair"), (320, "Leads the water commit-")]),
        (664, [(320, "tee and signs the reports")]),
        (640, [(72, "Tom Baker"), (320, "Treasurer until May")]),
        (616, [(72, "Li Wei"), (200, "Engineer"), (320, "Pumps")]),
    ]
    content = "".join(text_at(x, y, t) for y, cells in lines for x, t in cells)
    assert page_tables(tmp_path, content) == [
        [
            ["Name", "Role", "Notes"],
            ["Amina Yusuf", "Chair", "Leads the water committee and signs the reports"],
            ["Tom Baker", "", "Treasurer until May"],
            ["Li Wei", "Engineer", "Pumps"],
        ]
    ]


def test_a_ruled_table_is_still_read_from_its_rules(tmp_path):
    grid = ruled_table(72, 690, [120, 80], [["Region", "Q1"], ["North", "1,200"], ["South", "980"]])
    assert page_tables(tmp_path, grid) == [[["Region", "Q1"], ["North", "1,200"], ["South", "980"]]]


LEFT = ["The water committee met on", "Monday to discuss the state", "of the pumps up north",
        "villages and the budget for", "the coming dry season, and", "agreed to meet once more."]  # fmt: skip
RIGHT = ["Volunteers reported that two", "of the filters at the school", "were clogged and that the",
         "spare parts had not arrived", "from the supplier in the", "capital by the end of May."]  # fmt: skip


@pytest.mark.parametrize("one_object", [False, True])
def test_two_narrow_columns_of_prose_are_not_a_table(tmp_path, one_object):
    """An article in two columns drawn line by line across both: short lines, aligned, and prose."""
    if one_object:
        content = "".join(
            one_object_row(72, 700 - 14 * i, [a, b], -6000)
            for i, (a, b) in enumerate(zip(LEFT, RIGHT, strict=True))
        )
    else:
        content = "".join(
            text_at(72, 700 - 14 * i, a) + text_at(260, 700 - 14 * i, b)
            for i, (a, b) in enumerate(zip(LEFT, RIGHT, strict=True))
        )
    md = convert(tmp_path, content)
    assert "|" not in md
    assert sorted(words(md)) == sorted(w for line in LEFT + RIGHT for w in line.split())


def test_justified_text_with_wide_spaces_is_not_a_table(tmp_path):
    """Justified lines stretch their spaces, some past a gutter's width, but never at the same place."""
    lines = [["The committee", "met on Monday", "to discuss the pumps"],
             ["in the northern villages", "and the", "budget"],
             ["for the dry season.", "Volunteers", "said that two filters"],
             ["were clogged", "and that spare parts", "had not"],
             ["arrived from the", "supplier in the", "capital city."]]  # fmt: skip
    content = "".join(one_object_row(72, 700 - 14 * i, parts, -1400) for i, parts in enumerate(lines))
    md = convert(tmp_path, content)
    assert "|" not in md
    assert sorted(words(md)) == sorted(w for parts in lines for p in parts for w in p.split())


@pytest.mark.parametrize("marker", ["{}.", "({})", "*", "-"])
def test_a_list_with_hanging_indents_is_not_a_table(tmp_path, marker):
    items = [
        ["Pumps are serviced", "every month."],
        ["Filters are changed", "every week."],
        ["Spare parts are", "ordered early."],
    ]
    content, y = "", 700
    for n, (first, second) in enumerate(items, 1):
        content += text_at(72, y, marker.format(n)) + text_at(100, y, first) + text_at(100, y - 13, second)
        y -= 30
    md = convert(tmp_path, content)
    assert "|" not in md
    assert sorted(words(md)) == sorted(
        words(" ".join(marker.format(n) + " " + " ".join(i) for n, i in enumerate(items, 1)))
    )


def test_a_table_of_contents_is_not_a_table(tmp_path):
    """Section numbers and titles, dot leaders set apart from the title and the page number."""
    entries = [
        ("1", "Introduction", "1"),
        ("2", "Methods", "4"),
        ("2.1", "Sampling", "5"),
        ("3", "Results", "12"),
    ]
    leaders = "".join(
        text_at(72, 700 - 16 * i, number) + text_at(110, 700 - 16 * i, title)
        + text_at(250, 700 - 16 * i, ". " * 30) + text_at(500, 700 - 16 * i, page)
        for i, (number, title, page) in enumerate(entries)
    )  # fmt: skip
    numbered = "".join(
        text_at(72, 400 - 16 * i, number) + text_at(110, 400 - 16 * i, title)
        for i, (number, title, _) in enumerate(entries)
    )
    md = convert(tmp_path, leaders + numbered)
    assert "|" not in md
    assert all(w in md for number, title, page in entries for w in (number, title, page))


def test_a_running_head_and_foot_are_not_a_table(tmp_path):
    """Head and foot are lines of cells too (title, section, page number), at the page's ends."""
    content = (
        text_at(72, 760, "Command Codes BMFOL and BMFOR")
        + text_at(380, 760, "2.3.59")
        + text_at(500, 760, "page 7")
    )
    content += "".join(text_at(72, 700 - 14 * i, line) for i, line in enumerate(LEFT))
    content += text_at(72, 40, "Cat. No. 28171E (12-12-2022)") + text_at(300, 40, "Internal Revenue Manual")
    content += (
        text_at(500, 40, "2.3.59.9")
        + text_at(72, 28, "Any line marked with a #")
        + text_at(300, 28, "is for Official Use Only")
    )
    md = convert(tmp_path, content)
    assert "|" not in md


def test_the_search_stays_linear_on_a_page_of_many_aligned_lines():
    """A hostile page: thousands of lines of two cells that never make a table (prose on both sides)."""
    prose = [
        (72.0, 200.0, "and the water committee met on the"),
        (260.0, 400.0, "volunteers reported that the"),
    ]
    lines = [list(prose) for _ in range(20_000)]
    started = time.perf_counter()
    assert aligned_tables(lines, [0.3] * len(lines)) == []
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    "name", ["DA-619p.pdf", "layout-parser-paper-fast.pdf", "multi-column-2p.pdf", "fake-memo.pdf"]
)
def test_the_corpus_pages_without_tables_gain_none(name):
    doc = pdfium.PdfDocument(str(corpus(f"pdf/{name}")))
    try:
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            lines = pdf._page_lines(textpage, find_tables(page, textpage))
            assert lines.tables == [], (name, i, lines.tables[:1])
            textpage.close()
            page.close()
    finally:
        doc.close()


def test_the_table_of_contents_of_a_corpus_manual_is_not_a_table():
    """Seen on the 400-page manual: its contents (section numbers and titles) came out as tables."""
    doc = pdfium.PdfDocument(str(corpus("pdf/pdf2image-memory-error-test-400p.pdf")))
    try:
        page = doc[2]
        textpage = page.get_textpage()
        assert pdf._page_lines(textpage, find_tables(page, textpage)).tables == []
        textpage.close()
        page.close()
    finally:
        doc.close()


def test_a_page_that_is_only_a_table_keeps_its_text_layer(tmp_path):
    """A page whose every line is a table's was judged on its lines alone (none) and read again by OCR,
    which gave its words column by column; the cells are its text."""
    rules = "0.5 w\n" + "".join(f"70 {y} m 470 {y} l S\n" for y in (724, 704, 628))
    cells = "".join(
        text_at(x, (710 if r == 0 else 690 - 16 * (r - 1)), c)
        for r, row in enumerate(ROWS)
        for x, c in zip(XS, row, strict=True)
    )
    path = tmp_path / "table.pdf"
    path.write_bytes(hand_pdf(rules + cells))
    doc = unitok.convert(path)
    assert [s["engine"] for s in doc.segments] == ["pdf_text"] and not doc.segments[0]["warnings"]
    assert doc.markdown.startswith("| Region | Product | Units | Revenue |")
