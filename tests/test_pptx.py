"""PowerPoint decks: real corpus files, a deck made here with notes/pictures/charts/merged cells, legacy
.ppt through LibreOffice, and broken decks."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import corpus, routed
from PIL import Image
from unitok.actors.routing import PHI4, SLIDE_TEXT
from unitok.actors.slide_text import SlideTextEngine
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.records import Segment
from unitok.pipeline.formats.pptx import DeckOpenError, split_pptx

CFG = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}})
PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
needs_libreoffice = pytest.mark.skipif(not shutil.which("soffice"), reason="LibreOffice not installed")


def slides(path: Path, mime: str = PPTX_MIME, cfg=CFG) -> list[tuple[Segment, str]]:
    base = Segment("d", path.as_uri(), "v", 1, mime, "presentation", -1, "object")
    segs = list(routed(split_pptx, path, base, cfg))
    return list(zip(segs, [o.markdown for o in SlideTextEngine()(segs)], strict=True))


def test_bullets_keep_their_nesting_and_text_boxes_follow():
    ((seg, md),) = slides(corpus("pptx/fake-power-point.pptx"))
    assert (seg.segment_kind, seg.page_number, seg.route) == ("slide", 1, SLIDE_TEXT)
    assert md.startswith("## Adding a Bullet Slide\n\n- Find the bullet slide layout\n")
    assert (
        "\n  - Use _TextFrame.text for first bullet\n    - Use _TextFrame.add_paragraph() for subsequent"
        in md
    )
    assert md.endswith("Here is some text in a text box!")


def test_slide_order_titles_and_tables():
    out = slides(corpus("pptx/sample-presentation.pptx"))
    assert [s.page_number for s, _ in out] == [1, 2, 3, 4]
    assert [md.splitlines()[0] for _, md in out] == [
        "## Title Slide", "## This is the first content slide", "## This is the second content slide",
        "## This is kinda backwards, huh?",
    ]  # fmt: skip
    assert "    - This one is a sub-sub-bullet" in out[1][1]
    assert "| Table | A | B | C |\n| --- | --- | --- | --- |\n| 1 | A1 | B1 | C1 |" in out[3][1]
    ((_, md),) = slides(corpus("pptx/fake-power-point-table.pptx"))
    assert "| Red | Green | Blue |" in md


def test_text_inside_nested_groups_is_kept():
    ((_, md),) = slides(corpus("pptx/group-shapes-nested.pptx"))
    assert {line for line in md.splitlines() if len(line) == 1} == set("ABCDEFGHIJ")


def make_deck(path: Path) -> None:
    from pptx import Presentation
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    prs = Presentation()
    s = prs.slides.add_slide(prs.slide_layouts[5])  # title only
    s.shapes.title.text = "Quarterly results"
    table = s.shapes.add_table(3, 3, Inches(0.5), Inches(1.5), Inches(6), Inches(1.5)).table
    for r, row in enumerate([["Region", "Q1", "Q2"], ["North", "10", "12"], ["South", "7", "9"]]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    table.cell(1, 0).merge(table.cell(2, 0))
    table.cell(1, 0).text = "All"
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, format="PNG")
    pic = s.shapes.add_picture(io.BytesIO(buf.getvalue()), Inches(7), Inches(1.5))
    pic._element.nvPicPr.cNvPr.set("descr", "Red company logo")
    s.notes_slide.notes_text_frame.text = "Mention the merger in Q2."
    s2 = prs.slides.add_slide(prs.slide_layouts[5])
    s2.shapes.title.text = "Sales chart"
    data = CategoryChartData()
    data.categories = ["Jan", "Feb"]
    data.add_series("Units", (3, 5))
    chart = s2.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(1.5), Inches(6), Inches(4), data
    ).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = "Units sold"
    prs.save(path)


def test_notes_pictures_merged_cells_and_charts(tmp_path):
    deck = tmp_path / "made.pptx"
    make_deck(deck)
    (s1, md1), (s2, md2) = slides(deck)
    assert "| All | 10 | 12 |\n| All | 7 | 9 |" in md1  # the merged cell repeated, never dropped
    assert "*[Picture: Red company logo]*" in md1
    assert md1.endswith("### Notes\n\nMention the merger in Q2.")
    assert "*[Chart: Units sold]*" in md2 and "| Jan | 3.0 |" in md2 and "| Feb | 5.0 |" in md2


def test_zip_bomb_is_refused_before_parsing(tmp_path):
    bomb = tmp_path / "bomb.pptx"
    shutil.copy(corpus("pptx/fake-power-point.pptx"), bomb)
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("ppt/media/zeros.bin", b"\0" * (40 << 20))
    assert bomb.stat().st_size < 2 << 20
    cfg = parse_config(
        {"source": {"uri": "/"}, "output": {"uri": "/x"}, "pptx": {"max_uncompressed_bytes": 10 << 20}}
    )
    with pytest.raises(DeckOpenError, match="zip bomb"):
        slides(bomb, cfg=cfg)


def test_malformed_deck_is_a_partial_result_or_a_clear_error():
    try:
        out = slides(corpus("bad/fake-power-point-malformed.pptx"))
    except DeckOpenError as e:
        assert "not a readable PPTX" in str(e)
    else:
        assert out and out[0][1].startswith("## ")


@needs_libreoffice
def test_legacy_ppt_converts_through_libreoffice():
    ((seg, md),) = slides(corpus("ppt/fake-power-point.ppt"), mime="application/vnd.ms-powerpoint")
    assert md.startswith("## Adding a Bullet Slide")
    assert "- Find the bullet slide layout" in md and "Here is some text in a text box!" in md


@needs_libreoffice
def test_with_phi4_slides_with_pictures_become_images_for_the_model(tmp_path):
    deck = tmp_path / "made.pptx"
    make_deck(deck)
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}, "engine": {"name": "phi4"}})
    (s1, _), (s2, _) = slides(deck, cfg=cfg)
    for seg in (s1, s2):  # a picture on slide 1, a chart on slide 2
        assert seg.route == PHI4
        img = Image.open(io.BytesIO(seg.image_png))
        assert img.mode == "RGB" and img.width > 500
        assert json.loads(seg.structure_json)["title"]


def test_unstructured_partitioner_fails_clearly_instead_of_an_empty_document(monkeypatch):
    import importlib.util

    from unitok.actors.contract import EngineSetupError
    from unitok.pipeline.formats.pptx import unstructured_problem
    from unitok.pipeline.stages.preflight import preflight

    if importlib.util.find_spec("unstructured") and importlib.util.find_spec("en_core_web_sm"):
        pytest.skip("unstructured and its language model are installed here")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = parse_config(
        {"source": {"uri": "/"}, "output": {"uri": "/x"}, "pptx": {"partitioner": "unstructured"}}
    )
    with pytest.raises(
        EngineSetupError, match=r"pptx.partitioner: unstructured (is not installed|needs spaCy)"
    ):
        preflight(cfg)
    with pytest.raises(DeckOpenError, match="pptx.partitioner"):
        slides(corpus("pptx/fake-power-point.pptx"), cfg=cfg)
    assert unstructured_problem() is not None


def test_pictures_inside_slides_are_ocrd_when_configured(tmp_path):
    from PIL import ImageDraw, ImageFont
    from pptx import Presentation
    from pptx.util import Inches

    img = Image.new("L", (900, 160), 255)
    ImageDraw.Draw(img).text(
        (30, 40), "Invoice total 4,250 dollars", fill=0, font=ImageFont.load_default(size=56)
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    prs = Presentation()
    s = prs.slides.add_slide(prs.slide_layouts[5])
    s.shapes.title.text = "Scanned receipt"
    s.shapes.add_picture(io.BytesIO(buf.getvalue()), Inches(1), Inches(2), width=Inches(8))
    deck = tmp_path / "receipt.pptx"
    prs.save(deck)

    ((_, plain),) = slides(deck)
    assert "Invoice" not in plain  # off by default: only the placeholder line
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}, "pptx": {"ocr_pictures": True}})
    ((seg, md),) = slides(deck, cfg=cfg)
    assert len(seg.frames_png) == 1
    # python-pptx sets the alt text (descr) to the file name
    assert "*[Picture: image.png]*\n\n> Invoice total 4,250 dollars" in md
