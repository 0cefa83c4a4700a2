"""Assembly: engine results → the segments/ and errors/ rows, and segments → one document per object."""

from __future__ import annotations

import difflib
import math
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from unitok.pipeline.core.records import STATUS_OK, clock
from unitok.pipeline.core.schemas import DOCUMENTS_SCHEMA, ERRORS_SCHEMA, SEGMENTS_SCHEMA, rows_to_table

MAX_DOC_WARNINGS = 50  # a document's warnings, the last of them "and N more" when there are more
_TIMED_KINDS = {"audio_window", "video_frames"}
# The segment columns a document is assembled from.
DOC_COLUMNS = [
    "doc_id", "source_uri", "source_version", "source_size", "modality", "mime_type", "markdown",
    "segment_index", "segment_kind", "page_number", "time_start_s", "time_end_s", "spans", "warnings",
    "engine", "language", "pipeline_version", "run_id", "parent_doc_id", "translation", "description",
    "enrichments",
]  # fmt: skip


def split_results(table: pa.Table) -> dict[str, pa.Table]:
    """Block splitter for the sink: converted rows to segments/, failures to errors/."""
    ok_mask = pc.equal(table["status"], STATUS_OK)
    segments = table.filter(ok_mask).select(SEGMENTS_SCHEMA.names).cast(SEGMENTS_SCHEMA)
    failed = table.filter(pc.invert(ok_mask))
    errors = pa.table(
        {
            "source_uri": failed["source_uri"],
            "source_version": failed["source_version"],
            "doc_id": failed["doc_id"],
            "segment_index": failed["segment_index"],
            "page_number": failed["page_number"],
            "stage": failed["stage"],
            "error_type": failed["error_type"],
            "message": failed["error_message"],
            "run_id": failed["run_id"],
            "at": failed["processed_at"],
        },
        schema=ERRORS_SCHEMA,
    )
    return {"segments": segments, "errors": errors}


def _failure_note(err: dict[str, Any]) -> str:
    where = f"page {err['page_number']}" if err.get("page_number") else f"segment {err['segment_index']}"
    return f"<!-- {where} not converted: {err['error_type']} -->"


def _norm(word: str) -> str:
    return "".join(ch for ch in word.lower() if ch.isalnum())


def overlap_words(prev: list[str], nxt: list[str], max_k: int = 8) -> int:
    """How many leading words of nxt repeat the trailing words of prev (the windows' overlap)."""
    for k in range(min(max_k, len(prev), len(nxt)), 0, -1):
        if [_norm(w) for w in prev[-k:]] == [_norm(w) for w in nxt[:k]]:
            return k
    return 0


def _frame_note(r: dict[str, Any]) -> str:
    """A keyframe segment's text as a quoted note with its time: what was on screen (OCR) or what the
    frames show (a model's description)."""
    start, end = r["time_start_s"] or 0.0, r["time_end_s"] or r["time_start_s"] or 0.0
    when = clock(start) if clock(start) == clock(end) else f"{clock(start)}–{clock(end)}"
    label = "On screen" if r["engine"] == "tesseract" else "Video"
    body = "\n".join(f"> {line}".rstrip() for line in (r["markdown"] or "").strip().splitlines())
    return f"> **[{when}] {label}:**\n{body}"


def _same_text(a: str, b: str) -> bool:
    """Two OCR readings of the same screen (a static shot sampled twice) differ by a few characters."""
    a, b = " ".join(a.split()), " ".join(b.split())
    return a == b or difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() > 0.9


def _drop_leading_words(spans: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The spans without their first k words (the words the previous window already had)."""
    out = []
    for span in spans:
        words = (span["text"] or "").split()
        if k >= len(words):
            k -= len(words)
            continue
        out.append({**span, "text": " ".join(words[k:])})
        k = 0
    return out


def media_timeline(rows: list[dict[str, Any]], heading_every_s: float) -> list[str]:
    """Audio windows and keyframe notes on one timeline. Words repeated across a window overlap are
    dropped; a keyframe note repeating the previous one is dropped; a timestamp heading opens every
    heading_every_s of the recording. Transcripts with phrase times (spans) let notes and headings fall
    between phrases; without them (Phi-4 transcripts) they fall between windows. A note goes before
    speech that starts in the same second."""
    # (time, order, window, text): order 0 = note, 1 = speech; window groups phrases into paragraphs.
    items: list[tuple[float, int, int, str]] = []
    prev_words: list[str] = []
    audio = sorted(
        (r for r in rows if r["segment_kind"] != "video_frames"), key=lambda r: r["time_start_s"] or 0
    )
    for r in audio:
        words = (r["markdown"] or "").split()
        k = overlap_words(prev_words, words)
        prev_words = words
        spans = r.get("spans")
        if spans and sum(len((sp["text"] or "").split()) for sp in spans) == len(words):
            items += [
                (sp["start_s"], 1, r["segment_index"], sp["text"]) for sp in _drop_leading_words(spans, k)
            ]
        elif words[k:]:
            items.append((r["time_start_s"] or 0.0, 1, r["segment_index"], " ".join(words[k:])))
    prev_note = ""
    for r in sorted(
        (r for r in rows if r["segment_kind"] == "video_frames"), key=lambda r: r["time_start_s"] or 0
    ):
        text = (r["markdown"] or "").strip()
        if text and not _same_text(text, prev_note):
            prev_note = text
            # Whole seconds: a first frame at 0.012 s (encoder delay) still opens the document.
            items.append((math.floor(r["time_start_s"] or 0.0), 0, r["segment_index"], _frame_note(r)))
    parts: list[str] = []
    paragraph: list[str] = []
    para_window, last_block = None, -1

    def flush() -> None:
        if paragraph:
            parts.append(" ".join(paragraph))
            paragraph.clear()

    for t, order, window, text in sorted(items, key=lambda it: (it[0], it[1])):
        block = int(t // heading_every_s)
        if block != last_block:
            flush()
            parts.append(f"### [{clock(block * heading_every_s)}]")
            last_block = block
        if order == 0:
            flush()
            parts.append(text)
            para_window = None
        else:
            if window != para_window:
                flush()
                para_window = window
            paragraph.append(text)
    flush()
    return parts


def translation(rows: list[dict[str, Any]]) -> str | None:
    """A recording's translated transcript: its windows' translations in time order, a paragraph each,
    without the words a window repeats from the one before (their overlap); None when no window has one."""
    windows = sorted(
        (r for r in rows if r["segment_kind"] == "audio_window" and r.get("translation") is not None),
        key=lambda r: r["time_start_s"] or 0,
    )
    if not windows:
        return None
    parts, prev = [], []
    for r in windows:
        words = (r["translation"] or "").split()
        k = overlap_words(prev, words)
        prev = words
        if words[k:]:
            parts.append(" ".join(words[k:]))
    return "\n\n".join(parts)


def description_block(r: dict[str, Any]) -> str:
    """A segment's generated description as text of its own, marked as generated and by what, so it is
    chunked and embedded but never read as the author's words."""
    made = next((e for e in r.get("enrichments") or [] if e["kind"] == "description"), None)
    by = f" ({made['prompt_id'] or made['engine']})" if made else ""
    body = "\n".join(f"> {line}".rstrip() for line in (r["description"] or "").strip().splitlines())
    return f"> **Generated description{by}:**\n{body}"


def doc_enrichments(rows: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """What made a document's enrichments, each distinct source once, in segment order."""
    seen: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        for e in r.get("enrichments") or []:
            seen.setdefault(tuple(sorted(e.items())), e)
    return list(seen.values()) or None


def main_language(rows: list[dict[str, Any]]) -> str | None:
    """The language most characters of the segments whose language is known are in (ties: the first)."""
    weight: dict[str, int] = {}
    for r in rows:
        if r.get("language"):
            weight[r["language"]] = weight.get(r["language"], 0) + len(r["markdown"] or "") + 1
    return max(weight, key=weight.__getitem__) if weight else None


def capped_warnings(warnings: dict[str, bool], most: int = MAX_DOC_WARNINGS) -> list[str]:
    """At most `most` warnings, in their order, the last saying how many more there were. The file's own
    warnings (a cap reached, frames skipped) are kept before those of single pages, which repeat."""
    if len(warnings) <= most:
        return list(warnings)
    whole = [w for w, of_file in warnings.items() if of_file][: most - 1]
    kept = set(whole + [w for w, of_file in warnings.items() if not of_file][: most - 1 - len(whole)])
    return [w for w in warnings if w in kept] + [f"and {len(warnings) - len(kept):,} more warnings"]


def assemble_document(
    group: pa.Table, failures: dict[str, list[dict[str, Any]]], heading_every_s: float = 300.0
) -> tuple[pa.Table, dict[int, tuple[int, int]]]:
    """One document row from all segments of one doc_id, in segment order, and where each segment's
    Markdown is in it (by segment_index; a recording's windows, merged into a timeline, have none).
    Segments that failed leave a marked gap (an HTML comment) where their text would be, so nothing
    disappears silently."""
    rows = sorted(group.to_pylist(), key=lambda r: r["segment_index"])
    first = rows[0]
    failed = failures.get(first["doc_id"], [])
    notes = [(e["segment_index"], _failure_note(e)) for e in failed if e["segment_index"] >= 0]
    offsets: dict[int, tuple[int, int]] = {}
    if any(r["segment_kind"] in _TIMED_KINDS for r in rows):
        # Failed windows have no time in errors/: their notes close the document.
        texts = media_timeline(rows, heading_every_s) + [t for _, t in sorted(notes)]
        markdown = "\n\n".join(t for t in texts if t.strip())
    else:
        # A generated description follows its segment's text as a piece of its own (no offsets: the
        # segment's char range stays its own text).
        described = [
            (r["segment_index"], 1, description_block(r))
            for r in rows
            if (r.get("description") or "").strip()
        ]
        parts = sorted(
            [(r["segment_index"], 0, r["markdown"] or "") for r in rows]
            + [(i, 0, t) for i, t in notes]
            + described,
            key=lambda p: (p[0], p[1]),
        )
        pieces, at = [], 0
        for index, generated, text in parts:
            if not text.strip():
                continue
            at += 2 if pieces else 0
            pieces.append(text)
            if not generated:
                offsets[index] = (at, at + len(text))
            at += len(text)
        markdown = "\n\n".join(pieces)
    warnings: dict[str, bool] = {}  # each distinct warning (in order): whether it concerns the whole file
    for r in rows:
        for w in r["warnings"] or []:
            label = f"page {r['page_number']}: {w}" if r["page_number"] else w
            warnings.setdefault(label, not r["page_number"])
    doc = {
        "doc_id": first["doc_id"],
        "source_uri": first["source_uri"],
        "source_version": first["source_version"],
        "source_size": first["source_size"],
        "modality": first["modality"],
        "mime_type": first["mime_type"],
        "markdown": markdown,
        "n_segments": len(rows),
        "n_failed_segments": len(failed),
        "engines": sorted({r["engine"] for r in rows if r["engine"]}),
        "language": main_language(rows),
        "warnings": capped_warnings(warnings),
        "pipeline_version": first["pipeline_version"],
        "run_id": first["run_id"],
        "processed_at": datetime.now(UTC),
        "parent_doc_id": first.get("parent_doc_id"),
        "translation": translation(rows),
        "enrichments": doc_enrichments(rows),
    }
    return rows_to_table([doc], DOCUMENTS_SCHEMA), offsets


def assemble_documents(
    segments: pa.Table, errors: list[dict[str, Any]], heading_every_s: float = 300.0
) -> tuple[pa.Table, pa.Table]:
    """(the documents of one object's segments, the segments with their char_start/char_end in their
    document). One document per doc_id (an e-mail's attachments are documents of their own), in the
    order of their first segments, so the listed object's own document comes first."""
    if not segments.num_rows:
        return DOCUMENTS_SCHEMA.empty_table(), segments
    ids = segments["doc_id"]
    order = list(dict.fromkeys(ids.to_pylist()))
    failures: dict[str, list[dict[str, Any]]] = {}
    for e in errors:
        # An attachment that gave no segment at all leaves its gap in the listed object's document.
        failures.setdefault(e["doc_id"] if e["doc_id"] in order else order[0], []).append(e)
    docs, starts, ends = [], [None] * segments.num_rows, [None] * segments.num_rows
    for doc_id in order:
        mask = pc.equal(ids, doc_id)
        group = segments.filter(mask).select(DOC_COLUMNS)
        doc, offsets = assemble_document(group, failures, heading_every_s)
        docs.append(doc)
        for row, index in zip(pc.indices_nonzero(mask).to_pylist(), group["segment_index"].to_pylist(),
                              strict=True):  # fmt: skip
            starts[row], ends[row] = offsets.get(index, (None, None))
    for name, values in (("char_start", starts), ("char_end", ends)):
        segments = segments.set_column(
            segments.schema.get_field_index(name), name, pa.array(values, pa.int32())
        )
    return pa.concat_tables(docs), segments
