"""Where a Markdown document may be cut into chunks, and how strongly, and the greedy packing that uses it.

Cut points have a strength: before a heading (by its depth: `#` strongest), between blocks (a blank line,
after a heading, around a fenced code block), between lines (table rows, list items, lines of code), between
sentences, between words and, for a word longer than a chunk, between tokens. A chunk starts at the cursor
and takes as many units as fit at the strongest level whose first unit fits: a section that fits is one
chunk, a table is cut only between rows, a paragraph only between sentences unless one sentence is too long.

The document is tokenized once, with offsets; the tokens a span holds are those wholly inside it, which for a
WordPiece tokenizer (the default's) is exactly what encoding the span alone gives, since its pieces never
cross whitespace and every cut but a token cut lies at whitespace. The chunk stage counts for real what the
offsets cannot count exactly (another tokenizer, a cut inside a word) and packs again with less room where
that went over the budget."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from functools import cache
from itertools import chain
from typing import Any

BLOCK, LINE, SENTENCE, WORD, TOKEN = 3, 2, 1, 0, -1
_STRUCTURE = [10 - depth for depth in range(1, 7)] + [BLOCK, LINE]  # coarse to fine
_FINE = [SENTENCE, WORD, TOKEN]

HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# A sentence ends at . ! ? (and closing quotes or brackets) followed by space; CJK full stops need none.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+|[\u3002\uff01\uff1f]+\s*")
_SPACE = re.compile(r"\s+")


def _lines(md: str) -> Iterator[tuple[int, int, str, str]]:
    """(offset, heading depth or 0, heading text, kind) of each line; kind: 'blank', 'open' or 'close' (a
    code fence), 'code' (inside a fence, blank lines too) or 'text'."""
    offset = 0
    fence = ""
    for line in md.split("\n"):
        m = _FENCE.match(line)
        if fence:
            closes = m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence)
            if closes and not line.strip(" `~"):
                fence = ""
                yield offset, 0, "", "close"
            else:
                yield offset, 0, "", "code"
        elif m:
            fence = m.group(1)
            yield offset, 0, "", "open"
        elif not line.strip():
            yield offset, 0, "", "blank"
        else:
            h = HEADING.match(line)
            yield offset, (len(h.group(1)) if h else 0), (h.group(2) if h else ""), "text"
        offset += len(line) + 1


class Cuts:
    """The cut points of one document and token counts of its spans, from one encoding of the whole text."""

    def __init__(self, md: str, starts: list[int], ends: list[int]):
        self.md = md
        self.starts, self.ends = starts, ends
        self.headings: list[tuple[int, int, str]] = []  # (offset, depth, text) outside fenced code
        strength: list[tuple[int, int]] = []
        previous, depth_before, blank_before = "", 0, False
        for offset, depth, title, kind in _lines(md):
            if depth:
                self.headings.append((offset, depth, title))
            if kind == "blank":
                blank_before = True
                continue
            if offset:
                if depth:
                    s = 10 - depth
                elif kind in ("code", "close"):
                    s = LINE
                elif kind == "open" or blank_before or depth_before or previous == "close":
                    s = BLOCK
                else:
                    s = LINE
                strength.append((offset, s))
            previous, depth_before, blank_before = kind, depth, False
        # Sorted offsets at each structural level: every cut at least that strong, and the end of the text.
        self.levels = {level: [o for o, s in strength if s >= level] + [len(md)] for level in _STRUCTURE}
        self._fine: dict[tuple[int, int], list[int]] = {}

    def count(self, a: int, b: int) -> int:
        """The tokens wholly inside md[a:b]."""
        return max(bisect.bisect_right(self.ends, b) - bisect.bisect_left(self.starts, a), 0)

    def _between(self, level: int, a: int, b: int) -> list[int]:
        """The cuts of a level strictly between a and b."""
        if level in self.levels:
            ps = self.levels[level]
            return ps[bisect.bisect_right(ps, a) : bisect.bisect_left(ps, b)]
        if level == TOKEN:
            return self.starts[bisect.bisect_right(self.starts, a) : bisect.bisect_left(self.starts, b)]
        pattern = _SENTENCE_END if level == SENTENCE else _SPACE
        return [p for p in (m.end() for m in pattern.finditer(self.md, a, b)) if p < b]

    def _candidates(self, level: int, cursor: int, limit: int) -> tuple[list[int], int, int]:
        """(positions, lo, hi): positions[lo:hi] are the cuts of this level after cursor, up to and
        including limit (which is always a cut of every level finer than the one it came from)."""
        if level in self.levels:
            ps = self.levels[level]
        else:
            key = (level, limit)
            if key not in self._fine:  # computed once for the span, reused as the cursor walks through it
                self._fine[key] = self._between(level, cursor, limit) + [limit]
            ps = self._fine[key]
        lo = bisect.bisect_right(ps, cursor)
        hi = bisect.bisect_right(ps, limit)
        return ps, lo, hi

    def _fit(self, cursor: int, capacity: int) -> tuple[int, int]:
        """(end, level) of the chunk that starts at cursor."""
        limit = len(self.md)
        for level in _STRUCTURE + _FINE:
            ps, lo, hi = self._candidates(level, cursor, limit)
            if lo >= hi:
                continue
            if self.count(cursor, ps[lo]) <= capacity:
                k = bisect.bisect_right(ps, capacity, lo, hi, key=lambda p: self.count(cursor, p)) - 1
                return ps[k], level
            limit = ps[lo]  # finer levels search only inside the first unit, which is already too big
        return limit, TOKEN  # one token over the budget: it is still a chunk

    def _overlap_start(self, start: int, end: int, level: int, overlap: int) -> int | None:
        """The earliest cut after start, at the chunk's level or finer, from which to end holds at most
        `overlap` tokens."""
        for lvl in [lv for lv in _STRUCTURE + _FINE if lv <= level and lv > TOKEN]:
            found = self._between(lvl, start, end)
            k = bisect.bisect_left(found, True, key=lambda p: self.count(p, end) <= overlap)
            if k < len(found):
                return found[k]
        return None

    def spans(self, capacity: int, overlap: int = 0) -> list[tuple[int, int]]:
        """(start, end) of each chunk, trimmed of surrounding whitespace, in order."""
        md = self.md
        out: list[tuple[int, int]] = []
        cursor = _skip_space(md, 0)
        while cursor < len(md):
            end, level = self._fit(cursor, capacity)
            trimmed = end
            while trimmed > cursor and md[trimmed - 1].isspace():
                trimmed -= 1
            if out and trimmed <= out[-1][1]:  # an overlap that left no room for anything new
                cursor = _skip_space(md, out[-1][1])
                continue
            out.append((cursor, trimmed))
            following = self._overlap_start(cursor, trimmed, level, overlap) if overlap else None
            cursor = _skip_space(md, following if following is not None else end)
        return out


def at_whitespace(md: str, start: int, end: int) -> bool:
    """Whether a span begins and ends at whitespace (or the text's ends): not cut inside a word."""
    return (start == 0 or md[start - 1].isspace()) and (end == len(md) or md[end].isspace())


def _skip_space(md: str, i: int) -> int:
    m = _SPACE.match(md, i)
    return m.end() if m else i


def encode_offsets(tokenizer: Any, md: str, piece: int = 1 << 16) -> tuple[list[int], list[int]]:
    """Token start and end offsets of the whole text. Encoded in pieces of about `piece` characters cut
    after a newline, as one batch (the tokenizer's threads share it out); no token spans a newline."""
    bounds = [0]
    while len(md) - bounds[-1] > piece:
        cut = md.find("\n", bounds[-1] + piece)
        if cut < 0:
            break
        bounds.append(cut + 1)
    bounds.append(len(md))
    texts = [md[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    starts: list[int] = []
    ends: list[int] = []
    for base, enc in zip(bounds, tokenizer.encode_batch(texts, add_special_tokens=False), strict=False):
        starts.extend(base + a for a, _ in enc.offsets)
        ends.extend(base + b for _, b in enc.offsets)
    return starts, ends


# What BERT's normalizer takes for whitespace (\t, \n, \r and the space separators): every tokenizer that
# counts from the offsets (chunk.py) cuts its pieces there at least.
_SPACES = " \t\n\r\u00a0\u1680\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))
_GAP = re.compile(f"[{re.escape(_SPACES)}]+")


@cache
def _space_table() -> Any:
    """Whether each code point is in _SPACES (1 MB, built on first use)."""
    import numpy as np

    table = np.zeros(0x110000, dtype=bool)
    table[[ord(c) for c in _SPACES]] = True
    return table


@cache
def _ascii_space_bytes() -> Any:
    """Whether each byte value is an ASCII character of _SPACES (a byte of a multi-byte character is not,
    whatever its value)."""
    import numpy as np

    table = np.zeros(256, dtype=bool)
    table[[ord(c) for c in _SPACES if c.isascii()]] = True
    return table


def _edges(ink: Any) -> Any:
    """Where each run of True in a boolean array starts and ends: [start0, end0, start1, end1, ...]."""
    import numpy as np

    edges = np.flatnonzero(ink[1:] != ink[:-1]) + 1
    return np.concatenate(
        ([0] if ink.size and ink[0] else [], edges, [ink.size] if ink.size and ink[-1] else [])
    ).astype(np.int64)


def _words(md: str, codes: Any, ink: Any, n: int) -> Any:
    """md's n words (the runs of characters outside _SPACES), in order, as an Arrow string array."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (codes[~ink] >= 0x80).any():
        # Every gap is ASCII, so in the UTF-8 bytes too the gaps are exactly the ASCII space bytes (a
        # multi-byte character has none): the words are the other bytes, one after another.
        data = np.frombuffer(md.encode(), dtype=np.uint8)
        keep = ~_ascii_space_bytes()[data]
        edges = _edges(keep)
        assert edges.size == 2 * n  # the same words as the code points'
        offsets = np.concatenate(([0], np.cumsum(edges[1::2] - edges[0::2])))
        return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data[keep]))
    # The split leaves an empty string where the text begins or ends with a gap.
    pieces = pc.split_pattern_regex(pa.array([md]), pattern=_GAP.pattern)[0].values
    return pieces.slice(1 if not ink[0] else 0, n)


def word_offsets(tokenizer: Any, md: str, batch: int = 4096) -> tuple[Any, Any]:
    """`encode_by_word`'s offsets as two int64 numpy arrays."""
    import numpy as np

    # A lone surrogate raises here (UnicodeEncodeError): no tokenizer takes it.
    codes = np.frombuffer(md.encode("utf-32-le"), dtype=np.uint32)
    ink = ~_space_table()[codes]
    edges = _edges(ink)
    word_at = edges[0::2]
    if not word_at.size:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    encoded = _words(md, codes, ink, word_at.size).dictionary_encode()
    distinct = encoded.dictionary.to_pylist()  # in order of first occurrence
    ids = encoded.indices.to_numpy().astype(np.int64)
    counts = np.zeros(len(distinct), dtype=np.int64)
    rel_starts, rel_ends = [], []
    groups = [distinct[i : i + batch] for i in range(0, len(distinct), batch)]
    texts = [" ".join(group) for group in groups]
    k = 0
    for group, enc in zip(groups, tokenizer.encode_batch(texts, add_special_tokens=False), strict=True):
        pairs = enc.offsets  # a list of tuples, built on each access
        offsets = np.fromiter(chain.from_iterable(pairs), dtype=np.int64, count=2 * len(pairs)).reshape(-1, 2)
        # The words are one space apart: word j of the group spans [at_j, at_j + len_j).
        group_len = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        at = np.concatenate(([0], np.cumsum(group_len + 1)[:-1]))
        owner = np.searchsorted(at + group_len, offsets[:, 1], side="left")  # the word each token ends in
        counts[k : k + len(group)] = np.bincount(owner, minlength=len(group))
        rel_starts.append(offsets[:, 0] - at[owner])
        rel_ends.append(offsets[:, 1] - at[owner])
        k += len(group)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))  # each distinct word's first token
    n = counts[ids]  # tokens at each occurrence
    # Token j of the text is token j - (its occurrence's first token) of the occurrence's distinct word.
    gather = np.arange(int(n.sum())) + np.repeat(first[ids] - (np.cumsum(n) - n), n)
    base = np.repeat(word_at, n)
    return base + np.concatenate(rel_starts)[gather], base + np.concatenate(rel_ends)[gather]


def encode_by_word(tokenizer: Any, md: str, batch: int = 4096) -> tuple[list[int], list[int]]:
    """The same offsets as `encode_offsets`, for a tokenizer whose pieces never cross whitespace: each
    distinct word is encoded once (DA-619p has 306 k words, 34 k of them distinct) and its tokens are
    placed at each of its occurrences. No Python loop over the words: numpy finds where they start,
    pyarrow numbers them (a loop cost 0.6 s on DA-619p; findall and a dict 0.25 s)."""
    try:
        starts, ends = word_offsets(tokenizer, md, batch)
    except UnicodeEncodeError:  # a lone surrogate, which no tokenizer takes: its error, as before
        return encode_offsets(tokenizer, md)
    return starts.tolist(), ends.tolist()
