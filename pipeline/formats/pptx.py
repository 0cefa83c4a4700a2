"""PowerPoint → one Segment per slide. PPTX is read with python-pptx into a plain structure (title, text
blocks with list levels, tables, pictures with alt text, charts with their data, notes); the slide_text
engine renders it as Markdown. Legacy .ppt goes through LibreOffice headless to PPTX first. With a
Phi-4 engine, slides with pictures or charts are rendered (LibreOffice → PDF → page image) for the model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import CONTENT_MIXED, CONTENT_TEXT, Renditions, Segment


class DeckOpenError(Exception):
    """The deck cannot be read: malformed, a zip bomb, or a failed legacy conversion."""


def check_zip(path: Path, max_uncompressed: int) -> None:
    """Refuse decks that inflate past the limit (zip bombs) before any XML is parsed."""
    try:
        with zipfile.ZipFile(path) as z:
            total = sum(i.file_size for i in z.infolist())
    except zipfile.BadZipFile as e:
        raise DeckOpenError(f"not a readable PPTX (bad zip: {e})") from None
    if total > max_uncompressed:
        raise DeckOpenError(
            f"PPTX inflates to {total} bytes, over pptx.max_uncompressed_bytes={max_uncompressed} (zip bomb?)"
        )


def _soffice() -> str:
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    if not exe:
        raise DeckOpenError("LibreOffice is not installed (apt-get install libreoffice-impress)")
    return exe


def libreoffice_convert(src: Path, fmt: str, out_dir: Path, timeout_s: float) -> Path:
    """soffice --headless --convert-to FMT with a private profile, so parallel conversions don't collide."""
    profile = Path(tempfile.mkdtemp(prefix="unitok-lo-profile-"))
    try:
        cmd = [_soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
               "--convert-to", fmt, "--outdir", str(out_dir), str(src)]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeckOpenError(
                f"LibreOffice conversion to {fmt} timed out after {timeout_s:.0f} s"
            ) from None
        out = out_dir / (src.stem + "." + fmt.split(":")[0])
        if proc.returncode != 0 or not out.is_file():
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DeckOpenError(f"LibreOffice could not convert the deck to {fmt} ({detail[0]})")
        return out
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _paragraphs(text_frame, in_body: bool) -> list[dict[str, Any]]:
    out = []
    for p in text_frame.paragraphs:
        text = "".join(r.text for r in p.runs) or p.text
        text = text.replace("\x0b", " ").strip()
        if not text:
            continue
        ppr = p._p.pPr
        auto_num = (
            ppr is not None
            and ppr.find("{http://schemas.openxmlformats.org/drawingml/2006/main}buAutoNum") is not None
        )
        bullet_char = (
            ppr is not None
            and ppr.find("{http://schemas.openxmlformats.org/drawingml/2006/main}buChar") is not None
        )
        no_bullet = (
            ppr is not None
            and ppr.find("{http://schemas.openxmlformats.org/drawingml/2006/main}buNone") is not None
        )
        kind = (
            "numbered" if auto_num else "bullet" if (bullet_char or (in_body and not no_bullet)) else "text"
        )
        out.append({"kind": kind, "level": p.level, "text": text})
    return out


def _table(table) -> list[list[str]]:
    rows = []
    for r, row in enumerate(table.rows):
        cells = []
        for c, cell in enumerate(row.cells):
            if cell.is_spanned:  # repeat the merge origin's text rather than drop the cell
                origin = next(
                    table.cell(rr, cc)
                    for rr in range(r, -1, -1)
                    for cc in range(c, -1, -1)
                    if table.cell(rr, cc).is_merge_origin
                    and rr + table.cell(rr, cc).span_height > r
                    and cc + table.cell(rr, cc).span_width > c
                )
                cells.append(origin.text.strip())
            else:
                cells.append(cell.text.strip())
        rows.append(cells)
    return rows


def _chart(chart) -> dict[str, Any]:
    title = (
        chart.chart_title.text_frame.text.strip()
        if chart.has_title and chart.chart_title.has_text_frame
        else ""
    )
    plot = chart.plots[0] if len(chart.plots) else None
    categories = [str(c) for c in plot.categories] if plot is not None else []
    series = [{"name": s.name, "values": list(s.values)} for s in (plot.series if plot is not None else [])]
    return {"kind": "chart", "title": title, "categories": categories, "series": series}


def _picture_png(shape) -> bytes | None:
    """The picture as PNG for OCR; None for formats Pillow cannot read (EMF/WMF vector pictures)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(shape.image.blob)) as img:
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="PNG")
            return buf.getvalue()
    except Exception:  # noqa: BLE001 - an unreadable picture keeps its placeholder line, without OCR
        return None


def _shape_blocks(
    shape, blocks: list[dict[str, Any]], flags: dict[str, bool], pictures: list[bytes] | None = None
) -> None:
    from pptx.enum.shapes import MSO_SHAPE_TYPE, PP_PLACEHOLDER

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        for child in sorted(shape.shapes, key=lambda s: ((s.top or 0), (s.left or 0))):
            _shape_blocks(child, blocks, flags, pictures)
        return
    if getattr(shape, "has_chart", False) and shape.has_chart:
        blocks.append(_chart(shape.chart))
        flags["visual"] = True
        return
    if getattr(shape, "has_table", False) and shape.has_table:
        blocks.append({"kind": "table", "rows": _table(shape.table)})
        return
    if (
        shape.shape_type == MSO_SHAPE_TYPE.PICTURE
        or getattr(shape, "image", None) is not None
        and shape.shape_type != MSO_SHAPE_TYPE.PLACEHOLDER
    ):
        alt = shape._element.xpath("./*[1]/p:cNvPr/@descr")
        block = {"kind": "picture", "alt": (alt[0] if alt else "").strip(), "name": shape.name}
        if pictures is not None and (png := _picture_png(shape)) is not None:
            block["ocr_index"] = len(pictures)
            pictures.append(png)
        blocks.append(block)
        flags["visual"] = True
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


def slide_structure(slide, pictures: list[bytes] | None = None) -> tuple[dict[str, Any], bool]:
    """The slide's structure and whether it has pictures or charts; picture images are appended to
    `pictures` when given (for OCR)."""
    title_shape = slide.shapes.title
    title_lines = []
    if title_shape is not None:
        title_lines = [
            ln.strip() for ln in title_shape.text_frame.text.replace("\x0b", " ").splitlines() if ln.strip()
        ]
    title = title_lines[0] if title_lines else ""
    blocks: list[dict[str, Any]] = []
    if len(title_lines) > 1:  # a title placeholder holding several paragraphs: the rest is body text
        blocks.append(
            {"kind": "text", "paragraphs": [{"kind": "text", "level": 0, "text": t} for t in title_lines[1:]]}
        )
    flags = {"visual": False}
    for shape in sorted(slide.shapes, key=lambda s: ((s.top or 0), (s.left or 0))):
        _shape_blocks(shape, blocks, flags, pictures)
    notes = ""
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
    return {"title": title, "blocks": blocks, "notes": notes}, flags["visual"]


def unstructured_problem() -> str | None:
    """Why the unstructured partitioner cannot run here, or None. Checked before use because unstructured
    downloads spaCy's en_core_web_sm at first use (impossible offline), after which partition_pptx raises
    and partition_pdf silently returns nothing."""
    import importlib.util

    if importlib.util.find_spec("unstructured") is None:
        return "pptx.partitioner: unstructured is not installed (pip install 'unstructured[pptx]')"
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


def split_pptx(
    path: Path, base: Segment, cfg: JobConfig, needs: Renditions | None = None
) -> Iterator[Segment]:
    from pptx import Presentation

    needs = needs or Renditions()

    work = Path(tempfile.mkdtemp(prefix="unitok-deck-"))
    try:
        if base.mime_type == "application/vnd.ms-powerpoint":
            path = libreoffice_convert(path, "pptx", work, cfg.pptx.convert_timeout_s)
        check_zip(path, cfg.pptx.max_uncompressed_bytes)
        if cfg.pptx.partitioner == "unstructured":
            problem = unstructured_problem()
            if problem:
                raise DeckOpenError(problem)
            for i, structure in enumerate(_unstructured_slides(path)):
                seg = base.part(i, "slide", CONTENT_TEXT)
                seg.page_number, seg.structure_json = i + 1, json.dumps(structure)
                seg.warnings = list(base.warnings)
                yield seg
            return
        try:
            deck = Presentation(str(path))
        except Exception as e:  # noqa: BLE001 - python-pptx raises many types for broken parts
            raise DeckOpenError(f"not a readable PPTX ({type(e).__name__}: {e})") from None
        pdf = None
        for i, slide in enumerate(deck.slides):
            pictures: list[bytes] | None = [] if needs.slide_picture_pixels else None
            structure, visual = slide_structure(slide, pictures)
            seg = base.part(i, "slide", CONTENT_MIXED if visual else CONTENT_TEXT)
            seg.page_number = i + 1
            seg.warnings = list(base.warnings)
            seg.structure_json = json.dumps(structure)
            seg.frames_png = pictures or []
            if needs.slide_pixels == "always" or (needs.slide_pixels == "visual" and visual):
                try:
                    if pdf is None:
                        import pypdfium2 as pdfium

                        pdf = pdfium.PdfDocument(
                            libreoffice_convert(path, "pdf", work, cfg.pptx.convert_timeout_s)
                        )
                    from unitok.pipeline.formats.pdf import render_page_png

                    seg.image_png = render_page_png(pdf[i], cfg.pptx.render_dpi, grayscale=False)
                except DeckOpenError as e:
                    seg.warnings.append(f"slide image unavailable, text only: {e}")
            yield seg
        if pdf is not None:
            pdf.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
