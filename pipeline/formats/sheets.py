"""Spreadsheets (XLSX, XLSM; XLS and ODS through LibreOffice) → a segment per table region of each sheet:
Markdown tables of cached formula values (never the formulas), dates and numbers as their format displays
them, merged cells repeated, comments after their table, hidden sheets flagged. A sheet's name is its
provenance (heading_path) and a marker, not a heading the author did not write.

Bounded time: only cells present in the file are read (a sheet whose used range claims a million rows
costs its real cells), at most documents.max_cells per workbook; a workbook whose sheets' XML is large is
streamed (openpyxl's read-only mode: merged cells and comments are then not read, and it says so). A
workbook saved as Strict Open XML is read from a copy with its namespaces mapped to the Transitional ones
(openpyxl reads only those). A workbook with no value in any sheet is an error that says so.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.markdown import chart_markdown, md_table
from unitok.pipeline.core.records import CONTENT_TEXT, Segment
from unitok.pipeline.formats.documents import (
    DocumentOpenError,
    check_zip,
    is_strict,
    safe_xml,
    transitional_copy,
)

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSM_MIME = "application/vnd.ms-excel.sheet.macroEnabled.12"
STREAM_ABOVE_BYTES = 32 << 20  # sheets' XML past this is read in streaming mode


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
        section = re.sub(r'"[^"]*"|\[[^\]]*\]|\\.|_.|\*.', "", fmt.split(";")[0])
        if section == "General" or not re.search(r"[0#?]", section):
            return str(int(value)) if float(value).is_integer() else str(value)
        decimals = len(re.sub(r"[^0#?]", "", section.split(".", 1)[1])) if "." in section else 0
        percent = "%" in section
        number = value * 100 if percent else value
        text = f"{number:,.{decimals}f}" if "," in section else f"{number:.{decimals}f}"
        return text + ("%" if percent else "")
    return str(value)


def _regions(grid: list[list[str]]) -> list[list[list[str]]]:
    """Table regions: runs of rows separated by empty rows, each trimmed of empty edge columns."""
    regions, current = [], []
    for row in grid + [[]]:
        if any(c.strip() for c in row):
            current.append(row)
        elif current:
            regions.append(current)
            current = []
    out = []
    for rows in regions:
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        used = [c for c in range(width) if any(r[c].strip() for r in rows)]
        lo, hi = used[0], used[-1] + 1
        out.append([r[lo:hi] for r in rows])
    return out


def workbook_segments(path: Path, base: Segment, cfg: JobConfig) -> Iterator[Segment]:
    from openpyxl import load_workbook

    with check_zip(path, cfg.documents.max_uncompressed_bytes, "workbook") as z:
        sheet_bytes = sum(i.file_size for i in z.infolist() if i.filename.startswith("xl/worksheets/"))
    stream = sheet_bytes > STREAM_ABOVE_BYTES
    # A file object, not the path: openpyxl refuses a path whose extension is not .xlsx/.xlsm, and the
    # type came from the bytes (a workbook without an extension, or under a wrong one). Read-only mode
    # reads the file lazily, so it stays open as long as the workbook.
    source = open(path, "rb")  # noqa: SIM115 - closed with the workbook below
    try:
        wb = load_workbook(source, data_only=True, read_only=stream, keep_links=False)
    except Exception as e:  # noqa: BLE001 - openpyxl's errors for a broken package are of many types
        source.close()
        raise DocumentOpenError(f"not a readable workbook ({type(e).__name__}: {e})") from None
    if stream:
        base.warnings.append("large workbook read in streaming mode: merged cells and comments not read")
    budget = cfg.documents.max_cells
    index = 0
    try:
        charts = _chartsheet_charts(path, wb)
        sheets = [*wb.worksheets, *getattr(wb, "chartsheets", [])]
        for ws in sorted(sheets, key=lambda sheet: wb.sheetnames.index(sheet.title)):
            if ws.title in charts or not hasattr(ws, "iter_rows"):
                hidden = ws.sheet_state != "visible"
                marker = f"<!-- {'hidden ' if hidden else ''}chartsheet: {ws.title} -->"
                found = charts.get(ws.title) or []
                if not found:
                    base.warnings.append(f"chartsheet {ws.title!r}: no chart found in it")
                    continue
                seg = base.part(index, "sheet", CONTENT_TEXT)
                seg.heading_path = [ws.title]
                seg.page_number = wb.sheetnames.index(ws.title) + 1
                body = "\n\n".join(chart_markdown(chart) for chart in found)
                seg.structure_json = json.dumps({"markdown": marker + "\n\n" + body, "parser": "openpyxl"})
                seg.warnings = list(base.warnings)
                index += 1
                yield seg
                continue
            hidden = ws.sheet_state != "visible"
            if hidden:
                base.warnings.append(f"sheet {ws.title!r} is hidden")
            if stream:
                ws.reset_dimensions()  # read the rows present, not the used range the file claims
            grid: list[list[str]] = []
            comments: list[str] = []
            merged = {} if stream else _merged_values(ws)
            for row in ws.iter_rows():
                cells = []
                for cell in row:
                    if getattr(cell, "value", None) is None and not merged:
                        cells.append("")
                        continue
                    coord = (getattr(cell, "row", None), getattr(cell, "column", None))
                    cells.append(
                        merged[coord] if coord in merged else display(cell.value, cell.number_format)
                    )
                    comment = getattr(cell, "comment", None)
                    if comment is not None and comment.text:
                        who = f" ({comment.author})" if comment.author else ""
                        comments.append(f"- {cell.coordinate}{who}: {comment.text.strip()}")
                budget -= len(cells)
                if budget < 0:
                    base.warnings.append(
                        f"over documents.max_cells={cfg.documents.max_cells:,}: the rest of sheet "
                        f"{ws.title!r} and later sheets left out"
                    )
                    break
                grid.append(cells)
            regions = _regions(grid)
            for n, region in enumerate(regions):
                for start in range(1, max(len(region), 2), cfg.documents.max_rows_per_segment):
                    body = region[start : start + cfg.documents.max_rows_per_segment]
                    marker = f"<!-- {'hidden ' if hidden else ''}sheet: {ws.title} -->"
                    markdown = marker + "\n\n" + md_table([region[0], *body])
                    last = start + cfg.documents.max_rows_per_segment >= len(region)
                    if last and n == len(regions) - 1 and comments:
                        markdown += "\n\n<!-- comments -->\n\n" + "\n".join(comments)
                    seg = base.part(index, "sheet", CONTENT_TEXT)
                    seg.heading_path = [ws.title]
                    seg.page_number = wb.sheetnames.index(ws.title) + 1
                    seg.structure_json = json.dumps({"markdown": markdown, "parser": "openpyxl"})
                    seg.warnings = list(base.warnings)
                    index += 1
                    yield seg
            if budget < 0:
                break
        if not index:
            raise DocumentOpenError(f"no text: no value in any of the workbook's {len(sheets)} sheet(s)")
    finally:
        wb.close()
        source.close()  # a zip opened on a file object leaves the file open


def _chartsheet_charts(path: Path, wb: Any) -> dict[str, list[dict[str, Any]]]:
    """Each chartsheet's charts (title, categories, series), from the package's parts: the chartsheet,
    its drawing, the drawing's charts. openpyxl keeps no chart it reads. Values come from a chart's cache,
    else from the cells its series refer to (files that openpyxl wrote have no cache)."""
    from unitok.pipeline.formats.docx import PKG_REL, R
    from unitok.pipeline.formats.pptx import chart_from_xml

    def cells(formula: str) -> list[str]:
        m = re.fullmatch(r"(?:'((?:[^']|'')+)'|([^!]+))!(\$?[A-Z]+\$?\d+(?::\$?[A-Z]+\$?\d+)?)", formula)
        if not m:
            return []
        name = (m.group(1) or "").replace("''", "'") or m.group(2)
        if name not in wb.sheetnames or not hasattr(wb[name], "iter_rows"):
            return []
        found = wb[name][m.group(3).replace("$", "")]
        flat = [c for row in found for c in row] if isinstance(found, tuple) else [found]
        flat = [c for item in flat for c in (item if isinstance(item, tuple) else (item,))]
        return [display(c.value, c.number_format) for c in flat]

    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())

        def xml(name: str) -> Any:
            return safe_xml(z.read(name)) if name in names else None

        def rels(part: str) -> dict[str, str]:
            folder, file = posixpath.split(part)
            root = xml(f"{folder}/_rels/{file}.rels")
            if root is None:
                return {}
            return {r.get("Id"): posixpath.normpath(posixpath.join(folder, r.get("Target", "")))
                    if not r.get("Target", "").startswith("/") else r.get("Target", "")[1:]
                    for r in root.iter(f"{{{PKG_REL}}}Relationship")}  # fmt: skip

        book = xml("xl/workbook.xml")
        if book is None:
            return {}
        book_rels = rels("xl/workbook.xml")
        out: dict[str, list[dict[str, Any]]] = {}
        for sheet in book.iter(f"{{{_SHEET_NS}}}sheet"):
            part = book_rels.get(sheet.get(f"{{{R}}}id"), "")
            root = xml(part) if "/chartsheets/" in f"/{part}" else None
            if root is None:
                continue
            charts = []
            for drawing in root.iter(f"{{{_SHEET_NS}}}drawing"):
                drawing_part = rels(part).get(drawing.get(f"{{{R}}}id"), "")
                drawing_xml = xml(drawing_part)
                if drawing_xml is None:
                    continue
                targets = rels(drawing_part)
                for ref in drawing_xml.iter(f"{{{_CHART_NS}}}chart"):
                    chart_xml = xml(targets.get(ref.get(f"{{{R}}}id"), ""))
                    if chart_xml is not None:
                        charts.append(chart_from_xml(chart_xml, cells))
            out[sheet.get("name")] = charts
        return out


_SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_CHART_NS = "http://schemas.openxmlformats.org/drawingml/2006/chart"


def _merged_values(ws: Any) -> dict[tuple[int, int], str]:
    """Every cell a merged range covers, with the range's value (the top-left cell's), as decks repeat it."""
    out = {}
    for rng in ws.merged_cells.ranges:
        top = ws.cell(rng.min_row, rng.min_col)
        text = display(top.value, top.number_format)
        for r in range(rng.min_row, rng.max_row + 1):
            for c in range(rng.min_col, rng.max_col + 1):
                out[(r, c)] = text
    return out


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
        yield from workbook_segments(path, base, cfg)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
