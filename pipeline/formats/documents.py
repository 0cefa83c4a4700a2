"""Documents that carry their own text: Markdown and plain text (kept as written), HTML and XHTML (the main
content as Markdown), EPUB (chapters), CSV/TSV (tables). Word, spreadsheets and e-mail have modules of their
own (docx.py, sheets.py, mail.py) and share the section helpers here.

A document becomes sections along its headings, each with its heading path; a section longer than
documents.max_segment_chars is cut at paragraph boundaries. Each segment carries its Markdown for the markup
engine (actors/markup.py), which hands it on: these formats need no model.

A file that gives no text is a DocumentOpenError that says why (only whitespace, an EPUB whose spine names
no chapter, a CSV header past documents.max_cells): never an object that ends with no row at all.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
import zipfile
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.markdown import md_table
from unitok.pipeline.core.records import CONTENT_EMPTY, CONTENT_TEXT, Segment

_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^(```|~~~)")


class DocumentOpenError(Exception):
    """A document that cannot be read (corrupt, encrypted, too large): the reason is the message."""


# -- sections -------------------------------------------------------------------------------------------


def markdown_sections(markdown: str) -> list[tuple[list[str], str]]:
    """(heading path, text) of each section of a Markdown text, cut before each ATX heading outside code
    fences; the text is kept as written (trailing blank lines aside)."""
    sections: list[tuple[list[str], list[str]]] = [([], [])]
    path: list[tuple[int, str]] = []
    fenced = False
    for line in markdown.splitlines():
        if _FENCE.match(line.lstrip()):
            fenced = not fenced
        m = None if fenced else _ATX.match(line)
        if m:
            level = len(m[1])
            path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, m[2].strip())]
            sections.append(([t for _, t in path], []))
        sections[-1][1].append(line)
    out = []
    for heads, lines in sections:
        text = "\n".join(lines).strip("\n")
        if text.strip():
            out.append((heads, text))
    return out


def bounded(text: str, limit: int) -> list[str]:
    """text in pieces of at most `limit` characters, cut at blank lines (then at line ends, then hard), so a
    long section becomes several segments and no word is lost or split where a boundary exists."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    current = ""
    for block in re.split(r"(\n\s*\n)", text):
        if len(current) + len(block) <= limit:
            current += block
            continue
        if current.strip():
            pieces.append(current.strip("\n"))
        current = ""
        while len(block) > limit:  # one paragraph longer than the limit: at a line end, else hard
            cut = block.rfind("\n", 0, limit)
            cut = cut if cut > limit // 2 else block.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            pieces.append(block[:cut].strip("\n"))
            block = block[cut:].lstrip("\n ")
        current = block
    if current.strip():
        pieces.append(current.strip("\n"))
    return pieces


def section_segments(
    base: Segment,
    sections: Iterable[tuple[list[str], str]],
    cfg: JobConfig,
    parser: str,
    kind: str = "section",
    start: int = 0,
) -> Iterator[Segment]:
    """One segment per section (several for a long one), numbered from `start`."""
    index = start
    for heads, text in sections:
        for piece in bounded(text, cfg.documents.max_segment_chars):
            seg = base.part(index, kind, CONTENT_TEXT if piece.strip() else CONTENT_EMPTY)
            seg.heading_path = list(heads)
            seg.structure_json = json.dumps({"markdown": piece, "parser": parser})
            seg.warnings = list(base.warnings)
            index += 1
            yield seg


def read_text(path: Path) -> tuple[str, str | None]:
    """A text file's characters and a warning when its encoding had to be guessed (UTF-8 first, with or
    without a byte-order mark, then charset-normalizer's best guess)."""
    data = path.read_bytes()
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(codec).lstrip("\ufeff"), None
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        return data.decode(
            "utf-8", errors="replace"
        ), "not valid UTF-8 and no encoding fits: undecodable bytes replaced"
    return str(best), f"not UTF-8: read as {best.encoding}"


# -- Markdown and plain text ----------------------------------------------------------------------------


def split_text(path: Path, base: Segment, cfg: JobConfig, needs: Any = None) -> Iterator[Segment]:
    """Markdown and plain text, kept as written: sections along Markdown headings (plain text has none and
    is cut at blank lines only)."""
    text, warning = read_text(path)
    if warning:
        base.warnings.append(warning)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DocumentOpenError(f"no text: the file holds only whitespace ({path.stat().st_size:,} bytes)")
    sections = markdown_sections(text) if base.mime_type == "text/markdown" else [([], text.strip("\n"))]
    yield from section_segments(base, [s for s in sections if s[1].strip()], cfg, "text")


# -- HTML -----------------------------------------------------------------------------------------------

_SKIP = {"script", "style", "noscript", "template", "nav", "aside", "form", "button", "select", "svg",
         "iframe", "object", "canvas", "head", "title", "meta", "link"}  # fmt: skip
_BLOCK = {"p", "div", "section", "article", "main", "header", "footer", "figure", "figcaption", "address",
          "details", "summary", "dl", "dt", "dd", "center", "body", "html", "fieldset", "legend", "hgroup",
          "li", "tr", "td", "th", "caption", "thead", "tbody", "tfoot"}  # fmt: skip
_STRUCT = {"h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "menu", "dir", "table", "pre", "blockquote", "hr"}
_BREAKING = frozenset(_BLOCK | _STRUCT)  # elements a browser lays out on lines of their own
_LISTS = ("ul", "ol", "menu", "dir")
_LIST_ITEM = re.compile(r"\s*([-*+]|\d+\.) ")
_SEP = "\x00"  # a word boundary inside inline text; libxml2 strings cannot hold NUL, so it is never text
_MAX_SPAN_CELLS = 200_000  # cells merged cells may fill in one table, past its own cells
_SPACES = re.compile(r"\s+")
_NUMBER = re.compile(r"\s*(\d{1,9})")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


_TAGS: dict[str, str] = {}  # tag → its local name in lower case, remembered: _tag runs for every element


def _tag(el: Any) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""  # a comment or processing instruction
    name = _TAGS.get(tag)
    if name is None:
        name = tag.split("}")[-1].lower()
        if len(_TAGS) < 4096:  # a page of made-up tag names cannot grow it without end
            _TAGS[tag] = name
    return name


def _int(value: str | None, default: int, low: int, high: int) -> int:
    """An HTML number attribute read as browsers do (leading digits: '2;' is 2), kept within [low, high]."""
    if not value:
        return default
    m = _NUMBER.match(value)
    return max(low, min(int(m[1]), high)) if m else default


def _inline(el: Any) -> str:
    """The inline Markdown of an element's content: emphasis, code, links, images' alt text, line breaks."""
    return _inline_nodes(el.text, list(el))


def _inline_nodes(text: str | None, children: list[Any]) -> str:
    parts: list[str] = [_squash(text or "")]
    for child in children:
        tag = _tag(child)
        if tag in _SKIP:
            pass
        elif tag == "br":
            parts.append("  \n")
        elif tag in ("strong", "b"):
            inner = _inline(child).strip()
            parts.append(f"**{inner}**" if inner else "")
        elif tag in ("em", "i"):
            inner = _inline(child).strip()
            parts.append(f"*{inner}*" if inner else "")
        elif tag == "code":
            parts.append(f"`{child.text_content()}`")
        elif tag == "a":
            inner = _inline(child).strip()
            href = child.get("href") or ""
            usable = href and not href.startswith(("javascript:", "#"))
            parts.append(f"[{inner}]({href})" if inner and usable else inner)
        elif tag == "img":
            alt = (child.get("alt") or "").strip()
            # apart from the words on either side: the picture stands between them on the page
            parts.append(f"{_SEP}<!-- image -->{' *' + alt + '*' if alt else ''}{_SEP}")
        elif tag in _BREAKING:
            # A block where only inline text can go (<div>s in a heading, a stray <li>): a browser puts it on
            # a line of its own, so its words never run into their neighbours'.
            parts.append(_SEP + _inline(child) + _SEP)
        elif tag:
            parts.append(_inline(child))
        parts.append(_squash(child.tail or ""))
    joined = "".join(parts)
    return re.sub(f" *{_SEP}[{_SEP} ]*", " ", joined) if _SEP in joined else joined


def _squash(text: str) -> str:
    return _SPACES.sub(" ", text) if text else ""


def _indent(block: str, pad: str) -> str:
    return "\n".join(pad + ln if ln.strip() else "" for ln in block.split("\n"))


class _Page:
    """One walk of a page (or of a part of one) into Markdown blocks.

    An element is read as blocks when it is a block itself or holds one (a <font> or <span> around <p>s):
    its children then become paragraphs of their own instead of one glued line. Inside a table cell
    (cell=True) blocks become the cell's lines (<br> in the Markdown table)."""

    def __init__(self, warnings: list[str] | None = None):
        self.warnings = warnings

    @staticmethod
    def _blocky(el: Any) -> bool:
        """Whether an element is read as blocks: a block, or an inline element holding one (searched in C,
        through the inline element's own content only; libxml2's depth limit bounds a chain of them). A link
        around paragraphs stays one link with its paragraphs' words apart, unless it holds structure."""
        tag = _tag(el)
        if tag in _BREAKING:
            return True
        if not tag or tag in _SKIP or not len(el):
            return False
        return next(el.iter(*(_STRUCT if tag == "a" else _BREAKING)), None) is not None

    def blocks(self, el: Any, out: list[str], cell: bool = False) -> None:
        """The Markdown blocks of an element, in document order."""
        tag = _tag(el)
        if not tag or tag in _SKIP:
            return
        if tag in _HEADINGS:
            # a line break would end the heading and leave its next line out of it
            text = _inline(el).strip().replace("  \n", " ")
            if text:
                out.append(text if cell else f"{'#' * _HEADINGS[tag]} {text}")
        elif tag in _LISTS:
            text = self.list_block(el, cell)
            if text:
                out.append(text)
        elif tag == "table":
            self.table(el, out, cell)
        elif tag == "pre":
            code = el.text_content().strip("\n")
            if cell:
                out.extend(ln for ln in code.split("\n") if ln.strip())
            elif code.strip():
                fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", code)), default=0))
                out.append(f"{fence}\n{code}\n{fence}")
        elif tag == "blockquote":
            inner: list[str] = []
            self.children(el, inner, cell)
            if cell:
                out.extend(inner)
            elif inner:
                out.append("\n".join("> " + ln if ln else ">" for ln in "\n\n".join(inner).splitlines()))
        elif tag == "hr":
            if not cell:
                out.append("---")
        else:
            self.children(el, out, cell)

    def children(self, el: Any, out: list[str], cell: bool = False) -> None:
        """An element's content: runs of inline children (and text) between block children become
        paragraphs, each block child its own blocks."""
        text, run = el.text, []
        for child in el:
            if self._blocky(child):
                para = _inline_nodes(text, run).strip()
                if para:
                    out.append(para)
                self.blocks(child, out, cell)
                text, run = child.tail, []
            else:
                run.append(child)
        para = _inline_nodes(text, run).strip()
        if para:
            out.append(para)

    def cell_text(self, cell: Any) -> str:
        """A table cell's content as lines: its paragraphs, list items, line breaks and the rows of a table
        inside it each on a line of their own, so no two of them run together."""
        out: list[str] = []
        self.children(cell, out, cell=True)
        if len(out) == 1 and "\n" not in out[0]:
            return out[0]
        lines = (ln.strip() for block in out for ln in block.split("\n"))
        return "\n".join(ln for ln in lines if ln)

    def list_block(self, el: Any, cell: bool) -> str:
        """A list as Markdown items; an item's further paragraphs and nested lists are indented under it."""
        ordered = _tag(el) == "ol"
        n = _int(el.get("start"), 1, -(10**9), 10**9) if ordered else 0
        items: list[str] = []
        pad = "  "  # the indent under the last item
        if (el.text or "").strip():  # text written straight inside the list, outside any item
            items.append(_squash(el.text).strip())
        for child in el:
            tag = _tag(child)
            if tag == "li":
                blocks: list[str] = []
                self.children(child, blocks, cell)
                marker = f"{n}." if ordered else "-"
                n += 1
                if blocks:
                    pad = " " * (len(marker) + 1)
                    item = f"{marker} " + _indent(blocks[0], pad)[len(pad) :]
                    for before, block in zip(blocks, blocks[1:], strict=False):
                        # A table, code or quote needs a blank line before it to be read as one, and so
                        # does a paragraph after a nested list, or it would join that list's last item.
                        apart = block.startswith(("|", "`", ">")) or _LIST_ITEM.match(before.split("\n")[-1])
                        item += ("\n\n" if apart else "\n") + _indent(block, pad)
                    items.append(item)
            elif tag in _LISTS:
                # A list written straight inside a list (not in an <li>): browsers show it nested under the
                # item before it.
                sub = self.list_block(child, cell)
                if sub and items and not cell:
                    items[-1] += "\n" + _indent(sub, pad)
                elif sub:
                    items.append(sub)
            elif tag:
                self.blocks(child, items, cell)
            if (child.tail or "").strip():
                items.append(_squash(child.tail).strip())
        return "\n".join(items)

    def table(self, el: Any, out: list[str], cell: bool) -> None:
        """A table as a Markdown table, its caption as a paragraph before it (where browsers show it) and
        anything written inside it but outside its cells before that (where browsers move it).

        A table inside a cell is written inside that cell, a line per row with its cells joined by '; ', in
        the place it has among the cell's other content: written after the outer table with a reference, its
        words would leave their reading order and the reference would be words the author never wrote.
        A table of one column whose cells hold paragraphs or headings, or of a single cell, or one marked
        role=presentation, lays a page out: its cells are read as the page's own blocks."""
        rows: list[list[Any]] = []
        captions: list[Any] = []
        stray: list[Any] = []  # text and elements outside any cell
        self._own_rows(el, rows, captions, stray)
        for item in stray:
            if isinstance(item, str):
                out.append(_squash(item).strip())
            else:
                self.blocks(item, out, cell)
        for caption in captions:
            self.children(caption, out, cell)
        layout = (el.get("role") or "").lower() in ("presentation", "none") or (
            all(len(r) <= 1 for r in rows)
            and (len(rows) == 1 or any(self._blocky(c) for r in rows for td in r for c in td))
        )
        if layout:
            for r in rows:
                for td in r:
                    self.children(td, out, cell)
            return
        grid = self._grid(rows)
        if cell:
            out.extend(line for r in grid if (line := "; ".join(t for t, copy in r if t and not copy)))
        elif grid:
            out.append(md_table([[t for t, _ in r] for r in grid]))

    def _own_rows(self, el: Any, rows: list[list[Any]], captions: list[Any], stray: list[Any]) -> None:
        """The cells of a table's own rows (not those of a table inside one of its cells), row by row."""
        if (el.text or "").strip():
            stray.append(el.text)
        loose: list[Any] | None = None  # cells written outside any <tr>: a row of their own
        for child in el:
            tag = _tag(child)
            if tag in ("thead", "tbody", "tfoot"):
                self._own_rows(child, rows, captions, stray)
                loose = None
            elif tag == "tr":
                cells: list[Any] = []
                for c in child:
                    if _tag(c) in ("td", "th"):
                        cells.append(c)
                    elif _tag(c) and _tag(c) not in _SKIP:
                        stray.append(c)
                    if (c.tail or "").strip():
                        stray.append(c.tail)
                if (child.text or "").strip():
                    stray.append(child.text)
                rows.append(cells)
                loose = None
            elif tag in ("td", "th"):
                if loose is None:
                    loose = []
                    rows.append(loose)
                loose.append(child)
            elif tag == "caption":
                captions.append(child)
            elif tag and tag not in _SKIP and tag not in ("col", "colgroup"):
                stray.append(child)
            if (child.tail or "").strip():
                stray.append(child.tail)

    def _grid(self, rows: list[list[Any]]) -> list[list[tuple[str, bool]]]:
        """Each row's cells as (text, whether it is a merged cell's copy), merged cells repeated in every
        place they cover (as for decks). Spans are clamped to the table's rows and to a budget of cells, past
        which merged cells are not repeated (and that is said)."""
        grid: list[list[tuple[str, bool]]] = []
        spans: dict[tuple[int, int], str] = {}  # (row, col) cells a rowspan above fills
        budget = _MAX_SPAN_CELLS + sum(len(r) for r in rows)
        for r, cells in enumerate(rows):
            row: list[tuple[str, bool]] = []
            col = 0
            for cell in cells:
                while (r, col) in spans:
                    row.append((spans.pop((r, col)), True))
                    col += 1
                text = self.cell_text(cell)
                colspan = _int(cell.get("colspan"), 1, 1, 100)
                rowspan = _int(cell.get("rowspan"), 1, 1, len(rows) - r)
                if colspan * rowspan > budget:
                    if self.warnings is not None and budget >= 0:
                        self.warnings.append(
                            "HTML table spans past what can be repeated: merged cells kept once"
                        )
                    budget = -1
                    colspan = rowspan = 1
                budget -= colspan * rowspan
                for c in range(colspan):
                    row.append((text, c > 0))
                    for below in range(1, rowspan):
                        spans[(r + below, col + c)] = text
                col += colspan
            while (r, col) in spans:
                row.append((spans.pop((r, col)), True))
                col += 1
            if row:
                grid.append(row)
        return grid


def html_blocks(el: Any, out: list[str], warnings: list[str] | None = None) -> None:
    """The Markdown blocks of an element, in document order."""
    _Page(warnings).blocks(el, out)


class _FlatText(HTMLParser):
    """The text of HTML in document order, one paragraph per block, read as a stream (no tree): for pages
    nested past what a tree can hold (libxml2 stops at 256 levels; Python's recursion sooner)."""

    _HIDDEN = {"script", "style", "noscript", "template", "title"}  # elements that always have an end tag
    _BREAKS = _BLOCK | _STRUCT | {"li", "tr", "td", "th", "br", "dd", "dt"}  # each ends a paragraph

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[str] = []
        self.run: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BREAKS:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BREAKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.run.append(data)

    def flush(self) -> None:
        text = _squash("".join(self.run)).strip()
        self.run = []
        if text:
            self.paragraphs.append(re.sub(r"^(#{1,6}\s)", r"\\\1", text))  # never read as a heading


def _flat_markdown(data: bytes | str) -> str:
    flat = _FlatText()
    flat.feed(data.decode(_charset(data), errors="replace") if isinstance(data, bytes) else data)
    flat.close()
    flat.flush()
    return "\n\n".join(flat.paragraphs)


def _limit_hit(parser: Any) -> str | None:
    """libxml2's message when it stopped at one of its limits (nesting depth, a huge text node): it then
    keeps the tree built so far and drops the rest of the file without raising."""
    for e in parser.error_log:
        if e.type_name == "ERR_RESOURCE_LIMIT" or "XML_PARSE_HUGE" in e.message:
            depth = re.search(r"depth\D*(\d+)", e.message, re.I)
            return f"elements nested more than {depth[1]} deep" if depth else e.message.strip()
    return None


def html_markdown(data: bytes | str, warnings: list[str] | None = None) -> str:
    """An HTML or XHTML document's main content as Markdown: <main> or the one <article> when there is
    one, else <body>; navigation, scripts, styles, forms and asides left out. A page past the parser's
    limits is read as plain paragraphs instead, with a warning in `warnings`."""
    from lxml import etree
    from lxml import html as lhtml

    if isinstance(data, bytes):
        encoding = _charset(data)
        try:
            lhtml.HTMLParser(encoding=encoding)
        except LookupError:  # a codec Python has and libxml2 does not (cp775, mac_latin2...): decoded here
            data, encoding = data.decode(encoding, errors="replace").encode("utf-8"), "utf-8"
        parser = lhtml.HTMLParser(encoding=encoding, remove_comments=True)
    else:
        parser = lhtml.HTMLParser(remove_comments=True)
    try:
        root = lhtml.document_fromstring(data, parser=parser)
    except (etree.ParserError, ValueError) as e:
        raise DocumentOpenError(f"not readable HTML ({e})") from None
    limit = _limit_hit(parser)
    if limit is None:
        try:
            return _tree_markdown(root, warnings)
        except RecursionError:
            limit = "elements nested deeper than Python's recursion limit"
    if warnings is not None:
        warnings.append(f"HTML {limit}: read as plain paragraphs, without its structure")
    return _flat_markdown(data)


def _tree_markdown(root: Any, warnings: list[str] | None = None) -> str:
    main = root.xpath("//main") or root.xpath("//*[@role='main']")
    articles = root.xpath("//article")
    body = root.find("body")
    top = main[0] if main else articles[0] if len(articles) == 1 else body if body is not None else root
    for bad in top.xpath(".//header[ancestor::body] | .//footer[ancestor::body]") if not main else []:
        if bad.getparent() is not None and top is not bad:
            bad.getparent().remove(bad)  # site banners and footers around the content
    out: list[str] = []
    html_blocks(top, out, warnings)
    # The page's title is the author's too; a marker keeps it where the body does not repeat it.
    title = " ".join((root.findtext(".//title") or "").split())
    if title and title.lower() not in " ".join(out[:3]).lower():
        out.insert(0, f"<!-- title: {title} -->")
    return "\n\n".join(out)


def _charset(data: bytes) -> str:
    """The declared charset (BOM, XML declaration, <meta>), else UTF-8 when it decodes, else a guess."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    head = data[:4096].decode("ascii", errors="replace")
    m = re.search(r"""(?i)<meta[^>]+charset=["']?([\w-]+)""", head) or re.search(
        r"""(?i)<\?xml[^>]+encoding=["']([\w-]+)""", head
    )
    if m:
        try:
            "".encode(m[1])
            return m[1].lower()
        except LookupError:
            pass
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        return best.encoding if best else "utf-8"


def split_html(path: Path, base: Segment, cfg: JobConfig, needs: Any = None) -> Iterator[Segment]:
    markdown = html_markdown(path.read_bytes(), base.warnings)
    sections = markdown_sections(markdown)
    if not sections:
        raise DocumentOpenError("no text: the page's main content is empty")
    yield from section_segments(base, sections, cfg, "lxml-html")


# -- EPUB -----------------------------------------------------------------------------------------------

_OPF = "{http://www.idpf.org/2007/opf}"


def check_zip(path: Path, limit: int, what: str) -> zipfile.ZipFile:
    """The open zip, refused when its members inflate past `limit` (a zip bomb) or its directory is bad."""
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DocumentOpenError(f"not a readable {what} (bad zip: {e})") from None
    total = sum(i.file_size for i in z.infolist())
    if total > limit:
        z.close()
        raise DocumentOpenError(
            f"{what} inflates to {total:,} bytes, over documents.max_uncompressed_bytes={limit:,} (zip bomb?)"
        )
    return z


# ISO/IEC 29500 Strict names the same parts and elements as Transitional under other namespaces
# (http://purl.oclc.org/ooxml/wordprocessingml/main for .../wordprocessingml/2006/main, and so on); the
# readers here and openpyxl know only the Transitional ones, so Strict parts are read with theirs mapped.
_STRICT = re.compile(
    rb"http://purl\.oclc\.org/ooxml/"
    rb"(officeDocument|drawingml|wordprocessingml|spreadsheetml|presentationml|schemaLibrary)/(\w+)"
)
_STRICT_RENAMED = {b"extendedProperties": b"extended-properties", b"customProperties": b"custom-properties"}


def transitional(data: bytes) -> bytes:
    """An Office Open XML part with its Strict namespaces (and relationship types) as Transitional's."""
    if b"purl.oclc.org/ooxml/" not in data:
        return data
    return _STRICT.sub(
        lambda m: b"http://schemas.openxmlformats.org/%s/2006/%s" % (m[1], _STRICT_RENAMED.get(m[2], m[2])),
        data,
    )


def is_strict(z: zipfile.ZipFile, main_part: str) -> bool:
    """Whether the package's main part (word/document.xml, xl/workbook.xml) is written in Strict."""
    try:
        with z.open(main_part) as f:
            return b"purl.oclc.org/ooxml/" in f.read(4096)
    except KeyError:
        return False


def transitional_copy(z: zipfile.ZipFile, dst: Path) -> Path:
    """A copy of a Strict package with every XML part mapped to Transitional, for a library that reads
    only that (openpyxl). The source was checked against documents.max_uncompressed_bytes."""
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as out:
        for info in z.infolist():
            data = z.read(info)
            if info.filename.endswith((".xml", ".rels")):
                data = transitional(data)
            out.writestr(info.filename, data)
    return dst


# A picture in a document's Markdown: this marker, then the description its author set, if any.
IMAGE_MARKER = "<!-- image -->"
# What Office appends to the alt text it writes itself: its words, not the author's.
GENERATED_ALT = re.compile(r"\s*Description automatically generated( with (low|medium|high) confidence)?\s*$")


def safe_xml(data: bytes) -> Any:
    """Parsed XML without entity expansion, network access or DTDs (XML bombs, external entities)."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(data, parser=parser)
    except etree.XMLSyntaxError as e:
        raise DocumentOpenError(f"malformed XML ({e})") from None


_CHAPTER_TYPES = {"application/xhtml+xml", "text/html", "application/x-dtbook+xml", ""}


def split_epub(path: Path, base: Segment, cfg: JobConfig, needs: Any = None) -> Iterator[Segment]:
    """An EPUB's chapters in reading order (the package's spine), each its sections. A spine entry that is
    not a chapter (the package document itself, an image, a chapter already read) is skipped and said."""
    with check_zip(path, cfg.documents.max_uncompressed_bytes, "EPUB") as z:
        try:
            container = safe_xml(z.read("META-INF/container.xml"))
            rootfile = container.xpath("//*[local-name()='rootfile']/@full-path")[0]
            opf = safe_xml(z.read(rootfile))
        except (KeyError, IndexError):
            raise DocumentOpenError("malformed EPUB: no META-INF/container.xml or package document") from None
        folder = rootfile.rsplit("/", 1)[0] + "/" if "/" in rootfile else ""
        items = {i.get("id"): (i.get("href"), i.get("media-type") or "") for i in opf.iter(f"{_OPF}item")}
        spine = [items.get(r.get("idref")) for r in opf.iter(f"{_OPF}itemref")]
        # The reading plan first: what is skipped is known, and said, before the first segment is made.
        names = set(z.namelist())
        plan: list[tuple[int, str]] = []
        planned: set[str] = set()
        skipped: dict[str, list[int]] = {}  # why → the spine places it applies to
        for n, (href, media_type) in enumerate(item for item in spine if item and item[0]):
            name = posixpath.normpath(folder + unquote(href.split("#")[0]))
            why = (
                f"the spine lists the package document {name} itself: skipped"
                if name == posixpath.normpath(rootfile)
                else f"{name} is {media_type}, not a chapter: skipped"
                if media_type not in _CHAPTER_TYPES
                else f"{name} is in the spine but not in the file"
                if name not in names
                else f"{name} is listed again in the spine: read once"
                if name in planned
                else None
            )
            if why:
                skipped.setdefault(why, []).append(n + 1)
            else:
                plan.append((n + 1, name))
                planned.add(name)
        # What was skipped goes on the first segment only: every chapter's would repeat it per chapter.
        notes = [f"{_places('chapter', places)}: {why}" for why, places in skipped.items()]
        index = 0
        for place, name in plan:
            chapter_warnings: list[str] = []
            markdown = html_markdown(z.read(name), chapter_warnings)
            sections = markdown_sections(markdown)
            for seg in section_segments(base, sections, cfg, "lxml-html", kind="chapter", start=index):
                seg.page_number = place  # the chapter's place in the reading order
                seg.warnings += chapter_warnings + (notes if not index else [])
                index = seg.segment_index + 1
                yield seg
        if not index:
            said = "; ".join(notes[:3]) or f"{len(plan)} chapter(s) read, none with text"
            raise DocumentOpenError(f"no text in the EPUB's reading order ({said})")


def _places(what: str, places: list[int]) -> str:
    """'chapter 3', 'chapters 2, 5, 9', or the first five and how many in all."""
    if len(places) == 1:
        return f"{what} {places[0]}"
    shown = ", ".join(map(str, places[:5]))
    return f"{what}s {shown}" + (f" … ({len(places):,} in all)" if len(places) > 5 else "")


# -- CSV and TSV ----------------------------------------------------------------------------------------


def split_csv(path: Path, base: Segment, cfg: JobConfig, needs: Any = None) -> Iterator[Segment]:
    """A CSV or TSV file as Markdown tables of documents.max_rows_per_segment rows, each with the header.
    Past documents.max_cells (or at a line the csv module cannot read) the rest is left out with a warning;
    a header row that is itself past it is the file's error."""
    text, warning = read_text(path)
    if warning:
        base.warnings.append(warning)
    if not text.strip():
        raise DocumentOpenError(f"no text: the file holds only whitespace ({path.stat().st_size:,} bytes)")
    delimiter = "\t" if base.mime_type == "text/tab-separated-values" else ","
    if delimiter == ",":
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;|\t").delimiter
        except csv.Error:
            pass
    most = cfg.documents.max_cells
    reader = csv.reader(_bounded_lines(text, delimiter, most), delimiter=delimiter)
    limit = cfg.documents.max_rows_per_segment
    header: list[str] | None = None
    rows: list[list[str]] = []
    held: list[list[str]] | None = None  # a full table held back one step: the last one carries every warning
    index = cells = 0
    stop = None
    try:
        for row in reader:
            cells += len(row)
            if cells > most:
                stop = f"line {reader.line_num:,} goes past documents.max_cells={most:,}"
                break
            if header is None:
                if any(c.strip() for c in row):
                    header = row
                continue
            rows.append(row)
            if len(rows) == limit:
                if held is not None:
                    yield _table_segment(base, index, header, held)
                    index += 1
                held, rows = rows, []
    except _LongLine as e:
        stop = f"line {e.args[0]:,} holds more than documents.max_cells={most:,} cells"
    except csv.Error as e:
        stop = f"line {reader.line_num:,} is not readable ({e})"
    if stop and header is None:
        raise DocumentOpenError(f"{stop}, in its header row: nothing converted")
    if stop:
        base.warnings.append(f"{stop}: the rest of the rows left out")
    if held is not None:
        yield _table_segment(base, index, header or [], held)
        index += 1
    if header is not None and (rows or index == 0):
        yield _table_segment(base, index, header, rows)


class _LongLine(Exception):
    """A line with more delimiters than the cells a file may have (its number is the argument)."""


def _bounded_lines(text: str, delimiter: str, most: int) -> Iterator[str]:
    """The lines of text, stopped at one that alone holds more than `most` cells: the csv module would
    build the whole row first (a 40 MB line of commas is millions of strings)."""
    for number, line in enumerate(io.StringIO(text), 1):
        if line.count(delimiter) >= most:
            raise _LongLine(number)
        yield line


def _table_segment(base: Segment, index: int, header: list[str], rows: list[list[str]]) -> Segment:
    seg = base.part(index, "table", CONTENT_TEXT)
    seg.structure_json = json.dumps({"markdown": md_table([header, *rows]), "parser": "python-csv"})
    seg.warnings = list(base.warnings)
    return seg
