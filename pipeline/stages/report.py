"""The run report: one self-contained HTML file per run (`<output>/reports/<run_id>.html`), with plots of
what the run did: objects and segments by modality and engine, throughput over the run, time per stage, the
slowest objects, failures grouped by reason with examples, warnings by kind, and the config as written.

The driver keeps bounded aggregates only (a throughput histogram that coarsens as the run grows, the ten
slowest objects, a few examples per reason), never a row per object. Plots are SVG written here, inlined
in the page: no script, no network, a few KB (plotly's inline bundle alone is 4.8 MB a report).
"""

from __future__ import annotations

import heapq
import html
import json
import math
import time
from collections import Counter
from typing import Any

MAX_BUCKETS = 400
EXAMPLES = 3
_COUNTS = ("objects", "converted_objects", "rechunked_objects", "reembedded_objects", "refreshed_objects",
           "carried_objects", "deleted_objects", "documents", "segments", "chunks", "failed_objects",
           "failed_segments", "error_rows", "elapsed_s")  # fmt: skip


class RunReport:
    def __init__(self, started: float | None = None):
        self.t0 = time.perf_counter() if started is None else started
        self.objects_by_modality: Counter[str] = Counter()
        self.segments_by_engine: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.stage_s: Counter[str] = Counter()
        self.slowest: list[tuple[float, str]] = []  # a min-heap of the 10 slowest
        self.failures: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.warnings: dict[str, dict[str, Any]] = {}
        self.bucket_s, self.buckets = 1.0, [0] * 1

    def add(self, meta: dict[str, Any]) -> None:
        self.actions[meta.get("action", "convert")] += 1
        self.objects_by_modality[meta.get("modality") or "unknown"] += 1
        for engine, n in meta.get("by_engine", {}).items():
            self.segments_by_engine[engine] += n
        for stage, s in meta.get("timings", {}).items():
            self.stage_s[stage] += s
        item = (meta.get("elapsed_s", 0.0), meta["uri"])
        (heapq.heappush if len(self.slowest) < 10 else heapq.heappushpop)(self.slowest, item)
        for stage, kind, message, page in meta.get("error_kinds", []):
            key = (stage, kind, _shape(message))
            entry = self.failures.setdefault(key, {"count": 0, "examples": []})
            entry["count"] += 1
            if len(entry["examples"]) < EXAMPLES:
                entry["examples"].append({"uri": meta["uri"], "page": page, "message": message})
        for kind, n in meta.get("warnings", {}).items():
            entry = self.warnings.setdefault(kind, {"count": 0, "objects": 0, "example": meta["uri"]})
            entry["count"] += n
            entry["objects"] += 1
        self._tick()

    def _tick(self) -> None:
        at = int((time.perf_counter() - self.t0) / self.bucket_s)
        while at >= MAX_BUCKETS:  # coarsen: pairs of buckets become one twice as wide
            self.buckets = [sum(self.buckets[i : i + 2]) for i in range(0, len(self.buckets), 2)]
            self.bucket_s *= 2
            at = int((time.perf_counter() - self.t0) / self.bucket_s)
        self.buckets += [0] * (at + 1 - len(self.buckets))
        self.buckets[at] += 1

    def render(self, summary: dict[str, Any], config: dict[str, Any] | None) -> str:
        """The report as one HTML document."""
        plots = [
            ("Objects by modality", _bars(dict(self.objects_by_modality), "objects")),
            ("Segments by engine", _bars(dict(self.segments_by_engine), "segments")),
            ("Throughput: objects finished over the run", _throughput(self.buckets, self.bucket_s)),
            ("Time per stage (summed over objects)", _bars(dict(self.stage_s), "seconds", horizontal=True)),
            (
                "Slowest objects",
                _bars(
                    {_short(u): s for s, u in sorted(self.slowest, reverse=True)}, "seconds", horizontal=True
                ),
            ),  # fmt: skip
        ]
        counts = [(k, summary.get(k)) for k in _COUNTS]
        body = [
            f"<h1>unitok run {_e(summary.get('run_id', ''))}</h1>",
            f"<p>{_e(summary.get('source_uri', ''))} &rarr; {_e(summary.get('output_uri', ''))}, "
            f"{_e(summary.get('mode', ''))} run on {_e(summary.get('executor', ''))}; "
            f"table versions {_e(json.dumps(summary.get('table_versions', {})))}</p>",
            _table(["count", "value"], counts),
        ]
        for title, svg in plots:
            body.append(f'<section class="plot"><h2>{_e(title)}</h2>{svg}</section>')
        engines = summary.get("engines") or {}
        body.append("<h2>Engines</h2>")
        body.append(_table(["engine", "segments", "calls", "batch fill", "busy fraction"],
                           [(k, v["segments"], v["calls"], v["batch_fill"], v["busy_fraction"])
                            for k, v in engines.items()]) if engines else "<p>None ran.</p>")  # fmt: skip
        body.append("<h2>Segments by node</h2>")
        nodes = summary.get("nodes") or {}
        body.append(_table(["node", "segments"], sorted(nodes.items())) if nodes else "<p>None.</p>")
        failure_rows = [
            (f"{s} / {k}", v["count"], "<br>".join(_e(f"{x['uri']}" + (f" p.{x['page']}" if x["page"] else "")
             + f": {x['message']}") for x in v["examples"]))
            for (s, k, _), v in sorted(self.failures.items(), key=lambda kv: -kv[1]["count"])
        ]  # fmt: skip
        body.append("<h2>Failures by reason</h2>")
        body.append(_table(["stage / error", "rows", "examples"], failure_rows, raw_last=True)
                    if failure_rows else "<p>None.</p>")  # fmt: skip
        ranked = sorted(self.warnings.items(), key=lambda kv: -kv[1]["count"])[:50]
        warning_rows = [(k, v["count"], v["objects"], v["example"]) for k, v in ranked]
        body.append("<h2>Warnings by kind</h2>")
        body.append(_table(["warning", "times", "objects", "example"], warning_rows) if warning_rows
                    else "<p>None.</p>")  # fmt: skip
        body.append("<h2>Config as written</h2>")
        body.append(f"<pre>{_e(json.dumps(config or {}, indent=2, default=str))}</pre>")
        return _PAGE.format(title=_e(f"unitok run {summary.get('run_id', '')}"), body="\n".join(body))


def _shape(message: str) -> str:
    import re

    return re.sub(r"\d+", "N", message)[:120]


def _short(uri: str) -> str:
    return uri if len(uri) <= 60 else "…" + uri[-59:]


def _e(text: Any) -> str:
    return html.escape(str(text))


def _table(head: list[str], rows: list[tuple], raw_last: bool = False) -> str:
    cells = []
    for row in rows:
        tds = [_e(v) for v in row[:-1]] + [str(row[-1]) if raw_last else _e(row[-1])]
        cells.append("<tr>" + "".join(f"<td>{c}</td>" for c in tds) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>" + "".join(cells) + "</table>"


# Plots are SVG written here: matplotlib drew the same bars, but importing and laying it out took 1.6 s
# of every run's wall time (measured on a 619-page PDF whose conversion took 3 s).
_BLUE = "#1f77b4"
_W, _H = 720, 300  # the plot's size in pixels
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 20, 12, 48  # margins for the axes' labels


def _ticks(top: float, integer: bool) -> list[float]:
    """About five round steps from 0 to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, round(step))
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _num(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e6 else f"{v:.3g}"


def _svg(width: int, height: int, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">' + "".join(parts) + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{_e(text)}</text>'


def _bars(values: dict[str, float], unit: str, horizontal: bool = False) -> str:
    if not values:
        return "<p>Nothing to show.</p>"
    labels, sizes = list(values), [float(v) for v in values.values()]
    ticks = _ticks(max(sizes), unit != "seconds")
    top = ticks[-1] or 1.0
    parts: list[str] = []
    if horizontal:
        left = min(8 + 7 * max(len(x) for x in labels), 420)
        row = 24
        height = _TOP + row * len(labels) + _BOTTOM
        span = _W - left - _RIGHT
        for i, (label, v) in enumerate(zip(labels, sizes, strict=True)):
            y = _TOP + i * row
            parts.append(f'<rect x="{left}" y="{y + 4}" width="{span * v / top:.1f}" height="{row - 8}" '
                         f'fill="{_BLUE}"/>')  # fmt: skip
            parts.append(_text(left - 6, y + row / 2 + 4, label, "end"))
        base = _TOP + row * len(labels)
        for t in ticks:
            x = left + span * t / top
            parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 5}" stroke="#444"/>')
            parts.append(_text(x, base + 18, _num(t)))
        parts.append(f'<line x1="{left}" y1="{_TOP}" x2="{left}" y2="{base}" stroke="#444"/>')
        parts.append(f'<line x1="{left}" y1="{base}" x2="{_W - _RIGHT}" y2="{base}" stroke="#444"/>')
        parts.append(_text(left + span / 2, base + 38, unit))
        return _svg(_W, height, parts)
    span, base = _H - _TOP - _BOTTOM, _H - _BOTTOM
    slot = (_W - _LEFT - _RIGHT) / len(labels)
    for i, (label, v) in enumerate(zip(labels, sizes, strict=True)):
        x = _LEFT + i * slot
        h = span * v / top
        parts.append(f'<rect x="{x + slot * 0.15:.1f}" y="{base - h:.1f}" width="{slot * 0.7:.1f}" '
                     f'height="{h:.1f}" fill="{_BLUE}"/>')  # fmt: skip
        parts.append(_text(x + slot / 2, base + 18, label))
    _y_axis(parts, ticks, unit)
    return _svg(_W, _H, parts)


def _y_axis(parts: list[str], ticks: list[float], unit: str) -> None:
    span, base, top = _H - _TOP - _BOTTOM, _H - _BOTTOM, ticks[-1] or 1.0
    for t in ticks:
        y = base - span * t / top
        parts.append(f'<line x1="{_LEFT - 5}" y1="{y:.1f}" x2="{_LEFT}" y2="{y:.1f}" stroke="#444"/>')
        parts.append(_text(_LEFT - 8, y + 4, _num(t), "end"))
    parts.append(f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base}" stroke="#444"/>')
    parts.append(f'<line x1="{_LEFT}" y1="{base}" x2="{_W - _RIGHT}" y2="{base}" stroke="#444"/>')
    parts.append(_text(16, _TOP + span / 2, unit, extra=f' transform="rotate(-90 16 {_TOP + span / 2:.1f})"'))


def _throughput(buckets: list[int], width_s: float) -> str:
    if not any(buckets):
        return "<p>Nothing to show.</p>"
    total, cumulative = 0, [0]
    for n in buckets:
        total += n
        cumulative.append(total)
    ticks = _ticks(total, True)
    end_s = len(buckets) * width_s
    span_x, span_y, base = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM, _H - _BOTTOM
    points = [
        (_LEFT + span_x * i / len(buckets), base - span_y * c / ticks[-1]) for i, c in enumerate(cumulative)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    parts = [
        f'<polygon points="{_LEFT},{base} {line} {points[-1][0]:.1f},{base}" fill="{_BLUE}" '
        'fill-opacity="0.25"/>',
        f'<polyline points="{line}" fill="none" stroke="{_BLUE}" stroke-width="2"/>',
    ]
    for t in _ticks(end_s, False):
        if t <= end_s * 1.0001:
            x = _LEFT + span_x * t / end_s
            parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 5}" stroke="#444"/>')
            parts.append(_text(x, base + 18, _num(round(t, 6))))
    parts.append(_text(_LEFT + span_x / 2, base + 38, "seconds since the run started"))
    _y_axis(parts, ticks, "objects finished")
    return _svg(_W, _H, parts)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
section.plot svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
{body}
</body></html>
"""
