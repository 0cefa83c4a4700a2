"""Deck fidelity: shapes read in the order a reader's eye takes them (the title first, then rows from top
to bottom, each from left to right, with a tolerance for boxes set side by side by hand, a group's shapes
kept together), and tables whose first row is the Markdown header once, with or without PowerPoint's
"header row" option. Each deck is made here with python-pptx."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

from conftest import corpus
from pptx import Presentation
from pptx.util import Inches
from unitok.actors.slide_text import slide_markdown
from unitok.pipeline.formats.pptx import reading_order, slide_structure

_MARKUP = re.compile(r"<!--.*?-->|^\s*(#{1,6}|[-*+]|\d+\.|>)\s+|\|\s*-{3,}\s*|\*\*|<br>", re.M)


def words(text: str) -> Counter[str]:
    tokens = (t.strip(".,;:!?()[]*_`|") for t in _MARKUP.sub(" ", text).split())
    return Counter(t for t in tokens if t)


def assert_faithful(md: str, author: str) -> None:
    got, want = words(md), words(author)
    assert got == want, f"lost {dict(want - got)}, added {dict(got - want)}\n{md}"


def box(slide, text: str, left: float, top: float, width: float = 3, height: float = 1):
    shape = slide.shapes.add_textbox(Inches(left), Inches(top), Inches(width), Inches(height))
    shape.text_frame.text = text
    return shape


def read(path: Path) -> list[tuple[dict, str]]:
    out = []
    for slide in Presentation(str(path)).slides:
        structure, _ = slide_structure(slide)
        out.append((structure, slide_markdown(structure)))
    return out


def lines(md: str) -> list[str]:
    return [ln for ln in md.splitlines() if ln.strip()]


# -- reading order --------------------------------------------------------------------------------------


def test_boxes_side_by_side_are_read_left_first_even_when_the_right_one_sits_a_hair_higher(
    tmp_path: Path,
) -> None:
    prs = Presentation()
    s = prs.slides.add_slide(prs.slide_layouts[6])  # blank
    box(s, "Bottom right", 5, 4.02)
    box(s, "Top right", 5, 1.0)
    box(s, "Bottom left", 0.5, 4.05)
    box(s, "Top left", 0.5, 1.06)  # placed by hand: 0.06 in lower than its neighbour
    prs.save(tmp_path / "grid.pptx")
    ((_, md),) = read(tmp_path / "grid.pptx")
    assert lines(md) == ["Top left", "Top right", "Bottom left", "Bottom right"]


def test_the_title_comes_first_then_shapes_by_place_placeholders_among_them(tmp_path: Path) -> None:
    prs = Presentation()
    s = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
    s.shapes.title.text = "Plan"
    s.placeholders[1].text_frame.text = "Body point"
    s.placeholders[1].top = Inches(2.5)
    box(s, "Banner above everything", 0.5, 0.1, width=9, height=0.4)
    box(s, "Source note", 0.5, 6.8, width=9, height=0.4)
    prs.save(tmp_path / "title.pptx")
    ((structure, md),) = read(tmp_path / "title.pptx")
    # The title is the slide's heading whatever its place; a free text box above the body placeholder is
    # read before it, as on the slide (science-exploration-1p in the corpus has such a header box).
    assert lines(md) == ["## Plan", "Banner above everything", "- Body point", "Source note"]
    assert structure["title"] == "Plan"


def test_a_group_is_read_whole_before_the_shape_beside_it(tmp_path: Path) -> None:
    prs = Presentation()
    s = prs.slides.add_slide(prs.slide_layouts[6])
    group = s.shapes.add_group_shape()
    for text, top in (("Group second", 3.0), ("Group first", 1.0)):
        child = group.shapes.add_textbox(Inches(0.5), Inches(top), Inches(3), Inches(1))
        child.text_frame.text = text
    box(s, "Beside the group", 5, 2.0, height=1)
    box(s, "Under everything", 0.5, 5.5)
    prs.save(tmp_path / "group.pptx")
    ((_, md),) = read(tmp_path / "group.pptx")
    assert lines(md) == ["Group first", "Group second", "Beside the group", "Under everything"]


def test_reading_order_rows_use_the_smaller_height_and_zero_heights_sort_strictly() -> None:
    inch = 914400
    # A tall picture on the right does not pull the boxes stacked on the left into its row.
    extents = [(1 * inch, 6 * inch, 5 * inch), (int(1.1 * inch), 0, inch), (int(2.5 * inch), 0, inch)]
    assert reading_order(extents) == [1, 0, 2]
    assert reading_order([(5, 10, 0), (0, 20, 0), (5, 0, 0)]) == [1, 2, 0]
    assert reading_order([]) == []


def test_the_corpus_group_deck_reads_each_group_whole() -> None:
    ((_, md),) = read(corpus("pptx/group-shapes-nested.pptx"))
    # A left of the group it sits beside (its top is 0.1 in lower than the group's); then the group of
    # B and D, the group of C, E, F, G and H, and I and J on the bottom row.
    assert lines(md) == list("ABDCEFGHIJ")


# -- tables ---------------------------------------------------------------------------------------------


def table_slide(prs, rows: list[list[str]], first_row: bool):
    s = prs.slides.add_slide(prs.slide_layouts[6])
    shape = s.shapes.add_table(len(rows), len(rows[0]), Inches(0.5), Inches(1), Inches(8), Inches(2))
    table = shape.table
    table.first_row = first_row
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    return table


def test_a_table_with_the_header_row_option_has_its_first_row_as_the_header_once(tmp_path: Path) -> None:
    prs = Presentation()
    table_slide(prs, [["Region", "Units"], ["North", "10"], ["South", "7"]], first_row=True)
    table_slide(prs, [["Apples", "3"], ["Pears", "4"]], first_row=False)
    prs.save(tmp_path / "tables.pptx")
    (s1, md1), (s2, md2) = read(tmp_path / "tables.pptx")
    assert md1 == "| Region | Units |\n| --- | --- |\n| North | 10 |\n| South | 7 |"
    assert s1["blocks"][0]["header"] is True
    # Without the option the first row is still the Markdown header (Markdown needs one): kept once, in
    # its place, and no empty header line is invented above it.
    assert md2 == "| Apples | 3 |\n| --- | --- |\n| Pears | 4 |"
    assert s2["blocks"][0]["header"] is False
    assert_faithful(md1 + "\n" + md2, "Region Units North 10 South 7 Apples 3 Pears 4")


def test_merged_cells_and_line_breaks_in_cells(tmp_path: Path) -> None:
    prs = Presentation()
    table = table_slide(prs, [["Team", "Q1", "Q2"], ["Ops", "1", "2"], ["", "3", "4"]], first_row=True)
    table.cell(0, 1).merge(table.cell(0, 2))
    table.cell(0, 1).text = "Quarters"
    table.cell(1, 0).merge(table.cell(2, 0))
    table.cell(1, 0).text_frame.paragraphs[0].add_line_break()
    table.cell(1, 0).text_frame.paragraphs[0].add_run().text = "and IT"
    prs.save(tmp_path / "merged.pptx")
    ((structure, md),) = read(tmp_path / "merged.pptx")
    assert structure["blocks"][0]["rows"] == [
        ["Team", "Quarters", "Quarters"],
        ["Ops\nand IT", "1", "2"],
        ["Ops\nand IT", "3", "4"],
    ]
    assert "| Ops<br>and IT | 3 | 4 |" in md


def test_hostile_spans_are_read_in_one_pass(tmp_path: Path) -> None:
    prs = Presentation()
    table = table_slide(prs, [[f"r{r}c{c}" for c in range(30)] for r in range(60)], first_row=True)
    for tc in table._tbl.iter("{http://schemas.openxmlformats.org/drawingml/2006/main}tc"):
        tc.set("gridSpan", "1000000")
        tc.set("rowSpan", "1000000")
    for r, row in enumerate(table.rows):  # every cell but the first claims to be covered
        for c, cell in enumerate(row.cells):
            if r or c:
                cell._tc.set("hMerge" if r == 0 else "vMerge", "1")
    prs.save(tmp_path / "spans.pptx")
    start = time.perf_counter()
    ((structure, _),) = read(tmp_path / "spans.pptx")
    assert time.perf_counter() - start < 10
    rows = structure["blocks"][0]["rows"]
    assert len(rows) == 60 and all(cell == "r0c0" for row in rows for cell in row)


def test_a_covered_cell_without_its_origin_keeps_its_own_text(tmp_path: Path) -> None:
    prs = Presentation()
    table = table_slide(prs, [["A", "B"], ["C", "D"]], first_row=False)
    table.cell(0, 0)._tc.set("vMerge", "1")  # covered from above, in the first row: no cell above
    prs.save(tmp_path / "orphan.pptx")
    ((structure, md),) = read(tmp_path / "orphan.pptx")
    assert structure["blocks"][0]["rows"] == [["A", "B"], ["C", "D"]] and not structure["warnings"]
    assert_faithful(md, "A B C D")


def test_structure_is_json(tmp_path: Path) -> None:
    prs = Presentation()
    table_slide(prs, [["x", "y"]], first_row=True)
    box(prs.slides[0], "words", 0.5, 5)
    prs.save(tmp_path / "json.pptx")
    ((structure, md),) = read(tmp_path / "json.pptx")
    assert json.loads(json.dumps(structure)) == structure
    assert lines(md) == ["| x | y |", "| --- | --- |", "words"]


def test_line_breaks_in_notes_are_lines_not_control_bytes(tmp_path: Path) -> None:
    prs = Presentation()
    s = prs.slides.add_slide(prs.slide_layouts[5])
    s.shapes.title.text = "Notes"
    notes = s.notes_slide.notes_text_frame
    notes.text = "Line one"
    notes.paragraphs[0].add_line_break()
    notes.paragraphs[0].add_run().text = "Line two"
    prs.save(tmp_path / "notes.pptx")
    ((structure, md),) = read(tmp_path / "notes.pptx")
    assert structure["notes"] == "Line one\nLine two" and "\v" not in md
