"""Word documents (DOCX; legacy DOC and ODT through LibreOffice, as for PPT) → Markdown sections, read from
the package's XML with lxml: headings from styles and outline levels, lists with their numbering and
nesting, tables (merged cells repeated, nested tables inline, rows and cells inside content controls),
text boxes (DrawingML or VML, read once), SmartArt text, headers and footers (first-page and even-page
ones marked), footnotes and endnotes, comments with their replies, tracked changes as accepted (insertions
kept, deletions left out), checkboxes as ☐/☒, equations as LaTeX, pictures as markers with their alt text,
hyperlinks. A file saved as Strict Open XML (ISO/IEC 29500 Strict namespaces) is read with its namespaces
mapped to the Transitional ones; parts are found through the package's relationships, whatever they are
called.

Why not a library: python-docx reads neither footnotes, text boxes nor tracked insertions (its paragraph
text skips runs inside w:ins); mammoth (markitdown's DOCX path) drops headers, footers, text boxes and
comments. The benchmark (bench/bench_documents.py) compares the result with markitdown's.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.markdown import chart_markdown, md_table
from unitok.pipeline.core.records import Segment
from unitok.pipeline.formats.documents import (
    GENERATED_ALT,
    IMAGE_MARKER,
    DocumentOpenError,
    check_zip,
    html_markdown,
    markdown_sections,
    safe_xml,
    section_segments,
    transitional,
)

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
M = "http://schemas.openxmlformats.org/officeDocument/2006/math"
MC = "http://schemas.openxmlformats.org/markup-compatibility/2006"
WP = "http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
DGM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
W14 = "http://schemas.microsoft.com/office/word/2010/wordml"
W15 = "http://schemas.microsoft.com/office/word/2012/wordml"
VML = "urn:schemas-microsoft-com:vml"
OFFICE = "urn:schemas-microsoft-com:office:office"
_W, _M = f"{{{W}}}", f"{{{M}}}"
_AC = f"{{{MC}}}AlternateContent"
_RUN, _TEXT = f"{_W}r", f"{_W}t"
PARSER = "unitok-ooxml (lxml)"

# Run content that carries no text of the author's: formatting, field codes, deleted text, anchors.
_NO_TEXT = {"del", "moveFrom", "pPr", "rPr", "proofErr", "bookmarkStart", "bookmarkEnd", "instrText",
            "delText", "delInstrText", "sdtPr", "sdtEndPr", "fldData", "commentRangeStart", "commentRangeEnd",
            "commentReference", "annotationRef", "footnoteRef", "endnoteRef", "separator",
            "continuationSeparator", "lastRenderedPageBreak", "softHyphen", "permStart", "permEnd", "rubyPr",
            "tcPr", "trPr", "tblPr", "tblGrid", "sectPr"}  # fmt: skip
_CHARTS = ("{http://schemas.openxmlformats.org/drawingml/2006/chart}chart",
           "{http://schemas.microsoft.com/office/drawing/2014/chartex}chart")  # fmt: skip
# Elements that make a drawing a picture (a raster or vector image, a chart, an embedded object's preview).
_PICTURES = (
    f"{{{A}}}blip",
    f"{{{VML}}}imagedata",
    "{http://schemas.openxmlformats.org/drawingml/2006/chart}chart",
)
_SKIP = frozenset(f"{_W}{t}" for t in _NO_TEXT)
_BOXES = "☐☑☒"
_LABELLED = re.compile(f"([{_BOXES}])(?=\\w)")
_ON = ("1", "true", "on")
_MAX_SPAN = 64  # Word's own limit on a table's columns is 63: a larger span is a hostile file's

# Characters of the symbol fonts (w:sym and runs in those fonts) at their code points, for the glyphs a
# document shows: checkboxes, ticks, bullets, Greek letters and operators.
_WINGDINGS = {0x6C: "●", 0x6E: "■", 0x6F: "☐", 0x71: "❑", 0x72: "❒", 0x75: "◆", 0x76: "❖", 0x78: "☒",
              0xA7: "▪", 0xA8: "☐", 0xD8: "➢", 0xFB: "✗", 0xFC: "✓", 0xFD: "☒", 0xFE: "☑"}  # fmt: skip
_WINGDINGS2 = {0x4F: "✗", 0x50: "✓", 0x51: "☒", 0x52: "☑", 0x53: "☒", 0x54: "☒", 0xA3: "☐"}
_SYMBOL = {
    **dict(zip(range(0x41, 0x5B), "ΑΒΧΔΕΦΓΗΙϑΚΛΜΝΟΠΘΡΣΤΥςΩΞΨΖ", strict=True)),
    **dict(zip(range(0x61, 0x7B), "αβχδεφγηιϕκλμνοπθρστυϖωξψζ", strict=True)),
    0x22: "∀", 0x24: "∃", 0x27: "∋", 0x40: "≅", 0x5E: "⊥", 0x7E: "∼", 0xA2: "′", 0xA3: "≤", 0xA5: "∞",
    0xAC: "←", 0xAE: "→", 0xB0: "°", 0xB1: "±", 0xB2: "″", 0xB3: "≥", 0xB4: "×", 0xB6: "∂", 0xB7: "•",
    0xB8: "÷", 0xB9: "≠", 0xBA: "≡", 0xBB: "≈", 0xC4: "⊗", 0xC5: "⊕", 0xC6: "∅", 0xC7: "∩", 0xC8: "∪",
    0xCE: "∈", 0xCF: "∉", 0xD1: "∇", 0xD6: "√", 0xD7: "⋅", 0xD9: "∧", 0xDA: "∨", 0xDB: "⇔", 0xDE: "⇒",
    0xE5: "∑", 0xF2: "∫",
}  # fmt: skip
_SYMBOL_FONTS = {"wingdings": _WINGDINGS, "wingdings 2": _WINGDINGS2, "symbol": _SYMBOL}


def _local(el: Any) -> str:
    return el.tag.split("}")[-1] if isinstance(el.tag, str) else ""


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _resolve(folder: str, target: str) -> str:
    """A relationship's target as a part name: relative to the source part's folder, or absolute."""
    target = unquote(target.split("#", 1)[0])
    name = target.lstrip("/") if target.startswith("/") else posixpath.join(folder, target)
    return posixpath.normpath(name) if name else ""


def _symbol(code: int, font: str) -> str:
    table = _SYMBOL_FONTS.get(font.lower())
    if table is not None:
        return table.get(code & 0xFF if code >= 0xF000 or code < 0x100 else code, "")
    if 0xF000 <= code <= 0xF0FF or not 0 < code < 0x110000:
        return ""  # a private-use glyph of a font we do not know: no character to give
    return chr(code)


def _outermost(el: Any, tag: str) -> list[Any]:
    """Descendants of el with this tag, not those inside another one (a text box inside a text box is
    read with its outer box)."""
    found = list(el.iter(tag))
    if len(found) < 2:
        return found
    inner = {id(a) for a in found}  # lxml keeps one proxy per node while `found` holds them
    return [x for x in found if not any(id(a) in inner for a in x.iterancestors(tag))]


def _choice(ac: Any) -> Any | None:
    """The branch of mc:AlternateContent to read: the first Choice (what Word shows), else the Fallback;
    never both, as they hold the same text twice."""
    choice = ac.find(f"{{{MC}}}Choice")
    return choice if choice is not None else ac.find(f"{{{MC}}}Fallback")


def _children(el: Any, tag: str) -> Iterator[Any]:
    """el's children with this tag, including those wrapped in content controls, custom XML and tracked
    insertions (rows and cells can be)."""
    for child in el:
        if child.tag == tag:
            yield child
        elif child.tag == f"{_W}sdt":
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                yield from _children(content, tag)
        elif child.tag in (f"{_W}customXml", f"{_W}ins", f"{_W}moveTo"):
            yield from _children(child, tag)
        elif child.tag == _AC:
            branch = _choice(child)
            if branch is not None:
                yield from _children(branch, tag)


_STYLE_BOUNDS = re.compile(rb"<(?:(\w+):)?style\b[^>]*?\bstyleId=\"([^\"]*)\"[^>]*?(/?)>")


class _Styles:
    """A styles part read one style at a time, as paragraphs ask for them: the part is often 350 KB of
    latent and table styles (Word's template), of which a document uses a handful, and parsing it whole
    was most of a small document's conversion. Each style is cut from the bytes at its own element and
    parsed inside the part's root tag (its namespace declarations); a part that cannot be cut that way
    is parsed whole."""

    def __init__(self, pkg: _Package, name: str):
        self.pkg, self.name = pkg, name
        self._index: dict[str, bytes] | None = None  # styleId -> the style element's bytes
        self._root: tuple[bytes, bytes] = (b"", b"")  # the root's start and end tags
        self._whole: dict[str, dict[str, Any]] | None = None
        self._read: dict[str, dict[str, Any] | None] = {}

    def get(self, style_id: str) -> dict[str, Any] | None:
        if style_id not in self._read:
            self._read[style_id] = self._style(style_id)
        return self._read[style_id]

    def _style(self, style_id: str) -> dict[str, Any] | None:
        if self._index is None and self._whole is None:
            self._cut()
        if self._whole is not None:
            return self._whole.get(style_id)
        assert self._index is not None
        data = self._index.get(style_id)
        if data is None:
            return None
        try:
            root = safe_xml(self._root[0] + data + self._root[1])
        except DocumentOpenError:
            self._whole = self._parse_whole()  # a style that cannot be cut out alone: read the part whole
            return self._whole.get(style_id)
        st = root.find(f"{_W}style")
        return _style_info(st) if st is not None else None

    def _cut(self) -> None:
        real = self.pkg.names.get(self.name.lower())
        if real is None:
            self._whole = {}
            return
        data = transitional(self.pkg.z.read(real))
        root = re.search(rb"<(?:(\w+):)?styles\b[^>]*>", data)
        prefix = root[1] if root else None
        if root is None or not prefix or b"<!DOCTYPE" in data[: root.start()] or b"<![CDATA[" in data:
            self._whole = self._parse_whole()
            return
        index: dict[str, bytes] = {}
        closing = b"</" + prefix + b":style>"
        for m in _STYLE_BOUNDS.finditer(data, root.end()):
            if m[1] != prefix:
                continue
            if m[3]:  # <w:style .../>: no content
                index[m[2].decode("utf-8", "replace")] = m[0]
                continue
            end = data.find(closing, m.end())
            if end < 0:
                self._whole = self._parse_whole()
                return
            index[m[2].decode("utf-8", "replace")] = data[m.start() : end + len(closing)]
        self._root = (root[0], b"</" + prefix + b":styles>")
        self._index = index

    def _parse_whole(self) -> dict[str, dict[str, Any]]:
        root = self.pkg.part(self.name, "styles (headings read as paragraphs)")
        styles: dict[str, dict[str, Any]] = {}
        for st in [] if root is None else root.iter(f"{_W}style"):
            styles[st.get(f"{_W}styleId") or ""] = _style_info(st)
        return styles


def _style_info(st: Any) -> dict[str, Any]:
    name_el = st.find(f"{_W}name")
    outline = st.find(f"{_W}pPr/{_W}outlineLvl")
    num = st.find(f"{_W}pPr/{_W}numPr/{_W}numId")
    ilvl = st.find(f"{_W}pPr/{_W}numPr/{_W}ilvl")
    based = st.find(f"{_W}basedOn")
    return {
        "name": (name_el.get(f"{_W}val") if name_el is not None else "") or "",
        "outline": _int(outline.get(f"{_W}val"), 9) if outline is not None else None,
        "num": num.get(f"{_W}val") if num is not None else None,
        "ilvl": _int(ilvl.get(f"{_W}val")) if ilvl is not None else 0,
        "based": based.get(f"{_W}val") if based is not None else None,
    }


class _Package:
    """The parts of one DOCX a conversion reads, found through its relationships."""

    def __init__(self, z: Any):
        self.z = z
        self.names = {n.lower(): n for n in z.namelist()}  # OPC part names are case-insensitive
        self.warnings: list[str] = []  # parts left out, each said once
        self.main = self._main_part()
        self.rels = self.part_rels(self.main)
        folder = posixpath.dirname(self.main)
        self.styles = _Styles(self, self.related("styles") or posixpath.join(folder, "styles.xml"))
        self.numbering = self._numbering(self.related("numbering") or posixpath.join(folder, "numbering.xml"))

    def has(self, name: str) -> bool:
        return name.lower() in self.names

    def xml(self, name: str | None) -> Any | None:
        real = self.names.get(name.lower()) if name else None
        return safe_xml(transitional(self.z.read(real))) if real else None

    def part(self, name: str | None, what: str) -> Any | None:
        """A part other than the main one: malformed, it is left out with a warning, not the document."""
        try:
            return self.xml(name)
        except DocumentOpenError as e:
            self.warnings.append(f"{what} {name} left out: {e}")
            return None

    def _main_part(self) -> str:
        """The main document part: the package's officeDocument relationship (Transitional or Strict type),
        else the part its content types name as a Word document, else the conventional name."""
        root = self.part("_rels/.rels", "the package's relationships")
        for r in [] if root is None else root.iter(f"{{{PKG_REL}}}Relationship"):
            if r.get("Type", "").endswith("/officeDocument") and r.get("TargetMode") != "External":
                name = _resolve("", r.get("Target", ""))
                if self.has(name):
                    return name
        types = self.part("[Content_Types].xml", "the content types")
        for o in [] if types is None else types.iter(f"{{{CONTENT_TYPES}}}Override"):
            ctype = o.get("ContentType", "")
            if (
                "word" in ctype
                and ctype.endswith(".main+xml")
                and self.has(_resolve("", o.get("PartName", "")))
            ):
                return _resolve("", o.get("PartName", ""))
        return "word/document.xml"

    def part_rels(self, part: str) -> dict[str, tuple[str, str]]:
        """A part's relationships: id → (type's last segment, target part name, or the URL of an
        external one)."""
        folder, base = posixpath.split(part)
        root = self.part(posixpath.join(folder, "_rels", base + ".rels"), "relationships")
        rels: dict[str, tuple[str, str]] = {}
        for r in [] if root is None else root.iter(f"{{{PKG_REL}}}Relationship"):
            kind, target = r.get("Type", "").rsplit("/", 1)[-1], r.get("Target", "")
            if r.get("TargetMode") != "External" and kind != "hyperlink":
                target = _resolve(folder, target)
            rels[r.get("Id") or ""] = (kind, target)
        return rels

    def related(self, kind: str) -> str | None:
        """The first part of this type the main part relates to (its comments, footnotes...)."""
        return next((t for k, t in self.rels.values() if k == kind and self.has(t)), None)

    def _numbering(self, name: str) -> dict[str, dict[int, str]]:
        """numId → {level: numFmt} (bullet, decimal, lowerLetter, ...)."""
        root = self.part(name, "numbering (lists numbered from 1)")
        if root is None:
            return {}
        abstract = {
            a.get(f"{_W}abstractNumId"): {
                _int(lvl.get(f"{_W}ilvl")): (lvl.find(f"{_W}numFmt").get(f"{_W}val")
                                             if lvl.find(f"{_W}numFmt") is not None else "decimal")
                for lvl in a.iter(f"{_W}lvl")
            }
            for a in root.iter(f"{_W}abstractNum")
        }  # fmt: skip
        return {n.get(f"{_W}numId"): abstract.get(n.find(f"{_W}abstractNumId").get(f"{_W}val"), {})
                for n in root.iter(f"{_W}num") if n.find(f"{_W}abstractNumId") is not None}  # fmt: skip

    def heading_level(self, style_id: str | None, outline: int | None) -> int:
        if outline is not None and outline < 9:
            return min(outline + 1, 6)
        seen = set()
        while style_id and style_id not in seen:
            seen.add(style_id)
            st = self.styles.get(style_id)
            if st is None:
                break
            name = st["name"].lower()
            m = re.fullmatch(r"heading (\d)", name)
            if m:
                return min(int(m[1]), 6)
            if name == "title":
                return 1
            if st["outline"] is not None and st["outline"] < 9:
                return min(st["outline"] + 1, 6)
            style_id = st["based"]
        return 0

    def style_num(self, style_id: str | None) -> tuple[str | None, int]:
        """The list a paragraph style puts its paragraphs in (List Number, List Bullet 2...)."""
        st = self.styles.get(style_id or "")
        return (st["num"], st["ilvl"]) if st else (None, 0)


class _Writer:
    """Renders body content (document, header, footnote, text box) to Markdown blocks."""

    def __init__(self, pkg: _Package, rels: dict[str, tuple[str, str]]):
        self.pkg, self.rels = pkg, rels
        self.counters: dict[tuple[str, int], int] = {}
        self.notes: list[str] = []  # footnote references met, in order
        # Each picture marker's image part (None where it has none), in order, where they are wanted.
        self.pictures: list[str | None] | None = None

    # -- runs ---------------------------------------------------------------------------------------
    def inline(self, el: Any, boxes: list[list[str]]) -> str:
        parts: list[str] = []
        for child in el:
            tag = child.tag
            if tag == _RUN:  # most of a document: runs of text, read here without a call per element
                for leaf in child:
                    if leaf.tag == _TEXT:
                        parts.append(leaf.text or "")
                    elif leaf.tag not in _SKIP and isinstance(leaf.tag, str):
                        parts.append(self.special(leaf, boxes))
            elif tag not in _SKIP and isinstance(tag, str):
                parts.append(self.special(child, boxes))
        return "".join(parts)

    def special(self, child: Any, boxes: list[list[str]]) -> str:
        """Run content other than plain text."""
        tag = _local(child)
        if child.tag == _AC:
            branch = _choice(child)
            return self.inline(branch, boxes) if branch is not None else ""
        if child.tag == _TEXT:
            return child.text or ""
        if tag in ("tab", "ptab"):
            return "\t"
        if tag in ("br", "cr"):
            return "  \n"
        if tag == "noBreakHyphen":
            return "-"
        if tag == "sym":
            return _symbol(_hex(child.get(f"{_W}char")), child.get(f"{_W}font") or "")
        if tag == "hyperlink":
            text = self.inline(child, boxes)
            rid = child.get(f"{{{R}}}id")
            target = self.rels.get(rid, ("", ""))[1] if rid else ""
            return f"[{text}]({target})" if target and text.strip() else text
        if tag in ("footnoteReference", "endnoteReference"):
            ref = ("" if tag == "footnoteReference" else "e") + (child.get(f"{_W}id") or "")
            self.notes.append(ref)
            return f"[^{ref}]"
        if tag in ("drawing", "pict", "object"):
            return self.picture(child, boxes)
        if tag == "oMath":
            latex = omml_latex(child).strip()
            return f"${latex}$" if latex else ""
        if tag == "oMathPara":
            maths = [omml_latex(m).strip() for m in child.iter(f"{_M}oMath")]
            return " ".join(f"$${m}$$" for m in maths if m)
        if tag == "sdt":
            return self.control(child, boxes)
        if tag == "fldChar":
            return _form_checkbox(child)
        if tag == "ruby":
            base, rt = child.find(f"{_W}rubyBase"), child.find(f"{_W}rt")
            text = self.inline(base, boxes) if base is not None else ""
            guide = self.inline(rt, boxes) if rt is not None else ""
            return f"{text}({guide})" if guide.strip() else text
        return self.inline(child, boxes)  # insertions, smart tags, fields, bidi containers...: their content

    def control(self, sdt: Any, boxes: list[list[str]]) -> str:
        """A run-level content control; a checkbox is ☐ or ☒ by its state, whatever glyph the run holds."""
        content = sdt.find(f"{_W}sdtContent")
        text = self.inline(content, boxes) if content is not None else ""
        box = sdt.find(f"{_W}sdtPr/{{{W14}}}checkbox")
        if box is None:
            return text
        checked = box.find(f"{{{W14}}}checked")
        glyph = "☒" if checked is not None and (checked.get(f"{{{W14}}}val") or "1").lower() in _ON else "☐"
        return glyph + text.strip(_BOXES + " ")

    def picture(self, el: Any, boxes: list[list[str]]) -> str:
        """A drawing: its text boxes go to `boxes` (rendered after the paragraph), WordArt keeps its text,
        SmartArt its nodes' text; a picture is a marker with the description the author set."""
        found = False
        for txbx in _outermost(el, f"{_W}txbxContent"):
            found = True
            blocks: list[str] = []
            self.body(txbx, blocks)
            if blocks:
                boxes.append(blocks)
        words = [s for tp in el.iter(f"{{{VML}}}textpath") if (s := (tp.get("string") or "").strip())]
        charts = [self.chart(ref) for ref in el.iter(*_CHARTS)]
        if any(charts):
            boxes += [[c] for c in charts if c]
            return ""
        diagram = next(el.iter(f"{{{DGM}}}relIds"), None)
        if diagram is not None:
            nodes = self.diagram(diagram.get(f"{{{R}}}dm"))
            if nodes:
                boxes.append(["\n".join(f"- {n}" for n in nodes)])
                return ""
        if found or words:
            return " ".join(words)
        alt: list[str] = []
        for docpr in el.iter(f"{{{WP}}}docPr"):
            alt += [docpr.get("title") or "", docpr.get("descr") or ""]
        for shape in el.iter(f"{{{VML}}}shape", f"{{{VML}}}rect", f"{{{VML}}}imagedata"):
            alt += [shape.get("alt") or "", shape.get(f"{{{OFFICE}}}title") or ""]
        said = [" ".join(GENERATED_ALT.sub("", a).split()) for a in alt]
        said = list(dict.fromkeys(a for a in said if a))  # each text once
        if not said and not any(True for _ in el.iter(*_PICTURES)):
            return ""  # a line, an arrow, an empty shape: nothing to mark
        if self.pictures is not None:
            self.pictures.append(self._image_part(el))
        # Spaced so that the alt text never runs into the words around the picture.
        return f" {IMAGE_MARKER}" + (f" *{': '.join(said)}* " if said else " ")

    def _image_part(self, el: Any) -> str | None:
        for ref in el.iter(f"{{{A}}}blip", f"{{{VML}}}imagedata"):
            kind, target = self.rels.get(ref.get(f"{{{R}}}embed") or ref.get(f"{{{R}}}id") or "", ("", ""))
            if kind == "image" and self.pkg.has(target):
                return target
        return None

    def chart(self, ref: Any) -> str:
        """A chart's title, series and values (the chart part's cache), as decks and workbooks give them."""
        kind, target = self.rels.get(ref.get(f"{{{R}}}id") or "", ("", ""))
        root = self.pkg.part(target, "chart") if kind in ("chart", "chartEx") else None
        if root is None:
            return ""
        from unitok.pipeline.formats.pptx import chart_from_xml

        return chart_markdown(chart_from_xml(root))

    def alt_chunk(self, el: Any) -> list[str]:
        """Content Word imports when it opens the file (w:altChunk: HTML or plain text a program put in
        the package), as Markdown blocks."""
        kind, target = self.rels.get(el.get(f"{{{R}}}id") or "", ("", ""))
        real = self.pkg.names.get(target.lower()) if kind == "aFChunk" else None
        if real is None:
            return []
        data = self.pkg.z.read(real)
        suffix = posixpath.splitext(real)[1].lower()
        if suffix in (".htm", ".html", ".xhtml", ".xml"):
            text = html_markdown(data, self.pkg.warnings)
        elif suffix == ".txt":
            text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
        else:
            self.pkg.warnings.append(f"imported content {real} left out: {suffix or 'no extension'} not read")
            return []
        return [b for b in text.split("\n\n") if b.strip()]

    def diagram(self, rid: str | None) -> list[str]:
        """The text of a SmartArt diagram's nodes, from its data part (its drawing part repeats it)."""
        kind, target = self.rels.get(rid or "", ("", ""))
        root = self.pkg.part(target, "SmartArt data") if kind == "diagramData" else None
        nodes = []
        for pt in [] if root is None else root.iter(f"{{{DGM}}}pt"):
            if pt.get("type") in ("parTrans", "sibTrans", "pres"):
                continue
            lines = ["".join(t.text or "" for t in p.iter(f"{{{A}}}t")) for p in pt.iter(f"{{{A}}}p")]
            text = " ".join(ln.strip() for ln in lines if ln.strip())
            if text:
                nodes.append(text)
        return nodes

    # -- blocks -------------------------------------------------------------------------------------
    def body(self, container: Any, out: list[str], cell: bool = False) -> None:
        for el in container:
            tag = _local(el)
            if tag == "p":
                self.paragraph(el, out, cell)
            elif tag == "tbl":
                if cell:  # a table in a cell: row by row, as Markdown has no table in a cell
                    out += [line for r in self.table_rows(el) if (line := "; ".join(c for c in r if c))]
                else:
                    out.append(md_table(self.table_rows(el)))
            elif tag == "sdt":
                content = el.find(f"{_W}sdtContent")
                if content is not None:
                    self.body(content, out, cell)
            elif tag in ("customXml", "ins", "moveTo"):
                self.body(el, out, cell)
            elif el.tag == _AC:
                branch = _choice(el)
                if branch is not None:
                    self.body(branch, out, cell)
            elif tag == "altChunk":
                out += self.alt_chunk(el)
            elif tag == "oMathPara" and el.tag == f"{_M}oMathPara":
                maths = [omml_latex(m).strip() for m in el.iter(f"{_M}oMath")]
                out += [f"$${m}$$" for m in maths if m]

    def paragraph(self, p: Any, out: list[str], cell: bool = False) -> None:
        boxes: list[list[str]] = []
        text = self.inline(p, boxes).strip()
        if "☐" in text or "☒" in text or "☑" in text:
            text = _LABELLED.sub(r"\1 ", text)  # a checkbox, a space, its label
        if cell:  # a table cell holds plain lines: no heading marks, no list markers
            if text:
                out.append(text)
            for box in boxes:
                out += box
            return
        ppr = p.find(f"{_W}pPr")
        style_el = ppr.find(f"{_W}pStyle") if ppr is not None else None
        style = style_el.get(f"{_W}val") if style_el is not None else None
        outline = ppr.find(f"{_W}outlineLvl") if ppr is not None else None
        level = self.pkg.heading_level(
            style, _int(outline.get(f"{_W}val"), 9) if outline is not None else None
        )
        num_id, ilvl = self.numbering(ppr, style)
        if text and level:
            out.append(f"{'#' * level} {text}")
        elif text and num_id:
            fmt = self.pkg.numbering.get(num_id, {}).get(ilvl, "decimal")
            if fmt in ("bullet", "none"):
                marker = "-"
            else:
                for key in [k for k in self.counters if k[0] == num_id and k[1] > ilvl]:
                    del self.counters[key]  # a higher level restarts the levels below it
                n = self.counters[(num_id, ilvl)] = self.counters.get((num_id, ilvl), 0) + 1
                marker = f"{n}."
            line = f"{'  ' * min(ilvl, 9)}{marker} {text}"
            if out and re.match(r"^\s*(-|\d+\.) ", out[-1].splitlines()[-1]) and not out[-1].startswith("|"):
                out[-1] += "\n" + line  # consecutive items: one list
            else:
                out.append(line)
        elif text:
            out.append(re.sub(r"^(#{1,6}\s)", r"\\\1", text))  # a paragraph is never read as a heading
        for box in boxes:
            out.append("<!-- text box -->\n\n" + "\n\n".join(box))

    def numbering(self, ppr: Any, style: str | None) -> tuple[str | None, int]:
        num = ppr.find(f"{_W}numPr") if ppr is not None else None
        if num is not None:
            num_id = num.find(f"{_W}numId")
            lvl = num.find(f"{_W}ilvl")
            nid = num_id.get(f"{_W}val") if num_id is not None else None
            return (nid if nid != "0" else None), _int(lvl.get(f"{_W}val")) if lvl is not None else 0
        return self.pkg.style_num(style)

    def table_rows(self, tbl: Any) -> list[list[str]]:
        rows: list[list[str]] = []
        above: dict[int, str] = {}  # column → text of the vertically merged cell that starts above
        for tr in _children(tbl, f"{_W}tr"):
            trpr = tr.find(f"{_W}trPr")
            if trpr is not None and trpr.find(f"{_W}del") is not None:
                continue  # a row deleted with changes tracked
            before = trpr.find(f"{_W}gridBefore") if trpr is not None else None
            row: list[str] = [""] * min(_int(before.get(f"{_W}val")) if before is not None else 0, _MAX_SPAN)
            for tc in _children(tr, f"{_W}tc"):
                tcpr = tc.find(f"{_W}tcPr")
                span = tcpr.find(f"{_W}gridSpan") if tcpr is not None else None
                vmerge = tcpr.find(f"{_W}vMerge") if tcpr is not None else None
                width = max(1, min(_int(span.get(f"{_W}val"), 1) if span is not None else 1, _MAX_SPAN))
                col = len(row)
                if vmerge is not None and vmerge.get(f"{_W}val") != "restart":
                    text = above.get(col, "")
                else:
                    text = self.cell_text(tc)
                for c in range(width):
                    row.append(text)
                    if vmerge is not None:
                        above[col + c] = text
                    else:
                        above.pop(col + c, None)
            rows.append(row)
        return rows

    def cell_text(self, tc: Any) -> str:
        lines: list[str] = []
        self.body(tc, lines, cell=True)
        return "\n".join(lines)


def _hex(value: str | None) -> int:
    try:
        return int(value or "", 16)
    except ValueError:
        return -1


def _form_checkbox(fld: Any) -> str:
    """A legacy form checkbox (FORMCHECKBOX field): its state, as the field has no text of its own."""
    box = fld.find(f"{_W}ffData/{_W}checkBox")
    if box is None or fld.get(f"{_W}fldCharType") != "begin":
        return ""
    state = box.find(f"{_W}checked")
    if state is None:
        state = box.find(f"{_W}default")
        return "☒" if state is not None and (state.get(f"{_W}val") or "0").lower() in _ON else "☐"
    return "☒" if (state.get(f"{_W}val") or "1").lower() in _ON else "☐"


# -- equations ------------------------------------------------------------------------------------------

_FUNCTIONS = set(
    "sin cos tan cot sec csc sinh cosh tanh coth arcsin arccos arctan log ln lg exp lim liminf limsup "
    "max min sup inf det arg deg dim gcd hom ker Pr".split()
)
_NARY = {"∑": "\\sum", "∏": "\\prod", "∐": "\\coprod", "∫": "\\int", "∬": "\\iint", "∭": "\\iiint",
         "∮": "\\oint", "⋃": "\\bigcup", "⋂": "\\bigcap", "⋁": "\\bigvee", "⋀": "\\bigwedge"}  # fmt: skip
_ACCENTS = {"\u0302": "\\hat", "\u0303": "\\tilde", "\u0304": "\\bar", "\u0305": "\\overline",
            "\u0307": "\\dot", "\u0308": "\\ddot", "\u20d7": "\\vec", "\u0301": "\\acute",
            "\u0300": "\\grave", "\u0306": "\\breve", "\u030c": "\\check"}  # fmt: skip
_DELIMITERS = {"": ".", "{": "\\{", "}": "\\}", "〈": "\\langle", "〉": "\\rangle", "⟨": "\\langle",
               "⟩": "\\rangle", "‖": "\\|", "⌊": "\\lfloor", "⌋": "\\rfloor", "⌈": "\\lceil",
               "⌉": "\\rceil"}  # fmt: skip
_MATH_SYMBOLS = {
    **{chr(0x3B1 + i): f"\\{n}" for i, n in enumerate(
        "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho varsigma "
        "sigma tau upsilon phi chi psi omega".split()) if n not in ("omicron", "varsigma")},
    "Γ": "\\Gamma", "Δ": "\\Delta", "Θ": "\\Theta", "Λ": "\\Lambda", "Ξ": "\\Xi", "Π": "\\Pi", "Σ": "\\Sigma",
    "Φ": "\\Phi", "Ψ": "\\Psi", "Ω": "\\Omega", "∞": "\\infty", "→": "\\to", "←": "\\leftarrow",
    "⇒": "\\Rightarrow", "≤": "\\leq", "≥": "\\geq", "≠": "\\neq", "≈": "\\approx", "±": "\\pm", "∓": "\\mp",
    "×": "\\times", "÷": "\\div", "⋅": "\\cdot", "·": "\\cdot", "∈": "\\in", "∉": "\\notin", "⊂": "\\subset",
    "⊆": "\\subseteq", "∪": "\\cup", "∩": "\\cap", "∀": "\\forall", "∃": "\\exists", "∂": "\\partial",
    "∇": "\\nabla", "≡": "\\equiv", "∝": "\\propto", "…": "\\ldots", "⋯": "\\cdots", "ℏ": "\\hbar",
}  # fmt: skip
_COMMAND_END = re.compile(r"\\[A-Za-z]+$")
_MATH_CHARS = re.compile("[" + "".join(re.escape(c) for c in _MATH_SYMBOLS) + "]")


def _math_text(text: str) -> str:
    """m:t text in LaTeX: symbols as commands (a space after one that a letter follows), braces escaped."""
    text = text.replace("{", "\\{").replace("}", "\\}")

    def command(m: re.Match[str]) -> str:
        follows = text[m.end() : m.end() + 1]
        return _MATH_SYMBOLS[m[0]] + (" " if follows.isascii() and follows.isalpha() else "")

    return _MATH_CHARS.sub(command, text)


def omml_latex(el: Any) -> str:
    """Office Math → LaTeX for the common constructs (fractions, scripts, radicals, n-ary operators,
    delimiters, functions and limits, accents, bars, matrices, equation arrays); any other element keeps
    its text."""
    tag = _local(el)

    def arg(name: str) -> str:
        child = el.find(f"{_M}{name}")
        return omml_latex(child) if child is not None else ""

    def prop(pr: str, name: str) -> str | None:
        found = el.find(f"{_M}{pr}/{_M}{name}")
        return found.get(f"{_M}val") if found is not None else None

    if tag == "t":
        return _math_text(el.text or "") if el.tag == f"{_M}t" else (el.text or "")
    if tag == "f":
        return f"\\frac{{{arg('num')}}}{{{arg('den')}}}"
    if tag == "sSup":
        return f"{{{arg('e')}}}^{{{arg('sup')}}}"
    if tag == "sSub":
        return f"{{{arg('e')}}}_{{{arg('sub')}}}"
    if tag == "sSubSup":
        return f"{{{arg('e')}}}_{{{arg('sub')}}}^{{{arg('sup')}}}"
    if tag == "sPre":
        return f"{{}}_{{{arg('sub')}}}^{{{arg('sup')}}}{{{arg('e')}}}"
    if tag == "rad":
        deg = arg("deg")
        return f"\\sqrt[{deg}]{{{arg('e')}}}" if deg else f"\\sqrt{{{arg('e')}}}"
    if tag == "nary":
        sign = prop("naryPr", "chr") or "∫"
        op = _NARY.get(sign, sign)
        sub, sup = arg("sub"), arg("sup")
        return f"{op}{'_{' + sub + '}' if sub else ''}{'^{' + sup + '}' if sup else ''}{{{arg('e')}}}"
    if tag == "d":
        beg, end, sep = prop("dPr", "begChr"), prop("dPr", "endChr"), prop("dPr", "sepChr")
        inner = (sep if sep is not None else "|").join(omml_latex(e) for e in el.findall(f"{_M}e"))
        left = _DELIMITERS.get(beg if beg is not None else "(", beg or "(")
        right = _DELIMITERS.get(end if end is not None else ")", end or ")")
        return f"\\left{left}{inner}\\right{right}"
    if tag == "func":
        name = arg("fName").strip()
        if name in _FUNCTIONS:
            name = "\\" + name
        elif re.fullmatch(r"[A-Za-z]+", name):
            name = f"\\operatorname{{{name}}}"
        return f"{name}{{{arg('e')}}}"
    if tag in ("limLow", "limUpp"):
        base = arg("e").strip()
        base = "\\" + base if base in _FUNCTIONS else f"{{{base}}}"
        return f"{base}{'_' if tag == 'limLow' else '^'}{{{arg('lim')}}}"
    if tag == "acc":
        accent = _ACCENTS.get(prop("accPr", "chr") or "\u0302", "\\hat")
        return f"{accent}{{{arg('e')}}}"
    if tag == "bar":
        line = "\\overline" if prop("barPr", "pos") == "top" else "\\underline"
        return f"{line}{{{arg('e')}}}"
    if tag == "groupChr":
        sign = prop("groupChrPr", "chr") or "⏟"
        brace = {"⏟": "\\underbrace", "⏞": "\\overbrace"}.get(sign)
        return f"{brace}{{{arg('e')}}}" if brace else arg("e")
    if tag == "borderBox":
        return f"\\boxed{{{arg('e')}}}"
    if tag == "eqArr":
        rows = [omml_latex(e) for e in el.findall(f"{_M}e")]
        return "\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}"
    if tag == "m":
        rows = [" & ".join(omml_latex(e) for e in mr.findall(f"{_M}e")) for mr in el.findall(f"{_M}mr")]
        return "\\begin{matrix}" + " \\\\ ".join(rows) + "\\end{matrix}"
    if tag.endswith("Pr"):
        return ""
    latex = ""
    for child in el:
        piece = omml_latex(child)
        if piece[:1].isascii() and piece[:1].isalpha() and _COMMAND_END.search(latex[-32:]):
            latex += " "  # \cdot then T: \cdot T, not the unknown command \cdotT
        latex += piece
    return latex


# -- the document ---------------------------------------------------------------------------------------

_PAGES = {"first": "first page", "even": "even pages"}


def _page_parts(pkg: _Package, document: Any, kind: str) -> list[tuple[str, str]]:
    """(label, part) of the headers or footers (`kind`) in the order a reader meets them: per section
    the first page's when the section has one (w:titlePg), the default, the even pages'; then any the
    sections do not name (still the author's text)."""
    ordered: list[tuple[str, str]] = []
    for sect in document.iter(f"{_W}sectPr"):
        if sect.getparent() is not None and _local(sect.getparent()) == "sectPrChange":
            continue  # the section as it was before a tracked change
        title = sect.find(f"{_W}titlePg")
        title_page = title is not None and (title.get(f"{_W}val") or "1").lower() in _ON
        refs = {ref.get(f"{_W}type") or "default": ref.get(f"{{{R}}}id") or ""
                for ref in sect.findall(f"{_W}{kind}Reference")}  # fmt: skip
        order = (["first"] if title_page else []) + ["default", "even"] + ([] if title_page else ["first"])
        for page in order:
            rel = pkg.rels.get(refs.get(page, ""))
            if rel is not None and rel[0] == kind:
                ordered.append((f"{kind}: {_PAGES[page]}" if page in _PAGES else kind, rel[1]))
    named = {part for _, part in ordered}
    ordered += [
        (kind, target) for _, (k, target) in sorted(pkg.rels.items()) if k == kind and target not in named
    ]
    return ordered


def docx_sections(
    path: Path,
    cfg: JobConfig,
    warnings: list[str] | None = None,
    pictures: list[list[bytes | None]] | None = None,
) -> list[tuple[list[str], str]]:
    """The document's sections; what had to be left out (a malformed part) is said in `warnings`. With
    `pictures`, it gets each section's pictures in the body, in order (as PNG, for descriptions; None
    for one that cannot be described, keeping the places)."""
    with check_zip(path, cfg.documents.max_uncompressed_bytes, "DOCX") as z:
        pkg = _Package(z)
        document = pkg.xml(pkg.main)
        if document is None:
            raise DocumentOpenError(f"not a Word document: no main document part ({pkg.main})")
        body = document.find(f"{_W}body")
        if body is None and document.tag != f"{_W}document":
            raise DocumentOpenError(
                f"not a WordprocessingML document: its main part's root is {document.tag}"
            )
        writer = _Writer(pkg, pkg.rels)
        if pictures is not None:
            writer.pictures = []
        blocks: list[str] = []
        if body is not None:
            writer.body(body, blocks)
        images: list[bytes | None] = []
        if pictures is not None:
            from unitok.pipeline.formats.image import part_pictures  # Pillow only where pictures are read

            images = part_pictures(lambda part: z.read(pkg.names[part.lower()]), writer.pictures or [],
                                   cfg.image.max_pixels, pkg.warnings)  # fmt: skip

        def part_blocks(kind: str) -> list[str]:
            seen: set[str] = set()
            texts: list[str] = []
            for label, name in _page_parts(pkg, document, kind):
                root = pkg.part(name, kind)
                if root is None:
                    continue
                out: list[str] = []
                _Writer(pkg, pkg.part_rels(name)).body(root, out)
                text = "\n\n".join(out)
                if text.strip() and text not in seen:  # first, even and default pages often repeat
                    seen.add(text)
                    texts.append(f"<!-- {label} -->\n\n{text}")
            return texts

        head = part_blocks("header")
        tail = part_blocks("footer")
        tail += _notes(pkg, "footnotes", "footnote", "")
        tail += _notes(pkg, "endnotes", "endnote", "e")
        tail += _comments(pkg)
        if warnings is not None:
            warnings += list(dict.fromkeys(pkg.warnings))
    sections: list[tuple[list[str], str]] = []
    if head:
        sections.append(([], "\n\n".join(head)))
    body_sections = markdown_sections("\n\n".join(blocks))
    sections += body_sections
    if tail:
        sections.append(([], "\n\n".join(tail)))
    if pictures is not None:
        marked = sum(text.count(IMAGE_MARKER) for _, text in body_sections)
        if marked != len(images):  # the author's own text holds the marker: places cannot be told apart
            if warnings is not None and any(images):
                warnings.append("pictures not described: their places in the text could not be told apart")
            images = [None] * marked
        pictures += [[]] if head else []
        for _, text in body_sections:
            n = text.count(IMAGE_MARKER)
            pictures.append(images[:n])
            images = images[n:]
        pictures += [[]] if tail else []
    return sections


def _notes(pkg: _Package, rel: str, kind: str, prefix: str) -> list[str]:
    name = pkg.related(rel) or posixpath.join(posixpath.dirname(pkg.main), f"{rel}.xml")
    root = pkg.part(name, rel)
    if root is None:
        return []
    lines = []
    rels = pkg.part_rels(name)
    for note in root.iter(f"{_W}{kind}"):
        if note.get(f"{_W}type") in ("separator", "continuationSeparator", "continuationNotice"):
            continue
        out: list[str] = []
        _Writer(pkg, rels).body(note, out)
        text = " ".join(out).strip()
        if text:
            lines.append(f"[^{prefix}{note.get(f'{_W}id')}]: {text}")
    return ["\n".join(lines)] if lines else []


def _comments(pkg: _Package) -> list[str]:
    """Comments with their replies under them: Word keeps every comment in comments.xml and says which
    one a reply answers in commentsExtended.xml (by the paragraph ids of their last paragraphs)."""
    name = pkg.related("comments") or posixpath.join(posixpath.dirname(pkg.main), "comments.xml")
    root = pkg.part(name, "comments")
    if root is None:
        return []
    parents: dict[str, str] = {}
    extended = pkg.part(pkg.related("commentsExtended"), "comment threads")
    for ex in [] if extended is None else extended.iter(f"{{{W15}}}commentEx"):
        if ex.get(f"{{{W15}}}paraIdParent"):
            parents[ex.get(f"{{{W15}}}paraId") or ""] = ex.get(f"{{{W15}}}paraIdParent") or ""
    rels = pkg.part_rels(name)
    entries: list[tuple[str, str, str]] = []  # (paragraph id, its parent's, line)
    for c in root.iter(f"{_W}comment"):
        out: list[str] = []
        _Writer(pkg, rels).body(c, out)
        who = ", ".join(x for x in (c.get(f"{_W}author"), (c.get(f"{_W}date") or "")[:10]) if x)
        text = " ".join(out).replace("\n", " ").strip()
        paras = c.findall(f"{_W}p")
        para_id = (paras[-1].get(f"{{{W14}}}paraId") or "") if paras else ""
        if text:
            entries.append((para_id, parents.get(para_id, ""), f"{who}: {text}" if who else text))
    ids = {pid for pid, _, _ in entries if pid}

    def thread(pid: str) -> str:
        """The comment a reply's thread starts at (a reply may answer a reply)."""
        seen = {pid}
        while (up := parents.get(pid)) in ids and up not in seen:
            seen.add(up)
            pid = up
        return pid

    replies: dict[str, list[int]] = {}
    for n, (pid, parent, _) in enumerate(entries):
        if parent in ids:
            replies.setdefault(thread(pid), []).append(n)
    lines, shown = [], set()
    for n, (pid, parent, line) in enumerate(entries):
        if parent not in ids:
            lines.append(f"- {line}")
            lines += [f"  - {entries[r][2]}" for r in replies.get(pid, [])]
            shown.update([n, *replies.get(pid, [])])
    lines += [f"- {line}" for n, (_, _, line) in enumerate(entries) if n not in shown]  # a loop of replies
    return ["<!-- comments -->\n\n" + "\n".join(lines)] if lines else []


def split_docx(path: Path, base: Segment, cfg: JobConfig, needs: Any = None) -> Iterator[Segment]:
    work = None
    try:
        if base.mime_type != "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
            from unitok.pipeline.formats.pptx import libreoffice_convert

            work = Path(tempfile.mkdtemp(prefix="unitok-doc-"))
            path = libreoffice_convert(path, "docx", work, cfg.documents.convert_timeout_s, DocumentOpenError,
                                       "document")  # fmt: skip
        pictures: list[list[bytes | None]] | None = [] if needs is not None and needs.pictures else None
        sections = docx_sections(path, cfg, base.warnings, pictures)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    if not sections:
        raise DocumentOpenError("no text: the document's body, headers, footers and notes are empty")
    if pictures is None:
        yield from section_segments(base, sections, cfg, PARSER)
        return
    index = 0
    for section, images in zip(sections, pictures, strict=True):
        for seg in section_segments(base, [section], cfg, PARSER, start=index):
            # A long section is cut in pieces: each piece has the pictures whose markers it holds.
            n = (seg.structure_json or "").count(IMAGE_MARKER)
            seg.pictures_png = [p for p in images[:n] if p]
            images = images[n:]
            index = seg.segment_index + 1
            yield seg
