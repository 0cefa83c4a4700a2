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
# Whitespace-aligned columns (invoices, statements, LaTeX tables without vertical rules): consecutive lines
# whose text falls into the same columns, found as the x ranges (nearly) no line's text covers (the
# gutters). Ordinary text shares some of that shape, so a block is a table only when it reads as one:
# its cells are short (labels and figures, not sentences), no two of its columns run on as prose from
# line to line, its first column is not a list's markers and no row is a table of contents' leader.
COLUMN_GAP = 1.2  # a gap wider than this many line heights separates two cells of one line
MIN_ROWS = 3  # lines of two cells or more, in a row
MAX_CELL_CHARS = 40  # the median piece of a table's cells is shorter; prose columns are longer
MAX_CELL_WORDS = 8
MAX_BLOCK_LINES = 300  # a block's lines looked at, at most: the search stays linear on any page
RETRIES = 2  # starts tried after a block that is not a table, before its lines are passed over
MAX_WRAPPED = 6  # lines of one cell (a wrapped cell) between two lines of cells
MAX_ROW_GAP = 3.0  # line heights between two lines of one table, at most

Cell = tuple[float, float, str]  # x0, x1, text

_SPACES = re.compile(r" +")
_MARKER = re.compile(r"(?:[-–—•◦▪▫●○■□‣⁃∙·*+>]|\(?(?:\d{1,3}|[a-zA-Z]|[ivxlcIVXLC]{1,5})[.)])")
_NUMBERING = re.compile(
    r"[A-Z]?\d{1,3}(?:[.-]\d{1,3})*[.)]?"
)  # 2, 4.1, 2.3.59-1: a section's or an item's number
_LEADER = re.compile(r"(?:\. ?){4,}|…{2,}|_{4,}")
_RUNS_ON = re.compile(r"[\w,;:-]$")  # a line of running text that goes on below


def split_run(raw: object, chars: str, first: int, end: int, box: tuple[float, float], gap: float) -> list:
    """(x0, x1, first, end) of the pieces of a run of one text object that a gap wider than `gap` parts:
    a producer may set a whole row of a table in one text object (pdfTeX moves between columns inside
    one TJ), so the gutters are found between the words pdfium parts with a space. Two character boxes
    per space; a run without spaces costs nothing."""
    left, right = box
    pieces: list[tuple[float, float, int, int]] = []
    start, x0 = first, left
    boxes = None
    for m in _SPACES.finditer(chars, first, end):
        a, z = m.span()
        if a == first or z == end:
            continue
        if boxes is None:
            boxes = [ctypes.c_double() for _ in range(4)]
        l_, r_, b_, t_ = boxes
        pdfium_c.FPDFText_GetCharBox(raw, a - 1, l_, r_, b_, t_)
        before = r_.value
        pdfium_c.FPDFText_GetCharBox(raw, z, l_, r_, b_, t_)
        after = l_.value
        if after - before > gap and before > x0:
            pieces.append((x0, before, start, a))
            start, x0 = z, after
    pieces.append((x0, right, start, end))
    return pieces


def _merge_spans(spans: list[tuple[float, float]]) -> list[list[float]]:
    merged: list[list[float]] = []
    for x0, x1 in sorted(spans):
        if merged and x0 <= merged[-1][1] + SNAP:
            merged[-1][1] = max(merged[-1][1], x1)
        else:
            merged.append([x0, x1])
    return merged


def _block_end(line_cells: list[list[Cell]], gaps: list[float] | None, i: int) -> int:
    """The end of the lines from i (a line of cells) that keep its gutters: lines of cells whose union
    still has two columns or more (after MIN_ROWS of them, as many as before: a row that bridges a gutter
    there is other text), and between them lines of one cell inside one column (a wrapped cell). A line
    above the one before it (content order going back up the page: a running head or foot) or far below
    it is not in the block."""
    columns = _merge_spans([(x0, x1) for x0, x1, _ in line_cells[i]])
    multi, last, k = 1, i, i + 1
    while k < len(line_cells) and k - i < MAX_BLOCK_LINES:
        cells = line_cells[k]
        if gaps is not None and not -0.5 <= gaps[k] <= MAX_ROW_GAP:
            break
        if len(cells) >= 2:
            merged = _merge_spans([(a, b) for a, b in columns] + [(x0, x1) for x0, x1, _ in cells])
            if len(merged) < 2 or (multi >= MIN_ROWS and len(merged) < len(columns)):
                break
            columns, multi, last = merged, multi + 1, k
        else:
            x0, x1, _ = cells[0]
            hits = [c for c in columns if x0 <= c[1] + SNAP and x1 >= c[0] - SNAP]
            if len(hits) != 1 or k - last > MAX_WRAPPED:
                break
            hits[0][0], hits[0][1] = min(hits[0][0], x0), max(hits[0][1], x1)
            if len(_merge_spans([(a, b) for a, b in columns])) < len(columns):
                break
        k += 1
    return k if multi >= MIN_ROWS else i + 1


def _dense_columns(block: list[list[Cell]]) -> list[tuple[float, float]]:
    """The x ranges covered by the text of more than a few lines: one per column. A cell across a gutter
    (a heading over two columns) in one line out of eight does not close it."""
    tolerance = len(block) // 8
    events = sorted(
        [(x0, 1) for row in block for x0, _, _ in row] + [(x1, -1) for row in block for _, x1, _ in row]
    )
    columns: list[list[float]] = []
    depth, opened = 0, None
    for x, step in events:
        depth += step
        if depth > tolerance and opened is None:
            opened = x
        elif depth <= tolerance and opened is not None:
            if columns and opened <= columns[-1][1] + SNAP:
                columns[-1][1] = x
            else:
                columns.append([opened, x])
            opened = None
    return [(a, b) for a, b in columns]


def _column_of(columns: list[tuple[float, float]], x0: float, x1: float) -> tuple[int, int]:
    """The first and last column a cell overlaps (the nearest one where it overlaps none)."""
    hits = [k for k, (a, b) in enumerate(columns) if x0 <= b + SNAP and x1 >= a - SNAP]
    if hits:
        return hits[0], hits[-1]
    k = min(range(len(columns)), key=lambda k: min(abs(columns[k][0] - x1), abs(columns[k][1] - x0)))
    return k, k


def _runs_on(texts: list[str]) -> bool:
    """A column of running text: most of its lines go on in the next one (no full stop there, and the
    next starts in lower case), as a column of prose does and a column of a table seldom does."""
    pairs = [(a, b) for a, b in zip(texts, texts[1:], strict=False) if a and b]
    on = sum(1 for a, b in pairs if _RUNS_ON.search(a) and b[0].islower() and len(a.split()) >= 3)
    return len(pairs) >= 2 and on * 2 >= len(pairs)


def _as_table(block: list[list[Cell]], gaps: list[float] | None) -> tuple[int, list[list[str]]] | None:
    """(lines used, rows of cell texts) when the block's lines are a table, else None."""
    columns = _dense_columns(block)
    if len(columns) < 2 or len(columns) > MAX_COLUMNS:
        return None
    grid: list[list[str]] = []  # each line's texts, column by column
    for line in block:
        out = [""] * len(columns)
        for x0, x1, text in line:
            k, _ = _column_of(columns, x0, x1)
            out[k] = f"{out[k]} {text}".strip()
        grid.append(out)
    pieces = [c for line in grid for c in line if c]
    lengths = sorted(len(c) for c in pieces)
    if lengths[len(lengths) // 2] > MAX_CELL_CHARS or sum(
        len(c.split()) > MAX_CELL_WORDS for c in pieces
    ) * 3 > len(pieces):
        return None
    if sum(_runs_on([line[k] for line in grid]) for k in range(len(columns))) >= 2:
        return None
    first = [line[0] for line in grid if line[0]]
    if first and all(_MARKER.fullmatch(c) for c in first):
        return None  # a list's bullets or numbers, and its items
    second = [line[1] for line in grid if line[1]]
    if (
        len(columns) == 2
        and all(_NUMBERING.fullmatch(c) for c in first)
        and sum(c[0].isalpha() for c in second) * 2 > len(second)
    ):
        return None  # numbered headings and their titles: a table of contents, or a numbered list
    if any(_LEADER.search(c) for c in pieces):
        return None
    rows = _rows(grid, gaps)
    while rows and sum(bool(c) for c in rows[-1][1]) < 2:  # a last line of one cell is text below
        rows.pop()
    if len(rows) < 2 or sum(sum(bool(c) for c in r) >= 2 for _, r in rows) * 3 < 2 * len(rows):
        return None
    table = [r for _, r in rows]
    if any(sum(bool(r[k]) for r in table) < min(2, len(table)) for k in range(len(columns))):
        return None
    return rows[-1][0] + 1, table


def _rows(grid: list[list[str]], gaps: list[float] | None) -> list[tuple[int, list[str]]]:
    """(last line, cells) of each row: a line set much closer to the one above than the rows are to each
    other continues its cells (a wrapped cell, a heading on two lines). Where rows are set as close as
    lines, each line is a row: nothing tells a wrapped cell from a row with its first cell empty."""
    between = sorted(gaps[k] for k in range(1, len(grid)) if grid[k][0]) if gaps else []
    usual = between[len(between) // 2] if between else 0.0
    rows: list[tuple[int, list[str]]] = []
    for k, line in enumerate(grid):
        if rows and gaps and usual >= 0.8 and 0 <= gaps[k] < 0.7 * usual:
            last = rows[-1][1]
            rows[-1] = (k, [_continue(a, b) for a, b in zip(last, line, strict=True)])
        else:
            rows.append((k, list(line)))
    return rows


def _continue(text: str, more: str) -> str:
    """A cell's text and its next line, a word hyphenated at the line's end joined as the text engine
    joins it in paragraphs."""
    if len(text) > 1 and text.endswith("-") and text[-2].isalpha() and more[:1].islower():
        return text[:-1] + more
    return f"{text} {more}".strip()


def aligned_tables(
    line_cells: list[list[Cell]], gaps: list[float] | None = None
) -> list[tuple[int, int, list[list[str]]]]:
    """(first line, end line, rows) of each block of consecutive lines that reads as a table. Each line
    is looked at by at most RETRIES + 1 blocks of at most MAX_BLOCK_LINES lines."""
    found: list[tuple[int, int, list[list[str]]]] = []
    i, n, tries, block_end = 0, len(line_cells), 0, 0
    while i < n:
        if len(line_cells[i]) < 2:
            i += 1
            continue
        end = _block_end(line_cells, gaps, i)
        table = (
            _as_table(line_cells[i:end], gaps[i:end] if gaps is not None else None)
            if end - i >= MIN_ROWS
            else None
        )
        if table is not None:
            used, rows = table
            found.append((i, i + used, rows))
            i, tries = i + used, 0
            continue
        if i >= block_end:  # a block not tried before
            block_end, tries = end, 0
        tries += 1
        i = i + 1 if tries <= RETRIES else max(i + 1, block_end)
    return found
