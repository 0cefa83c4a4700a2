# ruff: noqa: E501 - the fixtures hold OOXML and known text as written
"""Fidelity and speed per kind of document (Word, spreadsheets, web pages, PDFs with tables, decks, PDFs)
against the libraries a team would otherwise pick: kreuzberg, markitdown[all] and docling's office
backends (DOCX, XLSX, HTML, PPTX; docling's PDF pipeline needs layout models, so it is left out of both
PDF kinds), on the same files in the same run. Each tool runs in its own interpreter (its own venv: the
peers' pins are not the project's), one process per kind and tool, the tools alternating in each round.

Documents with known text: built by the tests' builders (tests/test_documents.py, test_docx_fidelity.py,
test_sheets_fidelity.py, test_html_fidelity.py, test_pptx.py, test_pdf_tables.py, handmade.py), plus the
corpus decks, whose known text is every run of text in their slides' and notes' XML, in document order.

Fidelity, after Markdown and HTML markup is stripped (`tokens`, one scorer for every tool; words in
lower case, punctuation at their edges dropped):
    similarity  2 * matched characters / (author's + output's characters), words aligned in order
                (difflib over words; each matched word counts its characters and one separator)
    word F1     of word recall and word precision, as multisets (bench_documents.score's measures)
Speed: in-process, the median of `--repeat` conversions of each file after a warm-up (the median of the
rounds), averaged over the kind's files; folder job, the wall time of a fresh process that converts the kind's folder: `unitok run`
(runtime.executor local, chunking off, the Delta tables written) against kreuzberg's
batch_extract_files_sync, the best of `--rounds`.

    python bench/bench_peers.py [--quick] [--json out/bench-peers.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KINDS = ("word", "sheets", "web", "pdf-tables", "decks", "pdf")
OFFICE = {"word", "sheets", "web", "decks"}

sys.path.insert(0, str(REPO / "bench"))
from docling_offline import TORCHVISION_PREAMBLE as DOCLING_PREAMBLE  # noqa: E402


# -- the worker: runs in each tool's own interpreter, so it imports nothing but the standard library ----
def make_converter(tool: str) -> Callable[[Path], str]:
    if tool == "unitok":
        import unitok

        # The peers do not chunk: unitok reads only, as bench_libraries.py has it.
        return lambda p: unitok.convert(p, config={"chunking": {"enabled": False}}).markdown
    if tool == "kreuzberg":
        import kreuzberg

        # Its result cache would time a dictionary look-up from the second conversion on.
        config = kreuzberg.ExtractionConfig(output_format="markdown", use_cache=False)
        return lambda p: kreuzberg.extract_file_sync(p, config=config).content
    if tool == "markitdown":
        from markitdown import MarkItDown

        md = MarkItDown()
        return lambda p: md.convert(str(p)).text_content
    if tool == "docling":
        exec(DOCLING_PREAMBLE, {})  # noqa: S102 - a fixed string, see DOCLING_PREAMBLE
        from docling.document_converter import DocumentConverter

        converter = DocumentConverter()
        return lambda p: converter.convert(str(p)).document.export_to_markdown()
    raise SystemExit(f"unknown tool {tool}")


def worker(tool: str, files: list[str], repeat: int) -> dict:
    convert = make_converter(tool)
    results = {}
    for name in files:
        path = Path(name)
        try:
            text = convert(path)  # warm-up: first-use caches, lazy imports
            runs = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                convert(path)
                runs.append(time.perf_counter() - t0)
            results[name] = {"text": text, "ms": statistics.median(runs) * 1000}
        except Exception as e:  # noqa: BLE001 - a tool that fails on a file scores zero on it
            results[name] = {"text": "", "ms": None, "error": f"{type(e).__name__}: {str(e)[:200]}"}
    return results


def batch_worker(folder: str) -> dict:
    import kreuzberg

    paths = sorted(str(p) for p in Path(folder).iterdir() if p.is_file())
    config = kreuzberg.ExtractionConfig(output_format="markdown", use_cache=False)
    t0 = time.perf_counter()
    out = kreuzberg.batch_extract_files_sync(paths, config=config)
    return {"files": len(out), "chars": sum(len(r.content) for r in out), "call_s": time.perf_counter() - t0}


# -- documents with known text --------------------------------------------------------------------------
def word_documents(folder: Path) -> list[tuple[Path, str]]:
    from bench_documents import EXPECTED
    from test_documents import build_docx
    from test_docx_fidelity import comments_xml, header_xml, make_docx, p, tc, textbox

    docs = [(build_docx(folder / "report.docx"), EXPECTED["report.docx"])]
    box = p("Boil water before drinking.") + p("Call the depot.")
    body = (
        p("Notice board")
        + f'<w:p><w:r><w:t xml:space="preserve">See the box </w:t></w:r>{textbox(box, box)}<w:r><w:t>here.</w:t></w:r></w:p>'
        + f"<w:tbl><w:tr><w:tc>{p('Cell words')}<w:p>{textbox(p('Cell box words'), p('Cell box words'))}</w:p></w:tc></w:tr></w:tbl>"
    )  # fmt: skip
    docs.append((make_docx(folder / "boxes.docx", body),
                 "Notice board See the box here. Boil water before drinking. Call the depot. Cell words Cell box words"))  # fmt: skip
    body = (
        p("Budget draft for the basin.")
        + '<w:p><w:commentRangeStart w:id="1"/><w:r><w:t>Pump costs rose.</w:t></w:r><w:commentRangeEnd w:id="1"/>'
        '<w:r><w:commentReference w:id="1"/></w:r><w:r><w:commentReference w:id="2"/></w:r></w:p>'
    )
    comments = comments_xml((1, "Ana Ruiz", "Source for this figure?", "11111111"),
                            (2, "Ben Ode", "The March invoice.", "22222222"))  # fmt: skip
    docs.append((make_docx(folder / "comments.docx", body, {"rIdC": ("comments", "comments.xml", comments)}),
                 "Budget draft for the basin. Pump costs rose. Source for this figure? The March invoice."))  # fmt: skip
    inner = (f"<w:tbl><w:tr>{tc(p('Inner head A'))}{tc(p('Inner head B'))}</w:tr>"
             f"<w:tr>{tc(p('alpha one'))}{tc(p('beta two'))}</w:tr></w:tbl>")  # fmt: skip
    body = (
        f"<w:tbl><w:tr>{tc(p('Region'))}{tc(p('Details'))}</w:tr>"
        f"<w:tr>{tc(p('North'))}{tc(p('Before the table') + inner + p('After the table'))}</w:tr>"
        f'<w:sdt><w:sdtPr><w:alias w:val="Rows"/></w:sdtPr><w:sdtContent><w:tr>{tc(p("South"))}'
        f"{tc(p('Controlled cell text'))}</w:tr></w:sdtContent></w:sdt></w:tbl>"
    )
    docs.append((make_docx(folder / "nested.docx", body),
                 "Region Details North Before the table Inner head A Inner head B alpha one beta two After the "
                 "table South Controlled cell text"))  # fmt: skip
    body = (
        p("Body words.")
        + '<w:p><w:pPr><w:sectPr><w:headerReference w:type="default" r:id="rIdH2"/><w:headerReference w:type="first" r:id="rIdH1"/>'
        '<w:footerReference w:type="default" r:id="rIdF2"/><w:titlePg/></w:sectPr></w:pPr></w:p>'
        + p("Second section words.")
        + '<w:sectPr><w:headerReference w:type="default" r:id="rIdH2"/><w:footerReference w:type="default" r:id="rIdF2"/></w:sectPr>'
    )  # fmt: skip
    parts = {
        "rIdH1": ("header", "header1.xml", header_xml("hdr", "Cover page banner")),
        "rIdH2": ("header", "header2.xml", header_xml("hdr", "Running head")),
        "rIdF2": ("footer", "footer2.xml", header_xml("ftr", "Page footer")),
    }
    docs.append((make_docx(folder / "pages.docx", body, parts),
                 "Cover page banner Running head Body words. Second section words. Page footer"))  # fmt: skip
    return docs


def sheet_documents(folder: Path) -> list[tuple[Path, str]]:
    # Sheet names are left out of the known text: unitok keeps them in marker comments, which the scorer
    # strips as markup; a peer that writes them as headings loses a little precision for them.
    from bench_documents import EXPECTED
    from test_documents import build_xlsx
    from test_sheets_fidelity import build_charts, build_comments, build_regions

    return [
        (build_xlsx(folder / "budget.xlsx"), EXPECTED["budget.xlsx"]),
        (build_regions(folder / "regions.xlsx"),
         "Regional sales 2026 Region Q1 Q2 North 120 135 South 98 101 Team Head Pumps Ana Valves Ben Targets "
         "Year Units 2026 5000 2027 6200 Figures are provisional."),
        (build_comments(folder / "orders.xlsx"),
         "Part Price Pump 480 Valve 35 Valve supplier changed in May Is the pump price final? Yes, quoted by Hydra."),
        (build_charts(folder / "charts.xlsx"),
         "Month Revenue Costs January 310 120 February 295 140 Monthly revenue Margin overview"),
    ]  # fmt: skip


def web_documents(folder: Path) -> list[tuple[Path, str]]:
    from bench_documents import EXPECTED, build_page
    from test_html_fidelity import page

    docs = [(build_page(folder / "page.html"), EXPECTED["page.html"])]
    pages = {
        "nested-table.html": (
            "<table><tr><th>Region</th><th>Details</th></tr><tr><td>North</td><td>Before the table"
            "<table><tr><th>Inner head A</th><th>Inner head B</th></tr><tr><td>alpha one</td><td>beta two</td>"
            "</tr></table>After the table</td></tr><tr><td>South</td><td>plain</td></tr></table>",
            "Region Details North Before the table Inner head A Inner head B alpha one beta two After the "
            "table South plain",
        ),
        "lists.html": (
            "<ul><li><p>First point</p><p>its second paragraph</p></li><li>Second point<ol><li>sub one</li>"
            "<li>sub two</li></ol>tail words</li></ul><dl><dt>Pump</dt><dd>moves water</dd></dl>"
            "<details><summary>More</summary>Hidden detail text</details>"
            "<figure><img src='x.png' alt='A chart'><figcaption>Figure one caption</figcaption></figure>",
            "First point its second paragraph Second point sub one sub two tail words Pump moves water More "
            "Hidden detail text A chart Figure one caption",
        ),
        "caption.html": (
            "<h2>Sales<br>by quarter</h2><table><caption>Table 1: Sales</caption><tr><th>Q</th><th>Units</th>"
            "</tr><tr><td>Q1</td><td>5</td></tr><tr><td rowspan='2'>Q2</td><td>7</td></tr><tr><td>8</td></tr>"
            "</table><p>Words<img src='a.png' alt='inline picture'>after the picture.</p>",
            "Sales by quarter Table 1: Sales Q Units Q1 5 Q2 7 Q2 8 Words inline picture after the picture.",
        ),
    }
    for name, (body, truth) in pages.items():
        (folder / name).write_text(page(body), encoding="utf-8")
        docs.append((folder / name, truth))
    return docs


def pdf_table_documents(folder: Path) -> list[tuple[Path, str]]:
    from handmade import hand_pdf, ruled_table, text_at
    from test_pdf_tables import ROWS, XS, one_object_row

    rows = " ".join(" ".join(r) for r in ROWS)
    docs = []

    def write(name: str, content: str, truth: str) -> None:
        (folder / name).write_bytes(hand_pdf(content))
        docs.append((folder / name, truth))

    write("ruled.pdf",
          text_at(72, 720, "Quarterly figures by region are below.")
          + ruled_table(72, 690, [120, 80, 80], [["Region", "Q1", "Q2"], ["North", "1,200", "1,350"],
                                                 ["South and East", "980", "1,010"], ["Total", "2,180", "2,360"]])
          + text_at(72, 580, "Figures are unaudited."),
          "Quarterly figures by region are below. Region Q1 Q2 North 1,200 1,350 South and East 980 1,010 "
          "Total 2,180 2,360 Figures are unaudited.")  # fmt: skip
    write("one-object-rows.pdf",
          text_at(72, 740, "Quarterly results by region.")
          + "".join(one_object_row(72, 710 - 16 * r, row) for r, row in enumerate(ROWS))
          + text_at(72, 610, "All figures exclude taxes."),
          f"Quarterly results by region. {rows} All figures exclude taxes.")  # fmt: skip
    write("booktabs.pdf",
          "0.5 w\n" + "".join(f"70 {y} m 470 {y} l S\n" for y in (724, 704, 628))
          + "".join(text_at(x, (710 if r == 0 else 690 - 16 * (r - 1)), c)
                    for r, row in enumerate(ROWS) for x, c in zip(XS, row, strict=True)),
          rows)  # fmt: skip
    lines = [(700, [(72, "Name"), (200, "Role"), (320, "Notes")]),
             (676, [(72, "Amina Yusuf"), (200, "Chair"), (320, "Leads the water commit-")]),
             (664, [(320, "tee and signs the reports")]),
             (640, [(72, "Tom Baker"), (320, "Treasurer until May")]),
             (616, [(72, "Li Wei"), (200, "Engineer"), (320, "Pumps")])]  # fmt: skip
    write("wrapped.pdf", "".join(text_at(x, y, t) for y, cells in lines for x, t in cells),
          "Name Role Notes Amina Yusuf Chair Leads the water committee and signs the reports Tom Baker "
          "Treasurer until May Li Wei Engineer Pumps")  # fmt: skip
    return docs


def deck_documents(folder: Path, corpus: Path) -> list[tuple[Path, str]]:
    import bench_fidelity

    docs = [(path, truth) for _, path, truth in bench_fidelity.deck_documents(folder)]
    for path in sorted((corpus / "pptx").glob("*.pptx")):
        docs.append((path, deck_text(path)))
    return docs


def deck_text(path: Path) -> str:
    """Every text run of the slides and their notes, slides in presentation order, runs in XML order;
    field values (slide numbers, dates) are the application's, not the author's."""
    import re
    import zipfile

    from lxml import etree

    a = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        slides = sorted((n for n in names if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                        key=lambda n: int(re.findall(r"\d+", n)[-1]))  # fmt: skip
        out = []
        for slide in slides:
            parts = [slide]
            rels = slide.replace("slides/", "slides/_rels/") + ".rels"
            if rels in names:
                for target in re.findall(r'Target="\.\./notesSlides/([^"]+)"', z.read(rels).decode()):
                    parts.append(f"ppt/notesSlides/{target}")
            for part in parts:
                root = etree.fromstring(z.read(part))
                for para in root.iter(f"{a}p"):
                    text = "".join(t.text or "" for t in para.iter(f"{a}t") if t.getparent().tag != f"{a}fld")
                    if text.strip():
                        out.append(text)
    return "\n".join(out)


def pdf_documents(folder: Path) -> list[tuple[Path, str]]:
    import bench_fidelity
    from handmade import hand_pdf, text_at
    from test_pdf_tables import LEFT, RIGHT

    docs = [
        (path, truth) for name, path, truth in bench_fidelity.pdf_documents(folder) if "table" not in name
    ]
    path = folder / "prose-columns.pdf"
    path.write_bytes(hand_pdf("".join(text_at(72, 700 - 14 * i, t) for i, t in enumerate(LEFT))
                              + "".join(text_at(320, 700 - 14 * i, t) for i, t in enumerate(RIGHT))))  # fmt: skip
    docs.append((path, " ".join(LEFT + RIGHT)))
    return docs


# -- scoring --------------------------------------------------------------------------------------------
# bench_documents.words' idea (markup is not words: markers, link targets, footnote labels, cell breaks,
# LaTeX commands), kept in order so that the similarity sees reading order too, and widened to the
# markup the peers write: images' alt text, footnote back-links, HTML tags, backslash escapes.
_DROP = [
    (r"<!--.*?-->", " "),
    (r"\[\^\w+\]:?|\[\[\d+\]\]\(#[^)]*\)|\(#[^)]*\)|↑", " "),  # footnote labels and back-links
    (r"!?\[([^\]]*)\]\([^)]*\)", r" \1 "),  # a link or an image: its text, not its address
    (r"<br\s*/?>|</?[a-zA-Z][^>]*>", " "),
    (r"\\(frac|left|right|cdot)\b", " "),
    (r"^\s*(#{1,6}|[-*+]|\d+\.|>)\s+|^\s*\|?[\s:|-]*-{3,}[\s:|-]*$", " "),  # line markers, table rules
    (r"[\\$*_`|#>{}\[\]]", " "),
]
_EDGE = ".,;:!?()\"'«»“”‘’-"


def tokens(text: str) -> list[str]:
    import re

    for pattern, repl in _DROP:
        text = re.sub(pattern, repl, text, flags=re.M | re.S)
    return [t.strip(_EDGE).lower() for t in text.split() if t.strip(_EDGE)]


def similarity(truth: str, output: str) -> float:
    import difflib

    want, got = tokens(truth), tokens(output)
    total = sum(len(w) + 1 for w in want) + sum(len(w) + 1 for w in got)
    blocks = difflib.SequenceMatcher(None, want, got, autojunk=False).get_matching_blocks()
    matched = sum(len(w) + 1 for b in blocks for w in want[b.a : b.a + b.size])
    return 2 * matched / total if total else 1.0


def f1(truth: str, output: str) -> float:
    from collections import Counter

    want, got = Counter(tokens(truth)), Counter(tokens(output))
    common = sum((want & got).values())
    recall, precision = common / max(1, sum(want.values())), common / max(1, sum(got.values()))
    return 2 * recall * precision / (recall + precision) if recall + precision else 0.0


# -- the run --------------------------------------------------------------------------------------------
def interpreters(venvs: Path, docling_venv: Path) -> dict[str, Path]:
    found = {"unitok": Path(sys.executable)}
    for tool, venv in (("kreuzberg", venvs / "kreuzberg"), ("markitdown", venvs / "markitdown"),
                       ("docling", docling_venv)):  # fmt: skip
        if (venv / "bin" / "python").exists():
            found[tool] = venv / "bin" / "python"
    return found


def version(python: Path, tool: str) -> str:
    dist = {"unitok": "unitok", "docling": "docling-slim"}.get(tool, tool)
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    p = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    return p.stdout.strip() or "?"


def env_for(tool: str) -> dict[str, str]:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    if tool == "docling":
        env["HF_HUB_OFFLINE"] = "1"
    return env


def run_worker(python: Path, tool: str, files: list[Path], repeat: int) -> dict:
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", tool, "--repeat", str(repeat),
           *[str(f) for f in files]]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, env=env_for(tool), timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"{tool} worker failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.splitlines()[-1])


def folder_job(python: Path, tool: str, folder: Path, work: Path) -> float:
    import yaml

    if tool == "unitok":
        job = {"source": {"uri": str(folder), "follow_symlinks": True}, "output": {"uri": str(work / "out")},
               "chunking": {"enabled": False},
               "runtime": {"executor": "local", "max_workers": os.cpu_count() or 1}}  # fmt: skip
        (work / "job.yaml").write_text(yaml.safe_dump(job))
        cmd = [str(Path(sys.executable).parent / "unitok"), "run", str(work / "job.yaml")]
    else:
        cmd = [str(python), str(Path(__file__).resolve()), "--batch", str(folder)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env_for(tool), timeout=1800)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{tool} folder job failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    ap.add_argument("--venvs", type=Path, default=Path("/tmp/bench-peers"), help="kreuzberg/ and markitdown/")
    ap.add_argument("--docling-venv", type=Path, default=Path("/tmp/docling-serve-venv"))
    ap.add_argument("--quick", action="store_true", help="two files a kind, one round, 2 repeats")
    ap.add_argument("--repeat", type=int, default=5, help="timed conversions of each file")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (folder jobs: best kept)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--json", type=Path, help="write every figure and output here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--batch", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.files, args.repeat)))
        return 0
    if args.batch:
        print(json.dumps(batch_worker(args.batch)))
        return 0

    sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests")]
    if args.quick:
        args.repeat, args.rounds = 2, 1
    tools = interpreters(args.venvs, args.docling_venv)
    missing = {"kreuzberg", "markitdown", "docling"} - set(tools)
    if missing:
        print(
            f"no venv for {', '.join(sorted(missing))} (make bench-peers-venvs docling-serve-venv); left out",
            file=sys.stderr,
        )
    versions = {t: version(py, t) for t, py in tools.items()}
    load = os.getloadavg()
    print(f"{os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          + ", ".join(f"{t} {v}" for t, v in versions.items())
          + f"; {args.repeat} timed conversions a file, {args.rounds} rounds")  # fmt: skip
    report: dict = {"versions": versions, "load": load, "kinds": {}}
    with tempfile.TemporaryDirectory(prefix="unitok-bench-peers-") as tmp:
        work = Path(tmp)
        builders = {
            "word": word_documents, "sheets": sheet_documents, "web": web_documents,
            "pdf-tables": pdf_table_documents, "decks": lambda f: deck_documents(f, args.corpus),
            "pdf": pdf_documents,
        }  # fmt: skip
        print("\n| kind | files | tool | similarity | word F1 | ms per file | ÷ kreuzberg | folder job s |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in args.kinds.split(","):
            folder = work / kind
            folder.mkdir()
            docs = builders[kind](folder)
            if args.quick:
                docs = docs[:2]
            # The folder job reads exactly these files: the built ones and links to the corpus's.
            job_dir = work / f"{kind}-job"
            job_dir.mkdir()
            for path, _ in docs:
                (job_dir / path.name).symlink_to(path.resolve())
            files = [path for path, _ in docs]
            kind_tools = [t for t in tools if kind in OFFICE or t != "docling"]
            outputs: dict[str, list[dict]] = {t: [] for t in kind_tools}
            walls: dict[str, list[float]] = {t: [] for t in ("unitok", "kreuzberg") if t in tools}
            for r in range(args.rounds):
                order = kind_tools[r % len(kind_tools) :] + kind_tools[: r % len(kind_tools)]
                for tool in order:
                    outputs[tool].append(run_worker(tools[tool], tool, files, args.repeat))
                    if tool in walls:
                        run_dir = work / f"{kind}-{tool}-{r}"
                        run_dir.mkdir()
                        walls[tool].append(folder_job(tools[tool], tool, job_dir, run_dir))
            figures = {}
            for tool in kind_tools:
                first = outputs[tool][0]
                per_file = []
                for path, truth in docs:
                    got = first[str(path)]
                    ms = [o[str(path)]["ms"] for o in outputs[tool] if o[str(path)]["ms"] is not None]
                    per_file.append({"file": path.name, "similarity": similarity(truth, got["text"]),
                                     "f1": f1(truth, got["text"]), "ms": statistics.median(ms) if ms else None,
                                     "error": got.get("error"), "output": got["text"]})  # fmt: skip
                timed = [f["ms"] for f in per_file if f["ms"] is not None]
                figures[tool] = {
                    "similarity": statistics.mean(f["similarity"] for f in per_file),
                    "f1": statistics.mean(f["f1"] for f in per_file),
                    # A file a tool fails on has no time: the mean is over the files it converted.
                    "ms": statistics.mean(timed) if timed else None,
                    "ms_all": sum(timed) if len(timed) == len(per_file) else None,
                    "folder_s": min(walls[tool]) if walls.get(tool) else None,
                    "files": per_file,
                }
            base = figures.get("kreuzberg", {}).get("ms_all")
            for tool, fig in figures.items():
                ratio = f"{fig['ms_all'] / base:.2f}" if base and fig["ms_all"] else ""
                ms = f"{fig['ms']:.1f}" if fig["ms"] is not None else "fails"
                job = f"{fig['folder_s']:.2f}" if fig["folder_s"] else ""
                errors = sum(1 for f in fig["files"] if f["error"])
                note = f" ({errors} failed)" if errors else ""
                print(f"| {kind} | {len(docs)} | {tool}{note} | {fig['similarity']:.3f} | {fig['f1']:.3f} | {ms} | "
                      f"{ratio} | {job} |", flush=True)  # fmt: skip
            report["kinds"][kind] = figures
        # Every kind's files in one folder: a folder job where the work, not the start-up, dominates.
        everything = work / "all-job"
        everything.mkdir()
        for kind in args.kinds.split(","):
            for link in (work / f"{kind}-job").iterdir():
                (everything / f"{kind}-{link.name}").symlink_to(link.resolve())
        walls = {t: [] for t in ("unitok", "kreuzberg") if t in tools}
        for r in range(args.rounds):
            for tool in list(walls)[r % len(walls) :] + list(walls)[: r % len(walls)]:
                run_dir = work / f"all-{tool}-{r}"
                run_dir.mkdir()
                walls[tool].append(folder_job(tools[tool], tool, everything, run_dir))
        n_all = sum(1 for _ in everything.iterdir())
        report["folder_all"] = {"files": n_all, **{t: min(w) for t, w in walls.items()}}
        print(f"\nall kinds in one folder ({n_all} files), a fresh process each, best of {args.rounds}: "
              + ", ".join(f"{t} {min(w):.2f} s" for t, w in walls.items()))  # fmt: skip
    print("\nsimilarity, word F1: means over the kind's files; ms per file: the mean over them of each file's "
          "median; ÷ kreuzberg: the kind's total in-process time over kreuzberg's; folder job: a fresh "
          "process over the kind's folder, best of the rounds.")  # fmt: skip
    for kind, figures in report["kinds"].items():
        for tool, fig in figures.items():
            for f in fig["files"]:
                if f["error"]:
                    print(f"  {kind}: {tool} failed on {f['file']}: {f['error']}", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
