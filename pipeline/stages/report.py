"""The run report: one self-contained HTML file per run (`<output>/reports/<run_id>.html`), with plots of
what the run did: objects and segments by modality and engine, throughput over the run, time per stage, the
slowest objects, failures grouped by reason with examples, warnings by kind, and the config as written.

The driver keeps bounded aggregates only (a throughput histogram that coarsens as the run grows, the ten
slowest objects, a few examples per reason), never a row per object. Plots are matplotlib SVG inlined in
the page: no script, no network, a few hundred KB (plotly's inline bundle alone is 4.8 MB a report).
"""

from __future__ import annotations

import heapq
import html
import io
import json
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


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "path"  # text as paths: the same drawing without the fonts installed
    return plt.subplots(figsize=(7.5, 3.2), dpi=96)


def _svg(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.tight_layout()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _bars(values: dict[str, float], unit: str, horizontal: bool = False) -> str:
    if not values:
        return "<p>Nothing to show.</p>"
    fig, ax = _figure()
    labels, heights = list(values), list(values.values())
    from matplotlib.ticker import MaxNLocator

    axis = ax.xaxis if horizontal else ax.yaxis
    if unit != "seconds":
        axis.set_major_locator(MaxNLocator(integer=True))  # counts
    if horizontal:
        ax.barh(labels[::-1], heights[::-1], color="#1f77b4")
        ax.set_xlabel(unit)
    else:
        ax.bar(labels, heights, color="#1f77b4")
        ax.set_ylabel(unit)
    return _svg(fig)


def _throughput(buckets: list[int], width_s: float) -> str:
    if not any(buckets):
        return "<p>Nothing to show.</p>"
    fig, ax = _figure()
    xs = [(i + 1) * width_s for i in range(len(buckets))]
    total, cumulative = 0, []
    for n in buckets:
        total += n
        cumulative.append(total)
    ax.plot(xs, cumulative, color="#1f77b4", linewidth=2)
    ax.fill_between(xs, cumulative, color="#1f77b4", alpha=0.25)
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("objects finished")
    return _svg(fig)


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
