"""Split stage: one listed object → Segments, dispatched by the type its bytes say it is.

A failure becomes a Segment with status=error (the object's, or one segment's), never an exception:
the job goes on and the error lands in errors/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from unitok.connectors.objects import ObjectInfo, sha256_file
from unitok.connectors.s3 import SourceError
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import Renditions, Segment, make_doc_id
from unitok.pipeline.formats.av import MediaError, split_av
from unitok.pipeline.formats.detect import (
    ENCRYPTED_OFFICE,
    MSG,
    TEXT,
    TEXT_NAMES,
    extension_warning,
    sniff_file,
)
from unitok.pipeline.formats.documents import DocumentOpenError, split_csv, split_epub, split_html, split_text
from unitok.pipeline.formats.docx import split_docx
from unitok.pipeline.formats.image import ImageOpenError, split_image
from unitok.pipeline.formats.mail import MAX_DEPTH, split_eml, split_msg
from unitok.pipeline.formats.pdf import PdfOpenError, split_pdf
from unitok.pipeline.formats.pptx import DeckOpenError, split_pptx
from unitok.pipeline.formats.sheets import split_sheets


class UnsupportedType(Exception):
    """Content this version does not convert (or an empty file)."""


# Expected, explained failures: the message is the reason; no traceback needed.
_KNOWN_ERRORS = (
    PdfOpenError, ImageOpenError, DeckOpenError, MediaError, UnsupportedType, SourceError, DocumentOpenError,
)  # fmt: skip
_SPLITTERS = {
    "pdf": split_pdf,
    "image": split_image,
    "presentation": split_pptx,
    "audio": split_av,
    "video": split_av,
    "document": split_docx,
    "web": split_html,
    "text": split_text,
    "ebook": split_epub,
}
_TABLES = {"text/csv", "text/tab-separated-values"}
CONVERTED = (
    "PDF, images, PowerPoint and ODP, Word and ODT, spreadsheets (XLSX, XLS, ODS, CSV, TSV), HTML, "
    "Markdown and text, EPUB, e-mail (EML, MSG), audio and video"
)


def explained(e: Exception) -> bool:
    """Whether the error's message is its whole reason (no traceback needed in the error row)."""
    return isinstance(e, _KNOWN_ERRORS)


def _splitter(
    mime_type: str, modality: str, needs: Renditions
) -> Callable[[Path, Segment, JobConfig], Iterator[Segment]]:
    """The splitter of a type: (path, base, cfg) → segments. E-mail splitters get this dispatch for
    their attachments."""

    def child(
        path: Path, base: Segment, cfg: JobConfig, depth: int = 0, budget: Any = None, prefix: Any = None
    ) -> Iterator[Segment]:
        ft = sniff_file(path)  # the attachment's own name, kept in its temporary file's
        if not ft.supported:
            raise UnsupportedType(f"content is {ft.mime_type}; this version converts {CONVERTED}")
        base.mime_type, base.modality = ft.mime_type, ft.modality
        if ft.modality == "email":
            if depth > MAX_DEPTH:
                raise DocumentOpenError(f"messages nested more than {MAX_DEPTH} deep are not opened")
            split = split_msg if ft == MSG else split_eml
            return split(path, base, cfg, child, depth, budget, prefix)
        return _splitter(ft.mime_type, ft.modality, needs)(path, base, cfg)

    if modality == "email":
        split = split_msg if mime_type == MSG.mime_type else split_eml
        return lambda path, base, cfg: split(path, base, cfg, child)
    if mime_type in _TABLES:
        return lambda path, base, cfg: split_csv(path, base, cfg)
    if modality == "spreadsheet":
        return lambda path, base, cfg: split_sheets(path, base, cfg, needs)
    return lambda path, base, cfg: _SPLITTERS[modality](path, base, cfg, needs)


def fetch_error(obj: ObjectInfo, e: Exception) -> Segment:
    """The error row of an object that could not be read from its store."""
    return _error(_base(obj), obj, e, -1)


def _base(obj: ObjectInfo) -> Segment:
    return Segment(
        doc_id="",
        source_uri=obj.uri,
        source_version=obj.version or "",
        source_size=obj.size,
        mime_type="",
        modality="unknown",
        segment_index=-1,
        segment_kind="object",
    )


def split_file(
    path: Path, obj: ObjectInfo, cfg: JobConfig, needs: Renditions, pages: range | None = None
) -> Iterator[Segment]:
    """A local file's segments, with obj's provenance (a listed object, or an upload to the HTTP
    endpoint). Never raises: failures become error segments. `pages`: only these pages of a PDF (a
    driver spreading one long PDF over its workers)."""
    base = _base(obj)
    next_index = 0
    try:
        if not base.source_version:
            base.source_version = sha256_file(path)
        base.doc_id = make_doc_id(base.source_uri, base.source_version)
        ft = sniff_file(path, obj.key)
        base.mime_type, base.modality = ft.mime_type, ft.modality
        if obj.size == 0:
            raise UnsupportedType("empty file (0 bytes)")
        if ft == ENCRYPTED_OFFICE:
            raise UnsupportedType(
                f"encrypted: {obj.key!r} is a password-protected Office file; save it without a "
                "password to convert it"
            )
        if not ft.supported:
            raise UnsupportedType(
                f"content is {ft.mime_type} (name {obj.key!r}); this version converts {CONVERTED}"
                + (f" (text by its name: {TEXT_NAMES})" if ft == TEXT else "")
            )
        warning = extension_warning(ft, obj.key)
        if warning:
            base.warnings.append(warning)
        if pages is not None:
            if ft.modality != "pdf":
                raise ValueError(f"a page range is for PDFs; this object is {ft.mime_type}")
            split = split_pdf(path, base, cfg, needs, pages)
        else:
            split = _splitter(ft.mime_type, ft.modality, needs)(path, base, cfg)
        for seg in split:
            next_index = seg.segment_index + 1
            yield seg
    except Exception as e:  # noqa: BLE001 - every failure becomes an error row
        if isinstance(e, RecursionError):
            # A parser's recursion on a hostile structure: its reason, not a traceback of one frame repeated.
            e = DocumentOpenError(
                f"{base.mime_type or 'the file'}: structure nested too deeply to read (past Python's "
                "recursion limit)"
            )
        # Segments already yielded stay; the error names where splitting stopped.
        yield _error(base, obj, e, next_index if next_index else -1)


def _error(base: Segment, obj: ObjectInfo, e: Exception, segment_index: int) -> Segment:
    """The split error row; an object that failed before it could be hashed gets a doc_id by size."""
    if not base.doc_id:
        base.doc_id = make_doc_id(base.source_uri, base.source_version or f"size:{obj.size}")
    return base.as_error("split", e, segment_index, isinstance(e, _KNOWN_ERRORS))
