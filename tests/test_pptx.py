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


def add_chart_slide(prs, title: str, categories: list[str], series: str, values: tuple, chart_title: str):
    """A title-only slide holding one clustered column chart with a title."""
    from pptx.chart.data import CategoryChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    slide = prs.slides.add_slide(prs.slide_layouts[5])
    slide.shapes.title.text = title
    data = CategoryChartData()
    data.categories = categories
    data.add_series(series, values)
    chart = slide.shapes.add_chart(
        XL_CHART_TYPE.COLUMN_CLUSTERED, Inches(1), Inches(1.5), Inches(6), Inches(4), data
    ).chart
    chart.has_title = True
    chart.chart_title.text_frame.text = chart_title


def make_deck(path: Path) -> None:
    from pptx import Presentation
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
    add_chart_slide(prs, "Sales chart", ["Jan", "Feb"], "Units", (3, 5), "Units sold")
    prs.save(path)


def test_notes_pictures_merged_cells_and_charts(tmp_path):
    deck = tmp_path / "made.pptx"
    make_deck(deck)
    (s1, md1), (s2, md2) = slides(deck)
    assert "| All | 10 | 12 |\n| All | 7 | 9 |" in md1  # the merged cell repeated, never dropped
    assert "<!-- image -->\n*Red company logo*" in md1  # the description the author set
    assert md1.endswith("<!-- notes -->\n\nMention the merger in Q2.")
    # Numbers as the deck stores them: 3, not 3.0.
    assert "<!-- chart -->\n**Units sold**\n\n|  | Units |\n| --- | --- |\n| Jan | 3 |\n| Feb | 5 |" in md2


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
    # python-pptx sets the description to the file name: not the author's words, so no caption
    assert "<!-- image -->\n\n> Invoice total 4,250 dollars" in md and "image.png" not in md


# -- odd shapes, comments, and nothing invented ---------------------------------------------------------
NSDECL = (
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
)
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"


def sp(shape_id: int, name: str, y: int, *paragraphs: str, nv_pr: str = "<p:nvPr/>") -> str:
    paras = "".join(f"<a:p><a:r><a:t>{t}</a:t></a:r></a:p>" for t in paragraphs)
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="{shape_id}" name="{name}"/><p:cNvSpPr txBox="1"/>{nv_pr}</p:nvSpPr>'
        f'<p:spPr><a:xfrm><a:off x="457200" y="{y}"/><a:ext cx="4000000" cy="400000"/></a:xfrm></p:spPr>'
        f"<p:txBody><a:bodyPr/><a:lstStyle/>{paras}</p:txBody></p:sp>"
    )


def frame(shape_id: int, y: int, uri: str, inner: str) -> str:
    return (
        f'<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id="{shape_id}" name="Frame {shape_id}"/>'
        f"<p:cNvGraphicFramePr/><p:nvPr/></p:nvGraphicFramePr>"
        f'<p:xfrm><a:off x="457200" y="{y}"/><a:ext cx="4000000" cy="2000000"/></p:xfrm>'
        f'<a:graphic><a:graphicData uri="{uri}">{inner}</a:graphicData></a:graphic></p:graphicFrame>'
    )


def edit_deck(
    path: Path,
    slide_xml: dict[int, str],
    parts: dict[str, tuple[str, str]],
    rels: dict[str, list[tuple[str, str, str]]],
) -> None:
    """Rewrite a saved deck: shape XML appended to slides' spTrees, new parts with their content types,
    and relationships (rId, type, target) added to parts' .rels."""
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    for number, xml in slide_xml.items():
        name = f"ppt/slides/slide{number}.xml"
        files[name] = files[name].replace(b"</p:spTree>", xml.encode() + b"</p:spTree>")
    types = files["[Content_Types].xml"].decode()
    for name, (content_type, body) in parts.items():
        files[name] = body.encode()
        types = types.replace(
            "</Types>", f'<Override PartName="/{name}" ContentType="{content_type}"/></Types>'
        )
    files["[Content_Types].xml"] = types.encode()
    for rels_name, entries in rels.items():
        xml = files[rels_name].decode()
        for rid, reltype, target in entries:
            xml = xml.replace(
                "</Relationships>",
                f'<Relationship Id="{rid}" Type="{reltype}" Target="{target}"/></Relationships>',
            )
        files[rels_name] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)


def make_odd_deck(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    s1 = prs.slides.add_slide(prs.slide_layouts[6])  # blank: no title
    s1.shapes.add_textbox(Inches(0.5), Inches(0.2), Inches(6), Inches(0.5)).text_frame.text = "Words first"
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 90, 200)).save(buf, format="PNG")
    s1.shapes.add_picture(io.BytesIO(buf.getvalue()), Inches(7), Inches(6))  # descr: the file name
    add_chart_slide(prs, "Odd chart", ["North", "South"], "Revenue", (120, 95.5), "Sales by region")
    prs.save(path)

    alternate = (
        '<mc:AlternateContent xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006">'
        '<mc:Choice xmlns:p14="http://schemas.microsoft.com/office/powerpoint/2010/main" Requires="p14">'
        + sp(20, "Choice box", 900000, "Text only the choice holds")
        + "</mc:Choice><mc:Fallback>"
        + sp(21, "Fallback box", 900000, "Text only the choice holds")
        + "</mc:Fallback></mc:AlternateContent>"
    )
    ink = (
        '<p:contentPart r:id="rIdInk"><p:nvContentPartPr><p:cNvPr id="22" name="Ink 1"/><p:cNvContentPartPr/>'
        '<p:nvPr/></p:nvContentPartPr><p:xfrm><a:off x="100" y="1200000"/><a:ext cx="10" cy="10"/></p:xfrm>'
        "</p:contentPart>"
    )
    broken = sp(
        23,
        "Odd placeholder",
        1500000,
        "A placeholder python-pptx cannot type",
        "Second line",
        nv_pr='<p:nvPr><p:ph type="no-such-type" idx="7"/></p:nvPr>',
    )
    smartart = frame(
        24,
        2000000,
        "http://schemas.openxmlformats.org/drawingml/2006/diagram",
        '<dgm:relIds xmlns:dgm="http://schemas.openxmlformats.org/drawingml/2006/diagram" '
        'r:dm="rIdDm" r:lo="rIdDm" r:qs="rIdDm" r:cs="rIdDm"/>',
    )
    dgm = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
    points = (
        "".join(
            f'<dgm:pt modelId="{i}"><dgm:t><a:bodyPr/><a:p><a:r><a:t>{t}</a:t></a:r></a:p></dgm:t></dgm:pt>'
            for i, t in enumerate(["Plan", "Build", "Ship"], 1)
        )
        + '<dgm:pt modelId="9" type="sibTrans">'
        + "<dgm:t><a:p><a:r><a:t>(arrow)</a:t></a:r></a:p></dgm:t></dgm:pt>"
    )
    data_xml = (
        f'<dgm:dataModel xmlns:dgm="{dgm}" {NSDECL}><dgm:ptLst><dgm:pt modelId="0" type="doc"/>'
        f"{points}</dgm:ptLst></dgm:dataModel>"
    )
    legacy = (
        f"<p:cmLst {NSDECL}>"
        '<p:cm authorId="1" dt="2024-03-01T09:30:00.000" idx="1"><p:pos x="10" y="10"/>'
        "<p:text>Check the numbers on this slide</p:text></p:cm></p:cmLst>"
    )
    legacy_authors = (
        f'<p:cmAuthorLst {NSDECL}><p:cmAuthor id="1" name="Ada Lovelace" initials="AL" '
        'lastIdx="1" clrIdx="0"/></p:cmAuthorLst>'
    )
    p188 = "http://schemas.microsoft.com/office/powerpoint/2018/8/main"
    modern = (
        f'<p188:cmLst xmlns:p188="{p188}" {NSDECL}>'
        '<p188:cm id="{C1}" authorId="{A1}" created="2024-05-02T10:00:00.000">'
        '<p188:replyLst><p188:reply id="{R1}" authorId="{A2}" created="2024-05-02T11:00:00.000">'
        "<p188:txBody><a:bodyPr/><a:p><a:r><a:t>Fixed in v2</a:t></a:r></a:p></p188:txBody></p188:reply>"
        "</p188:replyLst><p188:txBody><a:bodyPr/><a:p><a:r><a:t>Is South really 95.5?</a:t></a:r></a:p>"
        "</p188:txBody></p188:cm></p188:cmLst>"
    )
    modern_authors = (
        f'<p188:authorLst xmlns:p188="{p188}"><p188:author id="{{A1}}" name="Grace Hopper" '
        'initials="GH" userId="gh" providerId="None"/><p188:author id="{A2}" name="Alan Turing" '
        'initials="AT" userId="at" providerId="None"/></p188:authorLst>'
    )
    ms = "http://schemas.microsoft.com/office/2018/10/relationships/"
    edit_deck(
        path,
        {1: alternate + ink + broken + smartart},
        {
            "ppt/diagrams/data1.xml": (
                "application/vnd.openxmlformats-officedocument.drawingml.diagramData+xml",
                data_xml,
            ),
            "ppt/ink/ink1.xml": (
                "application/inkml+xml",
                '<inkml:ink xmlns:inkml="http://www.w3.org/2003/InkML"/>',
            ),
            "ppt/comments/comment1.xml": (
                "application/vnd.openxmlformats-officedocument.presentationml.comments+xml",
                legacy,
            ),
            "ppt/commentAuthors.xml": (
                "application/vnd.openxmlformats-officedocument.presentationml.commentAuthors+xml",
                legacy_authors,
            ),
            "ppt/comments/modernComment_101_0.xml": ("application/vnd.ms-powerpoint.comments+xml", modern),
            "ppt/authors.xml": ("application/vnd.ms-powerpoint.authors+xml", modern_authors),
        },
        {
            "ppt/slides/_rels/slide1.xml.rels": [
                ("rIdDm", REL + "diagramData", "../diagrams/data1.xml"),
                ("rIdInk", REL + "customXml", "../ink/ink1.xml"),
                ("rIdCm", REL + "comments", "../comments/comment1.xml"),
            ],
            "ppt/slides/_rels/slide2.xml.rels": [
                ("rIdCm2", ms + "comments", "../comments/modernComment_101_0.xml")
            ],
            "ppt/_rels/presentation.xml.rels": [
                ("rIdAu1", REL + "commentAuthors", "commentAuthors.xml"),
                ("rIdAu2", ms + "authors", "authors.xml"),
            ],
        },
    )


def test_odd_shapes_lose_no_word_and_comments_come_with_their_authors(tmp_path):
    deck = tmp_path / "odd.pptx"
    make_odd_deck(deck)
    (s1, md1), (s2, md2) = slides(deck)
    assert md1 == (
        "Words first\n\n"
        "Text only the choice holds\n\n"  # an mc:AlternateContent shape, read once
        "A placeholder python-pptx cannot type\n\nSecond line\n\n"  # recovered from its XML
        "Plan\n\nBuild\n\nShip\n\n"  # SmartArt nodes, without the connector's text
        "<!-- image -->\n\n"  # no description written: a marker, no file name, no shape name
        "<!-- comments -->\n\n- Ada Lovelace, 2024-03-01T09:30:00.000: Check the numbers on this slide"
    )
    assert len(s1.warnings) == 1 and "shape 'Odd placeholder' (id 23) not read" in s1.warnings[0]
    assert "its text recovered from the XML" in s1.warnings[0]
    assert md2 == (
        "## Odd chart\n\n<!-- chart -->\n**Sales by region**\n\n"
        "|  | Revenue |\n| --- | --- |\n| North | 120 |\n| South | 95.5 |\n\n"
        "<!-- comments -->\n\n- Grace Hopper, 2024-05-02T10:00:00.000: Is South really 95.5?\n"
        "  - Alan Turing, 2024-05-02T11:00:00.000: Fixed in v2"
    )


def test_a_chart_type_no_reader_models_keeps_its_title_and_data(tmp_path):
    deck = tmp_path / "odd.pptx"
    make_odd_deck(deck)
    with zipfile.ZipFile(deck) as z:
        files = {n: z.read(n) for n in z.namelist()}
    [chart] = [n for n in files if n.startswith("ppt/charts/chart") and n.endswith(".xml")]
    files[chart] = files[chart].replace(b"c:barChart>", b"c:stockChart>")  # python-pptx: unsupported plot
    with zipfile.ZipFile(deck, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    from pptx import Presentation

    with pytest.raises((NotImplementedError, ValueError, KeyError)):
        Presentation(str(deck)).slides[1].shapes[1].chart.plots[0]  # noqa: B018 - the peer reader fails
    (_, _), (s2, md2) = slides(deck)
    assert "**Sales by region**\n\n|  | Revenue |\n| --- | --- |\n| North | 120 |\n| South | 95.5 |" in md2
