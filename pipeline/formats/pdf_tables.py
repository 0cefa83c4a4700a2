"""Ruled tables on PDF pages: the grid their ruling lines draw (pdfium path objects), and each cell's text
(pdfium's text inside the cell's box). A table needs at least two rows and two columns of cells closed by
lines; a cell whose dividing line is missing spans the columns: its text is in the first of them and the
others are empty (a note row across the table is written once, not once per column)."""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

THIN = 3.0  # points: a path this thin is a rule, not a box
SNAP = 2.0  # points: rules this close are the same grid line


@dataclass
class Table:
    left: float
    bottom: float
    right: float
    top: float
    rows: list[list[str]] = field(default_factory=list)

    def holds(self, x: float, y: float) -> bool:
        return self.left - SNAP <= x <= self.right + SNAP and self.bottom - SNAP <= y <= self.top + SNAP


def _path_bounds(page: pdfium.PdfPage) -> Iterator[tuple[float, float, float, float]]:
    """The bounds of the page's own path objects (not those inside forms), by pdfium's raw API: a page of
    text has thousands of objects, and a wrapper object for each cost more than the search itself."""
    raw = page.raw
    left, bottom, right, top = (ctypes.c_float() for _ in range(4))
    for i in range(pdfium_c.FPDFPage_CountObjects(raw)):
        obj = pdfium_c.FPDFPage_GetObject(raw, i)
        if pdfium_c.FPDFPageObj_GetType(obj) == pdfium_c.FPDF_PAGEOBJ_PATH and pdfium_c.FPDFPageObj_GetBounds(
            obj, left, bottom, right, top
        ):
            yield left.value, bottom.value, right.value, top.value


def _rules(page: pdfium.PdfPage) -> tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]:
    """Horizontal (y, x0, x1) and vertical (x, y0, y1) rules: thin paths, and the edges of boxes."""
    width, height = page.get_size()
    horizontal, vertical = [], []
    for left, bottom, right, top in _path_bounds(page):
        w, h = right - left, top - bottom
        if h <= THIN < w:
            horizontal.append(((bottom + top) / 2, left, right))
        elif w <= THIN < h:
            vertical.append(((left + right) / 2, bottom, top))
        elif w > THIN and h > THIN and not (w > 0.9 * width and h > 0.9 * height):  # a box, not the page
            horizontal += [(bottom, left, right), (top, left, right)]
            vertical += [(left, bottom, top), (right, bottom, top)]
    return horizontal, vertical


def _snap(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if not out or v - out[-1] > SNAP:
            out.append(v)
    return out


def _components(
    horizontal: list[tuple[float, float, float]], vertical: list[tuple[float, float, float]]
) -> list[tuple[list[tuple[float, float, float]], list[tuple[float, float, float]]]]:
    """Groups of rules that touch each other (one group per table)."""
    parent = list(range(len(horizontal) + len(vertical)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (y, x0, x1) in enumerate(horizontal):
        for j, (x, y0, y1) in enumerate(vertical):
            if x0 - SNAP <= x <= x1 + SNAP and y0 - SNAP <= y <= y1 + SNAP:
                parent[find(i)] = find(len(horizontal) + j)
    groups: dict[int, tuple[list, list]] = {}
    for i, h in enumerate(horizontal):
        groups.setdefault(find(i), ([], []))[0].append(h)
    for j, v in enumerate(vertical):
        groups.setdefault(find(len(horizontal) + j), ([], []))[1].append(v)
    return list(groups.values())


def _has_rule(rules: list[tuple[float, float, float]], at: float, lo: float, hi: float) -> bool:
    """A rule at `at` covering the middle of lo..hi."""
    mid = (lo + hi) / 2
    return any(abs(pos - at) <= SNAP and a - SNAP <= mid <= b + SNAP for pos, a, b in rules)


MAX_COLUMNS = 40
MIN_FILLED = 0.3


def _looks_like_a_table(rows: list[list[str]]) -> bool:
    """A grid of rules is a table when text fills a fair share of its cells. A drawing's mesh of lines
    (seen: 57 × 175 cells, 0.7% with text) is not, and writing it as a table would bury its few words."""
    cells = [c for row in rows for c in row]
    filled = sum(1 for c in cells if c)
    return (
        bool(cells)
        and len(rows[0]) <= MAX_COLUMNS
        and filled / len(cells) >= MIN_FILLED
        and sum(1 for row in rows if sum(1 for c in row if c) >= 2) >= 2
    )


def find_tables(page: pdfium.PdfPage, textpage: pdfium.PdfTextPage) -> list[Table]:
    """The page's ruled tables, top to bottom, with their cells' text."""
    horizontal, vertical = _rules(page)
    if len(horizontal) < 3 or len(vertical) < 3:
        return []
    tables = []
    for hs, vs in _components(horizontal, vertical):
        ys = _snap([y for y, _, _ in hs])[::-1]  # top to bottom
        xs = _snap([x for x, _, _ in vs])
        if len(ys) < 3 or len(xs) < 3:
            continue
        table = Table(xs[0], ys[-1], xs[-1], ys[0])
        for r in range(len(ys) - 1):
            top, bottom = ys[r], ys[r + 1]
            row: list[str] = []
            c = 0
            while c < len(xs) - 1:
                end = c + 1  # a missing dividing line: the cell spans on
                while end < len(xs) - 1 and not _has_rule(vs, xs[end], bottom, top):
                    end += 1
                text = textpage.get_text_bounded(xs[c], bottom, xs[end], top)
                text = re.sub(r"\s+", " ", text.replace("\r", " ").replace("\n", " ")).strip()
                row += [text] + [""] * (end - c - 1)
                c = end
            table.rows.append(row)
        if _looks_like_a_table(table.rows):
            tables.append(table)
    return sorted(tables, key=lambda t: -t.top)


# -- tables without ruling lines --------------------------------------------------------------------------
# Whitespace-aligned columns (invoices, statements, bookings): consecutive lines whose text falls into the
# same columns, found as the x ranges no line's text covers (the gutters). Prose in two columns also has a
# gutter, so a block is a table only when its cells are short: tables hold labels and figures, not
# sentences.
COLUMN_GAP = 1.2  # a gap wider than this many line heights separates two cells of one line
MIN_ROWS = 3
MAX_CELL_CHARS = 40  # the median cell of a table is shorter; prose columns are longer
MAX_CELL_WORDS = 6

Cell = tuple[float, float, str]  # x0, x1, text


def _columns(rows: list[list[Cell]]) -> list[tuple[float, float]]:
    """The x ranges text covers across the rows, merged where they overlap: one per column."""
    spans = sorted((x0, x1) for row in rows for x0, x1, _ in row)
    merged: list[list[float]] = []
    for x0, x1 in spans:
        if merged and x0 <= merged[-1][1] + SNAP:
            merged[-1][1] = max(merged[-1][1], x1)
        else:
            merged.append([x0, x1])
    return [(a, b) for a, b in merged]


def _as_table(rows: list[list[Cell]]) -> list[list[str]] | None:
    """The block's rows of cell texts when it is a table, else None."""
    columns = _columns(rows)
    if len(columns) < 2:
        return None
    cells = [c[2] for row in rows for c in row]
    lengths = sorted(len(c) for c in cells)
    if lengths[len(lengths) // 2] > MAX_CELL_CHARS or max(len(c.split()) for c in cells) > 2 * MAX_CELL_WORDS:
        return None
    if sum(len(c.split()) > MAX_CELL_WORDS for c in cells) > len(cells) // 5:
        return None
    table = []
    for row in rows:
        out = [""] * len(columns)
        for x0, x1, text in row:
            k = next(i for i, (a, b) in enumerate(columns) if a - SNAP <= x0 and x1 <= b + SNAP)
            out[k] = f"{out[k]} {text}".strip()
        table.append(out)
    # Every row fills at least two columns, and every column is filled in most rows.
    if any(sum(bool(c) for c in r) < 2 for r in table):
        return None
    if any(sum(bool(r[k]) for r in table) < (len(table) + 1) // 2 for k in range(len(columns))):
        return None
    return table


def aligned_tables(line_cells: list[list[Cell]]) -> list[tuple[int, int, list[list[str]]]]:
    """(first line, end line, rows) of each block of consecutive lines that reads as a table."""
    found: list[tuple[int, int, list[list[str]]]] = []
    i, n = 0, len(line_cells)
    while i < n:
        if len(line_cells[i]) < 2:
            i += 1
            continue
        j = i
        while j < n and len(line_cells[j]) >= 2:
            j += 1
        # The longest table from i; a block that is not one may still start one further down.
        best = None
        for end in range(j, i + MIN_ROWS - 1, -1):
            table = _as_table(line_cells[i:end])
            if table is not None:
                best = (i, end, table)
                break
        if best is not None:
            found.append(best)
            i = best[1]
        else:
            i += 1
    return found
