"""Documents → chunks for embedding: structure-aware and token-bounded, each with its provenance.

The cutting is semantic-text-splitter's Markdown splitter (headings first, then blocks such as paragraphs,
list items, table rows and code blocks, then sentences, words), counting with a real Hugging Face tokenizer.
What this module adds is the provenance: the heading path, the segments a chunk spans and so its pages,
slides or time range in a recording, character offsets into the document's Markdown, a table's header
repeated on the chunks that continue it, and ids that stay the same for the same document version and
settings."""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import ChunkingConfig

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
_SECTION = re.compile(r"^#{1,2}\s", re.M)
_TABLE_ROW = re.compile(r"^\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+\s*$")


def default_tokenizer_path() -> Path:
    """all-MiniLM-L6-v2's tokenizer.json (the default embedding model's), shipped with unitok: counting
    tokens needs only `tokenizers`, not the model's package or torch (tokenizer-data/NOTICE)."""
    return Path(__file__).parent / "tokenizer-data" / "all-MiniLM-L6-v2.tokenizer.json.gz"


@lru_cache(maxsize=4)
def _load_tokenizer(path: str) -> Any:
    import gzip

    from tokenizers import Tokenizer

    file = Path(path)
    if file.is_dir():
        file = file / "tokenizer.json"
    if file.suffix == ".gz":
        tokenizer = Tokenizer.from_str(gzip.decompress(file.read_bytes()).decode())
    else:
        tokenizer = Tokenizer.from_file(str(file))
    tokenizer.no_padding()  # packaged tokenizers often pad to 128: counts must be of the text itself
    tokenizer.no_truncation()
    return tokenizer


_pool_started_in: int | None = None  # the process that started the splitter's Rust thread pool


def _split_sections(splitter: Any, sections: list[str]) -> list[list[tuple[int, str]]]:
    """The sections' chunks, in parallel on the splitter's thread pool; one by one (the same chunks) in a
    process forked after an ancestor started that pool, whose threads the fork did not copy: there the
    pool would wait for them for ever (a local-driver worker forked from a process that chunked)."""
    global _pool_started_in
    if _pool_started_in not in (None, os.getpid()):
        return [splitter.chunk_indices(section) for section in sections]
    _pool_started_in = os.getpid()
    return splitter.chunk_all_indices(sections)


@dataclass
class Chunker:
    cfg: ChunkingConfig
    tokenizer: Any
    tokenizer_name: str
    # Splitters by capacity: building one copies the whole tokenizer into the splitter (measured: 40% of
    # a worker's time on one-page documents when built per document), and a job needs only a few.
    _splitters: dict[int, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_config(cls, cfg: ChunkingConfig) -> Chunker:
        path = Path(cfg.tokenizer) if cfg.tokenizer else default_tokenizer_path()
        name = (
            "all-MiniLM-L6-v2" if not cfg.tokenizer else (path.parent.name if path.is_file() else path.name)
        )
        return cls(cfg, _load_tokenizer(str(path)), name)

    @property
    def settings(self) -> str:
        c = self.cfg
        return f"{self.tokenizer_name}/{c.max_tokens}/{c.overlap_tokens}/{int(c.prefix_headings)}"

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def _splitter(self, capacity: int) -> Any:
        from semantic_text_splitter import MarkdownSplitter

        if capacity not in self._splitters:
            overlap = min(self.cfg.overlap_tokens, max(capacity - 1, 0))
            self._splitters[capacity] = MarkdownSplitter.from_huggingface_tokenizer(
                self.tokenizer, capacity, overlap
            )
        return self._splitters[capacity]

    def chunks(self, doc: dict[str, Any], segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The document's chunk rows, in order."""
        md = doc["markdown"] or ""
        if not md.strip():
            return []
        headings = [(m.start(), len(m.group(1)), m.group(2)) for m in _HEADING.finditer(md)]
        # Room for what a chunk may carry beyond its own text: a continued table's header, the heading path.
        # Each may take at most half the budget; a header or path longer than that is not repeated.
        limit = self.cfg.max_tokens // 2
        header_tokens = {t: self.count(t[2]) + 1 for t in _tables(md)}
        tables = [t for t, n in header_tokens.items() if n <= limit]
        reserve = max((header_tokens[t] for t in tables), default=0)
        if self.cfg.prefix_headings:
            paths = [self.count(" > ".join(_path(headings, p))) + 2 for p, _, _ in headings]
            reserve += min(max(paths, default=0), limit)
        capacity = max(self.cfg.max_tokens - reserve, 8)
        places = _places(md, segments)
        pieces = []
        # Sections at top-level headings (# and ##), which the splitter never puts in one chunk anyway, are
        # split in parallel (the splitter's Rust side): its search grows faster than the text, so sections
        # are also cheaper one by one (DA-619p: 7.0 s whole, 2.3 s in sections, the same 1,198 chunks).
        cuts = [0] + [m.start() for m in _SECTION.finditer(md) if m.start() > 0] + [len(md)]
        sections = [md[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]
        found = _split_sections(self._splitter(capacity), sections)
        spans = [
            (cut + start, text) for cut, parts in zip(cuts, found, strict=False) for start, text in parts
        ]
        for start, text in spans:
            end = start + len(text)
            header = next((h for a, b, h in tables if a < start < b and not text.startswith(h)), None)
            body = f"{header}\n{text}" if header else text
            path = _path(headings, start)
            if self.cfg.prefix_headings and path:
                prefixed = " > ".join(path) + "\n\n" + body
                body = prefixed if self.count(prefixed) <= self.cfg.max_tokens else body
            pieces.append((start, end, body, path))
        counts = [
            len(e.ids) for e in self.tokenizer.encode_batch([p[2] for p in pieces], add_special_tokens=False)
        ]
        rows = []
        for index, ((start, end, body, path), n_tokens) in enumerate(zip(pieces, counts, strict=True)):
            spanned = [p for p in places if p["start"] < end and p["end"] > start]
            segs = sorted({p["segment_index"] for p in spanned})
            pages = sorted({p["page_number"] for p in spanned if p["page_number"] is not None})
            times = [(p["time_start_s"], p["time_end_s"]) for p in spanned if p["time_start_s"] is not None]
            rows.append(
                {
                    "chunk_id": hashlib.sha256(
                        f"{doc['doc_id']}|{self.settings}|{index}|{start}|{end}".encode()
                    ).hexdigest()[:32],
                    "doc_id": doc["doc_id"],
                    "source_uri": doc["source_uri"],
                    "source_version": doc["source_version"],
                    "modality": doc["modality"],
                    "chunk_index": index,
                    "text": body,
                    "heading_path": path,
                    "n_tokens": n_tokens,
                    "tokenizer": self.tokenizer_name,
                    "segment_indexes": segs,
                    "page_numbers": pages,
                    "time_start_s": min(t[0] for t in times) if times else None,
                    "time_end_s": max(t[1] for t in times) if times else None,
                    "char_start": start,
                    "char_end": end,
                    "pipeline_version": doc["pipeline_version"],
                    "run_id": doc["run_id"],
                }
            )
        return rows


def _path(headings: list[tuple[int, int, str]], position: int) -> list[str]:
    """The headings in force at a position (a chunk that starts with a heading is under it): walking back
    from the last heading at or before it, each shallower heading is an ancestor."""
    i = bisect.bisect_right(headings, (position, 7, "")) - 1
    path: list[str] = []
    level = 7
    while i >= 0 and level > 1:
        _, lvl, text = headings[i]
        if lvl < level:
            path.append(text)
            level = lvl
        i -= 1
    return path[::-1]


def _tables(md: str) -> list[tuple[int, int, str]]:
    """(start, end, header lines) of each Markdown table: its first row and the rule under it."""
    out = []
    lines = md.split("\n")
    pos = 0
    offsets = []
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    i = 0
    while i < len(lines) - 1:
        if _TABLE_ROW.match(lines[i]) and _TABLE_RULE.match(lines[i + 1]):
            j = i + 2
            while j < len(lines) and _TABLE_ROW.match(lines[j]):
                j += 1
            end = offsets[j - 1] + len(lines[j - 1])
            out.append((offsets[i], end, lines[i] + "\n" + lines[i + 1]))
            i = j
        else:
            i += 1
    return out


def _places(md: str, segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where each segment's text, and each timed phrase of a transcript, sits in the document's Markdown:
    found in order, by the first words that survived assembly (a window's overlap may have been cut)."""
    places: list[dict[str, Any]] = []
    cursor = 0
    for seg in sorted(segments, key=lambda s: s["segment_index"]):
        text = (seg.get("markdown") or "").strip()
        if not text:
            continue
        phrases = seg.get("spans") or []
        if phrases:
            for ph in phrases:
                words = (ph.get("text") or "").strip()
                at = md.find(words, cursor) if words else -1
                if at < 0:
                    continue
                places.append(_place(seg, at, at + len(words), ph["start_s"], ph["end_s"]))
                cursor = at + len(words)
            continue
        at, length = _find(md, text, cursor)
        if at < 0:
            continue
        places.append(_place(seg, at, at + length, seg.get("time_start_s"), seg.get("time_end_s")))
        cursor = at + length
    return places


def _find(md: str, text: str, cursor: int) -> tuple[int, int]:
    at = md.find(text, cursor)
    if at >= 0:
        return at, len(text)
    for start in (0, len(text) // 4, len(text) // 2):  # an anchor: the first words that are still there
        anchor = text[start : start + 60]
        found = md.find(anchor, cursor) if anchor.strip() else -1
        if found >= 0:
            return found, len(text) - start
    return -1, 0


def _place(seg: dict[str, Any], start: int, end: int, t0: float | None, t1: float | None) -> dict[str, Any]:
    return {"segment_index": seg["segment_index"], "page_number": seg.get("page_number"), "start": start,
            "end": end, "time_start_s": t0, "time_end_s": t1}  # fmt: skip
