"""Documents → chunks for embedding: structure-aware and token-bounded, each with its provenance.

The cutting (pipeline/stages/cuts.py) is at headings first, then blocks such as paragraphs, list items, table
rows and code blocks, then sentences, words, counting with a real Hugging Face tokenizer that encodes each
document once. What this module adds is the provenance: the heading path, the segments a chunk spans and so
its pages, slides or time range in a recording, character offsets into the document's Markdown, a table's
header repeated on the chunks that continue it, and ids that stay the same for the same document version and
settings."""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import ChunkingConfig
from unitok.pipeline.core.version import CHUNKER_VERSION
from unitok.pipeline.stages import cuts

# Tokenizers whose pieces never cross whitespace, and whose normalizer works character by character: a span's
# tokens are then the same alone as inside the whole text.
_WHITESPACE_BOUNDED = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
_CHAR_NORMALIZERS = {"NoneType", "BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"}
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


@dataclass
class Chunker:
    cfg: ChunkingConfig
    tokenizer: Any
    tokenizer_name: str

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
        return (
            f"{CHUNKER_VERSION}/{self.tokenizer_name}/{c.max_tokens}/{c.overlap_tokens}/"
            f"{int(c.prefix_headings)}"
        )

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def _counts(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts, add_special_tokens=False)]

    def _resolve(self, pieces: list[list[Any]], prefix_tokens: dict[str, int]) -> None:
        """Each piece's final text and count: its heading path first where that fits the budget; pieces
        not counted from the offsets are counted for real."""
        budget = self.cfg.max_tokens
        todo = []
        for piece in pieces:
            _, _, body, _, prefix, n = piece
            if n is None:
                todo.append(piece)
            elif prefix is not None and n + prefix_tokens[prefix] <= budget:
                piece[2], piece[5] = f"{prefix}\n\n{body}", n + prefix_tokens[prefix]
        bodies = [p[2] for p in todo]
        prefixed = [f"{p[4]}\n\n{p[2]}" if p[4] is not None else p[2] for p in todo]
        for piece, text, n in zip(todo, prefixed, self._counts(prefixed), strict=True):
            piece[2], piece[5] = text, n
        over = [(p, b) for p, b in zip(todo, bodies, strict=True) if p[4] is not None and p[5] > budget]
        for (piece, body), n in zip(over, self._counts([b for _, b in over]), strict=True):
            piece[2], piece[5] = body, n

    def chunks(self, doc: dict[str, Any], segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The document's chunk rows, in order."""
        md = doc["markdown"] or ""
        if not md.strip():
            return []
        # Whole-text offsets count a span exactly for such a tokenizer (the default's: BERT's WordPiece)
        # where the span was not cut inside a word; any other is counted for real.
        exact = (
            type(self.tokenizer.pre_tokenizer).__name__ in _WHITESPACE_BOUNDED
            and type(self.tokenizer.normalizer).__name__ in _CHAR_NORMALIZERS
        )
        encode = cuts.encode_by_word if exact else cuts.encode_offsets
        found = cuts.Cuts(md, *encode(self.tokenizer, md))
        headings = found.headings
        heading_at = [h[0] for h in headings]
        heading_paths = _heading_paths(headings)

        def path_at(position: int) -> list[str]:  # a chunk that starts with a heading is under it
            i = bisect.bisect_right(heading_at, position) - 1
            return heading_paths[i] if i >= 0 else []

        # Room for what a chunk may carry beyond its own text: a continued table's header, the heading path.
        # Each may take at most half the budget; a header or path longer than that is not repeated.
        limit = self.cfg.max_tokens // 2
        found_tables = _tables(md)
        header_tokens = dict(zip(found_tables, self._counts([t[2] for t in found_tables]), strict=True))
        tables = [t for t in found_tables if header_tokens[t] + 1 <= limit]
        table_at = [t[0] for t in tables]
        reserve = max((header_tokens[t] + 1 for t in tables), default=0)
        prefixes = {" > ".join(p): None for p in heading_paths} if self.cfg.prefix_headings else {}
        prefix_tokens = dict(zip(prefixes, self._counts(list(prefixes)), strict=True))
        reserve += min(max((n + 2 for n in prefix_tokens.values()), default=0), limit)
        capacity = max(self.cfg.max_tokens - reserve, 8)
        places = _places(md, segments)
        budget = self.cfg.max_tokens
        while True:
            pieces = []
            for start, end in found.spans(capacity, min(self.cfg.overlap_tokens, capacity - 1)):
                text = md[start:end]
                i = bisect.bisect_left(table_at, start) - 1  # the table the chunk starts inside, if any
                table = tables[i] if i >= 0 and start < tables[i][1] else None
                header = table[2] if table and not text.startswith(table[2]) else None
                body = f"{header}\n{text}" if header else text
                path = path_at(start)
                prefix = " > ".join(path) if self.cfg.prefix_headings and path else None
                n = None
                if exact and cuts.at_whitespace(md, start, end):  # "\n" after a header or path is no token
                    n = found.count(start, end) + (header_tokens[table] if header else 0)
                pieces.append([start, end, body, path, prefix, n])
            self._resolve(pieces, prefix_tokens)
            over = max((p[5] - budget for p in pieces), default=0)
            if over <= 0 or capacity <= 8:
                break
            capacity = max(capacity - over, 8)  # a tokenizer whose pieces cross whitespace counted more
        pieces = [(a, b, body, path, n) for a, b, body, path, _, n in pieces]
        rows = []
        place_starts = [p["start"] for p in places]
        place_ends = [p["end"] for p in places]  # places are found in order and never overlap
        for index, (start, end, body, path, n_tokens) in enumerate(pieces):
            spanned = places[bisect.bisect_right(place_ends, start) : bisect.bisect_left(place_starts, end)]
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


def _heading_paths(headings: list[tuple[int, int, str]]) -> list[list[str]]:
    """The path under each heading: the heading and, before it, each shallower heading in force."""
    stack: list[tuple[int, str]] = []
    out = []
    for _, depth, text in headings:
        while stack and stack[-1][0] >= depth:
            stack.pop()
        stack.append((depth, text))
        out.append([t for _, t in stack])
    return out


def _tables(md: str) -> list[tuple[int, int, str]]:
    """(start, end, header lines) of each Markdown table: its first row and the rule under it."""
    # Only a line that begins with "|" can be a row or a rule: (start, end) of each such line, in order.
    starts = [0] if md.startswith("|") else []
    at = md.find("\n|")
    while at >= 0:
        starts.append(at + 1)
        at = md.find("\n|", at + 1)
    lines = []
    for start in starts:
        end = md.find("\n", start)
        lines.append((start, len(md) if end < 0 else end))

    def next_line_is_row(k: int) -> bool:  # line k follows line k - 1 directly, and is a row
        return lines[k][0] == lines[k - 1][1] + 1 and bool(_TABLE_ROW.match(md[slice(*lines[k])]))

    out = []
    k = 0
    while k < len(lines) - 1:
        (a, b), (c, d) = lines[k], lines[k + 1]
        if c == b + 1 and _TABLE_ROW.match(md[a:b]) and _TABLE_RULE.match(md[c:d]):
            j = k + 2
            while j < len(lines) and next_line_is_row(j):
                j += 1
            out.append((a, lines[j - 1][1], md[a:d]))
            k = j
        else:
            k += 1
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
