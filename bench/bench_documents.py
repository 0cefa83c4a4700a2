"""Office and web documents: fidelity and speed of unitok against markitdown (the peer) on documents with
known text, built by the tests' builders (tests/test_documents.py), in the same run.

Fidelity: word recall (the share of the author's words, in order-free multiset terms, that the output
has) and word precision (the share of the output's words the author wrote, markup aside); speed: the mean
of 5 conversions after a warm-up, in the same process.

    python bench/bench_documents.py
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

# The words each built document holds, as its author wrote them (tests/test_documents.py's builders).
EXPECTED = {
    "report.docx": (
        "ACME Water Trust Annual Report The pumps were serviced in spring. Sites Oslo depot Bergen depot "
        "Harbour wing Site Filters Pumps North 1200 4 inner A inner B South pending audit Read the full "
        "report now online. Audited in May. Flow: Q A Callout: boil water notice Outline-level heading "
        "# not a heading, a paragraph that starts with a hash Confidential draft Check the dates"
    ),
    "budget.xlsx": (
        "Item Cost Date Share Pumps 1,234.50 2026-03-01 25% Filters 99 2-Apr-26 75.5% Total 1333.5 Notes "
        "Merged remark check the supplier Year 2019"
    ),
    "page.html": (
        "Annual report Revenue grew by 12% in Q3 at Tromsø café. North Oslo South Region Sales North 10 "
        "x = 1 y = 2 Map of the sites"
    ),
}


def words(text: str) -> Counter:
    # Markup is not words: markers, link targets, list numbers, footnote labels, line breaks in cells.
    text = re.sub(r"<!--.*?-->|<br>|\]\([^)]*\)|\[\^\w+\]:?|^\s*\d+\.\s", " ", text, flags=re.M)
    text = re.sub(r"[*_`|#>\[\]$\\{}]|\bfrac\b|^-{3,}$", " ", text, flags=re.M)
    return Counter(w.strip(".,:;!?()").lower() for w in text.split() if w.strip(".,:;!?()-"))


def score(out: str, expected: str) -> tuple[float, float]:
    got, want = words(out), words(expected)
    hit = sum((got & want).values())
    return hit / max(1, sum(want.values())), hit / max(1, sum(got.values()))


def timed(fn, path: Path) -> tuple[str, float]:
    fn(path)  # warm-up: imports, first-use caches
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        out = fn(path)
        runs.append(time.perf_counter() - t0)
    return out, statistics.mean(runs)


def build_page(path: Path) -> Path:
    """A web page in windows-1252 with navigation and a footer around its main content."""
    path.write_bytes(
        '<!DOCTYPE html><html><head><meta charset="windows-1252"><title>Site</title></head><body>'
        "<nav><a href='/'>Home</a> <a href='/about'>About us</a></nav><main><h1>Annual report</h1>"
        "<p>Revenue grew by <b>12%</b> in <a href='https://ex.com/q3'>Q3</a> at Tromsø café.</p>"
        "<ul><li>North<ul><li>Oslo</li></ul></li><li>South</li></ul><table><tr><th>Region</th><th>Sales</th>"
        "</tr><tr><td>North</td><td>10</td></tr></table><pre>x = 1\n  y = 2</pre>"
        "<img src='a.png' alt='Map of the sites'></main><footer>Copyright ACME</footer></body></html>".encode(
            "cp1252"
        )
    )
    return path


def main() -> None:
    import unitok
    from markitdown import MarkItDown
    from test_documents import build_docx, build_xlsx

    work = Path(tempfile.mkdtemp(prefix="unitok-bench-docs-"))
    build_docx(work / "report.docx")
    build_xlsx(work / "budget.xlsx")
    build_page(work / "page.html")
    peer = MarkItDown()
    print("| document | tool | word recall | word precision | ms per conversion |")
    print("|---|---|---|---|---|")
    for name, expected in EXPECTED.items():
        path = work / name
        for tool, fn in (("unitok", lambda p: unitok.convert(p).markdown),
                         ("markitdown", lambda p: peer.convert(str(p)).text_content)):  # fmt: skip
            out, secs = timed(fn, path)
            recall, precision = score(out, expected)
            print(f"| {name} | {tool} | {recall:.2f} | {precision:.2f} | {secs * 1000:.0f} |", flush=True)


if __name__ == "__main__":
    main()
