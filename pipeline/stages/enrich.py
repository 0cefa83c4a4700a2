"""Enrichments: what a model adds beside a segment's conversion (the `enrich` section), as plain functions
every driver calls through the engine stage (stages.convert), and an incremental run calls alone on the
segments of objects already converted (stages.per_object, action enrich).

- translation: an audio window's speech in `enrich.audio.translate_to` (Whisper's translate task on the
  cpu engine, into English; Phi-4's `phi4.audio.translate.v1` on GPUs);
- description: a picture's, figure's or chart's description (`phi4.image.describe.v1`, Phi-4 only).

They go in columns of their own (`translation`, `description`), never into the transcript or the page's
Markdown, and each row records what made them (`enrichments`: kind, engine, model, prompt id). An
enrichment that fails leaves its column null and says why in the row's warnings; the conversion stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
from unitok.actors.contract import EngineOutput
from unitok.actors.routing import PHI4, VLLM, WHISPER
from unitok.pipeline.core.records import CONTENT_MIXED, STATUS_OK, Segment
from unitok.pipeline.core.schemas import DOCUMENTS_SCHEMA, rows_to_table

TRANSLATION, SUMMARY, DESCRIPTION = "translation", "summary", "description"
# Segments whose pixels hold a picture, figure or chart of their own: standalone images (and their
# frames), slides with pictures or charts, and the pictures that formats extract from pages and office
# documents as segments of these kinds.
PICTURE_KINDS = frozenset({"image", "picture", "figure", "chart"})


class _Engines(Protocol):
    def get(self, name: str) -> Any: ...


@dataclass(frozen=True)
class EnrichOptions:
    """The `enrich` section as plain values (registry.engine_options carries them to every replica)."""

    engine: str = "cpu"
    translate_to: str | None = None
    summary: bool = False
    describe: bool = False

    @classmethod
    def of(cls, options: dict[str, Any] | None) -> EnrichOptions:
        return cls(**(options or {}))

    @property
    def any(self) -> bool:
        return bool(self.translate_to or self.summary or self.describe)

    @property
    def model(self) -> str:
        """The engine that makes this job's enrichments: Phi-4 where the job runs it, else Whisper (the cpu
        engine translates speech, and makes nothing else: stages.preflight refuses the rest)."""
        return {"phi4": PHI4, "vllm": VLLM}.get(self.engine, WHISPER)


# Segments that may hold pictures of their own (Segment.pictures_png): PDF pages, Word sections, sheets.
PICTURE_HOLDERS = frozenset({"page", "section", "sheet"})


def describable(seg: Segment) -> bool:
    if seg.pictures_png:
        return True
    if not seg.images():
        return False
    return seg.segment_kind in PICTURE_KINDS or (seg.segment_kind == "slide" and seg.content == CONTENT_MIXED)


def may_enrich(segment_kind: str, opts: EnrichOptions) -> bool:
    """Whether a stored segment of this kind may get an enrichment under these options (its pixels,
    read again, decide whether a slide, a page or a section has a picture)."""
    if segment_kind == "audio_window":
        return bool(opts.translate_to or opts.summary)
    return opts.describe and (segment_kind in PICTURE_KINDS | PICTURE_HOLDERS or segment_kind == "slide")


def _pictures(seg: Segment) -> list[Segment]:
    """What a segment's description describes, one picture each: the pictures inside a page or a
    section, else the segment's own image (an image, a slide)."""
    if not seg.pictures_png:
        return [seg]
    template = {**seg.to_row(), "frames_png": [], "pictures_png": [], "segment_kind": "picture"}
    return [Segment(**{**template, "image_png": png}) for png in seg.pictures_png]


def _described(engine: Any, segs: list[Segment]) -> list[EngineOutput]:
    """Each segment's description: one per picture it holds, in order, as paragraphs of one text."""
    pictures = [_pictures(seg) for seg in segs]
    outs = engine.describe([p for group in pictures for p in group])
    joined, at = [], 0
    for group in pictures:
        mine, at = outs[at : at + len(group)], at + len(group)
        if len(mine) == 1:
            joined.append(mine[0])
            continue
        joined.append(
            EngineOutput(
                "\n\n".join(o.markdown.strip() for o in mine),
                mine[0].model_id,
                [w for o in mine for w in o.warnings],
                prompt_id=mine[0].prompt_id,
            )
        )
    return joined


def wanted(seg: Segment, opts: EnrichOptions) -> set[str]:
    """The enrichments this segment gets under these options."""
    kinds: set[str] = set()
    if seg.status != STATUS_OK:
        return kinds
    if opts.translate_to and seg.segment_kind == "audio_window" and seg.audio_f32:
        kinds.add(TRANSLATION)
    if opts.describe and describable(seg):
        kinds.add(DESCRIPTION)
    return kinds


def provenance(kind: str, engine: str, out: EngineOutput | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "engine": engine,
        "model_id": out.model_id if out else None,
        "prompt_id": out.prompt_id if out else None,
    }


def _record(row: dict[str, Any], kind: str, text: str, source: dict[str, Any]) -> None:
    row[kind] = text
    row["enrichments"] = [e for e in row.get("enrichments") or [] if e["kind"] != kind] + [source]


def _each(
    call: Callable[[list[Segment]], list[EngineOutput]], segs: list[Segment]
) -> list[EngineOutput | BaseException]:
    """One call for the batch; a batch that fails is retried one segment at a time, to pin the failure
    on its segment (as the engine stage does)."""
    try:
        outs = call(segs)
        if len(outs) != len(segs):
            raise RuntimeError(f"{len(outs)} outputs for {len(segs)} segments")
        return list(outs)
    except Exception:  # noqa: BLE001
        done: list[EngineOutput | BaseException] = []
        for seg in segs:
            try:
                done.append(call([seg])[0])
            except Exception as e:  # noqa: BLE001 - that segment's enrichment fails, not its conversion
                done.append(e)
        return done


def enrich_rows(
    segments: list[Segment], rows: list[dict[str, Any]], engines: _Engines, opts: EnrichOptions
) -> None:
    """Add this job's enrichments to the result rows of these segments (rows[i] is segments[i]'s, which
    still carry their samples and pixels). Rows that failed conversion get none."""
    if not opts.any:
        return
    want = [
        wanted(seg, opts) if row.get("status") == STATUS_OK else set()
        for seg, row in zip(segments, rows, strict=True)
    ]
    target = opts.translate_to
    if target:
        todo = []
        for i, kinds in enumerate(want):
            if TRANSLATION not in kinds:
                continue
            row = rows[i]
            if row.get("language") == target or not (row.get("markdown") or "").strip():
                # Already in the target language, or nothing said: the transcript is its own translation.
                _record(row, TRANSLATION, row.get("markdown") or "", provenance(TRANSLATION, "none", None))
            else:
                todo.append(i)
        if todo:

            def translate(engine: Any, segs: list[Segment], idx: list[int]) -> list[EngineOutput]:
                return engine.translate(segs, target, [rows[i].get("language") for i in idx])

            _run(engines, opts.model, TRANSLATION, segments, rows, todo, translate)
    if opts.describe:
        todo = [i for i, kinds in enumerate(want) if DESCRIPTION in kinds]
        if todo:
            _run(engines, opts.model, DESCRIPTION, segments, rows, todo,
                 lambda engine, segs, idx: _described(engine, segs))  # fmt: skip


def _run(
    engines: _Engines,
    name: str,
    kind: str,
    segments: list[Segment],
    rows: list[dict[str, Any]],
    todo: list[int],
    call: Callable[[Any, list[Segment], list[int]], list[EngineOutput]],
) -> None:
    engine = engines.get(name)
    by_segment = {id(segments[i]): i for i in todo}

    def on(segs: list[Segment]) -> list[EngineOutput]:
        return call(engine, segs, [by_segment[id(s)] for s in segs])

    for i, out in zip(todo, _each(on, [segments[i] for i in todo]), strict=True):
        row = rows[i]
        if isinstance(out, BaseException):
            row["warnings"] = list(row.get("warnings") or []) + [
                f"{kind} failed: {type(out).__name__}: {str(out).splitlines()[0] if str(out) else ''}".rstrip(
                    ": "
                )
            ]
            continue
        _record(row, kind, out.markdown, provenance(kind, engine.name, out))
        row["warnings"] = list(row.get("warnings") or []) + [f"{kind}: {w}" for w in out.warnings]


SUMMARY_PART_S = 1800.0  # the model card's longest clip for summarization (30 minutes)
RATE = 16_000


class RecordingSummary:
    """A recording's summary from its audio windows, fed in order as the splitter makes them: their
    samples (each window's overlap with the one before left out) are joined into parts of at most
    SUMMARY_PART_S, each part summarized as soon as it is full (so at most one part, 115 MB, is held),
    and the parts' summaries merged, MERGE_FAN_IN at a time, until one is left."""

    def __init__(self, engines: _Engines, opts: EnrichOptions, part_s: float = SUMMARY_PART_S):
        self.engines, self.opts, self.part_s = engines, opts, part_s
        self._buffers: dict[str, list[bytes]] = {}
        self._seconds: dict[str, float] = {}
        self._ends: dict[str, float] = {}
        self._parts: dict[str, list[EngineOutput]] = {}
        self._failed: dict[str, str] = {}
        self._template: dict[str, Segment] = {}

    def add(self, seg: Segment) -> None:
        if not (self.opts.summary and seg.segment_kind == "audio_window" and seg.audio_f32):
            return
        samples = seg.audio_f32
        start, end = seg.time_start_s or 0.0, seg.time_end_s or 0.0
        skip = max(0.0, self._ends.get(seg.doc_id, start) - start)
        samples = samples[int(skip * RATE) * 4 :]
        self._ends[seg.doc_id] = max(end, self._ends.get(seg.doc_id, 0.0))
        self._template.setdefault(seg.doc_id, seg)
        self._buffers.setdefault(seg.doc_id, []).append(samples)
        self._seconds[seg.doc_id] = self._seconds.get(seg.doc_id, 0.0) + len(samples) / 4 / RATE
        if self._seconds[seg.doc_id] >= self.part_s:
            self._summarize_part(seg.doc_id, final=False)

    def _summarize_part(self, doc_id: str, final: bool = True) -> None:
        """Summarize the full parts held (and, at the end, the rest); a part's remainder waits for the
        next windows."""
        data = b"".join(self._buffers.pop(doc_id, []))
        whole = int(self.part_s * RATE) * 4
        keep = b"" if final else data[len(data) // whole * whole :]
        data = data[: len(data) - len(keep)]
        self._buffers[doc_id] = [keep] if keep else []
        self._seconds[doc_id] = len(keep) / 4 / RATE
        if not data or doc_id in self._failed:
            return
        for at in range(0, len(data), whole):
            part = Segment(**{**self._template[doc_id].to_row(), "audio_f32": data[at : at + whole]})
            try:
                self._parts.setdefault(doc_id, []).append(self.engines.get(self.opts.model).summarize(part))
            except Exception as e:  # noqa: BLE001 - the document says why it has no summary
                self._failed[doc_id] = f"summary failed: {type(e).__name__}: {e}".splitlines()[0]
                return

    def finish(self) -> dict[str, tuple[str | None, dict[str, Any] | None, list[str]]]:
        """doc_id -> (summary, what made it, warnings) for every recording fed in."""
        from unitok.actors.phi4 import MERGE_FAN_IN

        for doc_id in list(self._buffers):
            self._summarize_part(doc_id)
        out: dict[str, tuple[str | None, dict[str, Any] | None, list[str]]] = {}
        for doc_id in self._template:
            if doc_id in self._failed:
                out[doc_id] = (None, None, [self._failed[doc_id]])
                continue
            level = self._parts.get(doc_id, [])
            if not level:
                out[doc_id] = ("", provenance(SUMMARY, "none", None), [])
                continue
            engine = self.engines.get(self.opts.model)
            warnings = [f"summary: {w}" for o in level for w in o.warnings]
            try:
                while len(level) > 1:
                    level = [
                        engine.merge_summaries([o.markdown for o in level[i : i + MERGE_FAN_IN]])
                        for i in range(0, len(level), MERGE_FAN_IN)
                    ]
            except Exception as e:  # noqa: BLE001
                out[doc_id] = (None, None, [f"summary failed: {type(e).__name__}: {e}".splitlines()[0]])
                continue
            made = provenance(SUMMARY, engine.name, level[0])
            if len(self._parts[doc_id]) > 1:
                made["prompt_id"] = f"{self._parts[doc_id][0].prompt_id}+{level[0].prompt_id}"
            out[doc_id] = (level[0].markdown, made, warnings)
        return out


def with_summaries(docs: pa.Table, summary: RecordingSummary | None) -> pa.Table:
    """The documents with their recordings' summaries (enrich.audio.summary), and what made them."""
    made = summary.finish() if summary is not None else {}
    if not made:
        return docs
    rows = docs.to_pylist()
    for doc in rows:
        if doc["doc_id"] not in made:
            continue
        text, source, warnings = made[doc["doc_id"]]
        doc["summary"] = text
        doc["enrichments"] = (doc.get("enrichments") or []) + ([source] if source else [])
        doc["warnings"] = list(doc.get("warnings") or []) + warnings
    return rows_to_table(rows, DOCUMENTS_SCHEMA)
