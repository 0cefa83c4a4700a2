"""Hostile and odd inputs a scheduled job meets, built here, through real runs (local pool and Ray Data) and
their tables: a poster-sized page, blank images, too many frames, legacy decks under the wrong name, an
encrypted deck, a damaged zip entry, a file name with a newline, and symbolic links."""

from __future__ import annotations

import io
import os
import shutil
import zipfile

import pytest
from conftest import REPO, corpus
from PIL import Image, ImageDraw
from unitok.connectors.output import read_table
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.job import run_job

SAMPLE = REPO / "sample"
SLIDE_TEXT = ["Quarterly figures for the north region", "Hiring plan for the second half",
              "Risks we track every week"]  # fmt: skip


def deck(path, texts):
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    for text in texts:
        slide = prs.slides.add_slide(prs.slide_layouts[5])
        slide.shapes.title.text = text
        box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1))
        box.text_frame.text = f"Notes on: {text.lower()}"
    prs.save(path)
    return path


def damage_entry(path, name):
    """Flip bytes inside one entry's compressed data: its CRC (or inflate) fails, the rest stays."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    data = bytearray(path.read_bytes())
    header = 30 + len(info.filename.encode()) + len(info.extra)
    start = info.header_offset + header
    for k in range(start + 2, start + min(info.compress_size, 40) - 2, 3):
        data[k] ^= 0x5A
    path.write_bytes(bytes(data))


def odd_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    # A one-page PDF 200 x 200 inches with no text layer: OCR would render it at 60,000 px a side.
    poster = Image.new("L", (1000, 1000), 255)
    ImageDraw.Draw(poster).rectangle((100, 100, 900, 300), fill=0)
    poster.save(src / "poster.pdf", resolution=5.0)
    Image.new("RGB", (400, 300), "white").save(src / "white.png")
    frames = [Image.new("L", (120, 120), 255) for _ in range(8)]
    frames[0].save(src / "blank.tiff", save_all=True, append_images=frames[1:])
    shutil.copy(corpus("ppt/fake-power-point.ppt"), src / "legacy-named.pptx")
    deck(src / "damaged.pptx", SLIDE_TEXT)
    damage_entry(src / "damaged.pptx", "ppt/slides/slide2.xml")
    single = deck(src / "lost.pptx", SLIDE_TEXT[:1])
    damage_entry(single, "ppt/slides/slide1.xml")
    shutil.copy(SAMPLE / "field-report.pdf", src / "line\nbreak.pdf")
    return src


def encrypted_deck(folder):
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = deck(folder / "plain.pptx", SLIDE_TEXT[:1])
    out = io.BytesIO()
    with open(plain, "rb") as f:
        OOXMLFile(f).encrypt("secret", out)
    plain.unlink()
    (folder / "locked.pptx").write_bytes(out.getvalue())


def by_name(rows):
    return {r["source_uri"].rsplit("/", 1)[-1]: r for r in rows}


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_odd_inputs_convert_bounded_and_fail_small(tmp_path, executor, request):
    pytest.importorskip("msoffcrypto")
    if executor == "ray":
        request.getfixturevalue("ray_local")
    src = odd_folder(tmp_path)
    encrypted_deck(src)
    out = tmp_path / "out"
    cfg = parse_config(
        {
            "mode": "incremental",
            "source": {"uri": str(src)},
            "output": {"uri": str(out)},
            "image": {"max_pixels": 4_000_000, "max_frames": 5},
            "runtime": {"executor": executor},
        }
    )
    summary = run_job(cfg)
    docs = by_name(read_table(str(out), "documents").to_pylist())
    objects = by_name(read_table(str(out), "objects").to_pylist())
    errors = read_table(str(out), "errors").to_pylist()

    # The poster is rendered within image.max_pixels, with the lowered resolution said.
    assert any("rendered at 10 dpi, not 300" in w for w in docs["poster.pdf"]["warnings"])
    # Blank images are documents that say OCR found nothing; frames past max_frames: one warning.
    assert docs["white.png"]["warnings"] == ["no text found by OCR"]
    blank = docs["blank.tiff"]["warnings"]
    assert blank.count("page 5: image.max_frames=5: frames 6-8 skipped") == 1
    assert docs["blank.tiff"]["n_segments"] == 5
    # Legacy PowerPoint bytes under a .pptx name convert, typed from their streams.
    assert "Adding a Bullet Slide" in docs["legacy-named.pptx"]["markdown"]
    assert any("mislabeled" in w for w in docs["legacy-named.pptx"]["warnings"])
    # A damaged zip entry costs its slide: the others convert and keep their numbers.
    damaged = docs["damaged.pptx"]
    assert SLIDE_TEXT[0] in damaged["markdown"] and SLIDE_TEXT[2] in damaged["markdown"]
    assert SLIDE_TEXT[1] not in damaged["markdown"] and damaged["n_failed_segments"] == 1
    (slide_error,) = [e for e in errors if e["source_uri"].endswith("damaged.pptx")]
    assert slide_error["page_number"] == 2 and "zip entry is damaged" in slide_error["message"]
    # No document is never ok: the one-slide deck whose slide is lost is failed, and retried.
    assert "lost.pptx" not in docs and objects["lost.pptx"]["status"] == "failed"
    (locked,) = [e for e in errors if e["source_uri"].endswith("locked.pptx")]
    assert locked["message"].startswith("encrypted:") and objects["locked.pptx"]["status"] == "failed"
    # Any character in a name is listed (the URI escapes it).
    assert "line%0Abreak.pdf" in docs and "field report" in docs["line%0Abreak.pdf"]["markdown"].lower()
    for name in ("poster.pdf", "white.png", "blank.tiff", "legacy-named.pptx", "damaged.pptx"):
        assert objects[name]["status"] == "ok", name
    assert summary.failed_objects == 2
    again = run_job(cfg)
    assert (again.converted_objects, again.reasons) == (2, {"failed": 2})


def test_symbolic_links_are_skipped_and_counted_unless_followed(tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "folder").mkdir(parents=True)
    shutil.copy(SAMPLE / "field-report.pdf", outside / "linked-file.pdf")
    shutil.copy(SAMPLE / "field-report.pdf", outside / "folder" / "in-linked-folder.pdf")
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLE / "field-report.pdf", src / "own.pdf")
    os.symlink(outside / "linked-file.pdf", src / "link.pdf")
    os.symlink(outside / "folder", src / "linked-folder")
    os.symlink(src, src / "loop")  # a link back up the tree

    def run(follow, out):
        spec = {"source": {"uri": str(src), "follow_symlinks": follow}, "output": {"uri": str(out)},
                "runtime": {"executor": "local"}}  # fmt: skip
        summary = run_job(parse_config(spec))
        return summary, sorted(by_name(read_table(str(out), "documents").to_pylist()))

    skipped, names = run(False, tmp_path / "out-skip")
    assert names == ["own.pdf"] and skipped.skipped_links == 3
    followed, names = run(True, tmp_path / "out-follow")
    assert names == ["in-linked-folder.pdf", "link.pdf", "own.pdf"] and followed.skipped_links == 0
