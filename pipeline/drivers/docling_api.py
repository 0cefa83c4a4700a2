"""docling-serve's v1 wire contract over unitok's rows: requests parsed with docling's own models
(docling.datamodel.service, from docling-slim: every option, its default and its 422 in pydantic's words),
their options mapped to unitok's settings, and a converted file's rows answered as docling-serve answers
(ExportDocumentResponse with the formats asked, status, errors, the zip, chunks). Pure functions: the Ray
Serve application (serve_app) calls them; the engines replica exports, the ingress assembles.

What docling-serve's options mean here:
- honoured: to_formats, from_formats, do_ocr and force_ocr (ocr.mode), ocr_lang (ocr.languages, BCP-47
  tags as Tesseract codes), page_range (pdf.page_range), md_page_break_placeholder, image_export_mode (for
  the HTML, text and DocTags exports; unitok's Markdown keeps a picture as its marker and alt text in every
  mode, since no image bytes are kept), abort_on_error, document_timeout, the target (inbody, zip);
- accepted and ignored, as docling-serve ignores fields it does not know: docling's own engines and models
  (pdf_backend, table_mode, pipeline, ocr_engine/ocr_preset, enrichment and VLM options, images_scale ...).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import types
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator, Field, Tag, ValidationError, create_model
from unitok.pipeline.stages.docling_document import docling_document


@contextlib.contextmanager
def _hidden(*names: str):
    """Modules made unimportable for a while (where not imported yet)."""
    hidden = [n for n in names if n not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


# docling's own validators read its deprecated fields on every validation: a warning per request that says
# nothing about the request.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"docling\.datamodel\.service\.options")

# docling's option models import transformers and torch where they are installed (for VLM and ASR options
# unitok never builds): 4 s and 300 MB in every serving process, the ingress included. Hidden while they
# import, they take their slim-install placeholders.
with _hidden("torch", "transformers"):
    from docling.datamodel.base_models import InputFormat, OutputFormat
    from docling.datamodel.service.chunking import (
        BaseChunkerOptions,
        HierarchicalChunkerOptions,
        HybridChunkerOptions,
    )
    from docling.datamodel.service.options import ConvertDocumentsOptions
    from docling.datamodel.service.requests import (
        ConvertSourcesRequest,
        FileSourceRequest,
        HttpSourceRequest,
        TargetRequest,
        make_request_model,
    )
    from docling.datamodel.service.targets import InBodyTarget
    from docling_core.types.doc.document import DoclingDocument

# docling-serve's own words, which clients match on (Docling's client falls back from presigned_url on
# "artifact storage to be configured").
PRESIGNED_REFUSED = (
    "Presigned URL target requires artifact storage to be configured and enabled on the server."
)
TASK_NOT_FOUND = "Task not found."
RESULT_NOT_READY = "Task result not found. Please wait for a completion status."
TARGETS = ("inbody", "zip")
DEFAULT_PAGE_RANGE = ConvertDocumentsOptions.model_fields["page_range"].default
# HierarchicalChunker makes a chunk of each item and counts no tokens: unitok's chunker with a budget no
# section reaches cuts at headings only.
HIERARCHICAL_MAX_TOKENS = 1 << 20


class RequestError(Exception):
    """A request docling-serve would refuse: `status` and FastAPI's `detail` (a string or pydantic's list)."""

    def __init__(self, detail: str | list[dict[str, Any]], status: int = 422):
        super().__init__(detail if isinstance(detail, str) else json.dumps(detail))
        self.status, self.detail = status, detail


# -- requests ----------------------------------------------------------------------------------------
class ObjectSource(BaseModel):
    """unitok's extension: an object under serve.allowed_sources by its URI (s3:// or a path)."""

    kind: Literal["s3", "file"]
    uri: str


def _source_kind(value: Any) -> str | None:
    data = value if isinstance(value, dict) else getattr(value, "__dict__", {})
    kind = data.get("kind")
    if kind == "s3" or (kind == "file" and "uri" in data and "base64_string" not in data):
        return "object"
    return kind if kind in ("file", "http") else None


SourceItem = Annotated[
    Union[  # noqa: UP007 - Tag needs the union spelled out
        Annotated[FileSourceRequest, Tag("file")],
        Annotated[HttpSourceRequest, Tag("http")],
        Annotated[ObjectSource, Tag("object")],
    ],
    Discriminator(_source_kind),
]
# docling-serve without artifact storage defaults the target to inbody (its model's default is presigned).
SourcesRequest = create_model(
    "ConvertSourcesRequest",
    __base__=ConvertSourcesRequest,
    sources=(list[SourceItem], Field(min_length=1)),
    target=(TargetRequest, InBodyTarget()),
)
CHUNKERS: dict[str, type[BaseChunkerOptions]] = {
    "hybrid": HybridChunkerOptions,
    "hierarchical": HierarchicalChunkerOptions,
}
CHUNK_REQUESTS = {
    name: create_model(
        make_request_model(opts).__name__,
        __base__=make_request_model(opts),
        sources=(list[SourceItem], Field(description="List of input document sources to process.")),
    )
    for name, opts in CHUNKERS.items()
}


def validation_detail(exc: ValidationError, loc: Callable[[tuple], tuple] = lambda x: x) -> list[dict]:
    """pydantic's errors as FastAPI's 422 `detail`, anchored under "body"."""
    out = []
    for e in exc.errors(include_url=False):
        item = {"type": e["type"], "loc": ["body", *loc(tuple(e.get("loc", ())))], "msg": e["msg"]}
        if "input" in e and e.get("loc"):
            item["input"] = _jsonable(e["input"])
        if e.get("ctx"):
            item["ctx"] = _jsonable(e["ctx"])
        out.append(item)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def parse_json(body: bytes, model: type[BaseModel]) -> Any:
    try:
        data = json.loads(body or b"null")
    except ValueError as e:
        detail = [{"type": "json_invalid", "loc": ["body", 0], "msg": f"JSON decode error: {e}"}]
        raise RequestError(detail) from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RequestError(validation_detail(e)) from None


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _form_kind(annotation: Any) -> str:
    """How a multipart field carries a model field: repeated ("list"), JSON text ("json") or one value."""
    inner = _unwrap(annotation)
    origin = get_origin(inner)
    if origin in (list, tuple, set):
        return "list"
    if origin is dict or (isinstance(inner, type) and issubclass(inner, BaseModel)):
        return "json"
    if get_origin(inner) in (Union, types.UnionType) and any(
        isinstance(a, type) and issubclass(a, BaseModel) for a in get_args(inner)
    ):
        return "json"
    return "one"


def form_model(
    items: list[tuple[str, str]], model: type[BaseModel], prefix: str = "", exclude: Iterable[str] = ()
) -> Any:
    """A model from multipart form fields, as docling-serve's FormDepends reads them: list fields from
    repeated fields, nested models and dicts from JSON text, fields it does not know ignored."""
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, field in model.model_fields.items():
        if name in exclude:
            continue
        values = [v for k, v in items if k == prefix + name]
        if not values:
            continue
        kind = _form_kind(field.annotation)
        if kind == "list":
            data[name] = values
        elif kind == "json":
            try:
                data[name] = json.loads(values[-1])
            except ValueError as e:
                errors.append(
                    {
                        "type": "json_invalid",
                        "loc": ["body", prefix + name],
                        "msg": f"Invalid JSON: {e}",
                        "input": values[-1],
                    }
                )
        else:
            data[name] = values[-1]
    if errors:
        raise RequestError(errors)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        anchored = validation_detail(e, lambda loc: (prefix + str(loc[0]), *loc[1:]) if loc else ())
        raise RequestError(anchored) from None


def check_target(kind: str, chunking: bool = False) -> None:
    if kind in TARGETS:
        return
    if kind == "presigned_url":
        raise RequestError(
            "presigned_url target is not supported for chunk endpoints." if chunking else PRESIGNED_REFUSED
        )
    raise RequestError(f"target kind '{kind}' is not allowed. Allowed values: {sorted(TARGETS)}.")


# -- options → unitok settings -----------------------------------------------------------------------
_SCRIPTS = {("zh", "Hant"): "chi_tra", ("zh", "Hans"): "chi_sim", ("zh", None): "chi_sim"}


def tesseract_languages(tags: list[str]) -> str:
    """BCP-47 tags (`en`, `de-DE`, `zh-Hant`; also ISO 639-2 codes such as `deu`) → Tesseract's codes
    joined by '+'; `mul` alone is unitok's script detection (ocr.languages auto)."""
    import langcodes

    if tags == ["mul"]:
        return "auto"
    codes: list[str] = []
    for tag in tags:
        try:
            lang = langcodes.Language.get(tag)
            code = _SCRIPTS.get((lang.language, lang.script)) or lang.to_alpha3()
        except (ValueError, LookupError, AttributeError):
            raise RequestError(
                [
                    {
                        "type": "value_error",
                        "loc": ["body", "ocr_lang"],
                        "msg": f"Value error, {tag!r} is not a language tag",
                        "input": tag,
                    }
                ]
            ) from None
        if tag == "mul" or code == "mul":
            raise RequestError(
                [
                    {
                        "type": "value_error",
                        "loc": ["body", "ocr_lang"],
                        "msg": "Value error, 'mul' must be used alone",
                        "input": tags,
                    }
                ]
            )
        if code not in codes:
            codes.append(code)
    return "+".join(codes)


def overrides(opts: ConvertDocumentsOptions, chunker: BaseChunkerOptions | None = None) -> dict[str, Any]:
    """The unitok settings (dotted) a request's options set, only where they differ from docling's
    defaults (a default is the config's own value)."""
    out: dict[str, Any] = {}
    if not opts.do_ocr:
        out["ocr.mode"] = "off"
    elif opts.force_ocr:
        out["ocr.mode"] = "force"
    if opts.ocr_lang:
        out["ocr.languages"] = tesseract_languages(list(opts.ocr_lang))
    if tuple(opts.page_range) != tuple(DEFAULT_PAGE_RANGE):
        first, last = opts.page_range
        out["pdf.page_range"] = (int(first), int(min(last, 1 << 30)))
    if chunker is not None:
        out["chunking.enabled"] = True
        if isinstance(chunker, HierarchicalChunkerOptions):
            out["chunking.max_tokens"] = HIERARCHICAL_MAX_TOKENS
        elif getattr(chunker, "max_tokens", None):
            out["chunking.max_tokens"] = int(chunker.max_tokens)
    return out


# unitok's file types (formats.detect) as docling's input formats, for from_formats.
_INPUT_FORMATS = {
    "pdf": "pdf",
    "docx": "docx",
    "doc": "doc",
    "odt": "odt",
    "rtf": "rtf",
    "pptx": "pptx",
    "ppt": "ppt",
    "odp": "odp",
    "xlsx": "xlsx",
    "xlsm": "xlsx",
    "xls": "xls",
    "ods": "ods",
    "csv": "csv",
    "html": "html",
    "htm": "html",
    "xhtml": "html",
    "mhtml": "mhtml",
    "md": "md",
    "markdown": "md",
    "epub": "epub",
    "eml": "email",
    "msg": "email",
    "adoc": "asciidoc",
    "asciidoc": "asciidoc",
    "tex": "latex",
    "vtt": "vtt",
    "json": "json_docling",
}


def input_format(name: str, mime: str) -> str | None:
    """docling's InputFormat of an upload, from unitok's detected MIME type and the name."""
    if mime.startswith("image/"):
        return InputFormat.IMAGE.value
    if mime.startswith("audio/"):
        return InputFormat.AUDIO.value
    if mime.startswith("video/"):
        return InputFormat.VIDEO.value
    if mime == "application/pdf":
        return InputFormat.PDF.value
    return _INPUT_FORMATS.get(PurePosixPath(name).suffix.lower().lstrip("."))


# -- rows → docling's responses ----------------------------------------------------------------------
_COMPONENT = {
    "split": "document_backend",
    "engines": "model",
    "rows": "doc_assembler",
    "assemble": "doc_assembler",
    "chunk": "pipeline",
}


def error_items(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """unitok's error rows as docling's ErrorItem: the component by stage, the page where there is one."""
    out = []
    for e in errors:
        item = {
            "component_type": _COMPONENT.get(e.get("stage") or "", "pipeline"),
            "module_name": f"unitok.{e.get('stage') or 'convert'}",
            "error_message": f"{e.get('error_type')}: {e.get('message')}",
        }
        if e.get("page_number") is not None:
            item["page_no"] = int(e["page_number"])
        out.append(item)
    return out


def status_of(result: dict[str, Any]) -> str:
    if result.get("document") is None:
        return "failure"
    return "partial_success" if result.get("errors") else "success"


def markdown_with_breaks(document: dict[str, Any], segments: list[dict[str, Any]], placeholder: str) -> str:
    """The document's Markdown with `placeholder` between pages (docling's md_page_break_placeholder), cut
    where the first segment of each later page starts."""
    md = document.get("markdown") or ""
    if not placeholder:
        return md
    cuts, seen = [], None
    for seg in sorted(segments, key=lambda s: s.get("char_start") or 0):
        page, start = seg.get("page_number"), seg.get("char_start")
        if page is None or start is None:
            continue
        if seen is not None and page != seen and 0 < start < len(md):
            cuts.append(start)
        seen = page
    if not cuts:
        return md
    parts = [md[a:b].strip("\n") for a, b in zip([0, *cuts], [*cuts, len(md)], strict=True)]
    return f"\n\n{placeholder}\n\n".join(parts)


def page_sizes(path: Path, mime: str) -> dict[int, tuple[float, float]]:
    """{page_no: (width, height)} of a PDF's pages (points) or an image's frames (pixels): the rows do not
    carry them, and docling-core's DocTags export divides by them."""
    if mime == "application/pdf":
        from unitok.pipeline.formats.pdf import open_pdf

        pdf = open_pdf(path)
        try:
            return {i + 1: tuple(pdf.get_page_size(i)) for i in range(len(pdf))}
        finally:
            pdf.close()
    if mime.startswith("image/"):
        from PIL import Image

        with Image.open(path) as img:
            return {i + 1: (float(img.width), float(img.height)) for i in range(getattr(img, "n_frames", 1))}
    return {}


def _formats(opts: ConvertDocumentsOptions) -> set[str]:
    return {f.value if hasattr(f, "value") else str(f) for f in opts.to_formats}


def needs_document(opts: ConvertDocumentsOptions) -> bool:
    """Whether the formats asked are exports of the DoclingDocument (all but Markdown)."""
    return bool(_formats(opts) - {OutputFormat.MARKDOWN.value})


def export_document(
    result: dict[str, Any],
    filename: str,
    opts: ConvertDocumentsOptions,
    item_refs: dict | None = None,
    sizes: dict[int, tuple[float, float]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(docling's ExportDocumentResponse of a converted file: the formats in to_formats; the ErrorItems of
    exports that failed). The DoclingDocument (json_content) is built from the rows; HTML, text and
    DocTags are docling-core's exports of it."""
    out: dict[str, Any] = {"filename": filename}
    document = result.get("document")
    if document is None:
        return out, []
    segments = result.get("segments") or []
    formats = _formats(opts)
    # The DoclingDocument only where a format or a chunk's doc_items need it (Markdown is the rows').
    if needs_document(opts) or item_refs is not None:
        doc_json = docling_document(document, segments, page_sizes=sizes, item_refs=item_refs)
    if OutputFormat.MARKDOWN.value in formats:
        out["md_content"] = markdown_with_breaks(document, segments, opts.md_page_break_placeholder)
    if OutputFormat.JSON.value in formats:
        out["json_content"] = doc_json
    others = formats & {"html", "text", "doctags", "doclang"}
    failed: list[dict[str, Any]] = []
    if others:
        doc = DoclingDocument.model_validate(doc_json)
        mode = opts.image_export_mode
        exports = {"html": lambda: doc.export_to_html(image_mode=mode), "text": doc.export_to_text,
                   "doctags": doc.export_to_doctags, "doclang": doc.export_to_doclang}  # fmt: skip
        for fmt in sorted(others):
            try:
                out[f"{fmt}_content"] = exports[fmt]()
            except Exception as e:  # noqa: BLE001 - one format lost, not the document
                failed.append({"component_type": "doc_assembler", "module_name": "docling_core",
                               "error_message": f"{fmt} export failed: {type(e).__name__}: {e}"})  # fmt: skip
    return out, failed


def chunk_items(
    result: dict[str, Any], filename: str, chunker: BaseChunkerOptions, item_refs: dict[int, list[str]]
) -> list[dict[str, Any]]:
    """unitok's chunks of a file as docling-serve's ChunkedDocumentResultItem: `text` with its headings
    before it (docling's contextualize), doc_items the DoclingDocument items made from the chunk's
    segments, unitok's own provenance under metadata["unitok"]."""
    out = []
    hybrid = isinstance(chunker, HybridChunkerOptions)
    for chunk in result.get("chunks") or []:
        headings = [h for h in chunk.get("heading_path") or [] if h]
        raw = chunk.get("text") or ""
        refs = [r for i in chunk.get("segment_indexes") or [] for r in item_refs.get(int(i), [])]
        provenance = {
            k: chunk.get(k)
            for k in (
                "chunk_id",
                "doc_id",
                "source_uri",
                "source_version",
                "segment_indexes",
                "time_start_s",
                "time_end_s",
                "char_start",
                "char_end",
                "tokenizer",
            )
        }
        out.append(
            {
                "filename": filename,
                "chunk_index": int(chunk.get("chunk_index") or 0),
                "text": "\n".join([*headings, raw]) if headings else raw,
                "raw_text": raw if chunker.include_raw_text else None,
                "num_tokens": int(chunk["n_tokens"])
                if hybrid and chunk.get("n_tokens") is not None
                else None,
                "headings": headings or None,
                "captions": None,
                "doc_items": list(dict.fromkeys(refs)),
                "page_numbers": sorted(set(chunk.get("page_numbers") or [])) or None,
                "metadata": {
                    "has_image": any(r.startswith("#/pictures/") for r in refs),
                    "unitok": provenance,
                },
            }
        )
    return out


def unique_stems(names: list[str]) -> list[str]:
    """Each file's stem in the zip, made unique (docling-serve would let a later file overwrite)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        stem = PurePosixPath(name).stem or "document"
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        out.append(stem if n == 0 else f"{stem}_{n}")
    return out


_EXTENSIONS = {
    "md_content": "md",
    "json_content": "json",
    "html_content": "html",
    "text_content": "txt",
    "doctags_content": "doctags",
    "doclang_content": "dclg",
}


def zip_archive(exports: list[dict[str, Any]], extra: dict[str, str] | None = None) -> bytes:
    """docling-serve's converted_docs.zip: `<stem>.<ext>` per format of each converted document (and
    `extra` files, e.g. chunks as `<stem>.chunks.jsonl`)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (extra or {}).items():
            z.writestr(name, text)
        for export, stem in zip(exports, unique_stems([e["filename"] for e in exports]), strict=True):
            for key, ext in _EXTENSIONS.items():
                value = export.get(key)
                if value is None:
                    continue
                text = json.dumps(value, ensure_ascii=False) if key == "json_content" else value
                z.writestr(f"{stem}.{ext}", text)
    return buf.getvalue()


def task_status(
    task_id: str,
    task_type: str,
    status: str,
    position: int | None,
    meta: dict[str, Any],
    error: str | None = None,
) -> dict[str, Any]:
    """docling-serve's TaskStatusResponse."""
    return {
        "task_id": task_id,
        "task_type": task_type,
        "task_status": status,
        "task_position": position,
        "task_meta": meta,
        "error_message": error,
        "failure": None,
    }


def safe_filename(raw: str | None, limit: int = 255) -> str:
    """The base name of an upload, as given (it names the document); a control character or an over-long
    name is refused."""
    name = PurePosixPath((raw or "").replace("\\", "/")).name
    if len(name.encode()) > limit:
        raise RequestError(f"file name of {len(name)} characters: at most {limit} bytes are accepted")
    if re.search(r"[\x00-\x1f]", name):
        raise RequestError("file name with a control character")
    return name or "file.pdf"
