# ruff: noqa: E501 - the fixtures hold pages as they are written
"""HTML fidelity: every word a page's author wrote comes out once, apart from its neighbours, and no other
word does, for what pages hold besides plain paragraphs: tables inside table cells, paragraphs, line
breaks, lists and headings inside cells, cells written without spaces between them, lists whose items hold
paragraphs or other lists, definition lists, <details>, <figure>, inline elements around blocks, captions
and text written inside a table but outside its cells. Each page is written here as a string."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import unitok
from unitok.pipeline.formats.documents import html_markdown

_MARKUP = re.compile(r"<!--.*?-->|^\s*(#{1,6}|[-*+]|\d+\.|>)\s+|\|\s*-{3,}\s*|\*\*|<br>|```", re.M)


def words(text: str) -> Counter[str]:
    """The words of a text, Markdown syntax and punctuation at their edges left out; a link gives its text
    and its address. Two words glued together ("A1B1") are one word here, so they count as lost."""
    text = re.sub(r"\[([^\]]*)\]\(([^)]*)\)", r"\1 \2", text)
    tokens = (t.strip(".,;:!?()[]*_`|>-") for t in _MARKUP.sub(" ", text).split())
    return Counter(t for t in tokens if t)


def assert_faithful(md: str, author: str) -> None:
    """Every word the author wrote is in md exactly as often, and md has no other word."""
    got, want = words(md), words(author)
    assert got == want, f"lost {dict(want - got)}, added {dict(got - want)}\n{md}"


def page(body: str) -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><main>{body}</main></body></html>"


def md_of(body: str, warnings: list[str] | None = None) -> str:
    return html_markdown(page(body), warnings)


# -- tables in tables -----------------------------------------------------------------------------------


def test_a_table_inside_a_cell_keeps_its_rows_and_cells_apart_in_that_cell() -> None:
    md = md_of(
        "<table><tr><th>Region</th><th>Details</th></tr>"
        "<tr><td>North</td><td>Before the table"
        "<table><tr><th>Inner head A</th><th>Inner head B</th></tr><tr><td>alpha one</td><td>beta two</td></tr>"
        "<tr><td>deepest<table><tr><td>third level</td></tr></table></td><td>gamma</td></tr></table>"
        "After the table</td></tr>"
        "<tr><td>South</td><td>plain</td></tr></table>"
    )
    # The inner table's rows are lines of the outer cell (<br>), its cells joined by '; ', in the place
    # the inner table has among the cell's content; the outer table keeps its own three rows only.
    assert (
        "| North | Before the table<br>Inner head A; Inner head B<br>alpha one; beta two<br>deepest<br>third level; gamma<br>After the table |"
        in md
    )
    assert md.count("| --- |") == 1 and "| South | plain |" in md and md.count("\n") == 3
    assert_faithful(
        md,
        "Region Details North Before the table Inner head A Inner head B alpha one beta two deepest "
        "third level gamma After the table South plain",
    )


def test_a_merged_cell_of_an_inner_table_is_written_once() -> None:
    md = md_of(
        "<table><tr><td>Key</td><td>Value</td></tr><tr><td>k</td><td>"
        "<table><tr><td colspan='2'>wide</td></tr><tr><td rowspan='2'>tall</td><td>r1</td></tr>"
        "<tr><td>r2</td></tr></table></td></tr></table>"
    )
    assert "| k | wide<br>tall; r1<br>r2 |" in md
    assert_faithful(md, "Key Value k wide tall r1 r2")


def test_a_table_of_one_cell_around_a_page_is_read_as_the_page() -> None:
    # A layout table: its headings stay headings and its paragraphs paragraphs, not one table cell.
    md = md_of(
        "<table role='presentation'><tr><td><h1>Notice</h1><p>First paragraph.</p></td>"
        "<td><p>Second column.</p></td></tr></table>"
        "<table><tr><td><h2>Wrapped</h2><p>Inside one cell.</p></td></tr></table>"
    )
    assert md.startswith("# Notice\n\nFirst paragraph.\n\nSecond column.\n\n## Wrapped\n\nInside one cell.")
    assert "|" not in md


# -- blocks inside cells --------------------------------------------------------------------------------


def test_paragraphs_breaks_lists_and_headings_in_cells_are_lines_of_the_cell() -> None:
    md = md_of(
        "<table><tr><th>Para</th><th>Div</th><th>Break</th><th>List</th><th>Heading</th><th>Code</th></tr>"
        "<tr><td><p>First para</p><p>Second para</p></td><td><div>One div</div><div>Two div</div></td>"
        "<td>Line one<br>Line two</td><td><ul><li>Item one</li><li>Item two</li></ul></td>"
        "<td><h3>Head</h3>note</td><td><pre>x = 1\ny = 2</pre></td></tr></table>"
    )
    assert (
        "| First para<br>Second para | One div<br>Two div | Line one<br>Line two | - Item one<br>- Item two "
        "| Head<br>note | x = 1<br>y = 2 |" in md
    )
    assert_faithful(
        md,
        "Para Div Break List Heading Code First para Second para One div Two div Line one Line two "
        "Item one Item two Head note x = 1 y = 2",
    )


def test_cells_written_without_spaces_between_them_stay_apart() -> None:
    md = md_of(
        "<table><tr><td>alpha</td><td>beta</td><td>gamma</td></tr><tr><td>1</td><td>2</td><td>3</td></tr></table>"
    )
    assert md == "| alpha | beta | gamma |\n| --- | --- | --- |\n| 1 | 2 | 3 |"


def test_a_caption_and_text_outside_the_cells_are_kept() -> None:
    md = md_of(
        "<table><caption>Table 1: Sales</caption><tbody><tr><th>Q</th><th>Units</th></tr>"
        "<tr><td>Q1</td><td>5</td></tr></tbody><div>Misplaced note</div></table>"
    )
    # Browsers show the caption above the table, and move what sits outside the cells above it too.
    assert "Misplaced note\n\nTable 1: Sales\n\n| Q | Units |" in md
    assert_faithful(md, "Misplaced note Table 1 Sales Q Units Q1 5")


# -- lists ----------------------------------------------------------------------------------------------


def test_list_items_holding_paragraphs_and_lists_keep_every_word_apart() -> None:
    md = md_of(
        "<ul><li><p>First para</p><p>Second para</p></li>"
        "<li>Before<ul><li>Nested</li></ul>After the nested list</li>"
        "<li><div>Div one</div><div>Div two</div></li></ul>"
        "<ol start='3'><li>Three<table><tr><td>T1</td><td>T2</td></tr></table></li></ol>"
    )
    assert "- First para\n  Second para" in md
    assert "- Before\n  - Nested\n\n  After the nested list" in md  # after the list, not in its last item
    assert "- Div one\n  Div two" in md
    assert "3. Three\n\n   | T1 | T2 |" in md
    assert_faithful(
        md,
        "First para Second para Before Nested After the nested list Div one Div two Three T1 T2",
    )


def test_a_list_written_inside_a_list_and_text_outside_items_are_kept() -> None:
    md = md_of("<ul>loose words<li>Alpha</li><ul><li>Under alpha</li></ul><li>Beta</li>tail words</ul>")
    assert "- Alpha\n  - Under alpha\n- Beta" in md
    assert_faithful(md, "loose words Alpha Under alpha Beta tail words")


# -- other blocks ---------------------------------------------------------------------------------------


def test_definition_lists_details_and_figures_keep_their_words_apart() -> None:
    md = md_of(
        "<dl><dt>Term one</dt><dd>Meaning one</dd><dt>Term two</dt><dd>Meaning two</dd></dl>"
        "<details><summary>More info</summary>Hidden text<p>Hidden para</p></details>"
        "<figure><img src='a.png' alt='A map'><figcaption>Figure caption</figcaption></figure>"
    )
    assert "Term one\n\nMeaning one\n\nTerm two\n\nMeaning two" in md
    assert "More info\n\nHidden text\n\nHidden para" in md
    assert "<!-- image --> *A map*\n\nFigure caption" in md
    assert_faithful(
        md,
        "Term one Meaning one Term two Meaning two More info Hidden text Hidden para A map Figure caption",
    )


def test_inline_elements_around_blocks_and_quotes_with_loose_text() -> None:
    md = md_of(
        "<font face='Arial'><p>Font para one</p><p>Font para two</p></font>"
        "<a href='https://ex.com/card'><div>Card title</div><div>Card text</div></a>"
        "<h2><span>Heading</span><div>part</div></h2>"
        "<blockquote>Loose quote<p>Quoted para</p></blockquote>"
    )
    assert "Font para one\n\nFont para two" in md
    assert "[Card title Card text](https://ex.com/card)" in md
    assert "## Heading part" in md
    assert "> Loose quote\n>\n> Quoted para" in md
    assert_faithful(
        md,
        "Font para one Font para two Card title Card text https://ex.com/card Heading part "
        "Loose quote Quoted para",
    )


# -- hostile attributes ---------------------------------------------------------------------------------


def test_odd_numbers_in_attributes_are_read_as_browsers_read_them() -> None:
    md = md_of(
        "<ol start='x'><li>One</li></ol><ol start='4;'><li>Four</li></ol>"
        "<table><tr><td colspan='2;'>Both</td></tr><tr><td>a</td><td rowspan='bad'>b</td></tr></table>"
    )
    assert "1. One" in md and "4. Four" in md and "| Both | Both |\n| --- | --- |\n| a | b |" in md


def test_huge_spans_are_bounded_and_said() -> None:
    cells = "".join(f"<tr><td colspan='100' rowspan='100000'>c{i}</td></tr>" for i in range(3000))
    warnings: list[str] = []
    start = time.perf_counter()
    md = md_of(f"<table>{cells}</table>", warnings)
    assert time.perf_counter() - start < 20 and len(md) < 50_000_000
    assert "c0" in md and "c2999" in md
    assert warnings == ["HTML table spans past what can be repeated: merged cells kept once"]


# -- end to end -----------------------------------------------------------------------------------------


def test_a_page_with_nested_tables_converts_with_every_word(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        page(
            "<h1>Report</h1><p>Intro text.</p><table><tr><th>Name</th><th>Parts</th></tr>"
            "<tr><td>Pump</td><td><table><tr><td>seal</td><td>2</td></tr><tr><td>valve</td><td>1</td></tr>"
            "</table></td></tr></table><h2>Notes</h2><ul><li><p>Check</p><p>twice</p></li></ul>"
        )
    )
    doc = unitok.convert(path, config={"chunking": {"enabled": False}})
    assert doc.ok and not doc.errors, doc.errors
    assert "| Pump | seal; 2<br>valve; 1 |" in doc.markdown
    assert_faithful(doc.markdown, "Report Intro text Name Parts Pump seal 2 valve 1 Notes Check twice")


def test_a_picture_between_words_keeps_them_apart_and_a_break_in_a_heading_keeps_it_whole() -> None:
    md = md_of(
        "<p>Before<img src='a.png' alt='Logo'>after</p><p><img src='b.png'>Company</p>"
        "<h2>Title<br>Subtitle</h2><p>Body</p>"
    )
    assert "Before <!-- image --> *Logo* after" in md and "<!-- image --> Company" in md
    assert "## Title Subtitle\n\nBody" in md
    assert_faithful(md, "Before Logo after Company Title Subtitle Body")
