"""Fidelity: how much of the text an author wrote comes out, in order, and how much is added, for unitok
and for the peers a data engineer would otherwise reach for, on documents whose text is known (made here:
decks with python-pptx plus raw XML, PDFs written by hand and laid out by LibreOffice). One scorer for all.

    recall     share of the author's words that come out (a multiset: a repeated word counts each time)
    precision  share of the output's words that the author wrote (labels, file names, repeats lower it)
    order      longest common subsequence of words / author's words: reading order kept
    F1         of recall and precision

Markdown syntax (#, |, ---, list markers, HTML comments) is not counted as words for anyone.

    python bench/bench_fidelity.py
"""

from __future__ import annotations

import difflib
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tests' document makers

_MARKUP = re.compile(
    r"<!--.*?-->|^\s*(#{1,6}|[-*+]|\d+\.|>)\s+|\|\s*-{3,}\s*|\*\*|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)", re.M
)
_TOKEN = re.compile(r"[^\s|]+")
_EDGE = ".,;:!?()[]{}\"'«»“”‘’*_`"


def words(text: str) -> list[str]:
    text = _MARKUP.sub(" ", text)
    return [t.strip(_EDGE) for t in _TOKEN.findall(text) if t.strip(_EDGE)]


def score(truth: str, output: str) -> tuple[float, float, float]:
    want, got = words(truth), words(output)
    common = sum((Counter(want) & Counter(got)).values())
    recall = common / len(want) if want else 1.0
    precision = common / len(got) if got else 0.0
    blocks = difflib.SequenceMatcher(None, want, got, autojunk=False).get_matching_blocks()
    order = sum(b.size for b in blocks) / len(want) if want else 1.0
    return recall, precision, order


# -- documents with known text --------------------------------------------------------------------------
def deck_documents(folder: Path) -> list[tuple[str, Path, str]]:
    from test_pptx import make_deck, make_odd_deck

    made, odd = folder / "made.pptx", folder / "odd.pptx"
    make_deck(made)
    make_odd_deck(odd)
    made_truth = (
        "Quarterly results Region Q1 Q2 All 10 12 All 7 9 Red company logo Mention the merger in Q2. "
        "Sales chart Units sold Units Jan 3 Feb 5"
    )
    odd_truth = (
        "Words first Text only the choice holds A placeholder python-pptx cannot type Second line "
        "Plan Build Ship Ada Lovelace 2024-03-01T09:30:00.000 Check the numbers on this slide "
        "Odd chart Sales by region Revenue North 120 South 95.5 "
        "Grace Hopper 2024-05-02T10:00:00.000 Is South really 95.5? "
        "Alan Turing 2024-05-02T11:00:00.000 Fixed in v2"
    )
    return [("deck: tables, chart, notes, alt text", made, made_truth),
            ("deck: odd shapes, SmartArt, comments", odd, odd_truth)]  # fmt: skip


def pdf_documents(folder: Path) -> list[tuple[str, Path, str]]:
    from handmade import MIXED, hand_pdf, mixed_direction_pdf, ruled_table, text_at

    docs = []
    table = folder / "table.pdf"
    table.write_bytes(hand_pdf(
        text_at(72, 720, "Quarterly figures by region are below.")
        + ruled_table(72, 690, [120, 80, 80], [
            ["Region", "Q1", "Q2"], ["North", "1,200", "1,350"], ["South and East", "980", "1,010"],
            ["Total", "2,180", "2,360"],
        ])
        + text_at(72, 580, "Figures are unaudited.")
    ))  # fmt: skip
    docs.append(("pdf: paragraph, ruled table, paragraph", table,
                 "Quarterly figures by region are below. Region Q1 Q2 North 1,200 1,350 South and East 980 "
                 "1,010 Total 2,180 2,360 Figures are unaudited."))  # fmt: skip
    left = ["The left column opens", "the article and runs", "down the page to its", "very end here."]
    right = ["The right column then", "continues the story", "and closes it with", "a final line."]
    two = folder / "two-columns.pdf"
    two.write_bytes(hand_pdf(
        text_at(72, 740, "A Two Column Page", 18)
        + "".join(text_at(72, 700 - 16 * i, t) for i, t in enumerate(left))
        + "".join(text_at(320, 700 - 16 * i, t) for i, t in enumerate(right))
    ))  # fmt: skip
    docs.append(("pdf: title over two columns", two, "A Two Column Page " + " ".join(left + right)))
    if shutil.which("soffice"):
        mixed_direction_pdf(folder)
        docs.append(("pdf: Arabic and Hebrew lines with Latin words", folder / "mixed.pdf",
                     " ".join(line for line, _ in MIXED)))  # fmt: skip
    return docs


# -- converters -----------------------------------------------------------------------------------------
def unitok_converter() -> Callable[[Path], str]:
    from unitok.actors.registry import engine_options
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.stages.convert import EnginePool
    from unitok.pipeline.stages.convert_file import convert_file

    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}})
    engines = EnginePool(engine_options(cfg))

    def convert(path: Path) -> str:
        doc = convert_file(path, path.name, cfg, engines, "bench")["document"]
        return doc["markdown"] if doc else ""

    return convert


def markitdown_converter() -> Callable[[Path], str]:
    from markitdown import MarkItDown

    md = MarkItDown()
    return lambda path: md.convert(str(path)).text_content


def pypdfium2_raw(path: Path) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        return "\n".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    finally:
        pdf.close()


def pdfplumber_text(path: Path) -> str:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def main() -> int:
    unitok = unitok_converter()
    peers: dict[str, dict[str, Callable[[Path], str]]] = {
        "deck": {"markitdown (python-pptx)": markitdown_converter()},
        "pdf": {"pypdfium2 raw text": pypdfium2_raw, "pdfplumber": pdfplumber_text,
                "markitdown (pdfminer)": markitdown_converter()},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind, docs in (("deck", deck_documents(folder)), ("pdf", pdf_documents(folder))):
            tools = {"unitok": unitok, **peers[kind]}
            results: dict[str, list[tuple[float, float, float]]] = {t: [] for t in tools}
            print(f"\n{kind.upper()}S{'':34s}" + "".join(f"{t[:24]:>26s}" for t in tools))
            print(f"{'':40s}" + f"{'recall prec. order':>26s}" * len(tools))
            for name, path, truth in docs:
                row = f"{name[:40]:40s}"
                for tool, convert in tools.items():
                    try:
                        out = convert(path)
                    except Exception as e:  # noqa: BLE001 - a converter that fails scores zero
                        out = ""
                        print(f"  ({tool} failed on {path.name}: {type(e).__name__})", file=sys.stderr)
                    r, p, o = score(truth, out)
                    results[tool].append((r, p, o))
                    row += f"{r:9.2f}{p:7.2f}{o:7.2f}   "
                print(row)
            f1 = {t: mean(2 * r * p / (r + p) if r + p else 0.0 for r, p, _ in v) for t, v in results.items()}
            order = {t: mean(o for _, _, o in v) for t, v in results.items()}
            best = max((t for t in tools if t != "unitok"), key=lambda t: f1[t] + order[t])
            print("mean F1 / order: " + ", ".join(f"{t} {f1[t]:.3f} / {order[t]:.3f}" for t in tools))
            print(f"unitok vs the best peer ({best}): F1 {f1['unitok'] / max(f1[best], 1e-9):.2f}×, "
                  f"order {order['unitok'] / max(order[best], 1e-9):.2f}×")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
