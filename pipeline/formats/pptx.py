"""PowerPoint → one Segment per slide. PPTX is read with python-pptx into a plain structure (title, text
blocks with list levels, tables, pictures with alt text, charts with their data, notes); the slide_text
engine renders it as Markdown. Legacy .ppt and ODF .odp go through LibreOffice headless to PPTX first. With a
Phi-4 engine, slides with pictures or charts are rendered (LibreOffice → PDF → page image) for the model.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.extras import install_hint
from unitok.pipeline.core.records import CONTENT_MIXED, CONTENT_TEXT, Renditions, Segment
from unitok.pipeline.formats.detect import ODP, PPT


class DeckOpenError(Exception):
    """The deck cannot be read: malformed, a zip bomb, or a failed legacy conversion."""


class DeckTooLarge(DeckOpenError):
    """The deck inflates past pptx.max_uncompressed_bytes: never repaired, never read."""


class SlideDamaged(DeckOpenError):
    """One slide's zip entry is damaged: that slide's error row (the deck's other slides convert)."""


def check_zip(path: Path, max_uncompressed: int) -> None:
    """Refuse decks that inflate past the limit (zip bombs) before any XML is parsed."""
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(i.file_size for i in z.infolist())
    except zipfile.BadZipFile as e:
        raise DeckOpenError(f"not a readable PPTX (bad zip: {e})") from None
    if total > max_uncompressed:
        raise DeckTooLarge(
            f"PPTX inflates to {total} bytes, over pptx.max_uncompressed_bytes={max_uncompressed} (zip bomb?)"
        )


def _soffice(error: type[Exception]) -> str:
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if not exe:
        raise error("LibreOffice is not installed (infra/install-system-deps.sh installs it)")
    return exe


def libreoffice_convert(
    src: Path, fmt: str, out_dir: Path, timeout_s: float, error: type[Exception] = DeckOpenError,
    what: str = "deck",
) -> Path:  # fmt: skip
    """soffice --headless --convert-to FMT with a private profile, so parallel conversions don't collide.
    A failure raises `error` saying what (the deck, the document) could not be converted."""
    profile = Path(tempfile.mkdtemp(prefix="unitok-lo-profile-"))
    try:
        cmd = [_soffice(error), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
               "--convert-to", fmt, "--outdir", str(out_dir), str(src)]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise error(f"LibreOffice conversion to {fmt} timed out after {timeout_s:.0f} s") from None
        out = out_dir / (src.stem + "." + fmt.split(":")[0])
        if proc.returncode != 0 or not out.is_file():
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise error(f"LibreOffice could not convert the {what} to {fmt} ({detail[0]})")
        return out
    finally:
        shutil.rmtree(profile, ignore_errors=True)


NS = {
    "a": "http://schemas.openxmlformats.org/drawingml/2006/main",
    "p": "http://schemas.openxmlformats.org/presentationml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "c": "http://schemas.openxmlformats.org/drawingml/2006/chart",
    "cx": "http://schemas.microsoft.com/office/drawing/2014/chartex",
    "dgm": "http://schemas.openxmlformats.org/drawingml/2006/diagram",
    "mc": "http://schemas.openxmlformats.org/markup-compatibility/2006",
    "p188": "http://schemas.microsoft.com/office/powerpoint/2018/8/main",
}
_A = f"{{{NS['a']}}}"
_SHAPE_TAGS = {f"{{{NS['p']}}}{t}" for t in ("sp", "grpSp", "graphicFrame", "cxnSp", "pic", "contentPart")}
_ALTERNATE = f"{{{NS['mc']}}}AlternateContent"
_URI_DIAGRAM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
_URI_CHART = "http://schemas.openxmlformats.org/drawingml/2006/chart"
_URI_CHARTEX = "http://schemas.microsoft.com/office/drawing/2014/chartex"
# python-pptx fills a picture's description with its file name; that is not a description the author wrote.
_FILE_NAME = re.compile(r"(?i)^[\w\-. ()]+\.(png|jpe?g|gif|bmp|tiff?|emf|wmf|svg|webp|heic)$")


def xml_paragraphs(element: Any) -> list[str]:
    """The visible text of any DrawingML element, one string per a:p, in document order: the fallback that
    recovers a shape python-pptx cannot model, and the reader for parts it does not read (SmartArt)."""
    out = []
    for p in element.iter(f"{_A}p"):
        text = "".join(
            (t.text or "") if t.tag == f"{_A}t" else " " for t in p.iter(f"{_A}t", f"{_A}br")
        ).strip()
        if text:
            out.append(text)
    return out


def _paragraphs(text_frame, in_body: bool) -> list[dict[str, Any]]:
    out = []
    for p in text_frame.paragraphs:
        # p.text holds runs, fields (slide numbers, dates) and line breaks; runs alone would drop fields.
        text = p.text.replace("\x0b", " ").strip()
        if not text:
            continue
        ppr = p._p.pPr
        auto_num = ppr is not None and ppr.find(f"{_A}buAutoNum") is not None
        bullet_char = ppr is not None and ppr.find(f"{_A}buChar") is not None
        no_bullet = ppr is not None and ppr.find(f"{_A}buNone") is not None
        kind = (
            "numbered" if auto_num else "bullet" if (bullet_char or (in_body and not no_bullet)) else "text"
        )
        out.append({"kind": kind, "level": p.level, "text": text})
    return out


def _table(table) -> list[list[str]]:
    """The table's rows of cell texts, a merged cell's text repeated in every place it covers (as for
    HTML). A covered cell takes the text of its neighbour on the left (hMerge) or above (vMerge), already
    resolved, so a merge is followed in one pass whatever spans a hostile deck declares; a covered cell with
    no neighbour there keeps its own text. A line break inside a cell is a line of the cell (<br>)."""
    rows: list[list[str]] = []
    for r, row in enumerate(table.rows):
        cells: list[str] = []
        for c, cell in enumerate(row.cells):
            tc = cell._tc
            if tc.vMerge and r > 0 and c < len(rows[r - 1]):
                cells.append(rows[r - 1][c])
            elif tc.hMerge and c > 0:
                cells.append(cells[c - 1])
            else:
                cells.append(cell.text.replace("\v", "\n").strip())
        rows.append(cells)
    return rows


def _points(element: Any, ns: str) -> list[str]:
    """A data reference's cached points (c:pt or cx:pt), by index, values exactly as the deck stores them."""
    if element is None:
        return []
    pts: dict[int, str] = {}
    for pt in element.iter(f"{{{ns}}}pt"):
        v = pt.find(f"{{{ns}}}v")
        value = (v.text if v is not None else pt.text) or ""
        pts.setdefault(int(pt.get("idx", len(pts))), value.strip())
    return [pts.get(i, "") for i in range(max(pts) + 1)] if pts else []


def _formula(element: Any, ns: str) -> str:
    """A data reference's cell formula ('Sheet 1'!$B$2:$B$5), or ""."""
    f = element.find(f".//{{{ns}}}f") if element is not None else None
    return (f.text or "").strip() if f is not None else ""


def _first(element: Any, *tags: str) -> Any:
    """The first child found among tags (lxml elements without children are falsy: no `or` chains)."""
    for tag in tags:
        found = element.find(tag)
        if found is not None:
            return found
    return None


def chart_from_xml(root: Any, cells: Any = None) -> dict[str, Any]:
    """Title, categories and series of a chart part of any type (c: charts, and cx: chartex such as
    waterfall or treemap), read from its XML and cache, so a chart type no reader models keeps its data.
    cells: formula → values, for a c: series that stores only its cell references (a workbook's)."""
    c, cx = NS["c"], NS["cx"]
    title_el = root.find(f".//{{{c}}}chart/{{{c}}}title")
    if title_el is None:
        title_el = root.find(f".//{{{cx}}}chart/{{{cx}}}title")
    title = " ".join(xml_paragraphs(title_el)) if title_el is not None else ""
    if title_el is not None and not title:  # a title taken from a cell: its cached text
        title = " ".join(v.text or "" for v in title_el.iter(f"{{{c}}}v", f"{{{cx}}}v")).strip()
    categories: list[str] = []
    series: list[dict[str, Any]] = []
    for ser in root.iter(f"{{{c}}}ser"):
        tx = ser.find(f"{{{c}}}tx")
        name = " ".join(v.text or "" for v in tx.iter(f"{{{c}}}v")).strip() if tx is not None else ""
        if not name and tx is not None:
            name = " ".join(xml_paragraphs(tx))
        cats = _points(_first(ser, f"{{{c}}}cat", f"{{{c}}}xVal"), c)
        vals = _points(_first(ser, f"{{{c}}}val", f"{{{c}}}yVal"), c)
        if cells is not None:  # no cache: the cells the series refers to
            cats = cats or cells(_formula(_first(ser, f"{{{c}}}cat", f"{{{c}}}xVal"), c))
            vals = vals or cells(_formula(_first(ser, f"{{{c}}}val", f"{{{c}}}yVal"), c))
            if not name:
                name = " ".join(cells(_formula(tx, c)))
        if len(cats) > len(categories):
            categories = cats
        series.append({"name": name, "values": vals})
    for data in root.iter(f"{{{cx}}}data"):  # chartex: one data block per series
        dims = {d.get("type"): d for d in data if d.tag in (f"{{{cx}}}strDim", f"{{{cx}}}numDim")}
        cats = _points(dims.get("cat"), cx)
        vals = _points(dims["val"] if "val" in dims else dims.get("size"), cx)
        if len(cats) > len(categories):
            categories = cats
        series.append({"name": "", "values": vals})
    for ser in root.iter(f"{{{cx}}}series"):  # chartex series names, in data order
        idx = ser.find(f"{{{cx}}}dataId")
        i = int(idx.get("val", 0)) if idx is not None else 0
        name = " ".join(v.text or "" for v in ser.iter(f"{{{cx}}}v")).strip()
        if i < len(series) and name and not series[i]["name"]:
            series[i]["name"] = name
    return {"kind": "chart", "title": title, "categories": categories, "series": series}


def _related_xml(part: Any, rid: str) -> Any:
    from lxml import etree

    return etree.fromstring(part.related_part(rid).blob)


def _graphic_data(elm: Any) -> Any:
    return elm.find(f"{_A}graphic/{_A}graphicData")


def _diagram_paragraphs(slide_part: Any, elm: Any) -> list[str]:
    """A SmartArt graphic's text, from its data part, node by node in the data model's order."""
    rel_ids = _graphic_data(elm).find(f"{{{NS['dgm']}}}relIds")
    if rel_ids is None:
        return []
    data = _related_xml(slide_part, rel_ids.get(f"{{{NS['r']}}}dm"))
    texts = []
    for pt in data.iter(f"{{{NS['dgm']}}}pt"):
        if pt.get("type") in ("parTrans", "sibTrans", "pres"):
            continue
        body = pt.find(f"{{{NS['dgm']}}}t")
        if body is not None:
            texts.extend(xml_paragraphs(body))
    return texts


def _picture_png(shape) -> bytes | None:
    """The picture as PNG for OCR; None for formats Pillow cannot read (EMF/WMF vector pictures)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(shape.image.blob)) as img:
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="PNG")
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - an unreadable picture keeps its marker, without OCR
        return None


def _extent(elm: Any, shape: Any = None) -> tuple[int, int, int]:
    """(top, left, height) for reading order; python-pptx's inherits a placeholder's place from its layout."""
    if shape is not None:
        try:
            return (shape.top or 0), (shape.left or 0), (shape.height or 0)
        except Exception:  # noqa: BLE001 - a shape python-pptx cannot model: its own xfrm
            pass
    off, ext = elm.find(f".//{_A}off"), elm.find(f".//{_A}ext[@cy]")
    top, left = (_emu(off.get("y")), _emu(off.get("x"))) if off is not None else (0, 0)
    return top, left, _emu(ext.get("cy")) if ext is not None else 0


def _emu(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def reading_order(extents: list[tuple[int, int, int]]) -> list[int]:
    """The indexes of shapes (top, left, height) in reading order: rows from top to bottom, each row from
    left to right. Taken by top, a shape joins the current row when its top is below the top of the row's
    first shape by at most half the smaller of their two heights: two boxes set side by side by hand, whose
    tops differ by a hair, are one row read left first (a strict sort on top reads the higher one first),
    while a tall shape does not pull the shapes stacked beside it into its row. A group is one shape here
    (its own place), so its children stay together; they are ordered the same way inside it."""
    order = sorted(range(len(extents)), key=lambda i: (extents[i][0], extents[i][1]))
    rows: list[list[int]] = []
    for i in order:
        if rows:
            top, _, height = extents[rows[-1][0]]
            if extents[i][0] - top <= min(height, extents[i][2]) // 2:
                rows[-1].append(i)
                continue
        rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda i: (extents[i][1], extents[i][0]))]


def _shape_name(elm: Any) -> str:
    names = elm.xpath("./*[1]/*[local-name()='cNvPr']/@name")
    ids = elm.xpath("./*[1]/*[local-name()='cNvPr']/@id")
    return f"{names[0] if names else '?'!r} (id {ids[0] if ids else '?'})"


class _Slide:
    """What one slide's reading collects: blocks in reading order, pictures for OCR, and warnings."""

    def __init__(self, slide: Any, pictures: list[bytes] | None):
        self.slide, self.part, self.pictures = slide, slide.part, pictures
        self.blocks: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.visual = False
        # The title placeholder, found in the XML: python-pptx's lookup walks every shape and fails on
        # one it has no class for (p:contentPart).
        titles = slide.shapes._spTree.xpath("./p:sp[p:nvSpPr/p:nvPr/p:ph[@type='title' or @type='ctrTitle']]")
        self.title_elm = titles[0] if titles else None

    def read_tree(self, tree: Any) -> None:
        """Every shape child of an spTree or grpSp, an mc:AlternateContent's chosen branch included, in
        reading order (reading_order). The title placeholder is the slide's heading and comes first."""
        items = []
        for elm in tree.iterchildren():
            if elm.tag == _ALTERNATE:
                branch = self._branch(elm)
                if branch is not None:
                    items.extend((el, None) for el in branch.iterchildren() if el.tag in _SHAPE_TAGS)
            elif elm.tag in _SHAPE_TAGS:
                items.append((elm, None))
        shaped = [(elm, self._shape(elm)) for elm, _ in items]
        for i in reading_order([_extent(elm, shape) for elm, shape in shaped]):
            self.read_shape(*shaped[i])

    def _shape(self, elm: Any) -> Any:
        """python-pptx's object for a shape element, or None where it has none (read from XML then)."""
        from pptx.shapes.shapetree import SlideShapeFactory

        if not hasattr(elm, "has_ph_elm"):  # an element python-pptx has no class for
            return None
        try:
            return SlideShapeFactory(elm, self.slide.shapes)
        except Exception:  # noqa: BLE001
            return None

    @staticmethod
    def _branch(alternate: Any) -> Any:
        """The branch PowerPoint shows (mc:Choice) if it holds any text or shape, else mc:Fallback."""
        choice = alternate.find(f"{{{NS['mc']}}}Choice")
        fallback = alternate.find(f"{{{NS['mc']}}}Fallback")
        if choice is not None and (
            xml_paragraphs(choice) or fallback is None or not xml_paragraphs(fallback)
        ):
            return choice
        return fallback

    def read_shape(self, elm: Any, shape: Any) -> None:
        """One shape's blocks; a shape that fails is reported and its text recovered from its XML."""
        if elm is self.title_elm:
            return  # the slide's heading
        if elm.tag == f"{{{NS['p']}}}grpSp":
            self.read_tree(elm)  # each child on its own: a failing child never takes its siblings along
            return
        if elm.tag == f"{{{NS['p']}}}contentPart":  # ink or a 3D model: python-pptx has no class for it
            paras = [{"kind": "text", "level": 0, "text": t} for t in xml_paragraphs(elm)]
            if paras:
                self.blocks.append({"kind": "text", "paragraphs": paras})
            return
        blocks: list[dict[str, Any]] = []
        try:
            if shape is None:
                raise NotImplementedError(f"python-pptx has no class for {elm.tag.rsplit('}', 1)[-1]}")
            self._shape_blocks(elm, shape, blocks)
        except Exception as e:  # noqa: BLE001 - isolate the failure to this shape
            recovered = xml_paragraphs(elm)
            blocks = (
                [{"kind": "text", "paragraphs": [{"kind": "text", "level": 0, "text": t} for t in recovered]}]
                if recovered
                else []
            )
            what = "its text recovered from the XML" if recovered else "it holds no text"
            self.warnings.append(f"shape {_shape_name(elm)} not read ({type(e).__name__}: {e}); {what}")
        self.blocks.extend(blocks)

    def _shape_blocks(self, elm: Any, shape: Any, blocks: list[dict[str, Any]]) -> None:
        from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER

        if elm.tag == f"{{{NS['p']}}}graphicFrame":
            uri = _graphic_data(elm).get("uri")
            if uri in (_URI_CHART, _URI_CHARTEX):
                rid = next(
                    (
                        el.get(f"{{{NS['r']}}}id")
                        for el in _graphic_data(elm).iter()
                        if el.get(f"{{{NS['r']}}}id")
                    ),
                    None,
                )
                if rid is None:
                    raise ValueError("chart without a part")
                blocks.append(chart_from_xml(_related_xml(self.part, rid)))
                self.visual = True
                return
            if uri == _URI_DIAGRAM:
                texts = _diagram_paragraphs(self.part, elm)
                if texts:
                    paras = [{"kind": "text", "level": 0, "text": t} for t in texts]
                    blocks.append({"kind": "text", "paragraphs": paras})
                return
            if getattr(shape, "has_table", False) and shape.has_table:
                # header: the table's "header row" option (a:tblPr firstRow). Its first row is the Markdown
                # table's header either way, once: with the option it is the author's header; without it,
                # Markdown still needs a header line and the first row is the one that keeps every row once
                # and in order (an empty header line above it would be a row the author never made).
                table = shape.table
                blocks.append({"kind": "table", "rows": _table(table), "header": bool(table.first_row)})
                return
        if elm.tag == f"{{{NS['p']}}}pic" or (getattr(shape, "shape_type", None) == MSO_SHAPE_TYPE.PICTURE):
            descr = (elm.xpath("./*[1]/*[local-name()='cNvPr']/@descr") or [""])[0].strip()
            block = {"kind": "picture", "alt": "" if _FILE_NAME.match(descr) else descr}
            if self.pictures is not None and (png := _picture_png(shape)) is not None:
                block["ocr_index"] = len(self.pictures)
                self.pictures.append(png)
            blocks.append(block)
            self.visual = True
            return
        if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            in_body = False
            if shape.is_placeholder:
                ptype = shape.placeholder_format.type
                if ptype in (PP_PLACEHOLDER.TITLE, PP_PLACEHOLDER.CENTER_TITLE):
                    return  # the title is the slide's heading
                in_body = ptype in (PP_PLACEHOLDER.BODY, PP_PLACEHOLDER.OBJECT)
            paras = _paragraphs(shape.text_frame, in_body)
            if paras:
                blocks.append({"kind": "text", "paragraphs": paras})
            return
        if xml_paragraphs(elm):  # a shape kind this reader has no rule for, holding text
            raise NotImplementedError(f"no reader for {elm.tag.rsplit('}', 1)[-1]} shapes")


def _authors(package: Any) -> dict[str, str]:
    """Comment author ids → names, from both comment formats' author lists."""
    from lxml import etree

    names: dict[str, str] = {}
    pres = package.presentation_part
    for rel in pres.rels.values():
        if rel.is_external or not rel.reltype.endswith(("/commentAuthors", "/authors")):
            continue
        root = etree.fromstring(rel.target_part.blob)
        for a in root.iter(f"{{{NS['p']}}}cmAuthor", f"{{{NS['p188']}}}author"):
            names[a.get("id", "")] = a.get("name", "")
    return names


def slide_comments(slide: Any, authors: dict[str, str]) -> list[dict[str, Any]]:
    """Reviewer comments on a slide, legacy (p:cm) and modern (p188:cm, with replies), in time order."""
    from lxml import etree

    out: list[dict[str, Any]] = []
    for rel in slide.part.rels.values():
        if rel.is_external or not rel.reltype.endswith("/comments"):
            continue
        root = etree.fromstring(rel.target_part.blob)
        for cm in root.iter(f"{{{NS['p']}}}cm"):
            text = (cm.findtext(f"{{{NS['p']}}}text") or "").strip()
            out.append({"author": authors.get(cm.get("authorId", ""), ""), "at": cm.get("dt", ""),
                        "text": text, "replies": []})  # fmt: skip
        for cm in root.iter(f"{{{NS['p188']}}}cm"):
            replies = [
                {"author": authors.get(r.get("authorId", ""), ""), "at": r.get("created", ""),
                 "text": "\n".join(xml_paragraphs(r.find(f"{{{NS['p188']}}}txBody")))}
                for r in cm.iter(f"{{{NS['p188']}}}reply")
            ]  # fmt: skip
            body = cm.find(f"{{{NS['p188']}}}txBody")
            out.append({"author": authors.get(cm.get("authorId", ""), ""), "at": cm.get("created", ""),
                        "text": "\n".join(xml_paragraphs(body)) if body is not None else "",
                        "replies": replies})  # fmt: skip
    return sorted(out, key=lambda c: c["at"])


def slide_structure(
    slide, pictures: list[bytes] | None = None, authors: dict[str, str] | None = None
) -> tuple[dict[str, Any], bool]:
    """The slide's structure and whether it has pictures or charts; picture images are appended to
    `pictures` when given (for OCR). A shape that cannot be read is isolated: reported in the
    structure's warnings, its text recovered from the XML, the rest of the slide read as usual."""
    reading = _Slide(slide, pictures)
    title_lines = xml_paragraphs(reading.title_elm) if reading.title_elm is not None else []
    title = title_lines[0] if title_lines else ""
    if len(title_lines) > 1:  # a title placeholder holding several paragraphs: the rest is body text
        reading.blocks.append(
            {"kind": "text", "paragraphs": [{"kind": "text", "level": 0, "text": t} for t in title_lines[1:]]}
        )
    reading.read_tree(slide.shapes._spTree)
    comments: list[dict[str, Any]] = []
    try:
        comments = slide_comments(slide, authors if authors is not None else _authors(slide.part.package))
    except Exception as e:  # noqa: BLE001
        reading.warnings.append(f"comments not read ({type(e).__name__}: {e})")
    notes = ""
    try:
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            # a line break in a note is a vertical tab in python-pptx: a line of the note, not a control byte
            notes = slide.notes_slide.notes_text_frame.text.replace("\v", "\n").strip()
    except Exception as e:  # noqa: BLE001
        reading.warnings.append(f"speaker notes not read ({type(e).__name__}: {e})")
    structure = {"title": title, "blocks": reading.blocks, "comments": comments, "notes": notes,
                 "warnings": reading.warnings}  # fmt: skip
    return structure, reading.visual


def unstructured_problem() -> str | None:
    """Why the unstructured partitioner cannot run here, or None. Checked before use because unstructured
    downloads spaCy's en_core_web_sm at first use (impossible offline), after which partition_pptx raises
    and partition_pdf silently returns nothing."""
    import importlib.util

    if importlib.util.find_spec("unstructured") is None:
        return f"pptx.partitioner: unstructured is not installed ({install_hint('unstructured')})"
    if importlib.util.find_spec("en_core_web_sm") is None:
        return (
            "pptx.partitioner: unstructured needs spaCy's en_core_web_sm, which it would download at "
            "first use; install the en_core_web_sm package from your package mirror, "
            "or use partitioner: python-pptx"
        )
    return None


def _unstructured_slides(path: Path) -> list[dict[str, Any]]:
    from unstructured.partition.pptx import partition_pptx

    slides: dict[int, dict[str, Any]] = {}
    for el in partition_pptx(filename=str(path)):
        number = el.metadata.page_number or 1
        slide = slides.setdefault(number, {"title": "", "blocks": [], "notes": ""})
        kind = type(el).__name__
        if kind == "Title" and not slide["title"]:
            slide["title"] = el.text.strip()
        elif kind == "ListItem":
            slide["blocks"].append(
                {"kind": "text", "paragraphs": [{"kind": "bullet", "level": 0, "text": el.text}]}
            )
        elif el.text.strip():
            slide["blocks"].append(
                {"kind": "text", "paragraphs": [{"kind": "text", "level": 0, "text": el.text}]}
            )
    if not slides:
        raise DeckOpenError("unstructured found no elements in the deck")  # never a silent empty document
    return [slides[k] for k in sorted(slides)]


def _open_deck(path: Path, work: Path, max_uncompressed: int) -> tuple[Any, Any]:
    """(the deck, None), or, when it cannot be read as it is, (the deck rebuilt from its readable zip
    entries, the Repair saying what was left out). A zip bomb is refused, never repaired."""
    from pptx import Presentation
    from unitok.pipeline.formats.deck_repair import UnrepairableDeck, repair_deck

    try:
        check_zip(path, max_uncompressed)
        return Presentation(str(path)), None
    except DeckTooLarge:
        raise
    except DeckOpenError as e:
        first = str(e)
    except Exception as e:  # noqa: BLE001 - python-pptx raises many types for broken parts
        first = f"not a readable PPTX ({type(e).__name__}: {e})"
    try:
        repair = repair_deck(path, work, max_uncompressed)
        return Presentation(str(repair.path)), repair
    except UnrepairableDeck as e:
        raise DeckOpenError(f"{first}; not repairable: {e}") from None
    except Exception as e:  # noqa: BLE001
        raise DeckOpenError(f"{first}; not repairable ({type(e).__name__}: {e})") from None


def _lost_slide(base: Segment, number: int, why: str) -> Segment:
    seg = base.as_error("split", SlideDamaged(f"slide {number}: its zip entry is damaged ({why})"),
                        number - 1, explained=True)  # fmt: skip
    seg.segment_kind, seg.page_number = "slide", number
    return seg


def _repair_note(repair: Any) -> str:
    parts = ", ".join(f"{name} ({why})" for name, why in sorted(repair.damaged.items())[:10])
    more = len(repair.damaged) - 10
    return f"deck repaired: damaged zip entries left out: {parts}" + (f" and {more} more" if more > 0 else "")


def split_pptx(
    path: Path, base: Segment, cfg: JobConfig, needs: Renditions | None = None
) -> Iterator[Segment]:
    needs = needs or Renditions()

    work = Path(tempfile.mkdtemp(prefix="unitok-deck-"))
    try:
        if base.mime_type in (PPT.mime_type, ODP.mime_type):  # legacy PowerPoint and ODF decks: PPTX first
            path = libreoffice_convert(path, "pptx", work, cfg.pptx.convert_timeout_s)
        if cfg.pptx.partitioner == "unstructured":
            check_zip(path, cfg.pptx.max_uncompressed_bytes)
            problem = unstructured_problem()
            if problem:
                raise DeckOpenError(problem)
            for i, structure in enumerate(_unstructured_slides(path)):
                seg = base.part(i, "slide", CONTENT_TEXT)
                seg.page_number, seg.structure_json = i + 1, json.dumps(structure)
                seg.warnings = list(base.warnings)
                yield seg
            return
        deck, repair = _open_deck(path, work, cfg.pptx.max_uncompressed_bytes)
        if repair is not None:
            path = repair.path
        pdf = None
        try:
            authors = _authors(deck.part.package)
        except Exception:  # noqa: BLE001 - comments then show no author names
            authors = {}
        lost = dict(repair.lost_slides) if repair is not None else {}
        for j, slide in enumerate(deck.slides):  # j: its page in the (repaired) deck's rendering
            number = repair.slide_numbers.get(slide.part.partname.lstrip("/"), j + 1) if repair else j + 1
            for n in sorted(k for k in lost if k < number):
                yield _lost_slide(base, n, lost.pop(n))
            i = number - 1
            pictures: list[bytes] | None = [] if needs.slide_picture_pixels else None
            structure, visual = slide_structure(slide, pictures, authors)
            seg = base.part(i, "slide", CONTENT_MIXED if visual else CONTENT_TEXT)
            seg.page_number = number
            seg.warnings = list(base.warnings) + structure.pop("warnings")
            if repair is not None and repair.damaged and j == 0:
                seg.warnings.append(_repair_note(repair))
            seg.structure_json = json.dumps(structure)
            seg.frames_png = pictures or []
            if needs.slide_pixels == "always" or (needs.slide_pixels == "visual" and visual):
                try:
                    if pdf is None:
                        import pypdfium2 as pdfium

                        pdf = pdfium.PdfDocument(
                            libreoffice_convert(path, "pdf", work, cfg.pptx.convert_timeout_s)
                        )
                    from unitok.pipeline.formats.pdf import bounded_dpi, render_page_png

                    dpi = bounded_dpi(pdf[j], cfg.pptx.render_dpi, cfg.image.max_pixels)
                    seg.image_png = render_page_png(pdf[j], dpi, grayscale=False)
                except DeckOpenError as e:
                    seg.warnings.append(f"slide image unavailable, text only: {e}")
            yield seg
        for n in sorted(lost):  # damaged slides after the last readable one
            yield _lost_slide(base, n, lost[n])
        if pdf is not None:
            pdf.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
