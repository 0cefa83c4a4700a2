"""Spreadsheets (XLSX, XLSM; XLS and ODS through LibreOffice) → a segment per table region of each sheet:
Markdown tables of cached formula values (never the formulas), dates and numbers as their format displays
them, merged cells repeated, comments (legacy and threaded) after their table, charts (on a worksheet's
drawing or a chartsheet) as their title and a table of their series, text boxes as paragraphs, hidden sheets
flagged. A sheet's name is its provenance (heading_path) and a marker, not a heading the author did not
write; each table region's cell range (`<!-- range: B3:F20 -->`) is its place in the sheet.

Table regions: the blocks of non-empty cells that fully empty rows or columns separate (cut again and again,
rows then columns, until no block splits). A row above a table with one value in the block's first column,
or one merged range, is a title line: a paragraph, not the table's header.

The package is read here, part by part, with lxml (openpyxl builds a Python object for every cell element,
empty styled ones included: a sheet whose rows are formatted to column XFD took tens of seconds and filled
the cell limit with nothing). Only the cells that hold a value are kept; the sheet's `<dimension>` is not
read at all, so a used range that claims a million rows costs the cells present. At most
documents.max_cells valued cells per workbook (rendered table cells included); empty cells count for
nothing. A workbook saved as Strict Open XML is read from a copy with its namespaces mapped to the
Transitional ones. A part that fails to parse is said in the warnings and costs only what it held; a
workbook with no value in any sheet is an error that says so.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import json
import posixpath
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.markdown import chart_markdown, md_table
from unitok.pipeline.core.records import CONTENT_TEXT, Segment
from unitok.pipeline.formats.documents import (
    GENERATED_ALT,
    IMAGE_MARKER,
    DocumentOpenError,
    check_zip,
    is_strict,
    safe_xml,
    transitional_copy,
)

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM_MIME = "application/vnd.ms-excel.sheet.macroEnabled.12"

_SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_S = f"{{{_SHEET_NS}}}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_TC = "{http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments}"
_CHART_NS = "http://schemas.openxmlformats.org/drawingml/2006/chart"
_CHARTEX_NS = "http://schemas.microsoft.com/office/drawing/2014/chartex"
_XDR = "{http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_PARSE = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
# A cell element that closes itself has no value: only its style made a writer keep it. Only those that
# name their cell (where references are left out, a cell's place in its row is its column), and in the
# form writers use (an exact pattern is several times faster to match than a general one).
_EMPTY_CELL = re.compile(rb'<c r="[A-Z]{1,3}[0-9]{1,7}"(?: [A-Za-z:]{1,20}="[^"<>]{0,40}")*/>')
_CELL_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?(\d{1,7})")
_XSTRING = re.compile(r"_x([0-9A-Fa-f]{4})_")
# Excel's stand-in for a threaded comment in the legacy comments part, for versions that cannot show one.
_THREADED_PLACEHOLDER = "[Threaded comment]"
_MAX_CHART_POINTS = 100_000


@functools.lru_cache(maxsize=4096)
def _date_format(fmt: str) -> str | None:
    """An Excel date/time number format as a strftime pattern (None: not a date format)."""
    body = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.', "", fmt.split(";")[0])
    if not re.search(r"[dmyhs]", body, re.I):
        return None
    out: list[str] = []
    minute_ok = False
    tokens = re.findall(r"yyyy|yy|mmmm|mmm|mm|m|dddd|ddd|dd|d|hh|h|ss|s|AM/PM|am/pm|.", body, re.I)
    for n, tok in enumerate(tokens):
        t = tok.lower()
        nxt = "".join(tokens[n + 1 : n + 3]).lower()
        if t in ("mm", "m") and (minute_ok or nxt.startswith(":s") or nxt.startswith("s")):
            out.append("%M")
        else:
            out.append({"yyyy": "%Y", "yy": "%y", "mmmm": "%B", "mmm": "%b", "mm": "%m", "m": "%-m",
                        "dddd": "%A", "ddd": "%a", "dd": "%d", "d": "%-d", "hh": "%H", "h": "%-H",
                        "ss": "%S", "s": "%-S", "am/pm": "%p"}.get(t, tok.replace("%", "%%")))  # fmt: skip
        if t.isalpha() or t == "am/pm":  # "hh:mm": the separator keeps the hour's claim on "mm"
            minute_ok = t in ("hh", "h")
    pattern = "".join(out)
    if "%p" in pattern:
        pattern = pattern.replace("%H", "%I").replace("%-H", "%-I")
    return pattern


def display(value: Any, fmt: str | None) -> str:
    """A cell's value as its number format shows it (the common formats: dates and times, fixed decimals,
    thousands separators, percentages); the plain value otherwise."""
    if value is None:
        return ""
    fmt = fmt or "General"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        pattern = _date_format(fmt) if fmt != "General" else None
        if pattern:
            try:
                return value.strftime(pattern)
            except ValueError:
                pass
        if isinstance(value, dt.datetime) and value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        spec = _number_spec(fmt)
        if spec is None:
            if isinstance(value, int) or (value.is_integer() and abs(value) < 1e15):
                return str(int(value))
            # Excel shows 15 significant digits: 0.1 + 0.2 is stored as 0.30000000000000004, shown 0.3.
            return format(value, ".15g")
        decimals, percent, thousands = spec
        number = value * 100 if percent else value
        text = f"{number:,.{decimals}f}" if thousands else f"{number:.{decimals}f}"
        return text + ("%" if percent else "")
    return str(value)


@functools.lru_cache(maxsize=4096)
def _number_spec(fmt: str) -> tuple[int, bool, bool] | None:
    """A number format's first section as (decimals, percent, thousands); None where it shows the value
    as General does (General itself, or no digit placeholder)."""
    section = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.|_.|\*.', "", fmt.split(";")[0])
    if section == "General" or not re.search(r"[0#?]", section):
        return None
    decimals = len(re.sub(r"[^0#?]", "", section.split(".", 1)[1])) if "." in section else 0
    return decimals, "%" in section, "," in section


def col_letters(col: int) -> str:
    out = ""
    while col > 0:
        col, rem = divmod(col - 1, 26)
        out = chr(65 + rem) + out
    return out


def _cell_ref(ref: str) -> tuple[int, int] | None:
    """ "B3" → (row 3, column 2)."""
    m = _CELL_REF.fullmatch(ref.strip())
    if not m:
        return None
    col = 0
    for ch in m.group(1).upper():
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)), col


def _column(ref: str | None, cache: dict[str, int]) -> int | None:
    """A cell reference's column number ("AB12" → 28), its letters' number remembered."""
    if not ref:
        return None
    letters = ref.rstrip("0123456789")
    col = cache.get(letters)
    if col is None:
        found = _cell_ref(ref)
        if found is None:
            return None
        col = cache[letters] = found[1]
    return col


def _range_ref(ref: str) -> tuple[int, int, int, int] | None:
    """ "B3:F20" (or "B3") → (min_row, min_col, max_row, max_col)."""
    ends = [_cell_ref(p) for p in ref.split(":", 1)]
    if any(e is None for e in ends):
        return None
    (r0, c0), (r1, c1) = ends[0], ends[-1]  # type: ignore[misc]
    return min(r0, r1), min(c0, c1), max(r0, r1), max(c0, c1)


def range_text(r0: int, c0: int, r1: int, c1: int) -> str:
    first, last = f"{col_letters(c0)}{r0}", f"{col_letters(c1)}{r1}"
    return first if first == last else f"{first}:{last}"


def _unescape(text: str) -> str:
    """ST_Xstring escapes (`_x000D_`: a character XML cannot hold as is) as their characters."""
    if "_x" not in text:
        return text
    return _XSTRING.sub(lambda m: chr(int(m.group(1), 16)), text).replace("\r\n", "\n").replace("\r", "\n")


_rich_text: Any = None  # compiled on first use: lxml is imported lazily


def _text(element: Any) -> str:
    """A string item's text (si, is, a comment's text): its runs, without phonetic guides (rPh)."""
    global _rich_text
    if _rich_text is None:
        from lxml import etree

        _rich_text = etree.XPath("s:t/text()|s:r/s:t/text()", namespaces={"s": _SHEET_NS})
    return _unescape("".join(_rich_text(element)))


def _closing(parser: Any) -> Iterator[Any]:
    """The events the parser still holds when the input ends (close() raises on a truncated part)."""
    parser.close()
    yield from parser.read_events()


# -- the package --------------------------------------------------------------------------------------
class _Package:
    def __init__(self, z: zipfile.ZipFile) -> None:
        self.z = z
        self.names = set(z.namelist())

    def xml(self, name: str) -> Any:
        return safe_xml(self.z.read(name)) if name in self.names else None

    def iterparse(self, name: str, tags: tuple[str, ...], dropped: list[int] | None = None) -> Iterator[Any]:
        """The part's elements of these tags as they end, each freed once the caller is done with it, with
        what came before it: memory stays bounded by one element, not the part. dropped: self-closing cell
        elements (a style and no value) are cut from the bytes before the parser sees them, their number
        added to dropped[0]; building a million of them as elements to throw away cost seconds."""
        from lxml import etree

        parser = etree.XMLPullParser(events=("end",), tag=tags, **_PARSE)
        held = b""
        with self.z.open(name) as f:
            while True:
                chunk = f.read(1 << 20)
                data = held + chunk
                if dropped is not None and chunk:
                    # A tag holds no "<": the bytes from the last one on may be a tag cut by the chunk's end.
                    cut = data.rfind(b"<")
                    data, held = (data[:cut], data[cut:]) if cut >= 0 else (data, b"")
                    data, n = _EMPTY_CELL.subn(b"", data)
                    dropped[0] += n
                elif dropped is not None:
                    held = b""
                if data:
                    parser.feed(data)
                events = parser.read_events() if chunk else _closing(parser)
                for _, el in events:
                    yield el
                    el.clear(keep_tail=True)
                    parent = el.getparent()
                    if parent is not None:
                        while el.getprevious() is not None:
                            del parent[0]
                if not chunk:
                    return

    def rels(self, part: str) -> list[tuple[str, str, str]]:
        """A part's relationships: (id, type, target part)."""
        folder, file = posixpath.split(part)
        try:
            root = self.xml(f"{folder}/_rels/{file}.rels" if folder else f"_rels/{file}.rels")
        except DocumentOpenError:
            return []
        if root is None:
            return []
        out = []
        for r in root.iter(f"{_PKG}Relationship"):
            target = r.get("Target", "")
            if r.get("TargetMode") == "External" or not target:
                continue
            path = (
                target[1:] if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
            )
            out.append((r.get("Id", ""), r.get("Type", ""), path))
        return out

    def related(self, part: str, kind: str) -> list[str]:
        return [t for _, typ, t in self.rels(part) if typ.rsplit("/", 1)[-1] == kind and t in self.names]


@dataclass
class _Sheet:
    name: str
    number: int  # position among the workbook's sheets, from 1
    hidden: bool
    part: str
    chartsheet: bool = False
    cells: dict[tuple[int, int], str] = field(default_factory=dict)
    merged: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # cell → its range's origin
    seen: int = 0  # cell elements parsed, empty ones included
    complete: bool = True


class _Book:
    def __init__(self, pkg: _Package, warnings: list[str]) -> None:
        from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format

        self.pkg = pkg
        self.warnings = warnings
        self.render_budget = 0  # table cells a sparse block may still render (set per job)
        main = [t for _, typ, t in pkg.rels("") if typ.endswith("/officeDocument")]
        self.part = main[0] if main and main[0] in pkg.names else "xl/workbook.xml"
        root = pkg.xml(self.part)
        if root is None:
            raise DocumentOpenError("not a readable workbook (no workbook part)")
        pr = root.find(f"{_S}workbookPr")
        self.date1904 = pr is not None and pr.get("date1904", "").lower() in ("1", "true")
        rels = {rid: (typ, target) for rid, typ, target in pkg.rels(self.part)}
        self.sheets: list[_Sheet] = []
        for n, el in enumerate(root.iter(f"{_S}sheet"), 1):
            typ, target = rels.get(el.get(f"{_R}id", ""), ("", ""))
            kind = typ.rsplit("/", 1)[-1]
            self.sheets.append(_Sheet(name=el.get("name") or f"Sheet{n}", number=n, part=target,
                                      hidden=(el.get("state") or "visible") != "visible",
                                      chartsheet=kind == "chartsheet"))  # fmt: skip
        self.formats: list[tuple[str, bool]] = []
        self._numbers: dict[str | None, Callable[[str, bool], str]] = {}
        for styles in self._related("styles"):
            try:
                sroot = pkg.xml(styles)
            except DocumentOpenError as e:
                warnings.append(f"number formats not read ({e}): values shown unformatted")
                break
            custom = {n.get("numFmtId"): n.get("formatCode") or "General" for n in sroot.iter(f"{_S}numFmt")}
            xfs = sroot.find(f"{_S}cellXfs")
            for xf in xfs if xfs is not None else []:
                fid = xf.get("numFmtId") or "0"
                code = custom.get(fid) or BUILTIN_FORMATS.get(int(fid) if fid.isdigit() else 0, "General")
                self.formats.append((code, is_date_format(code)))
            break
        self.shared: list[str] = []
        for part in self._related("sharedStrings"):
            try:
                for si in pkg.iterparse(part, (f"{_S}si",)):
                    self.shared.append(_text(si))
            except Exception as e:  # noqa: BLE001 - lxml's and zlib's errors for a damaged part
                warnings.append(
                    f"shared strings read only to item {len(self.shared)} ({type(e).__name__}: {e})"
                )
            break
        self.persons: dict[str, str] = {}
        for part in self._related("person"):
            try:
                for p in pkg.xml(part).iter(f"{_TC}person"):
                    self.persons[p.get("id", "")] = p.get("displayName", "")
            except DocumentOpenError as e:
                warnings.append(f"threaded comments' authors not read ({e})")

    def _related(self, kind: str) -> list[str]:
        return self.pkg.related(self.part, kind)

    def value(self, c: Any, v_tag: str, is_tag: str) -> str:
        """A cell element's value as displayed ("" for none)."""
        t = c.get("t", "n")
        if t == "inlineStr":
            inline = c.find(is_tag)
            return _text(inline) if inline is not None else ""
        raw = None
        for child in c:  # iterating the one or two children is cheaper than a path search
            if child.tag == v_tag:
                raw = child.text
                break
        if not raw:
            return ""
        if t == "s":
            try:
                return self.shared[int(raw)]
            except (ValueError, IndexError):
                return ""
        if t in ("str", "e"):
            return _unescape(raw)
        if t == "b":
            return "TRUE" if raw.strip() in ("1", "true") else "FALSE"
        number = self._numbers.get(c.get("s"))
        if number is None:
            number = self._numbers[c.get("s")] = self._number_display(c.get("s"))
        return number(raw, t == "d")

    def _number_display(self, style: str | None) -> Callable[[str, bool], str]:
        """A style's number display, made once per style (a sheet has few, and millions of cells)."""
        from openpyxl.utils.datetime import MAC_EPOCH, WINDOWS_EPOCH, from_excel

        fmt, is_date = self._format(style)
        general = not is_date and _number_spec(fmt) is None
        epoch = MAC_EPOCH if self.date1904 else WINDOWS_EPOCH

        def show(raw: str, iso: bool) -> str:
            if iso:  # a date cell (t="d") stores its value as ISO 8601 text
                try:
                    return display(dt.datetime.fromisoformat(raw.strip()), fmt)
                except ValueError:
                    return raw
            if general and raw.isdigit() and len(raw) < 16 and raw[0] != "0":
                return raw  # an integer shown as General: the stored digits
            try:
                number: int | float = int(raw) if raw.isdigit() else float(raw)
            except ValueError:
                return raw
            if is_date:
                try:
                    return display(from_excel(number, epoch), fmt)
                except (ValueError, OverflowError, TypeError):
                    pass
            return display(number, fmt)

        return show

    def _format(self, style: str | None) -> tuple[str, bool]:
        try:
            return self.formats[int(style or 0)]
        except (ValueError, IndexError):
            return "General", False


# -- reading a worksheet ------------------------------------------------------------------------------
class _Unreferenced(Exception):
    """A cell without a reference, in a sheet read with the empty cells cut: their places are needed."""


def read_sheet(book: _Book, sheet: _Sheet, budget: int, cut_empty: bool = True) -> int:
    """The sheet's valued cells into sheet.cells (at most `budget`; the budget left is returned). The rows
    are streamed; a cell element without a value (only a style) is cut before parsing where it closes
    itself, passed over otherwise, and costs nothing against the budget. A sheet whose cells leave out
    their references is read again without cutting (a cell's place in its row is then its column)."""
    v_tag, is_tag = f"{_S}v", f"{_S}is"
    row_tag, merge_tag = f"{_S}row", f"{_S}mergeCell"
    merges: list[str] = []
    columns: dict[str, int] = {}
    row_no = 0
    try:
        dropped = [0]
        for el in book.pkg.iterparse(sheet.part, (row_tag, merge_tag), dropped if cut_empty else None):
            if el.tag == merge_tag:
                merges.append(el.get("ref") or "")
                continue
            r = el.get("r")
            row_no = int(r) if r and r.isdigit() else row_no + 1
            sheet.seen += len(el)
            # A cell with a value has children (v, is); a childless one was only styled.
            valued = [c for c in el if len(c)]
            if not valued:
                continue
            located: list[tuple[int, Any]] = []
            for c in valued:
                col = _column(c.get("r"), columns)
                if col is None:  # references left out (some writers): the place in the row is the column
                    if cut_empty:
                        raise _Unreferenced
                    located = _by_place(el, columns, v_tag, is_tag)
                    break
                located.append((col, c))
            for col, c in located:
                text = book.value(c, v_tag, is_tag)
                if not text.strip():
                    continue
                if budget <= 0:
                    sheet.complete = False
                    return budget
                sheet.cells[(row_no, col)] = text
                budget -= 1
        sheet.seen += dropped[0]
    except _Unreferenced:
        spent = len(sheet.cells)
        sheet.cells.clear()
        sheet.seen = 0
        return read_sheet(book, sheet, budget + spent, cut_empty=False)
    except Exception as e:  # noqa: BLE001 - lxml's and zlib's errors for a damaged part
        sheet.complete = False
        book.warnings.append(
            f"sheet {sheet.name!r}: read only to row {row_no} ({type(e).__name__}: {e}); the rest left out"
        )
    return _fill_merged(book, sheet, merges, budget)


def _by_place(row: Any, columns: dict[str, int], v_tag: str, is_tag: str) -> list[tuple[int, Any]]:
    located, col = [], 0
    for c in row.iterchildren(f"{_S}c"):
        col = _column(c.get("r"), columns) or col + 1
        if c.find(v_tag) is not None or c.find(is_tag) is not None:
            located.append((col, c))
    return located


def _fill_merged(book: _Book, sheet: _Sheet, merges: list[str], budget: int) -> int:
    """Every cell a merged range covers gets the range's value (the top-left cell's), as decks repeat it,
    within the sheet's valued extent: a title merged across 200 columns does not widen its table."""
    if not sheet.cells:
        return budget
    max_row = max(r for r, _ in sheet.cells)
    max_col = max(c for _, c in sheet.cells)
    for ref in merges:
        box = _range_ref(ref)
        if box is None:
            continue
        r0, c0, r1, c1 = box
        text = sheet.cells.get((r0, c0))
        if text is None:
            continue
        r1, c1 = min(r1, max_row), min(c1, max_col)
        area = (r1 - r0 + 1) * (c1 - c0 + 1)
        if area > budget:
            book.warnings.append(
                f"sheet {sheet.name!r}: merged range {ref} over documents.max_cells: its value in its first "
                "cell only"
            )
            continue
        budget -= area
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                sheet.cells.setdefault((r, c), text)
                sheet.merged[(r, c)] = (r0, c0)
    return budget


# -- table regions ------------------------------------------------------------------------------------
def _runs(keys: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct numbers → their runs of consecutive values (lo, hi)."""
    out: list[tuple[int, int]] = []
    for k in keys:
        if out and k == out[-1][1] + 1:
            out[-1] = (out[-1][0], k)
        elif not out or k > out[-1][1]:
            out.append((k, k))
    return out


def table_regions(cells: list[tuple[int, int]], work_limit: int | None = None) -> list[list[tuple[int, int]]]:
    """The blocks of cells that fully empty rows or columns separate, in reading order (top to bottom,
    then left to right): a block is cut at its empty rows, each piece at its empty columns, and so on until
    no piece splits; a single empty column between pieces that fill the same rows is a spacer, not a cut.
    Work is bounded (a block past `work_limit` cell visits stays as it is)."""
    budget = work_limit if work_limit is not None else 20 * len(cells) + 1000
    out: list[list[tuple[int, int]]] = []
    stack: list[tuple[list[tuple[int, int]], bool]] = [(cells, True)]  # (block, cut rows first)
    while stack:
        block, by_rows = stack.pop()
        pieces: list[list[tuple[int, int]]] = []
        if budget > 0 and len(block) > 1:
            for axis in (0, 1) if by_rows else (1, 0):
                budget -= len(block)
                runs = _runs(sorted({rc[axis] for rc in block}))
                if len(runs) > 1:
                    lows = [lo for lo, _ in runs]
                    groups: list[list[tuple[int, int]]] = [[] for _ in runs]
                    for rc in block:
                        groups[bisect.bisect_right(lows, rc[axis]) - 1].append(rc)
                    if axis == 1 and _spacer_columns(runs, groups):
                        continue
                    pieces = groups
                    by_rows = axis == 1  # a piece was cut along this axis: try the other one first
                    break
        if not pieces:
            out.append(block)
            continue
        stack.extend((p, by_rows) for p in reversed(pieces))
    return out


def _spacer_columns(runs: list[tuple[int, int]], groups: list[list[tuple[int, int]]]) -> bool:
    """Pieces that single empty columns part and that fill the very same rows: one table with spacer
    columns, whose rows cutting would tear apart."""
    if any(b[0] - a[1] != 2 for a, b in zip(runs, runs[1:], strict=False)):
        return False
    rows = {r for r, _ in groups[0]}
    return all({r for r, _ in g} == rows for g in groups[1:])


def _title_lines(grid: list[list[str]], origins: list[list[Any]]) -> int:
    """How many of the block's first rows are title lines: one value in the first column (or one merged
    range) above a table whose rows have more than one."""
    n = 0
    while len(grid) - n >= 2 and n < 3:
        row, src = grid[n], origins[n]
        filled = [i for i, v in enumerate(row) if v.strip()]
        ranges = {src[i] for i in filled}
        if not filled or len(ranges) != 1 or (src[filled[0]] is None and filled != [0]):
            break
        if not any(sum(1 for v in r if v.strip()) > 1 for r in grid[n + 1 :]):
            break
        n += 1
    return n


@dataclass
class _Block:
    range: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    titles: list[str]
    table: list[list[str]]
    lines: list[str] = field(default_factory=list)  # a sparse block's rows, as list items


def _blocks(book: _Book, sheet: _Sheet) -> list[_Block]:
    blocks: list[_Block] = []
    for region in table_regions(list(sheet.cells)):
        r0, r1 = min(r for r, _ in region), max(r for r, _ in region)
        c0, c1 = min(c for _, c in region), max(c for _, c in region)
        where = range_text(r0, c0, r1, c1)
        area = (r1 - r0 + 1) * (c1 - c0 + 1)
        if area > 4 * len(region) + 10_000 and area > book.render_budget:
            # A sparse block (cells on a diagonal) would be a table of n² mostly empty cells: its rows'
            # values as lines instead, every word kept in bounded time.
            by_row: dict[int, list[tuple[int, int]]] = {}
            for rc in sorted(region):
                by_row.setdefault(rc[0], []).append(rc)
            lines = ["; ".join(sheet.cells[rc] for rc in row) for row in by_row.values()]
            blocks.append(_Block(where, (r0, r1), (c0, c1), [], [], lines))
            continue
        if area > 4 * len(region) + 10_000:
            book.render_budget -= area
        present = set(region)
        grid = [[sheet.cells[(r, c)] if (r, c) in present else "" for c in range(c0, c1 + 1)]
                for r in range(r0, r1 + 1)]  # fmt: skip
        origins = [[sheet.merged.get((r, c)) for c in range(c0, c1 + 1)] for r in range(r0, r1 + 1)]
        n = _title_lines(grid, origins)
        titles = [next(v for v in row if v.strip()) for row in grid[:n]]
        table = grid[n:]
        if table:  # the title's column may be one the table leaves empty
            used = [i for i in range(len(table[0])) if any(row[i].strip() for row in table)]
            table = [row[used[0] : used[-1] + 1] for row in table]
        if len(table) == 1 and sum(1 for v in table[0] if v.strip()) == 1:
            titles.append(next(v for v in table[0] if v.strip()))  # a lone value is a line of text
            table = []
        blocks.append(_Block(where, (r0, r1), (c0, c1), titles, table))
    return blocks


# -- comments, drawings, charts -----------------------------------------------------------------------
def _comments(book: _Book, sheet: _Sheet) -> list[tuple[tuple[int, int], str]]:
    """(cell, Markdown line) for each comment and threaded comment, threaded ones with their replies. The
    legacy comment Excel writes beside a threaded one holds a placeholder: the threaded part's text and
    authors are taken instead, and the placeholder only where the threaded part is missing."""
    out: list[tuple[tuple[int, int], str]] = []
    threaded: set[tuple[int, int]] = set()
    pkg = book.pkg
    for part in pkg.related(sheet.part, "threadedComment"):
        try:
            root = pkg.xml(part)
        except DocumentOpenError as e:
            book.warnings.append(f"sheet {sheet.name!r}: threaded comments not read ({e})")
            continue
        for tc in root.iter(f"{_TC}threadedComment"):
            ref = _cell_ref(tc.get("ref") or "")
            body = tc.find(f"{_TC}text")
            text = (body.text or "").strip() if body is not None else ""
            if ref is None or not text:
                continue
            threaded.add(ref)
            who = book.persons.get(tc.get("personId") or "", "")
            line = f"- {tc.get('ref')}{f' ({who})' if who else ''}: {text}"
            out.append((ref, line.replace("\n", " ")))
    for part in pkg.related(sheet.part, "comments"):
        try:
            root = pkg.xml(part)
        except DocumentOpenError as e:
            book.warnings.append(f"sheet {sheet.name!r}: comments not read ({e})")
            continue
        authors = [a.text or "" for a in root.iter(f"{_S}author")]
        for cm in root.iter(f"{_S}comment"):
            ref = _cell_ref(cm.get("ref") or "")
            if ref is None or ref in threaded:
                continue
            body = cm.find(f"{_S}text")
            text = _text(body).strip() if body is not None else ""
            author_id = cm.get("authorId") or ""
            who = authors[int(author_id)] if author_id.isdigit() and int(author_id) < len(authors) else ""
            if text.startswith(_THREADED_PLACEHOLDER):
                text = _placeholder_text(text)
                who = ""  # Excel names the thread's id ("tc={...}"), not a person
            if who.startswith("tc="):
                who = ""
            if who and text.startswith(who + ":"):  # Excel opens a note with its author's name, in bold
                text = text[len(who) + 1 :].strip()
            if text:
                out.append((ref, f"- {cm.get('ref')}{f' ({who})' if who else ''}: {text}".replace("\n", " ")))
    out.sort(key=lambda item: item[0])
    return out


def _placeholder_text(text: str) -> str:
    """The thread's words in Excel's placeholder ("... Comment:\n    words\nReply:\n    words"), without the
    notice around them."""
    _, _, thread = text.partition("Comment:")
    parts = re.split(r"\n\s*Reply:\s*", thread)
    return " / ".join(" ".join(p.split()) for p in parts if p.strip())


def _drawing_parts(book: _Book, part: str) -> list[str]:
    return book.pkg.related(part, "drawing")


def _drawing_content(
    book: _Book, sheet: _Sheet, cells: Callable[[str], list[str]]
) -> tuple[list[str], list[str], list[tuple[str, str | None]]]:
    """The sheet's drawings: (charts as Markdown, text boxes' paragraphs, pictures as (alt text, image
    part or None))."""
    from unitok.pipeline.formats.pptx import chart_from_xml, xml_paragraphs

    charts: list[str] = []
    texts: list[str] = []
    pictures: list[tuple[str, str | None]] = []
    pkg = book.pkg
    for drawing in _drawing_parts(book, sheet.part):
        try:
            root = pkg.xml(drawing)
        except DocumentOpenError as e:
            book.warnings.append(f"sheet {sheet.name!r}: drawing not read ({e})")
            continue
        rels = pkg.rels(drawing)
        targets = {rid: t for rid, typ, t in rels if typ.rsplit("/", 1)[-1] in ("chart", "chartEx")}
        images = {rid: t for rid, typ, t in rels if typ.rsplit("/", 1)[-1] == "image"}
        for el in root.iter():
            tag = el.tag if isinstance(el.tag, str) else ""
            if tag in (f"{{{_CHART_NS}}}chart", f"{{{_CHARTEX_NS}}}chart"):
                target = targets.get(el.get(f"{_R}id") or "")
                if not target or target not in pkg.names:
                    continue
                try:
                    chart_xml = pkg.xml(target)
                    if _too_many_points(chart_xml):
                        raise DocumentOpenError(f"more than {_MAX_CHART_POINTS:,} points")
                    charts.append(chart_markdown(chart_from_xml(chart_xml, cells)))
                except DocumentOpenError as e:
                    book.warnings.append(f"sheet {sheet.name!r}: chart {target} not read ({e})")
            elif tag == f"{_XDR}sp":
                body = el.find(f"{_XDR}txBody")
                if body is not None:
                    texts.extend(xml_paragraphs(body))
            elif tag == f"{_XDR}pic":
                props = el.find(f"{_XDR}nvPicPr/{_XDR}cNvPr")
                said = [] if props is None else [props.get("title") or "", props.get("descr") or ""]
                said = list(
                    dict.fromkeys(a for a in (" ".join(GENERATED_ALT.sub("", x).split()) for x in said) if a)
                )
                blip = el.find(f"{_XDR}blipFill/{_A}blip")
                target = images.get(blip.get(f"{_R}embed") or "") if blip is not None else None
                pictures.append((": ".join(said), target if target in pkg.names else None))
    return charts, texts, pictures


def _too_many_points(root: Any) -> bool:
    """A chart whose point indexes are absurd (the chart reader sizes its lists by the largest)."""
    for ns in (_CHART_NS, _CHARTEX_NS):
        for pt in root.iter(f"{{{ns}}}pt"):
            idx = pt.get("idx") or "0"
            if not idx.isdigit() or int(idx) > _MAX_CHART_POINTS:
                return True
    return False


def _cells_of(book: _Book) -> Callable[[str], list[str]]:
    """A chart series' formula ('Sheet 1'!$B$2:$B$5) → the values of its cells, for charts without a cache
    (files that openpyxl wrote have none)."""
    by_name = {s.name: s for s in book.sheets}

    def cells(formula: str) -> list[str]:
        m = re.fullmatch(r"(?:'((?:[^']|'')+)'|([^!]+))!(\$?[A-Z]+\$?\d+(?::\$?[A-Z]+\$?\d+)?)", formula)
        if not m:
            return []
        sheet = by_name.get((m.group(1) or "").replace("''", "'") or m.group(2))
        box = _range_ref(m.group(3))
        if sheet is None or box is None:
            return []
        r0, c0, r1, c1 = box
        if (r1 - r0 + 1) * (c1 - c0 + 1) > _MAX_CHART_POINTS:
            return []
        return [sheet.cells.get((r, c), "") for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    return cells


# -- segments -----------------------------------------------------------------------------------------
def workbook_segments(path: Path, base: Segment, cfg: JobConfig, pictures: bool = False) -> Iterator[Segment]:
    with check_zip(path, cfg.documents.max_uncompressed_bytes, "workbook") as z:
        try:
            book = _Book(_Package(z), base.warnings)
        except DocumentOpenError as e:
            raise DocumentOpenError(f"not a readable workbook ({e})") from None
        budget = book.render_budget = cfg.documents.max_cells
        left_out: list[str] = []
        for sheet in book.sheets:
            if sheet.chartsheet or not sheet.part or sheet.part not in book.pkg.names:
                continue
            if budget <= 0:
                left_out.append(sheet.name)
                continue
            budget = read_sheet(book, sheet, budget)
            if not sheet.complete and budget <= 0:
                base.warnings.append(
                    f"over documents.max_cells={cfg.documents.max_cells:,}: the rest of sheet {sheet.name!r} "
                    "left out"
                )
        if left_out:
            base.warnings.append(
                f"over documents.max_cells={cfg.documents.max_cells:,}: sheet(s) "
                f"{', '.join(map(repr, left_out))} left out"
            )
        index = 0
        cells = _cells_of(book)
        for sheet in book.sheets:
            if sheet.hidden:
                base.warnings.append(
                    f"{'chartsheet' if sheet.chartsheet else 'sheet'} {sheet.name!r} is hidden"
                )
            for markdown, where, images in _sheet_markdown(book, sheet, cells, cfg):
                seg = base.part(index, "sheet", CONTENT_TEXT)
                seg.heading_path = [sheet.name]
                seg.page_number = sheet.number
                part: dict[str, Any] = {"markdown": markdown, "parser": "unitok-xlsx"}
                if where:
                    part["range"] = where
                seg.structure_json = json.dumps(part)
                if pictures and images:
                    from unitok.pipeline.formats.image import part_pictures

                    found = part_pictures(book.pkg.z.read, images, cfg.image.max_pixels, book.warnings,
                                          f"sheet {sheet.name!r}: ")  # fmt: skip
                    seg.pictures_png = [png for png in found if png]
                seg.warnings = list(base.warnings)
                index += 1
                yield seg
        if not index:
            raise DocumentOpenError(f"no text: no value in any of the workbook's {len(book.sheets)} sheet(s)")


def _sheet_markdown(
    book: _Book, sheet: _Sheet, cells: Callable[[str], list[str]], cfg: JobConfig
) -> Iterator[tuple[str, str, list[str | None]]]:
    """(Markdown, cell range, its pictures' image parts) of each segment of a sheet: its table regions
    (long ones cut every documents.max_rows_per_segment rows, the header repeated), then its charts, text
    boxes and pictures."""
    kind = "chartsheet" if sheet.chartsheet else "sheet"
    marker = f"<!-- {'hidden ' if sheet.hidden else ''}{kind}: {sheet.name} -->"
    charts, texts, pictures = (
        _drawing_content(book, sheet, cells) if sheet.part in book.pkg.names else ([], [], [])
    )
    if sheet.chartsheet:
        if not charts:
            book.warnings.append(f"chartsheet {sheet.name!r}: no chart found in it")
        else:
            yield marker + "\n\n" + "\n\n".join(charts), "", []
        return
    blocks = _blocks(book, sheet)
    comments = _comments(book, sheet)
    owner: dict[int, list[str]] = {}
    for ref, line in comments:
        n = next((i for i, b in enumerate(blocks) if b.rows[0] <= ref[0] <= b.rows[1]
                  and b.cols[0] <= ref[1] <= b.cols[1]), len(blocks) - 1)  # fmt: skip
        owner.setdefault(n, []).append(line)
    step = cfg.documents.max_rows_per_segment
    for n, block in enumerate(blocks):
        head = f"{marker}\n\n<!-- range: {block.range} -->"
        starts = list(range(1, max(len(block.table), 2), step))
        for k, start in enumerate(starts):
            parts = [head]
            if k == 0:
                parts += [_paragraph(t) for t in block.titles]
                parts += ["\n".join(f"- {_inline(line)}" for line in block.lines)] if block.lines else []
            if block.table:
                parts.append(md_table([block.table[0], *block.table[start : start + step]]))
            if k == len(starts) - 1 and owner.get(n):
                parts.append("<!-- comments -->\n\n" + "\n".join(owner[n]))
            yield "\n\n".join(parts), block.range, []
    if not blocks and owner.get(-1):
        yield f"{marker}\n\n<!-- comments -->\n\n" + "\n".join(owner[-1]), "", []
    # A picture is a marker with the description its author set, as in Word documents and decks.
    marks = [IMAGE_MARKER + (f" *{alt}*" if alt else "") for alt, _ in pictures]
    extra = [*charts, *(_paragraph(t) for t in texts), *marks]
    if extra:
        yield marker + "\n\n" + "\n\n".join(extra), "", [target for _, target in pictures]


def _inline(text: str) -> str:
    return " ".join(text.split())


def _paragraph(text: str) -> str:
    """A cell's text as a paragraph: its line breaks kept, nothing in it read as Markdown structure."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return "  \n".join(re.sub(r"^([#>*+-]|\d+[.)])(?=\s)", r"\\\1", ln) for ln in lines)


def split_sheets(path: Path, base: Segment, cfg: JobConfig, needs: Any = None) -> Iterator[Segment]:
    work = None
    try:
        if base.mime_type not in (XLSX_MIME, XLSM_MIME):
            from unitok.pipeline.formats.pptx import libreoffice_convert

            work = Path(tempfile.mkdtemp(prefix="unitok-xls-"))
            path = libreoffice_convert(path, "xlsx", work, cfg.documents.convert_timeout_s, DocumentOpenError,
                                       "workbook")  # fmt: skip
        with check_zip(path, cfg.documents.max_uncompressed_bytes, "workbook") as z:
            if is_strict(z, "xl/workbook.xml"):
                work = work or Path(tempfile.mkdtemp(prefix="unitok-xls-"))
                path = transitional_copy(z, work / "transitional.xlsx")
        yield from workbook_segments(path, base, cfg, needs is not None and needs.pictures)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
