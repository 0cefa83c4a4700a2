"""Drive the published docling-serve clients against a server and print what each hands its user.

Run with the clients' own interpreter (`make clients` builds it):

    .venv-clients/bin/python tests/clients/run_client.py --url http://127.0.0.1:5001 \
        [--api-key KEY] [--timeout 180] --calls calls.json

calls.json (or `-` for stdin) is a list of call specs:

    {"client": "docling_client", "call": "convert", "source": "sample/memo.pdf", "mode": "json"}

- client, call: one of the pairs in CALLS below (`--list` prints them with what each does);
- source: a local file path or an http(s) URL (the server fetches a URL itself);
- mode: "md" (default), "json" or "text" where the client offers it: json reads the DoclingDocument the
  client returns, checks it with docling-core's DoclingDocument, and its text is export_to_markdown();
- params: Open WebUI's DOCLING_PARAMS (its loader merges them into the form), only for openwebui.load.

Stdout is one JSON document, a list with one result per call in order:

    {"client", "call", "source", "mode", "ok", "texts", "json_valid", "error", "seconds"}

texts is what the client hands its user (a document's markdown or text, or the chunks' texts);
json_valid is true/false in json mode (null otherwise); ok is true only when the call returned without an
error and some text is not blank. The clients' own logs go to stderr. tests/clients/README.md lists the
exact requests each call makes.
"""

import argparse
import asyncio
import io
import json
import logging
import mimetypes
import os
import subprocess
import sys
import time
import traceback
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before any client is imported: Haystack reports usage to PostHog unless told not to, and nothing here
# may download a tokenizer or model (langchain_docling imports transformers).
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

# What Open WebUI indexes when a 2xx response has no document.md_content (its loader's fallback).
OPENWEBUI_NO_TEXT = "<No text content found>"
ERROR_LIMIT = 4000


@dataclass
class Ctx:
    url: str
    api_key: str | None
    timeout: float


@dataclass
class Spec:
    client: str
    call: str
    source: str
    mode: str = "md"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_url(self) -> bool:
        return self.source.startswith(("http://", "https://"))


@dataclass
class Outcome:
    texts: list[str]
    json_valid: bool | None = None
    # An error seen although the client returned (a fallback text, an invalid document): the call is not ok.
    error: str | None = None


class CallError(Exception):
    """The client returned, but not what its user needs (no document, a failed task, an unusable body)."""


# -- shared helpers ------------------------------------------------------------------------------------


def check_document(doc: Any) -> Outcome:
    """The json-mode verdict: docling-core's model over the client's JSON, then its markdown."""
    from docling_core.types.doc import DoclingDocument

    if doc is None:
        return Outcome([], json_valid=False, error="no json_content in the response")
    try:
        # A DoclingDocument the client already built is dumped and read back, so the check is docling-core's
        # validation of the wire form and not pydantic passing an existing instance through.
        raw = doc.model_dump(mode="json") if isinstance(doc, DoclingDocument) else doc
        if isinstance(raw, str):
            raw = json.loads(raw)
        document = DoclingDocument.model_validate(raw)
    except Exception as exc:
        return Outcome([], json_valid=False, error=f"DoclingDocument.model_validate: {describe(exc)}")
    return Outcome([document.export_to_markdown()], json_valid=True)


def content_of(document: dict[str, Any] | None, mode: str) -> Outcome:
    """Read an ExportDocumentResponse (docling-serve's `document`) the way a caller of that mode does."""
    if not isinstance(document, dict):
        raise CallError(f"response has no document object: {truncate(repr(document))}")
    if mode == "json":
        return check_document(document.get("json_content"))
    key = "text_content" if mode == "text" else "md_content"
    value = document.get(key)
    if value is None:
        raise CallError(f"document.{key} is missing or null")
    return Outcome([value])


def to_formats(mode: str) -> list[str]:
    return [{"md": "md", "json": "json", "text": "text"}[mode]]


def describe(exc: BaseException) -> str:
    """An exception with the HTTP detail the clients keep on it (status, body), so a 422 says why."""
    parts = [f"{type(exc).__name__}: {exc}"]
    for attr in ("status_code", "detail", "response_body"):
        value = getattr(exc, attr, None)
        if value not in (None, "", [], {}):
            parts.append(f"{attr}={value!r}")
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "text"):
        parts.append(f"status={getattr(response, 'status_code', '?')} body={response.text!r}")
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc and not isinstance(exc, CallError):
        parts.append(f"caused by {type(cause).__name__}: {cause}")
    return truncate(" | ".join(parts))


def truncate(text: str) -> str:
    return text if len(text) <= ERROR_LIMIT else text[:ERROR_LIMIT] + "...[truncated]"


def mime_of(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def texts_from_zip(content: bytes, mode: str) -> Outcome:
    """A zip target's archive: the .md files' text, or in json mode the .json documents checked."""
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        suffix = ".json" if mode == "json" else ".txt" if mode == "text" else ".md"
        chosen = [n for n in names if n.endswith(suffix) and not n.endswith(".chunks.jsonl")]
        if not chosen:
            raise CallError(f"zip holds no *{suffix} file: {names}")
        if mode != "json":
            return Outcome([archive.read(n).decode("utf-8") for n in chosen])
        outcomes = [check_document(json.loads(archive.read(n))) for n in chosen]
    return Outcome(
        [t for o in outcomes for t in o.texts],
        json_valid=all(o.json_valid for o in outcomes),
        error="; ".join(o.error for o in outcomes if o.error) or None,
    )


def chunk_texts(chunks: Any) -> Outcome:
    if not isinstance(chunks, list):
        raise CallError(f"response has no chunks list: {truncate(repr(chunks))}")
    return Outcome([c["text"] if isinstance(c, dict) else c.text for c in chunks])


# -- docling-client: docling.service_client.DoclingServiceClient (docling-slim 2.143.0) ---------------


def _docling_client(ctx: Ctx, watcher: str = "websocket", fallback: bool = True) -> Any:
    from docling.service_client import DoclingServiceClient, StatusWatcherKind

    return DoclingServiceClient(
        url=ctx.url,
        api_key=ctx.api_key or "",
        status_watcher=StatusWatcherKind(watcher),
        ws_fallback_to_poll=fallback,
        job_timeout=ctx.timeout,
        http_read_timeout=ctx.timeout,
    )


def _async_docling_client(ctx: Ctx, watcher: str = "websocket", fallback: bool = True) -> Any:
    from docling.service_client import AsyncDoclingServiceClient, StatusWatcherKind

    return AsyncDoclingServiceClient(
        url=ctx.url,
        api_key=ctx.api_key or "",
        status_watcher=StatusWatcherKind(watcher),
        ws_fallback_to_poll=fallback,
        job_timeout=ctx.timeout,
        http_read_timeout=ctx.timeout,
    )


def _conversion(result: Any, spec: Spec) -> Outcome:
    """A ConversionResult, as DoclingServiceClient.convert() returns it: its document is all the user has."""
    from docling.datamodel.base_models import ConversionStatus

    if result.status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
        errors = "; ".join(e.error_message for e in result.errors)
        raise CallError(f"conversion status {result.status.value}: {errors}")
    outcome = check_document(result.document)
    if spec.mode != "json":
        outcome.json_valid = None
    return outcome


def _output_format(mode: str) -> Any:
    from docling.datamodel.base_models import OutputFormat

    return {"md": OutputFormat.MARKDOWN, "json": OutputFormat.JSON, "text": OutputFormat.TEXT}[mode]


def docling_convert(ctx: Ctx, spec: Spec, watcher: str, fallback: bool) -> Outcome:
    with _docling_client(ctx, watcher, fallback) as client:
        return _conversion(client.convert(spec.source), spec)


def docling_convert_all(ctx: Ctx, spec: Spec) -> Outcome:
    with _docling_client(ctx) as client:
        results = list(client.convert_all([spec.source]))
    if len(results) != 1:
        raise CallError(f"convert_all yielded {len(results)} results for one source")
    return _conversion(results[0], spec)


def docling_submit(ctx: Ctx, spec: Spec) -> Outcome:
    """submit() with the default target, then job.poll(wait) until done, then job.result()."""
    with _docling_client(ctx) as client:
        job = client.submit(spec.source, output_formats=[_output_format(spec.mode)])
        deadline = time.monotonic() + ctx.timeout
        while not job.done:
            if time.monotonic() > deadline:
                raise CallError(f"task {job.task_id} still {job.status} after {ctx.timeout} s")
            job.poll(wait=1.0)
        return _job_result(job.result(timeout=ctx.timeout), spec)


def docling_submit_watch(ctx: Ctx, spec: Spec) -> Outcome:
    """submit() to an inbody target, every update from job.watch() (the websocket only), job.result()."""
    from docling.datamodel.service.targets import InBodyTarget

    with _docling_client(ctx, "websocket", fallback=False) as client:
        job = client.submit(spec.source, target=InBodyTarget())
        statuses = [update.task_status for update in job.watch(timeout=ctx.timeout)]
        if not job.done:
            raise CallError(f"websocket ended before a final status: {statuses}")
        return _job_result(job.result(timeout=ctx.timeout), spec)


def _job_result(result: Any, spec: Spec) -> Outcome:
    from docling.datamodel.document import ConversionResult

    if isinstance(result, ConversionResult):
        return _conversion(result, spec)
    raise CallError(f"job.result() returned {type(result).__name__}, not a ConversionResult")


def docling_submit_zip(ctx: Ctx, spec: Spec) -> Outcome:
    from docling.datamodel.service.targets import ZipTarget

    with _docling_client(ctx) as client:
        job = client.submit(spec.source, output_formats=[_output_format(spec.mode)], target=ZipTarget())
        raw = job.result(timeout=ctx.timeout)
    if "zip" not in raw.content_type:
        raise CallError(f"zip target answered {raw.content_type}: {truncate(repr(raw.content[:300]))}")
    return texts_from_zip(raw.content, spec.mode)


def docling_retrieve_each(ctx: Ctx, spec: Spec) -> Outcome:
    """submit_and_retrieve_each(): the raw ConvertDocumentResponse, so md mode reads md_content itself."""
    from docling.datamodel.service.options import ConvertDocumentsOptions
    from docling.datamodel.service.targets import InBodyTarget
    from docling.service_client import ConversionItem

    options = ConvertDocumentsOptions(to_formats=[_output_format(spec.mode)])
    with _docling_client(ctx) as client:
        outcomes = list(
            client.submit_and_retrieve_each(
                [ConversionItem(source=spec.source, options=options)], target=InBodyTarget()
            )
        )
    (_, response), *rest = outcomes
    if rest:
        raise CallError(f"{len(outcomes)} outcomes for one item")
    if isinstance(response, Exception):
        raise response
    document = response.document.model_dump(mode="json")
    if spec.mode == "json":
        return check_document(response.document.json_content)
    return content_of(document, spec.mode)


async def docling_async_submit(ctx: Ctx, spec: Spec, watcher: str) -> Outcome:
    from docling.datamodel.service.targets import InBodyTarget

    async with _async_docling_client(ctx, watcher, fallback=False) as client:
        job = await client.submit(spec.source, target=InBodyTarget())
        return _job_result(await job.result(timeout=ctx.timeout), spec)


def docling_chunk(ctx: Ctx, spec: Spec, chunker: str) -> Outcome:
    from docling.service_client import ChunkerKind

    with _docling_client(ctx) as client:
        return chunk_texts(client.chunk(spec.source, ChunkerKind(chunker)).chunks)


async def docling_async_chunk(ctx: Ctx, spec: Spec, chunker: str) -> Outcome:
    from docling.service_client import ChunkerKind

    async with _async_docling_client(ctx) as client:
        job = await client.submit_chunk(spec.source, ChunkerKind(chunker))
        return chunk_texts((await job.result(timeout=ctx.timeout)).chunks)


# -- docling-serve-client 1.14.0: docling_serve_sdk.DoclingClient ------------------------------------


def _sdk(ctx: Ctx) -> Any:
    from docling_serve_sdk import DoclingClient

    return DoclingClient(ctx.url, api_key=ctx.api_key, timeout=ctx.timeout)


def _sdk_options(spec: Spec) -> Any:
    from docling_serve_sdk import ConvertDocumentsRequestOptions

    return ConvertDocumentsRequestOptions(to_formats=to_formats(spec.mode))


def _sdk_source_request(spec: Spec, kind: str = "convert", chunker: str = "") -> Any:
    import docling_serve_sdk as sdk

    sources = [sdk.HttpSourceRequest(url=spec.source)]
    if kind == "convert":
        return sdk.ConvertDocumentsRequest(sources=sources, options=_sdk_options(spec))
    if chunker == "hybrid":
        return sdk.HybridChunkerOptionsDocumentsRequest(sources=sources)
    return sdk.HierarchicalChunkerOptionsDocumentsRequest(sources=sources)


def _sdk_document(response: Any, spec: Spec) -> Outcome:
    if getattr(response, "document", None) is None:
        raise CallError(f"no inline document: {type(response).__name__} {truncate(repr(response))}")
    return content_of(response.document.model_dump(mode="json"), spec.mode)


def sdk_convert(ctx: Ctx, spec: Spec) -> Outcome:
    with _sdk(ctx) as client:
        if spec.is_url:
            return _sdk_document(client.convert_source(_sdk_source_request(spec)), spec)
        return _sdk_document(client.convert_file(spec.source, options=_sdk_options(spec)), spec)


async def sdk_convert_async(ctx: Ctx, spec: Spec) -> Outcome:
    async with _sdk(ctx) as client:
        if spec.is_url:
            response = await client.convert_source_async(_sdk_source_request(spec))
        else:
            response = await client.convert_file_async(spec.source, options=_sdk_options(spec))
        return _sdk_document(response, spec)


def sdk_task(ctx: Ctx, spec: Spec) -> Outcome:
    """The /async submission, then wait_for_task(): status polls with ?wait=, then the result as a dict."""
    with _sdk(ctx) as client:
        if spec.is_url:
            task = client.convert_source_async_task(_sdk_source_request(spec))
        else:
            task = client.convert_file_async_task(spec.source, options=_sdk_options(spec))
        result = client.wait_for_task(task.task_id, poll_interval=1.0, timeout=ctx.timeout)
    return content_of(result.get("document"), spec.mode)


async def sdk_task_async(ctx: Ctx, spec: Spec) -> Outcome:
    async with _sdk(ctx) as client:
        if spec.is_url:
            task = await client.convert_source_async_task_async(_sdk_source_request(spec))
        else:
            task = await client.convert_file_async_task_async(spec.source, options=_sdk_options(spec))
        result = await client.wait_for_task_async(task.task_id, poll_interval=1.0, timeout=ctx.timeout)
    return content_of(result.get("document"), spec.mode)


def sdk_chunk(ctx: Ctx, spec: Spec, chunker: str) -> Outcome:
    with _sdk(ctx) as client:
        if spec.is_url:
            send = getattr(client, f"chunk_{chunker}_source")
            response = send(_sdk_source_request(spec, "chunk", chunker))
        else:
            response = getattr(client, f"chunk_{chunker}_file")(spec.source)
    return chunk_texts(response.chunks)


def sdk_chunk_task(ctx: Ctx, spec: Spec, chunker: str) -> Outcome:
    with _sdk(ctx) as client:
        if spec.is_url:
            send = getattr(client, f"chunk_{chunker}_source_async_task")
            task = send(_sdk_source_request(spec, "chunk", chunker))
        else:
            task = getattr(client, f"chunk_{chunker}_file_async_task")(spec.source)
        result = client.wait_for_task(task.task_id, poll_interval=1.0, timeout=ctx.timeout)
    return chunk_texts(result.get("chunks"))


# -- docling-serve-haystack 2.0.0: DoclingServeConverter -------------------------------------------


class _Records(logging.Handler):
    """The converter logs a failed source as a warning and returns no Document: keep what it said."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())


def _haystack(ctx: Ctx, spec: Spec, conversion_mode: str) -> Any:
    from haystack.utils import Secret
    from haystack_integrations.components.converters.docling_serve import DoclingServeConverter
    from haystack_integrations.components.converters.docling_serve.converter import ExportType

    export = {"md": ExportType.MARKDOWN, "json": ExportType.JSON, "text": ExportType.TEXT}[spec.mode]
    return DoclingServeConverter(
        base_url=ctx.url,
        export_type=export,
        timeout=ctx.timeout,
        api_key=Secret.from_token(ctx.api_key) if ctx.api_key else None,
        mode=conversion_mode,
        poll_interval=1.0,
        job_timeout=ctx.timeout,
    )


def _haystack_outcome(result: dict[str, Any], records: _Records, spec: Spec) -> Outcome:
    documents = result["documents"]
    if not documents:
        raise CallError("no Document returned; converter logged: " + " | ".join(records.messages))
    texts = [d.content or "" for d in documents]
    if spec.mode == "json":
        outcomes = [check_document(t) for t in texts]
        return Outcome(
            [t for o in outcomes for t in o.texts],
            json_valid=all(o.json_valid for o in outcomes),
            error="; ".join(o.error for o in outcomes if o.error) or None,
        )
    return Outcome(texts)


def _haystack_logger() -> logging.Logger:
    return logging.getLogger("haystack_integrations.components.converters.docling_serve.converter")


def haystack_run(ctx: Ctx, spec: Spec, conversion_mode: str) -> Outcome:
    converter = _haystack(ctx, spec, conversion_mode)
    records = _Records()
    _haystack_logger().addHandler(records)
    try:
        result = converter.run(sources=[spec.source])
    finally:
        _haystack_logger().removeHandler(records)
    return _haystack_outcome(result, records, spec)


async def haystack_run_async(ctx: Ctx, spec: Spec, conversion_mode: str) -> Outcome:
    converter = _haystack(ctx, spec, conversion_mode)
    records = _Records()
    _haystack_logger().addHandler(records)
    try:
        result = await converter.run_async(sources=[spec.source])
    finally:
        _haystack_logger().removeHandler(records)
    return _haystack_outcome(result, records, spec)


# -- Open WebUI's DoclingLoader, reproduced with requests ---------------------------------------------


def openwebui_load(ctx: Ctx, spec: Spec) -> Outcome:
    """Open WebUI main (open-webui/open-webui, backend/open_webui/retrieval/loaders/main.py,
    DoclingLoader.load at 005d5505): the form is image_export_mode=placeholder plus DOCLING_PARAMS."""
    headers = {"X-Api-Key": f"{ctx.api_key}"} if ctx.api_key else {}
    data = {"image_export_mode": "placeholder", **spec.params}
    return _openwebui_post(ctx, spec, data, headers)


def openwebui_load_legacy(ctx: Ctx, spec: Spec) -> Outcome:
    """Open WebUI 0.6.x, when DoclingLoader built the form from its Docling settings (DOCLING_DO_OCR,
    DOCLING_OCR_ENGINE...), here at their defaults, and sent no API key."""
    settings = {
        "do_ocr": True,
        "force_ocr": False,
        "ocr_engine": "tesseract",
        "ocr_lang": "eng,fra,deu,spa",
        "pdf_backend": "dlparse_v4",
        "table_mode": "accurate",
        "pipeline": "standard",
        "do_picture_description": False,
        **spec.params,
    }
    data: dict[str, Any] = {"image_export_mode": "placeholder"}
    if settings.get("do_picture_description"):
        data["do_picture_description"] = settings["do_picture_description"]
        mode = str(settings.get("picture_description_mode", "")).lower()
        if mode in ("local", "api") and settings.get(f"picture_description_{mode}"):
            data[f"picture_description_{mode}"] = json.dumps(settings[f"picture_description_{mode}"])
    data["do_ocr"] = settings.get("do_ocr")
    data["force_ocr"] = settings.get("force_ocr")
    if settings.get("do_ocr") and settings.get("ocr_engine") and settings.get("ocr_lang"):
        data["ocr_engine"] = settings["ocr_engine"]
        data["ocr_lang"] = [x.strip() for x in str(settings["ocr_lang"]).split(",") if x.strip()]
    for key in ("pdf_backend", "table_mode", "pipeline"):
        if settings.get(key):
            data[key] = settings[key]
    return _openwebui_post(ctx, spec, data, {})


def _openwebui_post(ctx: Ctx, spec: Spec, data: dict[str, Any], headers: dict[str, str]) -> Outcome:
    import requests

    if spec.is_url:
        raise CallError("Open WebUI's Docling loader uploads files only")
    # Open WebUI names the part with the stored upload's absolute path and the MIME type the browser sent;
    # the timeout is this harness's, so a stuck server cannot hang a test (Open WebUI sets none).
    file_path = str(Path(spec.source).resolve())
    with open(file_path, "rb") as f:
        r = requests.post(
            f"{ctx.url.rstrip('/')}/v1/convert/file",
            files={"files": (file_path, f, mime_of(file_path))},
            data=data,
            headers=headers,
            timeout=ctx.timeout,
        )
    if not r.ok:
        error_msg = f"Error calling Docling API: {r.reason}"
        if r.text:
            try:
                error_data = r.json()
                if "detail" in error_data:
                    error_msg += f" - {error_data['detail']}"
            except Exception:
                error_msg += f" - {r.text}"
        raise CallError(f"HTTP {r.status_code}: Error calling Docling: {error_msg}")
    result = r.json()
    text = result.get("document", {}).get("md_content", OPENWEBUI_NO_TEXT)
    if text is None:
        raise CallError("document.md_content is null: Open WebUI's Document(page_content=None) raises")
    if text == OPENWEBUI_NO_TEXT:
        return Outcome([text], error="no document.md_content: Open WebUI indexes its fallback text")
    return Outcome([text])


# -- langchain-docling 3.0.0: DoclingLoader over DoclingServiceClient ------------------------------


def langchain_load(ctx: Ctx, spec: Spec, chunks: bool) -> Outcome:
    from docling.chunking import HierarchicalChunker
    from langchain_docling import DoclingLoader
    from langchain_docling.loader import ExportType

    with _docling_client(ctx) as client:
        loader = DoclingLoader(
            file_path=spec.source,
            converter=client,
            export_type=ExportType.DOC_CHUNKS if chunks else ExportType.MARKDOWN,
            # The default HybridChunker loads a Hugging Face tokenizer (a download); the hierarchical one
            # chunks the same DoclingDocument by its structure alone.
            chunker=HierarchicalChunker() if chunks else None,
        )
        return Outcome([d.page_content for d in loader.load()])


# -- docling-serve's documented curl commands ---------------------------------------------------------


def _curl(ctx: Ctx, args: list[str]) -> tuple[int, str]:
    auth = ["-H", f"X-Api-Key: {ctx.api_key}"] if ctx.api_key else []
    marker = "\n__HTTP_STATUS__:"
    command = ["curl", "-sS", "--max-time", str(int(ctx.timeout)), *auth, "-w", marker + "%{http_code}"]
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=ctx.timeout + 10, check=False
    )
    if done.returncode != 0:
        raise CallError(f"curl exited {done.returncode}: {done.stderr.strip()}")
    body, _, status = done.stdout.rpartition(marker)
    return int(status), body


def _curl_json(ctx: Ctx, args: list[str]) -> dict[str, Any]:
    status, body = _curl(ctx, args)
    if status != 200:
        raise CallError(f"HTTP {status}: {truncate(body)}")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise CallError(f"HTTP 200 but not JSON ({exc}): {truncate(body)}") from exc


def _curl_post_source(ctx: Ctx, payload: str) -> dict[str, Any]:
    """POST a JSON body to /v1/convert/source as docling-serve's documentation writes it."""
    args = ["-X", "POST", f"{ctx.url}/v1/convert/source", "-H", "accept: application/json",
            "-H", "Content-Type: application/json", "-d", payload]  # fmt: skip
    return _curl_json(ctx, args)


def _form_file(spec: Spec) -> str:
    return f"files=@{spec.source};type={mime_of(spec.source)}"


def curl_readme_source(ctx: Ctx, spec: Spec) -> Outcome:
    """docling-serve's README quickstart (also the 1.38.2 wheel's description)."""
    if not spec.is_url:
        raise CallError("the README example converts a URL")
    payload = json.dumps({"sources": [{"kind": "http", "url": spec.source}]})
    result = _curl_post_source(ctx, payload)
    return content_of(result.get("document"), "md")


# docs/usage.md, "File endpoint", CURL example: every -F but the file, in its order.
USAGE_FILE_FIELDS = [
    "ocr_engine=easyocr",
    "pdf_backend=dlparse_v2",
    "from_formats=pdf",
    "from_formats=docx",
    "force_ocr=false",
    "image_export_mode=embedded",
    "ocr_lang=en",
    "ocr_lang=pl",
    "table_mode=fast",
    "FILE",
    "abort_on_error=false",
    "to_formats=md",
    "to_formats=text",
    "do_ocr=true",
]

# docs/usage.md, "Source endpoint", CURL example: the payload as printed there (http_sources, the pre-1.0
# field name), with the document's URL.
USAGE_SOURCE_OPTIONS: dict[str, Any] = {
    "from_formats": ["docx", "pptx", "html", "image", "pdf", "asciidoc", "md", "xlsx"],
    "to_formats": ["md", "json", "html", "text", "doctags"],
    "image_export_mode": "placeholder",
    "do_ocr": True,
    "force_ocr": False,
    "ocr_engine": "easyocr",
    "ocr_lang": ["fr", "de", "es", "en"],
    "pdf_backend": "dlparse_v2",
    "table_mode": "fast",
    "abort_on_error": False,
    "do_table_structure": True,
    "include_images": True,
    "images_scale": 2,
}


def curl_usage_file(ctx: Ctx, spec: Spec) -> Outcome:
    if spec.is_url:
        raise CallError("the file example uploads a file")
    form: list[str] = []
    for field_ in USAGE_FILE_FIELDS:
        form += ["-F", _form_file(spec) if field_ == "FILE" else field_]
    result = _curl_json(
        ctx,
        [
            "-X",
            "POST",
            f"{ctx.url}/v1/convert/file",
            "-H",
            "accept: application/json",
            "-H",
            "Content-Type: multipart/form-data",
            *form,
        ],
    )
    return content_of(result.get("document"), "text" if spec.mode == "text" else "md")


def curl_usage_source(ctx: Ctx, spec: Spec) -> Outcome:
    if not spec.is_url:
        raise CallError("the source example converts a URL")
    payload = json.dumps({"options": USAGE_SOURCE_OPTIONS, "http_sources": [{"url": spec.source}]})
    result = _curl_post_source(ctx, payload)
    return content_of(result.get("document"), spec.mode)


def curl_usage_async(ctx: Ctx, spec: Spec) -> Outcome:
    """docs/usage.md, "Asynchronous API": submit to the /async route, poll until success or failure,
    fetch /v1/result; each step with curl."""
    if spec.is_url:
        payload = json.dumps(
            {
                "options": {"to_formats": to_formats(spec.mode)},
                "sources": [{"kind": "http", "url": spec.source}],
            }
        )
        submit = [
            "-X",
            "POST",
            f"{ctx.url}/v1/convert/source/async",
            "-H",
            "Content-Type: application/json",
            "-d",
            payload,
        ]
    else:
        submit = [
            "-X",
            "POST",
            f"{ctx.url}/v1/convert/file/async",
            "-F",
            _form_file(spec),
            "-F",
            f"to_formats={to_formats(spec.mode)[0]}",
        ]
    task = _curl_json(ctx, submit)
    task_id = task.get("task_id")
    if not isinstance(task_id, str):
        raise CallError(f"submission answered no task_id: {truncate(json.dumps(task))}")
    deadline = time.monotonic() + ctx.timeout
    while task.get("task_status") not in ("success", "failure"):
        if time.monotonic() > deadline:
            raise CallError(f"task {task_id} still {task.get('task_status')} after {ctx.timeout} s")
        task = _curl_json(ctx, [f"{ctx.url}/v1/status/poll/{task_id}?wait=1"])
    if task["task_status"] == "failure":
        raise CallError(f"task failed: {truncate(json.dumps(task))}")
    result = _curl_json(ctx, [f"{ctx.url}/v1/result/{task_id}"])
    return content_of(result.get("document"), spec.mode)


# -- the registry ---------------------------------------------------------------------------------------

Call = Callable[[Ctx, Spec], Outcome | Awaitable[Outcome]]

CALLS: dict[tuple[str, str], tuple[Call, str]] = {
    ("docling_client", "convert"): (
        lambda c, s: docling_convert(c, s, "websocket", False),
        "convert(): /async submission, status over the websocket only (no poll fallback), /v1/result",
    ),
    ("docling_client", "convert_poll"): (
        lambda c, s: docling_convert(c, s, "polling", True),
        "convert() with status_watcher=polling: /v1/status/poll/{id}?wait=5",
    ),
    ("docling_client", "convert_all"): (
        docling_convert_all,
        "convert_all(): the same requests sent by AsyncDoclingServiceClient, websocket with poll fallback",
    ),
    ("docling_client", "submit"): (
        docling_submit,
        "submit() (default target), job.poll(wait=1) until done, job.result()",
    ),
    ("docling_client", "submit_watch"): (
        docling_submit_watch,
        "submit(target=InBodyTarget()), job.watch() over the websocket only, job.result()",
    ),
    ("docling_client", "submit_zip"): (
        docling_submit_zip,
        "submit(target=ZipTarget()): /v1/result is a zip archive",
    ),
    ("docling_client", "retrieve_each"): (
        docling_retrieve_each,
        "submit_and_retrieve_each(target=InBodyTarget()): the raw response, md_content/json_content",
    ),
    ("docling_client", "async_submit"): (
        lambda c, s: docling_async_submit(c, s, "websocket"),
        "AsyncDoclingServiceClient.submit(target=InBodyTarget()), websocket only, await job.result()",
    ),
    ("docling_client", "async_submit_poll"): (
        lambda c, s: docling_async_submit(c, s, "polling"),
        "AsyncDoclingServiceClient.submit(target=InBodyTarget()), status polls, await job.result()",
    ),
    ("docling_client", "chunk_hybrid"): (
        lambda c, s: docling_chunk(c, s, "hybrid"),
        "chunk(source, ChunkerKind.HYBRID): /v1/chunk/hybrid/{file,source}/async",
    ),
    ("docling_client", "chunk_hierarchical"): (
        lambda c, s: docling_chunk(c, s, "hierarchical"),
        "chunk(source, ChunkerKind.HIERARCHICAL): /v1/chunk/hierarchical/{file,source}/async",
    ),
    ("docling_client", "async_chunk_hybrid"): (
        lambda c, s: docling_async_chunk(c, s, "hybrid"),
        "AsyncDoclingServiceClient.submit_chunk(ChunkerKind.HYBRID)",
    ),
    ("docling_client", "async_chunk_hierarchical"): (
        lambda c, s: docling_async_chunk(c, s, "hierarchical"),
        "AsyncDoclingServiceClient.submit_chunk(ChunkerKind.HIERARCHICAL)",
    ),
    ("docling_serve_sdk", "convert"): (sdk_convert, "convert_file() / convert_source(): the sync routes"),
    ("docling_serve_sdk", "convert_async"): (
        sdk_convert_async,
        "convert_file_async() / convert_source_async(): the sync routes from asyncio",
    ),
    ("docling_serve_sdk", "task"): (
        sdk_task,
        "convert_*_async_task() then wait_for_task(): /async, status polls, /v1/result",
    ),
    ("docling_serve_sdk", "task_async"): (
        sdk_task_async,
        "convert_*_async_task_async() then wait_for_task_async()",
    ),
    ("docling_serve_sdk", "chunk_hybrid"): (
        lambda c, s: sdk_chunk(c, s, "hybrid"),
        "chunk_hybrid_file() / chunk_hybrid_source(): the sync chunk routes",
    ),
    ("docling_serve_sdk", "chunk_hierarchical"): (
        lambda c, s: sdk_chunk(c, s, "hierarchical"),
        "chunk_hierarchical_file() / chunk_hierarchical_source()",
    ),
    ("docling_serve_sdk", "chunk_hybrid_task"): (
        lambda c, s: sdk_chunk_task(c, s, "hybrid"),
        "chunk_hybrid_*_async_task() then wait_for_task()",
    ),
    ("docling_serve_sdk", "chunk_hierarchical_task"): (
        lambda c, s: sdk_chunk_task(c, s, "hierarchical"),
        "chunk_hierarchical_*_async_task() then wait_for_task()",
    ),
    ("haystack", "run"): (
        lambda c, s: haystack_run(c, s, "sync"),
        "DoclingServeConverter(mode=sync).run(): the sync routes",
    ),
    ("haystack", "run_jobs"): (
        lambda c, s: haystack_run(c, s, "async"),
        "DoclingServeConverter(mode=async).run(): /async, status polls, /v1/result",
    ),
    ("haystack", "run_async"): (
        lambda c, s: haystack_run_async(c, s, "sync"),
        "DoclingServeConverter(mode=sync).run_async(): the sync routes from asyncio",
    ),
    ("haystack", "run_async_jobs"): (
        lambda c, s: haystack_run_async(c, s, "async"),
        "DoclingServeConverter(mode=async).run_async()",
    ),
    ("openwebui", "load"): (openwebui_load, "Open WebUI main's DoclingLoader.load() (files only)"),
    ("openwebui", "load_legacy"): (
        openwebui_load_legacy,
        "Open WebUI 0.6.x's DoclingLoader.load() with its default Docling settings (files only)",
    ),
    ("langchain", "load"): (
        lambda c, s: langchain_load(c, s, chunks=False),
        "DoclingLoader(converter=DoclingServiceClient, export_type=MARKDOWN).load()",
    ),
    ("langchain", "load_chunks"): (
        lambda c, s: langchain_load(c, s, chunks=True),
        "DoclingLoader(converter=DoclingServiceClient, export_type=DOC_CHUNKS, HierarchicalChunker)",
    ),
    ("curl", "readme_source"): (curl_readme_source, "README quickstart: POST /v1/convert/source (URL)"),
    ("curl", "usage_file"): (curl_usage_file, "docs/usage.md file example: POST /v1/convert/file"),
    ("curl", "usage_source"): (
        curl_usage_source,
        "docs/usage.md source example as printed (http_sources): POST /v1/convert/source (URL)",
    ),
    ("curl", "usage_async"): (
        curl_usage_async,
        "docs/usage.md asynchronous API with curl: /async, /v1/status/poll, /v1/result",
    ),
}


def run_one(ctx: Ctx, raw: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    record: dict[str, Any] = {
        "client": raw.get("client"),
        "call": raw.get("call"),
        "source": raw.get("source"),
        "mode": raw.get("mode", "md"),
        "ok": False,
        "texts": [],
        "json_valid": None,
        "error": None,
    }
    try:
        spec = Spec(
            client=raw["client"],
            call=raw["call"],
            source=str(raw["source"]),
            mode=raw.get("mode", "md"),
            params=raw.get("params") or {},
        )
        if spec.mode not in ("md", "json", "text"):
            raise CallError(f"mode {spec.mode!r} is not md, json or text")
        entry = CALLS.get((spec.client, spec.call))
        if entry is None:
            raise CallError(f"no such call {spec.client}/{spec.call}; --list shows them")
        result = entry[0](ctx, spec)
        outcome = asyncio.run(result) if asyncio.iscoroutine(result) else result
        assert isinstance(outcome, Outcome)
        record["texts"] = outcome.texts
        record["json_valid"] = outcome.json_valid
        record["error"] = outcome.error
        if outcome.error is None and not any(t.strip() for t in outcome.texts):
            record["error"] = "the client returned no text (every text blank)"
        record["ok"] = record["error"] is None
    except Exception as exc:
        record["error"] = describe(exc)
        print(f"{record['client']}/{record['call']}: {record['error']}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
    record["seconds"] = round(time.monotonic() - started, 3)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="the server's base URL, without /v1")
    parser.add_argument("--api-key", default=None, help="sent the way each client sends it (X-Api-Key...)")
    parser.add_argument("--calls", help="JSON file with the list of call specs, or - for stdin")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per request and per task")
    parser.add_argument("--list", action="store_true", help="print the calls this harness knows")
    args = parser.parse_args(argv)
    if args.list:
        for (client, call), (_, what) in CALLS.items():
            print(f"{client:18} {call:26} {what}")
        return 0
    if not args.url or not args.calls:
        parser.error("--url and --calls are required")
    text = sys.stdin.read() if args.calls == "-" else Path(args.calls).read_text()
    specs = json.loads(text)
    if not isinstance(specs, list):
        parser.error("--calls must hold a JSON list")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    ctx = Ctx(url=args.url.rstrip("/"), api_key=args.api_key or None, timeout=args.timeout)
    results = [run_one(ctx, spec) for spec in specs]
    json.dump(results, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
