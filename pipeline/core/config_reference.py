"""The configuration reference (docs/configuration.md), generated from the pydantic models, so it cannot
drift from what `unitok validate` accepts (a test regenerates it and compares).

    python -m unitok.pipeline.core.config_reference > docs/configuration.md
"""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from unitok.pipeline.core.config import JobConfig

HEADER = """# Configuration reference

Every key a job file may hold, its default and what it means; generated from the models that validate the
file (`pipeline/core/config.py`) by `python -m unitok.pipeline.core.config_reference`. An unknown key is an
error, and strings may reference environment variables as `${NAME}` or `${NAME:-default}`.
"""


def _submodel(annotation: Any) -> type[BaseModel] | None:
    for t in (annotation, *typing.get_args(annotation)):
        if isinstance(t, type) and issubclass(t, BaseModel):
            return t
    return None


def _type(annotation: Any) -> str:
    return " or ".join(f"`{t}`" for t in _names(annotation))


def _names(annotation: Any) -> list[str]:
    import types

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return [json.dumps(a) for a in args]
    if origin in (typing.Union, types.UnionType):
        return [n for a in args for n in _names(a)]
    if annotation is type(None):
        return ["null"]
    if origin in (list, dict):
        inner = ", ".join(" or ".join(_names(a)) for a in args)
        return [f"{origin.__name__}[{inner}]"]
    return [getattr(annotation, "__name__", str(annotation))]


def _default(field: Any) -> str:
    if field.default is PydanticUndefined:
        if field.default_factory is not None:
            return "`" + json.dumps(field.default_factory()) + "`"
        return "required"
    value = field.default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 << 20 and value % (1 << 20) == 0:
        return f"`{value}` ({value >> 20} MiB)"
    return "`" + json.dumps(value) + "`"


def _rows(
    model: type[BaseModel], prefix: str, out: list[tuple[str, list[tuple[str, str, str, str]]]]
) -> None:
    rows: list[tuple[str, str, str, str]] = []
    nested = []
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        if sub is not None:
            nested.append((f"{prefix}{name}", sub, field))
            continue
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append((name, _type(field.annotation), _default(field), meaning))
    out.append((prefix.rstrip(".") or "(top level)", rows))
    for path, sub, _ in nested:
        _rows(sub, path + ".", out)


def reference() -> str:
    sections: list[tuple[str, list[tuple[str, str, str, str]]]] = []
    _rows(JobConfig, "", sections)
    parts = [HEADER]
    for title, rows in sections:
        if not rows:
            continue
        parts.append(f"\n## `{title}`\n")
        doc = _section_doc(title)
        if doc:
            parts.append(f"{doc}\n")
        parts.append("| key | type | default | meaning |\n|---|---|---|---|")
        parts += [f"| `{k}` | {t} | {d} | {m} |" for k, t, d, m in rows]
    return "\n".join(parts) + "\n"


def _section_doc(title: str) -> str:
    model: Any = JobConfig
    if title != "(top level)":
        for part in title.split("."):
            model = _submodel(model.model_fields[part].annotation)
    doc = (model.__doc__ or "").strip()
    return "" if not doc or doc.startswith(("Usage docs", "A base class")) else " ".join(doc.split())


if __name__ == "__main__":
    print(reference(), end="")
