"""PDF → one Segment per page. The text layer is read here (format logic); converting it to Markdown
is the pdf_text engine's job. Pages without a usable text layer are rendered for OCR, one at a time,
so a 600-page PDF never sits in memory as page images."""

from __future__ import annotations

import ctypes
import io
import json
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import CONTENT_EMPTY, CONTENT_PIXELS, CONTENT_TEXT, Renditions, Segment
from unitok.pipeline.core.text import join_surrogates
from unitok.pipeline.formats.pdf_tables import COLUMN_GAP, Cell, Table, aligned_tables, find_tables, split_run

_WORDLIKE = re.compile(r"[\w]+(?:[-'’./,:&][\w]+)*")
_STRIP = ".,;:!?()[]{}\"'“”‘’-–—*•·…"


class PdfOpenError(Exception):
    """The PDF cannot be opened: encrypted, corrupt or empty."""


@dataclass
class PageText:
    lines: list[str]
    sizes: list[float]
    gaps: list[float]  # vertical gap above each line, in units of that line's height
    # Ruled tables: (index of the line they come before, rows of cell texts); their text is not in lines.
    tables: list[tuple[int, list[list[str]]]] = field(default_factory=list)
    bold: list[bool] = field(default_factory=list)  # each line set wholly in a bold face

    @property
    def n_chars(self) -> int:
        """Characters other than spaces, in the lines and the tables' cells."""
        text = "".join(self.lines) + "".join(c for _, rows in self.tables for row in rows for c in row)
        return len(text) - text.count(" ")

    @property
    def all_text(self) -> str:
        """The lines and the tables' cells, one per line: what a page's quality is judged on (a page that
        is one table has no lines of its own)."""
        return "\n".join([*self.lines, *(c for _, rows in self.tables for row in rows for c in row)])


# A token that is a word or number once the punctuation around it is stripped (or punctuation only): the
# same test as stripping _STRIP and matching _WORDLIKE, in one match.
_GOOD_TOKEN = re.compile(rf"[{re.escape(_STRIP)}]*(?:{_WORDLIKE.pattern})?[{re.escape(_STRIP)}]*")


def text_quality(text: str) -> float:
    """Share of tokens that look like words or numbers; scanner OCR garbage scores low. A token of letters
    and digits only (str.isalnum: \\w less the underscore) needs no match."""
    tokens = text.split()
    good = _GOOD_TOKEN.fullmatch
    return sum(1 for t in tokens if t.isalnum() or good(t)) / len(tokens) if tokens else 0.0


# Hebrew, Arabic (with its supplements), and their presentation forms: the scripts written right to left.
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc]")
_PRESENTATION_FORMS = re.compile("[\ufb50-\ufdff\ufe70-\ufefc]+")


_BOLD_NAME = re.compile(r"(?i)bold|black|heavy|semibold|demi")


# FPDFText_GetTextObject answering the object's address as an int: the binding's pointer result needs a
# ctypes.cast per character to compare, which took a third of the line reading's time.
_TEXT_OBJECT = ctypes.CFUNCTYPE(ctypes.c_void_p, pdfium_c.FPDF_TEXTPAGE, ctypes.c_int)(
    ctypes.cast(pdfium_c.FPDFText_GetTextObject, ctypes.c_void_p).value
)


def _is_bold(
    raw: object, index: int, name: ctypes.Array | None = None, flags: ctypes.c_int | None = None
) -> bool:
    """A character set in a bold face: by weight where the font says, else by its name (the standard
    fonts report no weight: Helvetica-Bold). `name`, `flags`: a 128-byte buffer and an int to reuse."""
    if pdfium_c.FPDFText_GetFontWeight(raw, index) >= 600:
        return True
    name = name if name is not None else ctypes.create_string_buffer(128)
    pdfium_c.FPDFText_GetFontInfo(raw, index, name, len(name), flags if flags is not None else ctypes.c_int())
    return _bold_name(name.value)


@lru_cache(maxsize=1024)
def _bold_name(name: bytes) -> bool:
    """Whether a font's name says bold (its subset prefix, ABCDEF+, dropped); a document has few fonts."""
    return bool(_BOLD_NAME.search(name.decode("latin-1").split("+")[-1]))


def _kind(ch: str) -> str:
    """R: a right-to-left letter; L: a left-to-right letter or a digit (numbers read left to right in
    either script); N: anything else (spaces, punctuation)."""
    if _RTL.match(ch):
        return "R" if ch.isalpha() or unicodedata.category(ch).startswith("M") else "N"
    return "L" if ch.isalnum() else "N"


def _reverse_runs(text: str, strong: str) -> str:
    """Reverse each maximal run that starts and ends with a `strong` character and holds no character
    of the other direction (neutrals inside a run go with it)."""
    kinds = [_kind(c) for c in text]
    other = "L" if strong == "R" else "R"
    out, i = [], 0
    while i < len(text):
        if kinds[i] != strong:
            out.append(text[i])
            i += 1
            continue
        j = i
        end = i
        while j < len(text) and kinds[j] != other:
            if kinds[j] == strong:
                end = j
            j += 1
        out.append(text[i : end + 1][::-1])
        i = end + 1
    return "".join(out)


def visual_to_logical(visual: str) -> str:
    """A line's characters in visual order (left to right on the page) → logical (reading) order, the
    inverse of the Unicode bidi algorithm for the cases documents hold: a line whose letters are mostly
    right-to-left reads from the right (its Latin words and numbers keep their inner order); otherwise
    each right-to-left run is turned in place. Presentation forms (a lam-alef
    ligature) become their letters afterwards, so the letters come out in logical order."""
    kinds = [_kind(c) for c in visual]
    rtl, ltr = (
        kinds.count("R"),
        sum(1 for c, k in zip(visual, kinds, strict=True) if k == "L" and c.isalpha()),
    )
    if rtl == 0:
        return visual
    if rtl >= ltr:
        logical = _reverse_runs(visual[::-1], "L")
    else:
        logical = _reverse_runs(visual, "R")
    return _PRESENTATION_FORMS.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), logical)


def _bidi_lines(textpage: pdfium.PdfTextPage) -> PageText:
    """Lines of a page that holds right-to-left text: pdfium's lines, each rebuilt from its characters in
    visual order (by position on the page) and turned into logical order. Rectangles would cut a line at
    every change of direction, and pdfium's own order reverses ligatures."""
    raw = textpage.raw
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    rows: list[list[tuple[float, int, str, float, float, float]]] = [[]]
    for i in range(textpage.count_chars()):
        ch = chr(pdfium_c.FPDFText_GetUnicode(raw, i))
        if ch in "\r\n":
            if rows[-1]:
                rows.append([])
            continue
        pdfium_c.FPDFText_GetCharBox(raw, i, left, right, bottom, top)
        size = pdfium_c.FPDFText_GetFontSize(raw, i)
        rows[-1].append((left.value, i, ch, bottom.value, top.value, size))
    lines: list[str] = []
    sizes: list[float] = []
    gaps: list[float] = []
    bold: list[bool] = []
    prev_bottom: float | None = None
    for row in rows:
        inked = [c for c in row if not c[2].isspace()]
        if not inked:
            continue
        visual = "".join(c[2] for c in sorted(row))  # left to right; one glyph's letters keep pdfium's order
        text = re.sub(r"\s+", " ", visual_to_logical(join_surrogates(visual))).strip()
        low, high = min(c[3] for c in inked), max(c[4] for c in inked)
        height = max(high - low, 1.0)
        lines.append(text)
        sizes.append(round(max(c[5] for c in inked), 2))
        gaps.append(round((prev_bottom - high) / height, 2) if prev_bottom is not None else 0.0)
        bold.append(all(_is_bold(raw, c[1]) for c in inked))
        prev_bottom = low
    return PageText(lines, sizes, gaps, bold=bold)


_LINE = re.compile(r"[^\r\n]+")
_INK = re.compile(r"\S")  # \s is str.isspace's whitespace


def _char_text(textpage: pdfium.PdfTextPage) -> str:
    """The page's characters, one per character index (pdfium's text range where it has one character per
    index, as nearly every page does; else the characters one by one)."""
    n = textpage.count_chars()
    text = textpage.get_text_range()
    if len(text) == n:
        return text
    raw = textpage.raw
    return "".join(chr(pdfium_c.FPDFText_GetUnicode(raw, i)) for i in range(n))


def _runs(textpage: pdfium.PdfTextPage, chars: str) -> Iterator[tuple[int, int, tuple[float, ...]]]:
    """(first char, end char, box l, b, r, t) of each run of one text object on one pdfium line, in content
    order: the rectangles pdfium draws for the line, each with the characters it covers. One call per
    line and per rectangle; characters are asked for their text object only on lines of several runs."""
    raw = textpage.raw
    left, top, right, bottom = (ctypes.c_double() for _ in range(4))
    for m in _LINE.finditer(chars):
        start, end = m.span()
        n_rects = pdfium_c.FPDFText_CountRects(raw, start, end - start)
        boxes = []
        for k in range(n_rects):
            pdfium_c.FPDFText_GetRect(raw, k, left, top, right, bottom)
            boxes.append((left.value, bottom.value, right.value, top.value))
        if n_rects == 1:
            yield start, end, boxes[0]
        elif n_rects > 1:
            # pdfium starts a rectangle where the text object changes: the same cuts here.
            # Each character's object (None: a character pdfium generated), asked in one map, not a loop.
            span = range(start, end)
            objects = [(i, o) for i, o in zip(span, map(_TEXT_OBJECT, repeat(raw), span), strict=True) if o]
            cuts = [start] + [i for (i, o), (_, p) in zip(objects[1:], objects, strict=False) if o != p]
            if len(cuts) != n_rects:  # a run of characters without boxes: each rectangle's own text
                for box in boxes:
                    yield -1, -1, box
                continue
            cuts.append(end)
            for k, box in enumerate(boxes):
                yield cuts[k], cuts[k + 1], box


def _clean(text: str) -> str:
    """A run's characters as its text: pdfium's end-of-line hyphen mark as the hyphen, UTF-16 pairs joined."""
    return join_surrogates(text.replace("\ufffe", "-")).strip()


def _page_lines(textpage: pdfium.PdfTextPage, tables: Sequence[Table] = ()) -> PageText:
    """Lines in content order from pdfium's text rectangles, with font size and the gap above; the text
    inside ruled tables is left to the tables, each placed where its first text comes in content order.
    The page's text is read once; each rectangle's characters are a slice of it."""
    chars = _char_text(textpage)
    if _RTL.search(chars):
        return _bidi_lines(textpage)
    raw = textpage.raw
    placed: list[tuple[int, list[list[str]]]] = []
    seen: set[int] = set()
    lines: list[str] = []
    line_cells: list[list[Cell]] = []  # each line's runs, cut where a gap is a column's gutter
    cur_cells: list[list] = []
    sizes: list[float] = []
    gaps: list[float] = []
    cur_box: list[float] | None = None  # l, b, r, t of the current line
    prev_bottom: float | None = None
    cur_size = 0.0
    bold: list[bool] = []
    cur_bold = True
    font_name, font_flags = ctypes.create_string_buffer(128), ctypes.c_int()

    def flush() -> None:
        nonlocal cur_box, prev_bottom, cur_cells
        if cur_box is not None and cur_cells:
            cells = [(c[0], c[1], " ".join(c[2]).strip()) for c in cur_cells]
            text = " ".join(c[2] for c in cells).strip()
            if text:
                line_cells.append(cells)
                height = max(cur_box[3] - cur_box[1], 1.0)
                gap = (prev_bottom - cur_box[3]) / height if prev_bottom is not None else 0.0
                lines.append(text)
                sizes.append(round(cur_size, 2))
                bold.append(cur_bold)
                gaps.append(round(gap, 2))
                prev_bottom = cur_box[1]
        cur_box, cur_cells = None, []

    for first, end, (left, bottom, right, top) in _runs(textpage, chars):
        inside = (
            next((k for k, t in enumerate(tables) if t.holds((left + right) / 2, (bottom + top) / 2)), None)
            if tables
            else None
        )
        if inside is not None:
            if inside not in seen:
                flush()
                seen.add(inside)
                placed.append((len(lines), tables[inside].rows))
                prev_bottom = tables[inside].bottom
            continue
        if first < 0:
            text = textpage.get_text_bounded(left, bottom, right, top).replace("\r", "").replace("\n", " ")
            idx = textpage.get_index(
                (left + right) / 2, (bottom + top) / 2, (right - left) / 2 + 1, (top - bottom) / 2 + 1
            )
            idx = -1 if idx is None else idx
        else:
            # U+FFFE: pdfium's mark for a hyphen at a line's end (its text by area gives a control
            # character there): the hyphen the author set; the engine joins the word if it continues.
            # A character outside the BMP is two indexes of pdfium's, each a UTF-16 code unit: joined here.
            text = join_surrogates(chars[first:end].replace("\ufffe", "-"))
            ink = _INK.search(chars, first, end)
            idx = ink.start() if ink else -1
        text = text.strip()
        if not text:
            continue
        size = pdfium_c.FPDFText_GetFontSize(raw, idx) if idx >= 0 else 0.0
        # A gutter is wider than COLUMN_GAP lines; a run of dots or dashes has a box far lower than its line.
        gutter = COLUMN_GAP * max(top - bottom, 0.7 * size, 1.0)
        cell_right, rest = right, []  # the run's pieces after the first, where a gutter parts it
        if first >= 0:
            pieces = split_run(raw, chars, first, end, (left, right), gutter)
            texts = [_clean(chars[a:b]) for _, _, a, b in pieces] if len(pieces) > 1 else []
            if len(texts) > 1 and all(texts):
                cell_right, text = pieces[0][1], texts[0]
                rest = [[x0, x1, [t]] for (x0, x1, _, _), t in zip(pieces[1:], texts[1:], strict=True)]
        is_bold = idx >= 0 and _is_bold(raw, idx, font_name, font_flags)
        if cur_box is not None:
            mid = (bottom + top) / 2
            same_line = cur_box[1] - 1 <= mid <= cur_box[3] + 1 and left >= cur_box[0] - 1
            if same_line:
                # Runs that touch (a font change inside a word) join without a space.
                touching = left - cur_box[2] < 0.1 * max(top - bottom, 1.0)
                if touching:
                    cur_cells[-1][2][-1] += text
                elif left - cur_cells[-1][1] > gutter:
                    cur_cells.append([left, cell_right, [text]])
                else:
                    cur_cells[-1][2].append(text)
                cur_cells[-1][1] = max(cur_cells[-1][1], cell_right)
                cur_cells += rest
                cur_box = [
                    min(cur_box[0], left),
                    min(cur_box[1], bottom),
                    max(cur_box[2], right),
                    max(cur_box[3], top),
                ]
                cur_size = max(cur_size, size)
                cur_bold = cur_bold and is_bold
                continue
            flush()
        cur_box, cur_size = [left, bottom, right, top], size
        cur_cells = [[left, cell_right, [text]], *rest]
        cur_bold = is_bold
    flush()
    blocks = aligned_tables(line_cells, gaps)
    if not blocks:
        return PageText(lines, sizes, gaps, placed, bold)
    # The lines of tables without rules leave the text for tables, placed where they stood.
    drop = {k for start, end, _ in blocks for k in range(start, end)}

    def moved(index: int) -> int:
        return index - sum(1 for k in drop if k < index)

    tables = sorted(
        [(moved(at), rows) for at, rows in placed] + [(moved(start), rows) for start, _, rows in blocks],
        key=lambda t: t[0],
    )
    keep = [k for k in range(len(lines)) if k not in drop]
    gaps = [gaps[k] for k in keep]
    return PageText([lines[k] for k in keep], [sizes[k] for k in keep], gaps, tables, [bold[k] for k in keep])


def _has_invisible_text(page: pdfium.PdfPage) -> bool:
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_TEXT], max_depth=2):
        if pdfium_c.FPDFTextObj_GetTextRenderMode(obj.raw) == pdfium_c.FPDF_TEXTRENDERMODE_INVISIBLE:
            return True
    return False


def _has_images(page: pdfium.PdfPage) -> bool:
    return any(True for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3))


def bounded_dpi(page: pdfium.PdfPage, dpi: float, max_pixels: int) -> float:
    """The render resolution, lowered so that the page's bitmap stays within max_pixels (a poster-sized
    page at 300 dpi is gigapixels: tens of GB for one worker)."""
    w, h = page.get_size()  # points
    pixels = (w / 72 * dpi) * (h / 72 * dpi)
    return dpi if pixels <= max_pixels else dpi * (max_pixels / pixels) ** 0.5


def render_page_png(page: pdfium.PdfPage, dpi: float, grayscale: bool = True) -> bytes:
    """Grayscale by default (OCR needs no colour; a third of the bytes)."""
    bitmap = page.render(scale=dpi / 72, grayscale=grayscale)
    img = bitmap.to_pil()
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def open_pdf(path: Path) -> pdfium.PdfDocument:
    # The file is opened here and closed here on failure: pypdfium2 left the descriptor of a PDF it could
    # not load open (found by fuzzing: a worker that meets many broken PDFs would run out of descriptors).
    f = open(path, "rb")  # noqa: SIM115 - handed to the document, which closes it (autoclose)
    try:
        return pdfium.PdfDocument(f, autoclose=True)
    except pdfium.PdfiumError as e:
        f.close()
        msg = str(e)
        if "password" in msg.lower():
            raise PdfOpenError("encrypted PDF: a password is required to open it") from None
        raise PdfOpenError(f"not a readable PDF ({msg})") from None
    except BaseException:
        f.close()
        raise


def page_content(page: pdfium.PdfPage, text: PageText, cfg: JobConfig) -> tuple[str, list[str]]:
    """text when the text layer is usable; pixels for scans and for poor earlier OCR layers; empty for
    blank pages."""
    warnings: list[str] = []
    mode = cfg.ocr.mode
    if mode == "force" and (text.n_chars or _has_images(page)):
        return CONTENT_PIXELS, warnings
    if mode == "off":
        if text.n_chars:
            return CONTENT_TEXT, warnings
        if _has_images(page):
            warnings.append("ocr.mode off: the page has no text layer and its pixels were not read")
        else:
            warnings.append("blank page: no text layer and no images")
        return CONTENT_EMPTY, warnings
    joined = text.all_text
    if text.n_chars >= cfg.pdf.min_text_chars:
        quality = text_quality(joined)
        if quality >= cfg.pdf.reocr_below_quality:
            return CONTENT_TEXT, warnings
        if _has_invisible_text(page):
            warnings.append(
                f"invisible OCR text layer of low quality ({quality:.2f}); page read again from its pixels"
            )
            return CONTENT_PIXELS, warnings
        if quality >= cfg.pdf.min_text_quality:
            return CONTENT_TEXT, warnings
        warnings.append(f"text layer unusable (quality {quality:.2f}); page read from its pixels")
        return CONTENT_PIXELS, warnings
    if _has_images(page):
        return CONTENT_PIXELS, warnings
    if text.n_chars:
        return CONTENT_TEXT, warnings
    warnings.append("blank page: no text layer and no images")
    return CONTENT_EMPTY, warnings


def page_pictures(page: pdfium.PdfPage, max_pixels: int) -> tuple[list[bytes], list[str]]:
    """The pictures drawn on a text page, as PNG, top to bottom and left to right (for their
    descriptions): icons and rules are too small to count, and an image under the whole page is a scan
    whose text layer is the page's text, not a picture. What cannot be read is said, not raised."""
    from unitok.pipeline.formats.image import MAX_PICTURES, ImageOpenError, picture_png

    pw, ph = page.get_size()
    found = []
    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4):
        left, bottom, right, top = obj.get_bounds()
        if (right - left) * (top - bottom) > 0.8 * pw * ph:
            continue
        found.append((-round(top), round(left), obj))
    found.sort(key=lambda f: f[:2])
    pictures: list[bytes] = []
    warnings: list[str] = []
    for n, (_, _, obj) in enumerate(found, 1):
        if len(pictures) == MAX_PICTURES:
            warnings.append(f"pictures past the first {MAX_PICTURES} on the page not described")
            break
        try:
            w, h = obj.get_px_size()
            if w * h > max_pixels:
                raise ImageOpenError(f"{w}x{h} = {w * h} pixels, over image.max_pixels={max_pixels}")
            png = picture_png(obj.get_bitmap(render=True).to_pil(), max_pixels)
        except Exception as e:  # noqa: BLE001 - that picture goes undescribed, the page stands
            warnings.append(f"picture {n} not described: {type(e).__name__}: {e}")
            continue
        if png is not None:
            pictures.append(png)
    return pictures, warnings


def split_pdf(
    path: Path, base: Segment, cfg: JobConfig, needs: Renditions | None = None, pages: range | None = None
) -> Iterator[Segment]:
    """Yield one Segment per page (of `pages` only, where given); `base` carries the object's
    provenance."""
    needs = needs or Renditions()
    pdf = open_pdf(path)
    try:
        n_pages = len(pdf)
        if n_pages == 0:
            raise PdfOpenError("PDF has no pages")
        first, limit = page_span(n_pages, cfg)
        asked = min(n_pages, cfg.pdf.page_range[1]) if cfg.pdf.page_range else n_pages
        wanted = range(first, limit)
        if pages is not None:
            wanted = range(max(pages.start, first), min(pages.stop, limit))
        for i in wanted:
            page = pdf[i]
            try:
                textpage = page.get_textpage()
                table_warnings: list[str] = []
                try:
                    try:
                        tables = find_tables(page, textpage)
                    except Exception as e:  # noqa: BLE001 - the page is still read, as lines
                        tables = []
                        table_warnings.append(f"table detection failed ({type(e).__name__}: {e})")
                    text = _page_lines(textpage, tables)
                finally:
                    textpage.close()
                content, warnings = page_content(page, text, cfg)
                seg = base.part(i, "page", content)
                seg.page_number = i + 1
                seg.warnings = list(base.warnings) + warnings + table_warnings
                if i == limit - 1 and limit < asked:
                    seg.warnings.append(f"max_pages={cfg.pdf.max_pages}: pages {limit + 1}-{asked} skipped")
                if content == CONTENT_TEXT:
                    seg.text_lines, seg.line_sizes, seg.line_gaps = text.lines, text.sizes, text.gaps
                    layout = {"tables": text.tables, "bold_lines": [k for k, b in enumerate(text.bold) if b]}
                    if text.tables or layout["bold_lines"]:
                        seg.structure_json = json.dumps(layout)
                if content == CONTENT_PIXELS or (content == CONTENT_TEXT and needs.text_page_pixels):
                    dpi = bounded_dpi(page, cfg.pdf.ocr_dpi, cfg.image.max_pixels)
                    if dpi < cfg.pdf.ocr_dpi:
                        w, h = page.get_size()
                        seg.warnings.append(
                            f"page is {w / 72:.0f} x {h / 72:.0f} in: rendered at {dpi:.0f} dpi, not "
                            f"{cfg.pdf.ocr_dpi}, to stay within image.max_pixels={cfg.image.max_pixels}"
                        )
                    seg.image_png = render_page_png(page, dpi)
                if needs.pictures and content == CONTENT_TEXT:
                    seg.pictures_png, picture_warnings = page_pictures(page, cfg.image.max_pixels)
                    seg.warnings += picture_warnings
            except Exception as e:  # noqa: BLE001 - one bad page must not lose the others
                seg = base.as_error("split", e, i, explained=False)
                seg.segment_kind, seg.page_number = "page", i + 1
            finally:
                page.close()
            yield seg
    finally:
        pdf.close()


def pages_read(path: Path, cfg: JobConfig) -> range:
    """The 0-based pages a conversion of this PDF reads (pdf.page_range and pdf.max_pages applied); none
    when it does not open."""
    try:
        pdf = open_pdf(path)
    except PdfOpenError:
        return range(0)
    try:
        return range(*page_span(len(pdf), cfg))
    finally:
        pdf.close()


def page_span(n_pages: int, cfg: JobConfig) -> tuple[int, int]:
    """The 0-based [first, stop) of the pages a conversion reads: pdf.page_range, then pdf.max_pages."""
    first, stop = 0, n_pages
    if cfg.pdf.page_range is not None:
        first, stop = cfg.pdf.page_range[0] - 1, min(n_pages, cfg.pdf.page_range[1])
    return first, min(stop, first + (cfg.pdf.max_pages or n_pages))
