"""Regenerate sample/: a tiny bundled corpus for `make demo` where ../shared/corpus is absent.

Everything here is made from scratch (no third-party documents): a PDF with a real text layer, a scanned
(image-only) PDF, a PNG with printed text, a text file mislabeled as .pdf, and a 12-second talk video
(three title cards, espeak-ng speech; needs ffmpeg and espeak-ng to regenerate).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent.parent / "sample"

PAGES = [
    [
        ("F2", 20, "Quarterly Field Report"),
        ("F1", 11, "The northern depot received 1,200 water filters in March."),
        ("F1", 11, "Deliveries were delayed by two days because of flooding on the coastal road."),
        ("F2", 14, "Next steps"),
        ("F1", 11, "Order replacement parts for the pumps before the dry season."),
    ],
    [("F2", 14, "Appendix"), ("F1", 11, "Inventory counts were checked by two volunteers on site.")],
]


def text_pdf(path: Path) -> None:
    objs: list[bytes] = []
    page_ids = []
    n_fixed = 4  # catalog, pages, font1, font2
    for i, lines in enumerate(PAGES):
        y, ops = 760, []
        for font, size, text in lines:
            esc = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"BT /{font} {size} Tf 72 {y} Td ({esc}) Tj ET")
            y -= int(size * 2.2)
        stream = "\n".join(ops).encode()
        content_id = n_fixed + 2 * i + 1
        page_ids.append(content_id + 1)
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objs.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>" % content_id
        )
    kids = " ".join(f"{p} 0 R" for p in page_ids).encode()
    fixed = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(page_ids),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>",
    ]
    body, offsets = b"%PDF-1.4\n", []
    for n, obj in enumerate(fixed + objs, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % n + obj + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    body += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref)
    path.write_bytes(body)


def text_image(lines: list[str]) -> Image.Image:
    font = ImageFont.load_default(size=36)
    img = Image.new("L", (1400, 120 + 70 * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((60, 60 + 70 * i), line, fill=0, font=font)
    return img


CARDS = [
    ("Field report", "white", "black"),
    ("Water filters: 1,200", "navy", "white"),
    ("Next steps", "yellow", "black"),
]
SPEECH = (
    "This is the field report for March. The northern depot received twelve hundred water filters. "
    "Next, we order replacement parts for the pumps."
)


def talk_video(path: Path) -> None:
    """Title cards every 4 s (scene changes) with speech over them, small H.264 + AAC."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        font = ImageFont.load_default(size=40)
        lines = []
        for i, (title, background, ink) in enumerate(CARDS):
            img = Image.new("RGB", (640, 360), background)
            ImageDraw.Draw(img).text((40, 150), title, fill=ink, font=font)
            img.save(d / f"card{i}.png")
            lines.append(f"file 'card{i}.png'\nduration 4\n")
        (d / "cards.txt").write_text("".join(lines) + f"file 'card{len(CARDS) - 1}.png'\n")
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(d / "speech.wav"), SPEECH], check=True)
        subprocess.run(
            ["ffmpeg", "-y", "-loglevel", "error", "-f", "concat", "-i", str(d / "cards.txt"), "-i",
             str(d / "speech.wav"), "-vf", "fps=10", "-c:v", "libx264", "-crf", "30", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "48k", "-t", "12", str(path)],
            check=True,
        )  # fmt: skip


def main() -> None:
    OUT.mkdir(exist_ok=True)
    text_pdf(OUT / "field-report.pdf")
    text_image(
        ["Volunteer sign-up sheet", "Bring gloves and a water bottle.", "Meeting point: north gate"]
    ).save(OUT / "signup-sheet.png")
    text_image(["Scanned memo", "The generator needs fuel every Tuesday."]).save(
        OUT / "scanned-memo.pdf", resolution=150
    )
    (OUT / "not-really-a.pdf").write_text("This is a plain text file with a .pdf name.\n")
    talk_video(OUT / "talk.mp4")
    print(f"wrote {sorted(p.name for p in OUT.iterdir())}")


if __name__ == "__main__":
    main()
