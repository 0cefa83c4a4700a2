"""Documents made in the tests, every byte known: hand-written PDFs (text, bold, ruling lines) and a PDF of
mixed-direction lines laid out by LibreOffice. The benchmarks use the same makers."""

from __future__ import annotations

import subprocess
from pathlib import Path

MIXED = [
    ("تعلم البرمجة بلغة R و Python في عام 2024", True),  # Arabic with Latin words and a number
    ("الإنتاجية العالية للفريق", True),  # lam-alef with hamza: one glyph, two letters
    ("שלום עולם Hello 42", True),  # Hebrew with a Latin word and a number
    ("The word שלום means peace in 2024", False),  # a Hebrew word inside an English line
    ("لا تقل لا", True),  # lam-alef ligatures
]


def hand_pdf(content: str, to_unicode: dict[int, str] | None = None) -> bytes:
    """A one-page PDF around a content stream (Helvetica as /F1, Helvetica-Bold as /F2), written by hand:
    every byte known. to_unicode: /F1's ToUnicode map, a character code to the UTF-16BE code units (hex)
    its text extracts as: a pair for a character outside the BMP, or a lone surrogate as a broken
    producer writes it."""
    stream = content.encode("latin-1")
    cmap = b""
    if to_unicode:
        pairs = [b"<%02X> <%s>\n" % (code, units.encode()) for code, units in sorted(to_unicode.items())]
        blocks = b"".join(  # at most 100 mappings a block (the CMap format's limit)
            b"%d beginbfchar\n%sendbfchar\n" % (len(pairs[i : i + 100]), b"".join(pairs[i : i + 100]))
            for i in range(0, len(pairs), 100)
        )
        cmap = (b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /Custom def "
                b"/CMapType 2 def 1 begincodespacerange <00> <FF> endcodespacerange\n"
                b"%sendcmap CMapName currentdict /CMap defineresource pop end end" % blocks)  # fmt: skip
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica%s >>" % (b" /ToUnicode 7 0 R" if cmap else b""),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>",
    ]
    if cmap:
        objs.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(cmap), cmap))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def text_at(x: float, y: float, text: str, size: int = 11, bold: bool = False) -> str:
    return f"BT /F{2 if bold else 1} {size} Tf {x} {y} Td ({text}) Tj ET\n"


def ruled_table(x0: float, top: float, widths: list[float], rows: list[list[str]], height: float = 20) -> str:
    """Text in cells and the ruling lines around them; a None cell continues the one on its left (merged)."""
    xs = [x0]
    for w in widths:
        xs.append(xs[-1] + w)
    ops = ["0.5 w\n"]
    for r, row in enumerate(rows):
        y_top, y_bottom = top - r * height, top - (r + 1) * height
        for c, cell in enumerate(row):
            if cell is not None:
                ops.append(text_at(xs[c] + 4, y_bottom + 6, cell))
            if c == 0 or cell is not None:  # the line on the cell's left (absent inside a merged cell)
                ops.append(f"{xs[c]} {y_top} m {xs[c]} {y_bottom} l S\n")
        ops.append(f"{xs[-1]} {y_top} m {xs[-1]} {y_bottom} l S\n")
    for r in range(len(rows) + 1):
        ops.append(f"{xs[0]} {top - r * height} m {xs[-1]} {top - r * height} l S\n")
    return "".join(ops)


def mixed_direction_pdf(folder: Path) -> Path:
    """MIXED's lines in DejaVu Sans, right-to-left paragraphs where marked, laid out by LibreOffice
    (a real layout engine: shaped glyphs, visual order, ligatures) and converted to PDF."""
    from pptx import Presentation
    from pptx.util import Inches, Pt

    prs = Presentation()
    frame = (
        prs.slides.add_slide(prs.slide_layouts[6])
        .shapes.add_textbox(Inches(0.5), Inches(1), Inches(9), Inches(4))
        .text_frame
    )
    frame.word_wrap = True
    for k, (line, rtl) in enumerate(MIXED):
        p = frame.paragraphs[0] if k == 0 else frame.add_paragraph()
        p.text = line
        if rtl:
            p._p.get_or_add_pPr().set("rtl", "1")
        for run in p.runs:
            run.font.size, run.font.name = Pt(24), "DejaVu Sans"
    prs.save(folder / "mixed.pptx")
    subprocess.run(["soffice", f"-env:UserInstallation={(folder / 'lo-profile').as_uri()}", "--headless",
                    "--convert-to", "pdf", "--outdir", str(folder), str(folder / "mixed.pptx")],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    return folder / "mixed.pdf"


def long_pdf(path: Path, pages: int) -> Path:
    """A PDF of `pages` pages, each with its own text: a heading every ten pages, two paragraphs, a ruled
    table on every seventh page and a blank page every thirteenth (pypdfium2 joins one-page PDFs)."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument.new()
    for i in range(pages):
        content = ""
        if i % 13 != 12:
            if i % 10 == 0:
                content += text_at(72, 740, f"Part {i // 10 + 1}: the depot log", 18, bold=True)
            for k in range(8):
                content += text_at(
                    72, 700 - 14 * k, f"Page {i + 1} line {k + 1}: pump {i * 8 + k} was checked."
                )
            if i % 7 == 3:
                content += ruled_table(72, 560, [120, 80], [["Pump", "Hours"], [f"P{i}", f"{i * 3}"],
                                                           [f"Q{i}", f"{i * 5}"]])  # fmt: skip
        doc.import_pages(pdfium.PdfDocument(hand_pdf(content)))
    doc.save(str(path))
    doc.close()
    return path
