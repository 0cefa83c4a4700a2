"""Markdown pieces every engine renders the same way."""

from __future__ import annotations

from typing import Any


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", "<br>")


def md_table(rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [list(r) + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(_cell(c) for c in rows[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def chart_markdown(chart: dict[str, Any]) -> str:
    """A chart (title, categories, series of values) as its marker, its title and a table of its data:
    a row per category, a column per series."""
    names = [s["name"] for s in chart["series"]]
    n = max([len(chart["categories"])] + [len(s["values"]) for s in chart["series"]])
    rows = [[""] + names] + [
        [chart["categories"][i] if i < len(chart["categories"]) else ""]
        + [s["values"][i] if i < len(s["values"]) else "" for s in chart["series"]]
        for i in range(n)
    ]
    head = "<!-- chart -->" + (f"\n**{chart['title']}**" if chart["title"] else "")
    return head + ("\n\n" + md_table(rows) if n and chart["series"] else "")
