"""Split stage: one listed object → Segments, dispatched by the type its bytes say it is.

A failure becomes a Segment with status=error (the object's, or one segment's), never an exception:
the job goes on and the error lands in errors/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from unitok.connectors.objects import ObjectInfo, sha256_file
from unitok.connectors.s3 import SourceError
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.core.records import Renditions, Segment, make_doc_id
from unitok.pipeline.formats.av import MediaError, split_av
from unitok.pipeline.formats.detect import ENCRYPTED_OFFICE, extension_warning, sniff_file
from unitok.pipeline.formats.image import ImageOpenError, split_image
from unitok.pipeline.formats.pdf import PdfOpenError, split_pdf
from unitok.pipeline.formats.pptx import DeckOpenError, split_pptx


class UnsupportedType(Exception):
    """Content this version does not convert (or an empty file)."""


# Expected, explained failures: the message is the reason; no traceback needed.
_KNOWN_ERRORS = (PdfOpenError, ImageOpenError, DeckOpenError, MediaError, UnsupportedType, SourceError)
_SPLITTERS = {
    "pdf": split_pdf,
    "image": split_image,
    "presentation": split_pptx,
    "audio": split_av,
    "video": split_av,
}


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


def split_file(path: Path, obj: ObjectInfo, cfg: JobConfig, needs: Renditions) -> Iterator[Segment]:
    """A local file's segments, with obj's provenance (a listed object, or an upload to the HTTP
    endpoint). Never raises: failures become error segments."""
    base = _base(obj)
    next_index = 0
    try:
        if not base.source_version:
            base.source_version = sha256_file(path)
        base.doc_id = make_doc_id(base.source_uri, base.source_version)
        ft = sniff_file(path)
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
                f"content is {ft.mime_type} (name {obj.key!r}); "
                "this version converts PDF, image, PowerPoint, audio and video files"
            )
        warning = extension_warning(ft, obj.key)
        if warning:
            base.warnings.append(warning)
        splitter = _SPLITTERS[ft.modality]
        for seg in splitter(path, base, cfg, needs):
            next_index = seg.segment_index + 1
            yield seg
    except Exception as e:  # noqa: BLE001 - every failure becomes an error row
        # Segments already yielded stay; the error names where splitting stopped.
        yield _error(base, obj, e, next_index if next_index else -1)


def _error(base: Segment, obj: ObjectInfo, e: Exception, segment_index: int) -> Segment:
    """The split error row; an object that failed before it could be hashed gets a doc_id by size."""
    if not base.doc_id:
        base.doc_id = make_doc_id(base.source_uri, base.source_version or f"size:{obj.size}")
    return base.as_error("split", e, segment_index, isinstance(e, _KNOWN_ERRORS))
