"""Word documents (DOCX; legacy DOC and ODT through LibreOffice, as for PPT) → Markdown sections, read from
the package's XML with lxml: headings from styles and outline levels, lists with their numbering and
nesting, tables (merged cells repeated, nested tables inline), text boxes, headers and footers (marked),
footnotes and endnotes, comments, tracked changes as accepted (insertions kept, deletions left out),
equations as LaTeX, pictures as markers with their alt text, hyperlinks. A file saved as Strict Open XML
(ISO/IEC 29500 Strict namespaces) is read with its namespaces mapped to the Transitional ones.

Why not a library: python-docx reads neither footnotes, text boxes nor tracked insertions (its paragraph
text skips runs inside w:ins); mammoth (markitdown's DOCX path) drops headers, footers, text boxes and
comments. The benchmark (bench/bench_documents.py) compares the result with markitdown's.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.markdown import md_table
from unitok.pipeline.core.records import Segment
from unitok.pipeline.formats.documents import (
    DocumentOpenError,
    check_zip,
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
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_W, _M = f"{{{W}}}", f"{{{M}}}"
PARSER = "unitok-ooxml (lxml)"


def _local(el: Any) -> str:
    return el.tag.split("}")[-1] if isinstance(el.tag, str) else ""


class _Package:
    """The parts of one DOCX a conversion reads."""

    def __init__(self, z: Any):
        self.z = z
        self.names = set(z.namelist())
        self.rels = self.part_rels("word/_rels/document.xml.rels")
        self.styles = self._styles()
        self.numbering = self._numbering()

    def xml(self, name: str) -> Any | None:
        return safe_xml(transitional(self.z.read(name))) if name in self.names else None

    def part_rels(self, name: str) -> dict[str, tuple[str, str]]:
        root = self.xml(name)
        if root is None:
            return {}
        return {r.get("Id"): (r.get("Type", "").rsplit("/", 1)[-1], r.get("Target", ""))
                for r in root.iter(f"{{{PKG_REL}}}Relationship")}  # fmt: skip

    def _styles(self) -> dict[str, dict[str, Any]]:
        root = self.xml("word/styles.xml")
        styles: dict[str, dict[str, Any]] = {}
        for st in [] if root is None else root.iter(f"{_W}style"):
            name = st.find(f"{_W}name")
            outline = st.find(f"{_W}pPr/{_W}outlineLvl")
            num = st.find(f"{_W}pPr/{_W}numPr/{_W}numId")
            ilvl = st.find(f"{_W}pPr/{_W}numPr/{_W}ilvl")
            based = st.find(f"{_W}basedOn")
            styles[st.get(f"{_W}styleId")] = {
                "name": (name.get(f"{_W}val") if name is not None else "") or "",
                "outline": int(outline.get(f"{_W}val")) if outline is not None else None,
                "num": num.get(f"{_W}val") if num is not None else None,
                "ilvl": int(ilvl.get(f"{_W}val")) if ilvl is not None else 0,
                "based": based.get(f"{_W}val") if based is not None else None,
            }
        return styles

    def _numbering(self) -> dict[str, dict[int, str]]:
        """numId → {level: numFmt} (bullet, decimal, lowerLetter, ...)."""
        root = self.xml("word/numbering.xml")
        if root is None:
            return {}
        abstract = {
            a.get(f"{_W}abstractNumId"): {
                int(lvl.get(f"{_W}ilvl")): (lvl.find(f"{_W}numFmt").get(f"{_W}val")
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

    # -- runs ---------------------------------------------------------------------------------------
    def inline(self, el: Any, boxes: list[list[str]]) -> str:
        parts: list[str] = []
        for child in el:
            tag = _local(child)
            if tag in ("del", "moveFrom", "pPr", "rPr", "proofErr", "bookmarkStart", "bookmarkEnd"):
                continue
            if child.tag == f"{{{MC}}}AlternateContent":
                choice = child.find(f"{{{MC}}}Choice")
                if choice is not None:
                    parts.append(self.inline(choice, boxes))
                continue
            if tag == "t":
                parts.append(child.text or "")
            elif tag == "tab":
                parts.append("\t")
            elif tag in ("br", "cr"):
                parts.append("  \n")
            elif tag == "noBreakHyphen":
                parts.append("-")
            elif tag == "hyperlink":
                text = self.inline(child, boxes)
                rid = child.get(f"{{{R}}}id")
                target = self.rels.get(rid, ("", ""))[1] if rid else ""
                parts.append(f"[{text}]({target})" if target and text.strip() else text)
            elif tag in ("footnoteReference", "endnoteReference"):
                ref = ("" if tag == "footnoteReference" else "e") + (child.get(f"{_W}id") or "")
                self.notes.append(ref)
                parts.append(f"[^{ref}]")
            elif tag in ("drawing", "pict", "object"):
                parts.append(self.picture(child, boxes))
            elif tag in ("oMath", "oMathPara"):
                latex = omml_latex(child)
                parts.append(f"${latex}$" if latex else "")
            elif tag in ("r", "ins", "moveTo", "smartTag", "fldSimple", "sdt", "sdtContent", "customXml"):
                parts.append(self.inline(child, boxes))
        return "".join(parts)

    def picture(self, el: Any, boxes: list[list[str]]) -> str:
        """A drawing: its text boxes go to `boxes` (rendered after the paragraph); a picture is a marker
        with the description the author set."""
        for txbx in el.iter(f"{_W}txbxContent"):
            blocks: list[str] = []
            self.body(txbx, blocks)
            if blocks:
                boxes.append(blocks)
        if any(True for _ in el.iter(f"{_W}txbxContent")):
            return ""
        docpr = next(el.iter(f"{{{WP}}}docPr"), None)
        alt = ((docpr.get("descr") or docpr.get("title") or "") if docpr is not None else "").strip()
        return "<!-- image -->" + (f" *{alt}*" if alt else "")

    # -- blocks -------------------------------------------------------------------------------------
    def body(self, container: Any, out: list[str]) -> None:
        for el in container:
            tag = _local(el)
            if tag == "p":
                self.paragraph(el, out)
            elif tag == "tbl":
                out.append(md_table(self.table_rows(el)))
            elif tag in ("sdt", "customXml", "ins", "moveTo"):
                self.body(el.find(f"{_W}sdtContent") if tag == "sdt" else el, out)
            elif el.tag == f"{{{MC}}}AlternateContent":
                choice = el.find(f"{{{MC}}}Choice")
                if choice is not None:
                    self.body(choice, out)

    def paragraph(self, p: Any, out: list[str]) -> None:
        ppr = p.find(f"{_W}pPr")
        style = (
            ppr.find(f"{_W}pStyle").get(f"{_W}val")
            if ppr is not None and ppr.find(f"{_W}pStyle") is not None
            else None
        )
        outline = ppr.find(f"{_W}outlineLvl") if ppr is not None else None
        boxes: list[list[str]] = []
        text = self.inline(p, boxes).strip()
        level = self.pkg.heading_level(style, int(outline.get(f"{_W}val")) if outline is not None else None)
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
            line = f"{'  ' * ilvl}{marker} {text}"
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
            return (nid if nid != "0" else None), int(lvl.get(f"{_W}val")) if lvl is not None else 0
        return self.pkg.style_num(style)

    def table_rows(self, tbl: Any) -> list[list[str]]:
        rows: list[list[str]] = []
        above: dict[int, str] = {}  # column → text of the vertically merged cell that starts above
        for tr in tbl.iter(f"{_W}tr"):
            if tr.getparent() is not tbl:
                continue  # a nested table's row: rendered inside its cell
            row: list[str] = []
            for tc in tr.findall(f"{_W}tc"):
                tcpr = tc.find(f"{_W}tcPr")
                span = tcpr.find(f"{_W}gridSpan") if tcpr is not None else None
                vmerge = tcpr.find(f"{_W}vMerge") if tcpr is not None else None
                width = int(span.get(f"{_W}val")) if span is not None else 1
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
        for el in tc:
            if _local(el) == "p":
                boxes: list[list[str]] = []
                text = self.inline(el, boxes).strip()
                if text:
                    lines.append(text)
            elif _local(el) == "tbl":  # a nested table, row by row
                lines += ["; ".join(c for c in r if c) for r in self.table_rows(el)]
        return "\n".join(lines)


def omml_latex(el: Any) -> str:
    """Office Math → LaTeX for the common constructs (fractions, scripts, radicals, n-ary operators,
    delimiters, functions); any other element keeps its text."""
    tag = _local(el)

    def arg(name: str) -> str:
        child = el.find(f"{_M}{name}")
        return omml_latex(child) if child is not None else ""

    if tag == "t":
        return el.text or ""
    if tag == "f":
        return f"\\frac{{{arg('num')}}}{{{arg('den')}}}"
    if tag == "sSup":
        return f"{{{arg('e')}}}^{{{arg('sup')}}}"
    if tag == "sSub":
        return f"{{{arg('e')}}}_{{{arg('sub')}}}"
    if tag == "sSubSup":
        return f"{{{arg('e')}}}_{{{arg('sub')}}}^{{{arg('sup')}}}"
    if tag == "rad":
        deg = arg("deg")
        return f"\\sqrt[{deg}]{{{arg('e')}}}" if deg else f"\\sqrt{{{arg('e')}}}"
    if tag == "nary":
        chr_ = el.find(f"{_M}naryPr/{_M}chr")
        op = {"∑": "\\sum", "∏": "\\prod", "∫": "\\int", "∮": "\\oint"}.get(
            chr_.get(f"{_M}val") if chr_ is not None else "∫", "\\int"
        )
        sub, sup = arg("sub"), arg("sup")
        return f"{op}{'_{' + sub + '}' if sub else ''}{'^{' + sup + '}' if sup else ''}{{{arg('e')}}}"
    if tag == "d":
        pr = el.find(f"{_M}dPr")
        beg = pr.find(f"{_M}begChr") if pr is not None else None
        end = pr.find(f"{_M}endChr") if pr is not None else None
        inner = ",".join(omml_latex(e) for e in el.findall(f"{_M}e"))
        left = beg.get(f"{_M}val") if beg is not None else "("
        right = end.get(f"{_M}val") if end is not None else ")"
        return f"\\left{left}{inner}\\right{right}"
    if tag == "func":
        return f"\\{arg('fName').strip()}{{{arg('e')}}}"
    if tag.endswith("Pr"):
        return ""
    return "".join(omml_latex(c) for c in el)


def docx_sections(path: Path, cfg: JobConfig) -> list[tuple[list[str], str]]:
    with check_zip(path, cfg.documents.max_uncompressed_bytes, "DOCX") as z:
        pkg = _Package(z)
        document = pkg.xml("word/document.xml")
        if document is None:
            raise DocumentOpenError("not a Word document: no word/document.xml")
        body = document.find(f"{_W}body")
        if body is None and document.tag != f"{_W}document":
            raise DocumentOpenError(
                f"not a WordprocessingML document: its main part's root is {document.tag}"
            )
        writer = _Writer(pkg, pkg.rels)
        blocks: list[str] = []
        if body is not None:
            writer.body(body, blocks)

        def part_blocks(kind: str) -> list[str]:
            seen: list[str] = []
            for _, (rtype, target) in sorted(pkg.rels.items()):
                if rtype != kind:
                    continue
                name = "word/" + target.lstrip("/").removeprefix("word/")
                root = pkg.xml(name)
                if root is None:
                    continue
                part_rels = pkg.part_rels(name.replace("word/", "word/_rels/", 1) + ".rels")
                out: list[str] = []
                _Writer(pkg, part_rels).body(root, out)
                text = "\n\n".join(out)
                if text.strip() and text not in seen:  # first, even and default pages often repeat
                    seen.append(text)
            return seen

        head = ["<!-- header -->\n\n" + h for h in part_blocks("header")]
        tail = ["<!-- footer -->\n\n" + f for f in part_blocks("footer")]
        tail += _notes(pkg, "word/footnotes.xml", "footnote", "")
        tail += _notes(pkg, "word/endnotes.xml", "endnote", "e")
        tail += _comments(pkg)
    sections: list[tuple[list[str], str]] = []
    if head:
        sections.append(([], "\n\n".join(head)))
    sections += markdown_sections("\n\n".join(blocks))
    if tail:
        sections.append(([], "\n\n".join(tail)))
    return sections


def _notes(pkg: _Package, name: str, kind: str, prefix: str) -> list[str]:
    root = pkg.xml(name)
    if root is None:
        return []
    lines = []
    rels = pkg.part_rels(name.replace("word/", "word/_rels/", 1) + ".rels")
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
    root = pkg.xml("word/comments.xml")
    if root is None:
        return []
    lines = []
    for c in root.iter(f"{_W}comment"):
        out: list[str] = []
        _Writer(pkg, {}).body(c, out)
        who = ", ".join(x for x in (c.get(f"{_W}author"), (c.get(f"{_W}date") or "")[:10]) if x)
        text = " ".join(out).replace("\n", " ").strip()
        if text:
            lines.append(f"- {who}: {text}" if who else f"- {text}")
    return ["<!-- comments -->\n\n" + "\n".join(lines)] if lines else []


def split_docx(path: Path, base: Segment, cfg: JobConfig, needs: Any = None) -> Iterator[Segment]:
    work = None
    try:
        if base.mime_type != "application/vnd.openxmlformats-officedocument.wordprocessingml.document":
            from unitok.pipeline.formats.pptx import libreoffice_convert

            work = Path(tempfile.mkdtemp(prefix="unitok-doc-"))
            path = libreoffice_convert(path, "docx", work, cfg.documents.convert_timeout_s, DocumentOpenError,
                                       "document")  # fmt: skip
        sections = docx_sections(path, cfg)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    if not sections:
        raise DocumentOpenError("no text: the document's body, headers, footers and notes are empty")
    yield from section_segments(base, sections, cfg, PARSER)
