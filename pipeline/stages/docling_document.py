"""A document's rows as a DoclingDocument (docling-core's schema, as docling-serve's `json_content`), built
from its segments' Markdown with no word added and none lost. Plain dicts only: the runtime does not depend
on docling-core (the tests validate the output with it).

What maps to what, per segment in segment order:
- `#` heading → TitleItem (docling's Markdown convention), `##`..`######` → SectionHeaderItem, level = n - 1;
  `<!-- title: X -->` (an HTML page's <title>) → TitleItem; `<!-- sheet: X -->` → SectionHeaderItem level 1.
- paragraphs → TextItem (label text; `text` without inline markup, `orig` the Markdown as written); quotes
  (`> `) → TextItem; fenced code → CodeItem.
- `-`/`*`/`+` and `1.` lists → ListItem (enumerated, marker) in a ListGroup; deeper indents nest a group
  under the previous item.
- Markdown tables → TableItem with TableData cells (the first row is the column header).
- `<!-- image -->` → PictureItem, its `*alt*` a caption TextItem; OCR text quoted under it → body TextItems. A
  segment that is a whole image (an image file, a scanned page) or a video frame gives its OCR text as body
  items on its page, as docling's OCR does for a page-sized image (no PictureItem: docling's Markdown export
  does not print a picture's children, which would drop the words).
- recordings: a TextItem per timed phrase (spans), with `source` = TrackSource(start_time, end_time) (the
  window's times where the engine gave no phrases).
- a video frame's time is an instant and TrackSource needs end > start: its items carry no time (a custom
  `meta` field would be printed by docling-core's Markdown export, adding words).
- other `<!-- ... -->` markers (unitok's, not the author's) are dropped; the text after them is kept.

Provenance: `prov` on paged segments (PDF pages, slides, images: page 1) with page_no, a bbox covering the
whole page (unitok's rows carry no boxes) and charspan (offsets in the document's Markdown where known, else
in the item's text). docling-core requires a bbox; a page whose size the caller does not pass gets
docling-core's own default Size (0 x 0) and so a 0-area box. `origin.binary_hash`: the first 64 bits of the
SHA-256 in `source_version` (`sha256:<hex>`), else of the SHA-256 of `source_version` itself."""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

SCHEMA_VERSION = "1.10.0"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST = re.compile(r"^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_MARKER = re.compile(r"^<!--\s*(.*?)\s*-->\s*(.*)$", re.S)
_TABLE_SEP = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)")
_EMPH = re.compile(r"(\*\*|__|\*|_|~~|`)(?=\S)(.+?)(?<=\S)\1")
_ESC = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_PAGED = {"page", "slide", "image"}


def _plain(md: str) -> str:
    """Inline Markdown → its words: links keep their text, emphasis and escapes lose their marks."""
    text = _LINK.sub(lambda m: m.group(1), md)
    for _ in range(3):
        text = _EMPH.sub(lambda m: m.group(2), text)
    return _ESC.sub(r"\1", text.replace("<br>", "\n"))


def _cells(line: str) -> list[str]:
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") and not s.endswith("\\|") else s
    return [_plain(c.strip()) for c in re.split(r"(?<!\\)\|", s)]


def _binary_hash(source_version: str | None) -> int:
    sv = source_version or ""
    hexd = sv.split(":", 1)[1] if sv.startswith("sha256:") else hashlib.sha256(sv.encode()).hexdigest()
    try:
        return int(hexd[:16], 16)
    except ValueError:
        return int(hashlib.sha256(sv.encode()).hexdigest()[:16], 16)


class _Builder:
    def __init__(self, page_sizes: dict[int, tuple[float, float]]):
        self.doc: dict[str, Any] = {k: [] for k in ("groups", "texts", "pictures", "tables")}
        self.body: dict[str, Any] = {
            "self_ref": "#/body",
            "children": [],
            "content_layer": "body",
            "name": "_root_",
            "label": "unspecified",
        }
        self.pages: dict[str, Any] = {}
        self.page_sizes = page_sizes
        # where the current segment is: page, char offset of its Markdown, times
        self.page: int | None = None
        self.base: int | None = None
        self.source: list[dict[str, Any]] = []
        self.meta: dict[str, Any] | None = None

    # -- items ---------------------------------------------------------------------------------------
    def _add(self, kind: str, item: dict[str, Any], parent: dict[str, Any] | None) -> dict[str, Any]:
        parent = parent or self.body
        item["self_ref"] = f"#/{kind}/{len(self.doc[kind])}"
        item["parent"] = {"$ref": parent["self_ref"]}
        item.setdefault("children", [])
        item.setdefault("content_layer", "body")
        self.doc[kind].append(item)
        parent["children"].append({"$ref": item["self_ref"]})
        return item

    def _prov(self, start: int, end: int, length: int) -> list[dict[str, Any]]:
        if self.page is None:
            return []
        w, h = self.page_sizes.get(self.page, (0.0, 0.0))
        self.pages.setdefault(
            str(self.page), {"size": {"width": float(w), "height": float(h)}, "page_no": self.page}
        )
        span = [self.base + start, self.base + end] if self.base is not None else [0, length]
        bbox = {"l": 0.0, "t": float(h), "r": float(w), "b": 0.0, "coord_origin": "BOTTOMLEFT"}
        return [{"page_no": self.page, "bbox": bbox, "charspan": span}]

    def text(self, label: str, orig: str, start: int, end: int, parent=None, source=None, **extra) -> dict:
        text = _plain(orig) if label != "code" else orig
        item = {"label": label, "orig": orig, "text": text, **extra}
        item["prov"] = self._prov(start, end, len(text))
        item["source"] = source if source is not None else list(self.source)
        if self.meta:
            item["meta"] = dict(self.meta)
        return self._add("texts", item, parent)

    def group(self, label: str, name: str, parent=None) -> dict[str, Any]:
        return self._add("groups", {"name": name, "label": label}, parent)

    def picture(self, start: int, end: int, parent=None) -> dict[str, Any]:
        item = {"label": "picture", "prov": self._prov(start, end, 0), "source": list(self.source)}
        item.update(captions=[], references=[], footnotes=[], annotations=[])
        if self.meta:
            item["meta"] = dict(self.meta)
        return self._add("pictures", item, parent)

    def table(self, rows: list[list[str]], start: int, end: int) -> None:
        ncols = max(len(r) for r in rows)
        cells = [
            {
                "row_span": 1,
                "col_span": 1,
                "start_row_offset_idx": i,
                "end_row_offset_idx": i + 1,
                "start_col_offset_idx": j,
                "end_col_offset_idx": j + 1,
                "text": c,
                "column_header": i == 0,
                "row_header": False,
                "row_section": False,
            }
            for i, r in enumerate(rows)
            for j, c in enumerate(r)
        ]
        item = {"label": "table", "prov": self._prov(start, end, 0), "source": list(self.source)}
        item.update(captions=[], references=[], footnotes=[], annotations=[])
        item["data"] = {"table_cells": cells, "num_rows": len(rows), "num_cols": ncols}
        self._add("tables", item, None)

    # -- Markdown ------------------------------------------------------------------------------------
    def markdown(self, md: str, parent: dict[str, Any] | None = None) -> None:
        """A segment's Markdown, block by block, with each block's offsets in `md`."""
        lines = md.split("\n")
        offs, pos = [], 0
        for ln in lines:
            offs.append(pos)
            pos += len(ln) + 1
        picture: dict[str, Any] | None = None  # a picture whose quoted OCR text may follow
        i = 0
        while i < len(lines):
            line = lines[i]
            start = offs[i]
            if not line.strip():
                i += 1
                continue
            if m := _FENCE.match(line):
                j = i + 1
                while j < len(lines) and not lines[j].strip().startswith(m.group(1)):
                    j += 1
                code = "\n".join(lines[i + 1 : j])
                self.text("code", code, start, offs[min(j, len(lines) - 1)], parent, code_language="unknown")
                i, picture = j + 1, None
                continue
            if m := _MARKER.match(line):
                i, picture = self._marker(m.group(1), m.group(2), lines, offs, i, parent)
                continue
            if m := _HEADING.match(line):
                n = len(m.group(1))
                if n == 1:
                    self.text("title", m.group(2), start, start + len(line), parent)
                else:
                    self.text("section_header", m.group(2), start, start + len(line), parent, level=n - 1)
                i, picture = i + 1, None
                continue
            if line.lstrip().startswith("|") and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]):
                rows, j = [_cells(line)], i + 2
                while j < len(lines) and lines[j].lstrip().startswith("|"):
                    rows.append(_cells(lines[j]))
                    j += 1
                self.table(rows, start, offs[j - 1] + len(lines[j - 1]))
                i, picture = j, None
                continue
            if _LIST.match(line):
                i = self._list(lines, offs, i, parent)
                picture = None
                continue
            if line.startswith(">"):
                j = i
                while j < len(lines) and lines[j].startswith(">"):
                    j += 1
                quoted = "\n".join(re.sub(r"^> ?", "", ln) for ln in lines[i:j])
                for para in re.split(r"\n\s*\n", quoted):
                    if para.strip():
                        self.text("text", para.strip(), start, offs[j - 1] + len(lines[j - 1]), parent)
                i = j
                continue
            j = i
            while (
                j < len(lines)
                and lines[j].strip()
                and (
                    j == i
                    or not (_HEADING.match(lines[j]) or _LIST.match(lines[j]) or _MARKER.match(lines[j]))
                )
                and not (j > i and (lines[j].startswith(">") or lines[j].lstrip().startswith("|")))
            ):
                j += 1
            para = "\n".join(lines[i:j])
            if picture is not None and para.startswith("*") and not picture["captions"]:
                cap = self.text("caption", para, start, offs[j - 1] + len(lines[j - 1]), picture)
                picture["captions"].append({"$ref": cap["self_ref"]})
            else:
                self.text("text", para, start, offs[j - 1] + len(lines[j - 1]), parent)
                picture = None
            i = j

    def _marker(self, what: str, rest: str, lines, offs, i, parent):
        start, end = offs[i], offs[i] + len(lines[i])
        picture = None
        low = what.lower()
        if low.startswith("title:"):
            self.text("title", what.split(":", 1)[1].strip(), start, end, parent)
        elif re.match(r"(hidden )?(chart)?sheet:", low):
            self.text("section_header", what.split(":", 1)[1].strip(), start, end, parent, level=1)
        elif low == "image":
            picture = self.picture(start, end, parent)
            if rest.strip():  # `<!-- image --> *alt*` on one line
                cap = self.text("caption", rest.strip(), start, end, picture)
                picture["captions"].append({"$ref": cap["self_ref"]})
        return i + 1, picture

    def _list(self, lines, offs, i, parent) -> int:
        stack: list[tuple[int, bool, dict[str, Any]]] = []  # (indent, enumerated, group)
        last: dict[str, Any] | None = None
        while i < len(lines) and (m := _LIST.match(lines[i])):
            indent, marker, body = len(m.group(1).expandtabs(4)), m.group(2), m.group(3)
            enum = marker[0].isdigit()
            while stack and (indent < stack[-1][0] or (indent == stack[-1][0] and enum != stack[-1][1])):
                stack.pop()
            if not stack or indent > stack[-1][0]:
                owner = last if stack and last is not None else parent
                stack.append((indent, enum, self.group("list", "list", owner)))
            last = self.text(
                "list_item",
                body,
                offs[i],
                offs[i] + len(lines[i]),
                stack[-1][2],
                enumerated=enum,
                marker=marker,
            )
            i += 1
        return i


def _page_of(seg: dict[str, Any]) -> int | None:
    if seg.get("segment_kind") in _PAGED or seg.get("page_number") is not None:
        return int(seg.get("page_number") or 1)
    return None


def _add_segment(b: _Builder, seg: dict[str, Any]) -> None:
    md = seg.get("markdown") or ""
    b.page = _page_of(seg)
    b.base = seg.get("char_start")
    t0, t1 = seg.get("time_start_s"), seg.get("time_end_s")
    timed = t0 is not None and t1 is not None
    # TrackSource needs end > start: an instant (a video frame) gets none (see the module's docstring)
    b.source = (
        [{"kind": "track", "start_time": float(t0), "end_time": float(t1)}] if timed and t1 > t0 else []
    )
    kind = seg.get("segment_kind")
    if b.page is not None and not md.strip():
        b._prov(0, 0, 0)  # the page is there, even without text
    if kind == "audio_window":
        spans = [s for s in seg.get("spans") or [] if (s.get("text") or "").strip()]
        if spans:
            for s in spans:
                src = [{"kind": "track", "start_time": float(s["start_s"]), "end_time": float(s["end_s"])}]
                b.text("text", s["text"].strip(), 0, 0, source=src)
        elif md.strip():
            b.markdown(md)
    else:
        b.markdown(md)


def docling_document(
    document: dict[str, Any],
    segments: list[dict[str, Any]],
    page_sizes: dict[int, tuple[float, float]] | None = None,
    item_refs: dict[int, list[str]] | None = None,
) -> dict[str, Any]:
    """One row of the documents table and its segments' rows (segment order) → a DoclingDocument as a
    JSON-able dict. `page_sizes`: {page_no: (width, height)} in points (pixels for images), where the caller
    knows them (the rows do not carry them); unknown pages get docling-core's default 0 x 0 size.
    `item_refs`, where given, is filled with each segment_index → the refs of the items made from it (a
    chunk's doc_items)."""
    b = _Builder(page_sizes or {})
    for seg in sorted(segments, key=lambda s: s.get("segment_index") or 0):
        before = {kind: len(items) for kind, items in b.doc.items()}
        _add_segment(b, seg)
        if item_refs is not None:
            refs = [f"#/{kind}/{i}" for kind, items in b.doc.items() for i in range(before[kind], len(items))]
            item_refs.setdefault(int(seg.get("segment_index") or 0), []).extend(refs)
    uri = document.get("source_uri") or ""
    parsed = urlparse(uri)
    # upload://name.pdf names its file in the netloc
    filename = (
        unquote(PurePosixPath(parsed.path).name or parsed.netloc) or document.get("doc_id") or "document"
    )
    origin = {
        "mimetype": document.get("mime_type") or "application/octet-stream",
        "binary_hash": _binary_hash(document.get("source_version")),
        "filename": filename,
    }
    if urlparse(uri).scheme:
        origin["uri"] = uri
    return {
        "schema_name": "DoclingDocument",
        "version": SCHEMA_VERSION,
        "name": PurePosixPath(filename).stem or filename,
        "origin": origin,
        "furniture": {
            "self_ref": "#/furniture",
            "children": [],
            "content_layer": "furniture",
            "name": "_root_",
            "label": "unspecified",
        },
        "body": b.body,
        **b.doc,
        "key_value_items": [],
        "form_items": [],
        "pages": dict(sorted(b.pages.items(), key=lambda kv: int(kv[0]))),
    }
