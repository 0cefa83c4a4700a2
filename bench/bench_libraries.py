"""The libraries unitok could have read Word, spreadsheet and HTML documents with, measured on the same
documents with known words as bench_documents.py (tests/test_documents.py's builders), in one run: word
recall and precision (bench_documents.score) and the mean time of 5 reads after a warm-up; and, for
spreadsheets, a large sheet (rows x 8 columns of numbers, dates and text) read whole.

Each candidate is used as its documentation shows, with the Markdown it gives (mammoth, markdownify) or the
text of every cell and paragraph it exposes (python-docx, docx2python, openpyxl, python-calamine): the
question is which words a library gives at all, and at what cost.

    python bench/bench_libraries.py [--rows 20000]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

from bench_documents import EXPECTED, build_page, score, timed  # noqa: E402


def docx_python_docx(path: Path) -> str:
    import docx

    d = docx.Document(str(path))
    parts = [p.text for p in d.paragraphs]
    for table in d.tables:
        parts += [cell.text for row in table.rows for cell in row.cells]
    for section in d.sections:
        parts += [p.text for p in section.header.paragraphs + section.footer.paragraphs]
    return "\n".join(parts)


def docx_mammoth(path: Path) -> str:
    import mammoth

    with path.open("rb") as f:
        return mammoth.convert_to_markdown(f).value


def docx_docx2python(path: Path) -> str:
    from docx2python import docx2python

    with docx2python(str(path)) as d:
        return d.text


def xlsx_openpyxl(path: Path) -> str:
    import openpyxl

    wb = openpyxl.load_workbook(path, data_only=True)
    return "\n".join(
        " ".join("" if v is None else str(v) for v in row)
        for ws in wb.worksheets
        for row in ws.iter_rows(values_only=True)
    )


def xlsx_calamine(path: Path) -> str:
    from python_calamine import CalamineWorkbook

    wb = CalamineWorkbook.from_path(str(path))
    return "\n".join(
        " ".join(str(v) for v in row)
        for name in wb.sheet_names
        for row in wb.get_sheet_by_name(name).to_python()
    )


def html_markdownify(path: Path) -> str:
    from markdownify import markdownify

    return markdownify(path.read_bytes().decode("cp1252"))


def html_selectolax(path: Path) -> str:
    from markdownify import markdownify
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(path.read_bytes().decode("cp1252"))
    tree.strip_tags(["nav", "footer", "script", "style", "header", "aside", "form"])
    main = tree.css_first("main") or tree.body
    return markdownify(main.html or "")


def unitok_markdown(path: Path) -> str:
    import unitok

    return unitok.convert(path, config={"chunking": {"enabled": False}}).markdown  # reading, as the others


CANDIDATES = {
    "report.docx": [("unitok (lxml walker)", unitok_markdown), ("python-docx", docx_python_docx),
                    ("mammoth", docx_mammoth), ("docx2python", docx_docx2python)],
    "budget.xlsx": [("unitok (openpyxl)", unitok_markdown), ("openpyxl values", xlsx_openpyxl),
                    ("python-calamine", xlsx_calamine)],
    "page.html": [("unitok (lxml)", unitok_markdown), ("markdownify", html_markdownify),
                  ("selectolax + markdownify", html_selectolax)],
}  # fmt: skip


def big_sheet(path: Path, rows: int) -> Path:
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Ledger")
    ws.append(["Id", "Date", "Account", "Debit", "Credit", "Rate", "Note", "Region"])
    day = datetime.date(2026, 1, 1)
    for i in range(rows):
        ws.append([i, day + datetime.timedelta(days=i % 365), f"acct-{i % 97}", i * 1.25, (i % 13) * 10.5,
                   (i % 100) / 100, f"entry number {i}", ("North", "South", "East")[i % 3]])  # fmt: skip
    wb.save(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000, help="rows of the large sheet")
    args = ap.parse_args()
    from test_documents import build_docx, build_xlsx

    work = Path(tempfile.mkdtemp(prefix="unitok-bench-libs-"))
    build_docx(work / "report.docx")
    build_xlsx(work / "budget.xlsx")
    build_page(work / "page.html")
    print("| document | reader | word recall | word precision | ms per read |")
    print("|---|---|---|---|---|")
    for name, candidates in CANDIDATES.items():
        for label, fn in candidates:
            try:
                out, secs = timed(fn, work / name)
            except Exception as e:  # noqa: BLE001 - a reader that cannot read the document is a result
                print(f"| {name} | {label} | fails: {type(e).__name__}: {str(e)[:60]} | | |", flush=True)
                continue
            recall, precision = score(out, EXPECTED[name])
            print(f"| {name} | {label} | {recall:.2f} | {precision:.2f} | {secs * 1000:.0f} |", flush=True)
    sheet = big_sheet(work / "ledger.xlsx", args.rows)
    print(f"\nA {args.rows:,}-row sheet ({sheet.stat().st_size / 2**20:.1f} MiB), read whole, once:\n")
    print("| reader | seconds | rows/s |")
    print("|---|---|---|")
    for label, fn in CANDIDATES["budget.xlsx"]:
        t0 = time.perf_counter()
        fn(sheet)
        secs = time.perf_counter() - t0
        print(f"| {label} | {secs:.2f} | {args.rows / secs:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
