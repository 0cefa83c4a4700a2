"""Ray's staged plan as plain functions: segments, not objects, flow between the stages. The driver
(drivers.ray_data) wires them into a streaming Ray Data plan; nothing here knows Ray.

1. `Splitter` (CPU workers): a listed object → its segments, routed. Segments for the pooled engines
   (routing.POOLED: OCR, ASR, the model) go on one row each to an engine pool. The others (text layers,
   slide structure, documents' markup) are converted where they are split, in the same batches as the
   per-object plan: their input is already text, so shipping it to another process would cost more than
   formatting it. The object's last row carries its listing and how many segments it had.
2. `EngineStage` (an engine pool's replica): rows of many objects → one engine call per engine and batch
   size, across objects; each object's results staged as a file beside the tables; small rows go on (which
   file holds which segments, the call's figures, the node).
3. `Assembler`: once every segment of an object is staged (the driver counts them), the object's document,
   chunks and tables, made by the same code as the per-object plan (stages.per_object), so the rows are
   the same bytes.

Why staged files rather than the object store or Ray Data's own operators: results must outlive the engine
replica that made them (a replica lost with its node would take objects it owns with it), and an object's
segments come back from many replicas at different times, which no streaming Ray Data operator regroups
(a groupby waits for the whole dataset). A staged file is a few kilobytes of Markdown per segment batch,
written where the tables live, so any node can assemble any object.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pyarrow as pa
from unitok.actors.contract import EngineSetupError
from unitok.actors.routing import POOLED, WHISPER, batch_size, renditions, route
from unitok.connectors.objects import ObjectInfo
from unitok.connectors.store import open_store
from unitok.connectors.table_files import conform
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import ROUTE_NONE, STATUS_ERROR, Segment, add_engine_calls
from unitok.pipeline.core.schemas import RESULT_SCHEMA, rows_to_table
from unitok.pipeline.core.testhooks import checkpoint, fault
from unitok.pipeline.core.version import PIPELINE_VERSION
from unitok.pipeline.formats.split import fetch_error, split_file
from unitok.pipeline.stages.convert import EnginePool, convert_segments
from unitok.pipeline.stages.per_object import ObjectConverter
from unitok.pipeline.stages.plan import CONVERT, LISTING_SCHEMA

# Row kinds between the stages. Any row may also end its object: `total` (segments the object had, -1
# where the row does not end it) and `listed` (the pickled listing row as read). The object's last row
# carries them, so that an engine pool's batches hold segments, not end markers.
SEGMENT = "segment"  # payload: a pickled Segment for a pooled engine
PART = "part"  # info: {"file", "indices", "engines", "nodes", "workers"}: some of an object's results, staged
END = "end"  # an object with nothing else to send (no segment at all)
DONE = "done"  # info: the object's metadata (converted whole where it was split: see Splitter)
FAILED = "failed"  # info: {"stage", "type", "message"}

ROWS = pa.schema(
    [("uri", pa.string()), ("kind", pa.string()), ("route", pa.string()), ("index", pa.int64()),
     ("payload", pa.binary()), ("info", pa.string()), ("total", pa.int64()), ("listed", pa.binary())]
)  # fmt: skip


def _row(uri: str, kind: str, *, route: str = "", index: int = -1, payload: Any = None, info: Any = None,
         total: int = -1, listed: bytes | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "uri": uri,
        "kind": kind,
        "route": route,
        "index": index,
        "payload": None if payload is None else pickle.dumps(payload, protocol=5),
        "info": None if info is None else json.dumps(info),
        "total": total,
        "listed": listed,
    }


def ends(row: dict[str, Any], total: int, listed: dict[str, Any]) -> dict[str, Any]:
    """The row made its object's last: how many segments the object had, and its listing as read."""
    return {**row, "total": total, "listed": pickle.dumps(listed)}


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=ROWS)


class StageFailure(Exception):
    """An object's failure in a stage that ran elsewhere, carried to its assembly by name and reason."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name


def _failure_info(stage: str, e: BaseException) -> dict[str, str]:
    return {"stage": stage, "type": type(e).__name__, "message": str(e)}


class Splitter:
    """Stage 1, in a CPU worker: `split(obj)` yields the object's rows (see the module's docstring)."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: Any, node: str):
        self.convert = ObjectConverter(cfg_data, run_id, files)  # engines load on first use only
        self.convert.node = node
        self.cfg = self.convert.cfg
        self.run_id = run_id
        self.files = files

    def whole(self, obj: dict[str, Any]) -> Iterator[pa.Table]:
        """The object converted start to end here (a rechunk, a re-embed, a refresh, a recording whose
        language Whisper decides from its windows in order): one DONE row."""
        yield rows_table([_row(obj["uri"], DONE, info=self.convert(obj))])

    def split(self, obj: dict[str, Any]) -> Iterator[pa.Table]:
        listed = {k: obj.get(k) for k in LISTING_SCHEMA.names}
        uri = str(listed["uri"])
        # A summary needs a recording's windows in order in one process: with summaries on, objects are
        # converted whole (the engine pools' batches across objects are given up for them).
        if (obj.get("action") or CONVERT) != CONVERT or obj.get("verify") or self.cfg.enrich.audio.summary:
            yield from self.whole(obj)
            return
        cfg, conv = self.cfg, self.convert
        conv._engine_stats = {}
        conv._stage = "split"
        inline: list[tuple[int, dict[str, Any]]] = []  # (seq, result row) of the text converted here
        pending: dict[tuple[str, int], list[tuple[int, Segment]]] = {}
        number = total = 0
        held: dict[str, Any] | None = None  # the last pooled segment's row: it may end the object
        t0 = time.perf_counter()
        try:
            checkpoint("split.object")
            store = open_store(cfg.source.uri, cfg.source.s3.model_dump())
            with ExitStack() as stack:
                info = ObjectInfo(**listed)
                try:
                    path, fetched = stack.enter_context(store.fetch(info))
                    listed = {**listed, "version": fetched.version, "size": fetched.size}
                    segments = split_file(path, fetched, cfg, renditions(cfg))
                except Exception as e:  # noqa: BLE001 - a download that fails becomes an error row
                    segments = iter([fetch_error(info, e)])
                fault("object.split", uri)
                for seg in segments:
                    seg.route = route(seg, cfg)
                    if seg.route == WHISPER and cfg.audio.language is None:
                        # The recording's language is decided from its windows in order, by one engine.
                        yield from self.whole(obj)
                        return
                    seq = total  # the segment's place in the split: unique, where segment indices may repeat
                    total += 1
                    if seg.route in POOLED:
                        if held is not None:
                            yield rows_table([held])
                        held = _row(uri, SEGMENT, route=seg.route, index=seq, payload=seg)
                        continue
                    key = (seg.route, batch_size(seg, cfg))
                    group = pending.setdefault(key, [])
                    seg.batch = number
                    group.append((seq, seg))
                    if len(group) >= key[1]:
                        inline.extend(self._inline(pending.pop(key)))
                        number += 1
                for group in pending.values():
                    inline.extend(self._inline(group))
        except EngineSetupError:
            raise
        except Exception as e:  # noqa: BLE001 - the object's failure, recorded by its assembly
            failure = _row(uri, FAILED, info=_failure_info(conv._stage, e))
            yield rows_table([ends(failure, -1, listed)])
            return
        if inline:
            if held is not None:
                yield rows_table([held])
                held = None
            t1 = time.perf_counter()
            rel, seqs = stage_results(self.files, self.run_id, uri, inline)
            figures = {name: [round(v, 6) for v in st] for name, st in conv._engine_stats.items()}
            part = {
                "file": rel,
                "indices": seqs,
                "engines": figures,
                "nodes": {conv.node: len(inline)},
                "workers": {name: [conv.worker] for name in figures},
                "split_s": round(t1 - t0, 6),
            }
            yield rows_table([ends(_row(uri, PART, info=part), total, listed)])
        else:
            yield rows_table([ends(held or _row(uri, END), total, listed)])

    def _inline(self, group: list[tuple[int, Segment]]) -> list[tuple[int, dict[str, Any]]]:
        batch = [seg for _, seg in group]
        self.convert._stage = "engines"
        fault("object.engines", batch[0].source_uri)
        t0 = time.perf_counter()
        rows = convert_segments(batch, self.convert.engines, self.run_id, PIPELINE_VERSION)
        self.convert._engine_call(batch, time.perf_counter() - t0)
        checkpoint("converted.batch")  # a test may hold or kill the run here
        self.convert._stage = "split"
        return [(seq, row) for (seq, _), row in zip(group, rows, strict=True)]


def stage_results(
    files: Any, run_id: str, uri: str, got: list[tuple[int, dict[str, Any]]]
) -> tuple[str, list[int]]:
    """Result rows of some of an object's segments, staged with their place in the split (`seq`): the
    file's path, and the places it holds."""
    seqs = [seq for seq, _ in got]
    table = rows_to_table([row for _, row in got], RESULT_SCHEMA).append_column(
        "seq", pa.array(seqs, pa.int64())
    )
    return files.stage(run_id, uri, min(seqs), table), sorted(seqs)


# Attempts: (key) → how many earlier attempts with this key ended with the process (see EngineStage).
Attempts = Callable[[str], int]


class EngineStage:
    """Stage 2, one per engine replica: a batch of rows from many objects. Segments for this pool's
    engines are converted, one call per engine and batch size, across objects; every object's results
    in the batch are staged; other rows pass on."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: Any, node: str, worker: str):
        from unitok.actors.registry import engine_options

        self.cfg = JobConfig.model_validate(cfg_data)
        self.run_id = run_id
        self.files = files
        self.node, self.worker = node, worker
        self.engines = EnginePool(engine_options(self.cfg))

    def __call__(
        self,
        rows: list[dict[str, Any]],
        attempts: Attempts | None = None,
        finished: Callable[[str], None] | None = None,
    ) -> list[dict[str, Any]]:
        out = [r for r in rows if r["kind"] != SEGMENT]
        segments: list[Segment] = []
        seq_of: dict[int, int] = {}  # id(segment) → its place in its object's split
        failed: set[str] = set()
        endings: dict[str, dict[str, Any]] = {}  # objects whose last row is in this batch
        for r in rows:
            if r["kind"] != SEGMENT:
                continue
            if r["uri"] not in failed:
                try:
                    fault("object.engines", r["uri"], kill=False)  # a kill comes inside the guarded call
                except Exception as e:  # noqa: BLE001 - that object's failure; its other segments are dropped
                    failed.add(r["uri"])
                    out.append(_row(r["uri"], FAILED, info=_failure_info("engines", e)))
            if r["total"] >= 0:
                endings[r["uri"]] = {"total": r["total"], "listed": r["listed"]}
            if r["uri"] not in failed:
                seg = pickle.loads(r["payload"])
                seq_of[id(seg)] = r["index"]
                segments.append(seg)
        del rows  # the payloads (pages, audio) go as soon as the segments hold them
        segments = [s for s in segments if s.source_uri not in failed]
        results: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        figures: dict[str, dict[str, list[float]]] = {}
        for call in self._calls(segments):
            for seg, row, share in self._convert(call, attempts, finished):
                results.setdefault(seg.source_uri, []).append((seq_of[id(seg)], row))
                if share:
                    add_engine_calls(figures.setdefault(seg.source_uri, {}), {seg.route: share})
        for uri, got in results.items():
            rel, seqs = stage_results(self.files, self.run_id, uri, got)
            engines = figures.get(uri, {})
            part = _row(uri, PART, info={
                "file": rel, "indices": seqs, "engines": engines,
                "nodes": {self.node: len(got)}, "workers": {name: [self.worker] for name in engines},
            })  # fmt: skip
            last = endings.pop(uri, None)
            out.append(part if last is None else {**part, "total": last["total"], "listed": last["listed"]})
        for uri, last in endings.items():  # a failed object's end: its listing, for its error row
            out.append({**_row(uri, END), "total": last["total"], "listed": last["listed"]})
        return out

    def _calls(self, segments: list[Segment]) -> Iterator[list[Segment]]:
        """Engine calls: by engine, in arrival order, up to the engine's batch size."""
        by_route: dict[tuple[str, int], list[Segment]] = {}
        for seg in segments:
            by_route.setdefault((seg.route, batch_size(seg, self.cfg)), []).append(seg)
        for (_, size), group in by_route.items():
            for start in range(0, len(group), size):
                yield group[start : start + size]

    def _convert(
        self, call: list[Segment], attempts: Attempts | None, finished: Callable[[str], None] | None
    ) -> Iterator[tuple[Segment, dict[str, Any], list[float] | None]]:
        """(segment, result row, its share of the call's figures). A call whose replica died before is
        made one segment at a time; a segment that killed CRASHES_TO_GIVE_UP replicas is an error row."""
        from unitok.pipeline.stages.per_object import WorkerCrashed

        key = "call:" + "|".join(f"{s.source_uri}#{s.segment_index}#{s.segment_kind}" for s in call)
        if attempts is None or attempts(key) == 0:
            yield from self._timed(call)
        else:
            for seg in call:
                one = f"segment:{seg.source_uri}#{seg.segment_index}#{seg.segment_kind}"
                crashes = attempts(one) if attempts else 0
                if crashes >= CRASHES_TO_GIVE_UP:
                    reason = WorkerCrashed(f"{crashes} engine replicas died converting this segment")
                    err = seg.as_error("engine", reason, seg.segment_index, False)
                    yield seg, convert_segments([err], self.engines, self.run_id, PIPELINE_VERSION)[0], None
                else:
                    yield from self._timed([seg])
                if finished:
                    finished(one)
        if finished:
            finished(key)

    def _timed(self, call: list[Segment]) -> Iterator[tuple[Segment, dict[str, Any], list[float] | None]]:
        for seg in call:
            seg.batch = 0
            fault("object.engines", seg.source_uri, fail=False)
        t0 = time.perf_counter()
        rows = convert_segments(call, self.engines, self.run_id, PIPELINE_VERSION, across_objects=True)
        seconds = time.perf_counter() - t0
        checkpoint("converted.batch")
        live = [s for s in call if s.status != STATUS_ERROR and s.route != ROUTE_NONE]
        n = len(live) or 1
        capacity = batch_size(call[0], self.cfg)
        for seg, row in zip(call, rows, strict=True):
            share = [1, 1 / n, capacity / n, seconds / n] if seg in live else None
            yield seg, row, share


# An object, or a call, whose worker died this many times is recorded as crashed, not tried again.
# Once is not enough: a node lost (a spot instance reclaimed) takes what it held with it.
CRASHES_TO_GIVE_UP = 2


class Collected:
    """What is known of an object in flight, from its rows after the engine pool: metadata only (which
    staged files hold which of its segments), never its rows. A retried stage's second copy of a row adds
    nothing."""

    __slots__ = ("done", "failure", "indices", "listed", "parts", "total")

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.indices: set[int] = set()
        self.total = -1
        self.listed: dict[str, Any] | None = None
        self.failure: dict[str, str] | None = None
        self.done: dict[str, Any] | None = None  # the metadata of an object converted whole

    def add(self, row: dict[str, Any]) -> None:
        kind = row["kind"]
        if kind == DONE:
            self.done = json.loads(row["info"])
        elif kind == PART:
            info = json.loads(row["info"])
            if not self.indices.issuperset(info["indices"]):
                self.parts.append(info)
                self.indices.update(info["indices"])
        elif kind == FAILED and self.failure is None:
            self.failure = json.loads(row["info"])
        if row["listed"] is not None:
            self.total = max(self.total, row["total"])
            self.listed = pickle.loads(row["listed"])

    @property
    def ready(self) -> bool:
        """Whether the object can be finished: converted whole, failed, or every segment staged."""
        return self.done is not None or (
            self.listed is not None and (self.failure is not None or len(self.indices) >= self.total)
        )


class Assembler:
    """Stage 3: an object from its staged results, as stages.per_object completes it."""

    def __init__(self, cfg_data: dict[str, Any], run_id: str, files: Any, node: str):
        self.convert = ObjectConverter(cfg_data, run_id, files)
        self.convert.node = node
        self.files = files

    def __call__(self, obj: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, Any]:
        """obj: the listing row as read; parts: the PART infos of its results. The object's metadata,
        with the engines' figures and nodes of where its segments were converted."""
        figures: dict[str, list[float]] = {}
        nodes: dict[str, int] = {}
        workers: dict[str, set[str]] = {}
        for part in parts:
            add_engine_calls(figures, part["engines"])
            for node, n in part["nodes"].items():
                nodes[node] = nodes.get(node, 0) + n
            for name, ws in part["workers"].items():
                workers.setdefault(name, set()).update(ws)
        meta = self.convert.finish_staged(obj, lambda: self._results(parts), figures)
        meta["nodes"] = nodes
        meta["engine_workers"] = {name: sorted(ws) for name, ws in workers.items()}
        return meta

    def _results(self, parts: list[dict[str, Any]]) -> pa.Table:
        tables = self.files.read_staged([p["file"] for p in parts])
        if not tables:  # an object with no segment at all: its assembly says so
            return RESULT_SCHEMA.empty_table()
        results = pa.concat_tables(tables, promote_options="permissive")
        # A retried split or engine call may have staged a segment twice: the first copy stands.
        seen: set[int] = set()
        keep = [not (i in seen or seen.add(i)) for i in results["seq"].to_pylist()]  # type: ignore[func-returns-value]
        # In the split's order where indices repeat (an error beside the segment it concerns).
        results = results.filter(pa.array(keep)).sort_by(
            [("segment_index", "ascending"), ("seq", "ascending")]
        )
        return conform(results.drop_columns(["seq"]), RESULT_SCHEMA)

    def finish(self, got: Collected) -> dict[str, Any]:
        """The object's metadata, whichever way it ended (see Collected.ready)."""
        if got.done is not None:
            return got.done
        assert got.listed is not None
        if got.failure is not None:
            return self.failed(got.listed, got.failure)
        return self(got.listed, got.parts)

    def failed(self, obj: dict[str, Any], failure: dict[str, str]) -> dict[str, Any]:
        exc = StageFailure(failure["type"], failure["message"])
        return self.convert.failed_in(obj, failure["stage"], exc)

    def crashed(self, obj: dict[str, Any], reason: str) -> dict[str, Any]:
        return self.convert.crashed(obj, reason)
