"""unitok as a library: convert files in memory with the same stage functions, engines and chunker a job
uses, so the same file gives the same rows.

    import unitok

    doc = unitok.convert("report.pdf")
    print(doc.markdown)
    for chunk in doc.chunks:
        ...
    vector = unitok.embed_query("where is the north region?", config="job.yaml")

Building blocks for pipelines of your own: `unitok.ray.Converter` (Ray Data `map_batches`) and
`unitok.beam.Convert` (an Apache Beam PTransform).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from unitok.pipeline.core.version import PIPELINE_VERSION, __version__

# unitok.pipeline, unitok.actors and unitok.connectors live in their own folders (the editable install maps
# each); import-linter checks them as top-level portions, which it accepts only under a parent that reports
# no location of its own.
if __spec__ is not None:
    __spec__.has_location = False

__all__ = ["Document", "convert", "convert_many", "embed_query", "load", "read_table", "__version__",
           "PIPELINE_VERSION"]  # fmt: skip

Source = str | Path | bytes | bytearray | IO[bytes]
ConfigLike = str | Path | dict[str, Any] | Any | None
# A config for in-memory work needs no source or output; these placeholders satisfy the model.
_PLACEHOLDERS = {"source": {"uri": "."}, "output": {"uri": "unitok-in-memory"}}


@dataclass(frozen=True)
class Document:
    """One converted file: its Markdown, and the rows a job writes for it (each a dict with the tables'
    columns, provenance included)."""

    source_uri: str
    markdown: str | None  # None when no part of the file converted (see errors)
    row: dict[str, Any] | None = None  # the documents table's row
    segments: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)  # empty unless chunking.enabled
    errors: list[dict[str, Any]] = field(default_factory=list)
    # An e-mail's attachments, each a Document of its own (nested messages' attachments too, in order;
    # each row's parent_doc_id names the message it came in).
    attachments: list[Document] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return list(self.row["warnings"] or []) if self.row else []

    @property
    def ok(self) -> bool:
        """A document came out and no error concerns the whole file."""
        return self.row is not None and not any(e["segment_index"] < 0 for e in self.errors)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO strings."""
        from unitok.pipeline.stages.convert_file import _plain

        return {
            "source_uri": self.source_uri,
            "markdown": self.markdown,
            "document": _plain(self.row) if self.row else None,
            "segments": [_plain(r) for r in self.segments],
            "chunks": [_plain(r) for r in self.chunks],
            "errors": [_plain(r) for r in self.errors],
            "warnings": self.warnings,
            "attachments": [a.to_dict() for a in self.attachments],
        }


def load(config: ConfigLike = None) -> Any:
    """A JobConfig from a YAML path, a dict (source and output optional here) or a JobConfig."""
    from unitok.pipeline.core.config import JobConfig, load_config, parse_config

    if config is None:
        return parse_config(dict(_PLACEHOLDERS))
    if isinstance(config, JobConfig):
        return config
    if isinstance(config, str | Path):
        return load_config(config)[0]
    if isinstance(config, dict):
        return parse_config({**_PLACEHOLDERS, **config})
    raise TypeError(f"config: a path, a dict or a JobConfig, not {type(config).__name__}")


class _Runtime:
    """This process's engines, chunker and embedder for one config: loaded once, reused by every call."""

    def __init__(self, cfg: Any):
        from unitok.actors.registry import engine_options
        from unitok.pipeline.stages.convert import EnginePool
        from unitok.pipeline.stages.doc_chunks import DocumentChunks

        self.cfg = cfg
        self.engines = EnginePool(engine_options(cfg))
        self.chunking = DocumentChunks(cfg)


_runtimes: dict[str, _Runtime] = {}


def _runtime(config: ConfigLike) -> _Runtime:
    cfg = load(config)
    key = cfg.model_dump_json(exclude={"source", "output", "runtime"})
    if key not in _runtimes:
        _runtimes[key] = _Runtime(cfg)
    return _runtimes[key]


def _as_file(source: Source, name: str | None, stack: contextlib.ExitStack) -> tuple[Path, str, str | None]:
    """(a local path with the bytes, the file name, the source URI when it is a file). Bytes are written
    to a temporary folder that `stack` removes; a path is read where it is."""
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{source}: no such file")
        return path, name or path.name, path.resolve().as_uri()
    if isinstance(source, bytes | bytearray):
        data = bytes(source)
    elif isinstance(source, io.IOBase) or hasattr(source, "read"):
        data = source.read()
        name = name or Path(getattr(source, "name", "") or "upload").name
    else:
        raise TypeError(f"source: a path, bytes or a binary file object, not {type(source).__name__}")
    name = name or "upload"
    path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unitok-api-"))) / Path(name).name
    path.write_bytes(data)
    return path, name, None


def convert(source: Source, *, name: str | None = None, config: ConfigLike = None) -> Document:
    """Convert one file: a path, bytes or a binary file object (`name` gives the file name of bytes; the
    type comes from the content). config: a job config (YAML path, dict or JobConfig); only the format,
    engine, chunking and embedding sections matter. A broken file is a Document with errors, never an
    exception."""
    from unitok.pipeline.stages.convert_file import convert_file

    rt = _runtime(config)
    with contextlib.ExitStack() as stack:
        path, name, uri = _as_file(source, name, stack)
        out = convert_file(path, name, rt.cfg, rt.engines, "api", uri=uri, chunking=rt.chunking, plain=False)
    source_uri = uri or f"upload://{name}"

    def document(
        row: dict[str, Any] | None, mine: Callable[[str], bool], attachments: list[Document]
    ) -> Document:
        return Document(
            source_uri=source_uri,
            markdown=row["markdown"] if row else None,
            row=row,
            segments=[r for r in out["segments"] if mine(r["doc_id"])],
            chunks=[r for r in out.get("chunks", []) if mine(r["doc_id"])],
            errors=[r for r in out["errors"] if mine(r["doc_id"])],
            attachments=attachments,
        )

    attachments = [document(a, a["doc_id"].__eq__, []) for a in out["attachments"]]
    claimed = {a["doc_id"] for a in out["attachments"]}
    # The file's own Document holds every row no attachment's document claims: its own, errors of the
    # whole file, and those of attachments that gave no document.
    return document(out["document"], lambda d: d not in claimed, attachments)


def convert_many(sources: Iterable[Source], *, config: ConfigLike = None) -> Iterator[Document]:
    """convert() over many sources, one Document at a time, the engines loaded once."""
    for source in sources:
        yield convert(source, config=config)


def embed_query(text: str, *, config: ConfigLike = None) -> list[float]:
    """A query's embedding with the chunks' embedding model (embedding.model, or the packaged
    all-MiniLM-L6-v2): unit length, comparable with the chunks' `embedding` column."""
    rt = _runtime(config)
    return [float(x) for x in rt.chunking.embedder([text])[0]]


def read_table(output: str | Path, table: str = "documents") -> Any:
    """One table of a job's output (a folder or s3:// URI) as a pyarrow Table, read through the Delta log:
    only the current rows (a plain Parquet read of the folder would also return rows a later run
    replaced). `.to_pandas()` / `polars.from_arrow(...)` from there."""
    from unitok.connectors.output import delta_storage_options
    from unitok.connectors.output import read_table as _read

    uri = str(output)
    return _read(uri, table, delta_storage_options({}) if uri.startswith("s3://") else None)
