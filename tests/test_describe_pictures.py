"""Pictures inside PDF pages and Word documents described (enrich.images.describe): found in reading
order, icons and scans left out, each described on its own and the page's or section's descriptions
kept apart from the author's words."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import unitok
from handmade import hand_pdf, text_at
from PIL import Image
from unitok.connectors.objects import ObjectInfo
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.records import Renditions
from unitok.pipeline.formats.split import split_file
from unitok.pipeline.stages.enrich import EnrichOptions, may_enrich


def inline_image(x: float, y: float, size_pt: float, px: int, shade: int) -> str:
    """A grey px-by-px image drawn size_pt wide at (x, y), inline in the content stream."""
    data = "".join(f"{(shade + i) % 256:02X}" for i in range(px * px))
    return f"q {size_pt} 0 0 {size_pt} {x} {y} cm BI /W {px} /H {px} /CS /G /BPC 8 /F /AHx ID {data}> EI Q\n"


def figure_pdf(path: Path) -> Path:
    """A text page with two figures (the lower one first in the stream), and an icon between them."""
    content = (
        text_at(72, 720, "Pump station report")
        + inline_image(72, 150, 150, 80, 40)  # lower figure, drawn first
        + inline_image(72, 450, 200, 64, 10)
        + text_at(72, 430, "Figure 1 shows the station.")
        + inline_image(300, 450, 12, 16, 99)  # an icon
    )
    path.write_bytes(hand_pdf(content))
    return path


def png(w: int, h: int, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(buf, format="PNG")
    return buf.getvalue()


def figure_docx(path: Path) -> Path:
    """Two sections with pictures: a figure; then an icon, a figure and a picture whose bytes are broken."""
    import docx

    d = docx.Document()
    d.add_heading("Pumps", 1)
    d.add_paragraph("The pumps run at night.")
    d.add_picture(io.BytesIO(png(120, 80, (200, 30, 30))))
    d.add_heading("Valves", 1)
    d.add_picture(io.BytesIO(png(20, 20, (0, 0, 0))))
    d.add_paragraph("Valves close at dawn.")
    d.add_picture(io.BytesIO(png(100, 100, (30, 200, 30))))
    d.add_picture(io.BytesIO(png(90, 90, (30, 30, 200))))
    d.save(str(path))
    broken = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, b"not an image" if info.filename == "word/media/image4.png" else data)
    broken.replace(path)
    return path


def segments(path: Path, pictures: bool) -> list:
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}})
    obj = ObjectInfo(uri=f"file://{path}", key=path.name, size=path.stat().st_size, modified_at=0.0)
    return list(split_file(path, obj, cfg, Renditions(pictures=pictures)))


def sizes(pngs: list[bytes]) -> list[tuple[int, int]]:
    return [Image.open(io.BytesIO(p)).size for p in pngs]


def test_a_pdf_pages_figures_are_found_top_to_bottom_without_its_icons(tmp_path: Path) -> None:
    path = figure_pdf(tmp_path / "report.pdf")
    (page,) = segments(path, pictures=True)
    assert sizes(page.pictures_png) == [(64, 64), (80, 80)]
    assert not any("picture" in w for w in page.warnings)
    (plain,) = segments(path, pictures=False)  # only a job that describes pays for them
    assert plain.pictures_png == [] and plain.text_lines == page.text_lines


def test_a_scanned_page_with_a_text_layer_is_no_picture(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(hand_pdf(inline_image(0, 0, 792, 96, 0) + text_at(72, 720, "Scanned words")))
    (page,) = segments(path, pictures=True)
    assert page.pictures_png == []


def test_a_word_documents_pictures_go_with_the_sections_that_show_them(tmp_path: Path) -> None:
    path = figure_docx(tmp_path / "plant.docx")
    segs = segments(path, pictures=True)
    assert [s.heading_path for s in segs] == [["Pumps"], ["Valves"]]
    assert [sizes(s.pictures_png) for s in segs] == [[(120, 80)], [(100, 100)]]
    assert "picture 4 (image4.png) not described: no image decoder here reads it" in segs[1].warnings
    plain = segments(path, pictures=False)
    assert all(s.pictures_png == [] for s in plain)
    assert [s.structure_json for s in plain] == [s.structure_json for s in segs]


def test_a_stored_page_or_section_is_read_again_only_when_descriptions_are_asked_for() -> None:
    on, off = EnrichOptions(engine="phi4", describe=True), EnrichOptions(engine="phi4", translate_to="en")
    assert all(may_enrich(kind, on) for kind in ("page", "section", "sheet"))
    assert not any(may_enrich(kind, off) for kind in ("page", "section", "sheet"))


def test_each_picture_is_described_on_the_tiny_model_and_kept_apart_from_the_text(
    tiny_model, tmp_path: Path
) -> None:
    """The mechanics on the tiny random-weight Phi-4 (its words are noise): one description per picture,
    joined on the page's and section's rows with the prompt that made them, and in the document as
    generated text after the author's; the author's words are the same as without descriptions."""
    pytest.importorskip("transformers")
    from phi4_tiny import tiny_engine_config

    spec = {"source": {"uri": "/"}, "output": {"uri": "/x"}, "engine": tiny_engine_config(tiny_model)}
    described = {**spec, "enrich": {"images": {"describe": True}}}
    for path in (figure_pdf(tmp_path / "report.pdf"), figure_docx(tmp_path / "plant.docx")):
        plain = unitok.convert(path, config=parse_config(spec))
        doc = unitok.convert(path, config=parse_config(described))
        assert doc.ok and plain.ok
        for seg, before in zip(doc.segments, plain.segments, strict=True):
            assert seg["markdown"] == before["markdown"] and before["description"] is None
            assert seg["description"] is not None, seg
            assert [e["prompt_id"] for e in seg["enrichments"]] == ["phi4.image.describe.v1"]
        # The text is the author's, each generated block after the text it belongs to.
        blocks = doc.markdown.split("> **Generated description (phi4.image.describe.v1):**")
        assert len(blocks) == len(doc.segments) + 1
        assert "".join(blocks[0:1]).strip() == plain.segments[0]["markdown"].strip()
