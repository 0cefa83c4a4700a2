"""The HTTP API on Ray Serve, speaking docling-serve's v1 wire contract (docling_api has the protocol):
two deployments.

- `Api`, the FastAPI ingress: authentication (before any body is read), limits, uploads spooled to disk,
  sources fetched only under serve.allowed_sources, async tasks (results kept on disk, at most
  serve.max_tasks), docling's responses and zip, metrics. It is async and takes many requests at once, and
  reads every body with a deadline, so a slow or stalled client holds a coroutine, never a worker.
- `Engines`, the replicas holding the engines (and models): concurrent requests batched into one call
  (`@serve.batch`), their files converted one at a time (Tesseract and the models are not thread-safe),
  autoscaled between serve.min_replicas and serve.max_replicas. They convert with the same stage
  functions as a job (stages.convert_file) and export what the request asked (docling_api).

Routes (docling-serve 1.38's): POST /v1/convert/{file,source}[/async], GET /v1/status/poll/{task_id}?wait=,
WS /v1/status/ws/{task_id}, GET /v1/result/{task_id}, POST /v1/chunk/{hybrid,hierarchical}/{file,source}
[/async]; GET /health, /ready, /version, /metrics; /openapi.json and /docs.
"""

# No `from __future__ import annotations`: FastAPI reads the route methods' annotations at runtime (a
# string `Request` behind Serve's ingress wrapper would become a query parameter).
import asyncio
import base64
import binascii
import collections
import contextlib
import ipaddress
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from ray import serve
from starlette.websockets import WebSocketDisconnect
from unitok.pipeline.core.config import JobConfig
from unitok.pipeline.drivers import docling_api as dapi

log = logging.getLogger("unitok")
MAX_PARTS = 1000  # multipart files and fields per request, as Starlette's default


def _under(uri: str, prefix: str) -> bool:
    if prefix.startswith(("s3://", "http://", "https://")):
        return uri.startswith(prefix if prefix.endswith(("/", "://")) else prefix.rstrip("/") + "/")
    root = str(Path(prefix.removeprefix("file://")).resolve()).rstrip("/") + "/"
    return uri.startswith(root)


def with_overrides(cfg: JobConfig, changes: dict[str, Any]) -> JobConfig:
    """The config with a request's settings (dotted names, see docling_api.overrides)."""
    if not changes:
        return cfg
    data = cfg.model_dump()
    for dotted, value in changes.items():
        section, field = dotted.split(".")
        data[section][field] = value
    return JobConfig.model_validate(data)


class _Lru(collections.OrderedDict):
    """At most `size` entries; the least recently used one is closed (if it can be) and dropped."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key: str, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        while len(self) > self.size:
            _, old = self.popitem(last=False)
            close = getattr(old, "close", None)
            if callable(close):
                close()
        return value


@serve.deployment
class Engines:
    """Engine replicas: a file's bytes in, the rows a job writes for it and docling's export out.

    Concurrent requests are gathered into batches (`@serve.batch`, up to serve.max_batch_size files), so
    one replica call serves several files; the files of a batch are converted one after another on one
    thread (Tesseract and the models are not thread-safe); engine batches stay per file, so a file's
    rows are byte-identical to a job's whatever else shares its batch."""

    def __init__(self, cfg_data: dict[str, Any]):
        from concurrent.futures import ThreadPoolExecutor

        self.cfg = JobConfig.model_validate(cfg_data)
        # Requests choose settings (OCR languages, chunk sizes): each choice keeps its engines loaded, so
        # the number of choices kept is bounded.
        self._pools = _Lru(self.cfg.serve.max_engine_sets)
        self._chunkers = _Lru(self.cfg.serve.max_engine_sets)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="unitok-engines")
        self._batched.set_max_batch_size(self.cfg.serve.max_batch_size)
        self.pool(self.cfg)  # loaded before the replica reports ready

    def pool(self, cfg: JobConfig) -> Any:
        from unitok.actors.registry import engine_options
        from unitok.pipeline.stages.convert import EnginePool

        options = engine_options(cfg)
        return self._pools.get_or(repr(sorted(options.items())), lambda: EnginePool(options))

    def chunking(self, cfg: JobConfig) -> Any:
        from unitok.pipeline.stages.doc_chunks import DocumentChunks

        key = cfg.chunking.model_dump_json() + cfg.embedding.model_dump_json()
        return self._chunkers.get_or(key, lambda: DocumentChunks(cfg))

    def ready(self) -> bool:
        return True

    async def convert(self, data: bytes, name: str, uri: str | None, job: dict[str, Any]) -> dict:
        # In a list the file's thread empties once the bytes are on disk: Serve's batcher keeps the last
        # batch's arguments until the next batch comes (up to max_batch_size uploads held by an idle replica).
        box = [data]
        del data
        outcome = await self._batched((box, name, uri, job))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def _batched(self, items: list[tuple[list[bytes], str, str | None, dict[str, Any]]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: [self._one(*item) for item in items])

    def _one(self, box: list[bytes], name: str, uri: str | None, job: dict[str, Any]) -> Any:
        """One file's result (docling_api's pieces and unitok's rows), or the exception it raised (it
        fails that request, not its batch)."""
        from docling.datamodel.service.options import ConvertDocumentsOptions
        from unitok.pipeline.core.testhooks import checkpoint
        from unitok.pipeline.stages.convert_file import convert_file

        checkpoint("serve.convert")  # a test may kill the replica here
        try:
            t0 = time.perf_counter()
            cfg = with_overrides(self.cfg, job["overrides"])
            opts = ConvertDocumentsOptions.model_validate(job["options"])
            chunker = None
            if job.get("chunker"):
                chunker = dapi.CHUNKERS[job["chunker"]["chunker"]].model_validate(job["chunker"])
            run_id = f"serve-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
            with tempfile.TemporaryDirectory(prefix="unitok-serve-") as tmp:
                path = Path(tmp) / "upload"
                path.write_bytes(box.pop())
                # unitok's chunks as a job writes them (a chunk route turns chunking on)
                chunking = self.chunking(cfg) if cfg.chunking.enabled else None
                out = convert_file(path, name, cfg, self.pool(cfg), run_id, uri=uri, chunking=chunking)
                mime = (out.get("document") or {}).get("mime_type") or ""
                built = out.get("document") and (chunker is not None or dapi.needs_document(opts))
                sizes = dapi.page_sizes(path, mime) if built else {}
            refs: dict[int, list[str]] | None = {} if chunker is not None else None
            export, failed = dapi.export_document(out, name, opts, item_refs=refs, sizes=sizes)
            errors = dapi.error_items(out["errors"]) + failed
            status = dapi.status_of(out)
            return {
                "filename": name,
                "status": "partial_success" if failed and status == "success" else status,
                "errors": errors,
                "export": export,
                "chunks": dapi.chunk_items(out, name, chunker, refs) if refs is not None else [],
                "unitok": {
                    k: out.get(k) for k in ("document", "attachments", "segments", "errors", "chunks")
                },
                "processing_time": round(time.perf_counter() - t0, 4),
            }
        except Exception as e:  # noqa: BLE001 - handed to the waiting request
            return e


class Metrics:
    """Prometheus metrics of this ingress replica."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "unitok_requests", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "unitok_request_seconds", "Request latency", ["route"], registry=self.registry
        )
        self.pages = Counter("unitok_segments", "Segments converted", registry=self.registry)
        self.errors = Counter("unitok_error_rows", "Error rows returned", registry=self.registry)
        self.queue = Gauge(
            "unitok_queue_depth", "Conversions waiting for or on an engine replica", registry=self.registry
        )
        self.tasks = Gauge(
            "unitok_tasks", "Async tasks held (queued, running or with a result)", registry=self.registry
        )


# (name, read its bytes → (name, bytes, uri), at most how many bytes that holds)
Loader = tuple[str, Callable[[], Awaitable[tuple]], int]


class ByteBudget:
    """Bytes held in memory on their way to an engine replica, at most `limit` at once; one file always
    passes, however large (it is under serve.max_upload_mib)."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._freed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, size: int):
        async with self._freed:
            await self._freed.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size
        try:
            yield
        finally:
            async with self._freed:
                self.used -= size
                self._freed.notify_all()


class Task:
    """An async task: its status (docling's TaskStatusResponse) in memory, its result in a file."""

    def __init__(self, task_id: str, task_type: str, num_docs: int):
        self.id, self.type = task_id, task_type
        self.status = "pending"
        self.created = time.monotonic()
        self.done = asyncio.Event()
        # Set (and replaced) at each change: every watcher of the task wakes, whoever else watches it.
        self.changed = asyncio.Event()
        self.meta = {
            "num_docs": num_docs,
            "num_processed": 0,
            "num_succeeded": 0,
            "num_partially_succeeded": 0,
            "num_failed": 0,
        }
        self.error: str | None = None
        self.result: Path | None = None  # the response body
        self.media_type = "application/json"
        self.job: asyncio.Task | None = None

    def count(self, status: str) -> None:
        self.meta["num_processed"] += 1
        key = {"success": "num_succeeded", "partial_success": "num_partially_succeeded"}.get(status)
        self.meta[key or "num_failed"] += 1
        self.touch()

    def touch(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


app = FastAPI(
    title="unitok",
    version="1",
    description="Documents, decks, images, recordings and videos in; Markdown with provenance out. "
    "docling-serve's v1 API: its clients work unchanged.",
)


def _openapi() -> dict[str, Any]:
    """FastAPI's document plus the request bodies the routes read themselves (after authentication):
    docling's models, registered as components."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    template = "#/components/schemas/{model}"
    for path, item in schema["paths"].items():
        body = _BODIES.get(path)
        if body is None or "post" not in item:
            continue
        model, prefix, exclude, extra = body
        js = model.model_json_schema(ref_template=template)
        components.update(js.pop("$defs", {}))
        if prefix is None:  # a JSON body
            components[js.get("title", model.__name__)] = js
            content = {"application/json": {"schema": {"$ref": template.format(model=js.get("title"))}}}
        else:
            props: dict[str, Any] = {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
            }
            for options, pre, skip in ((model, prefix, exclude), *extra):
                sub = options.model_json_schema(ref_template=template)
                components.update(sub.pop("$defs", {}))
                props.update({pre + k: v for k, v in sub["properties"].items() if k not in skip})
            props["target_type"] = {"type": "string", "enum": list(dapi.TARGETS), "default": "inbody"}
            content = {
                "multipart/form-data": {
                    "schema": {"type": "object", "properties": props, "required": ["files"]}
                }
            }
        item["post"]["requestBody"] = {"required": True, "content": content}
    app.openapi_schema = schema
    return schema


app.openapi = _openapi  # type: ignore[method-assign]
_OPTS = dapi.ConvertDocumentsOptions
_BODIES: dict[str, tuple] = {}
for _p in ("/v1/convert/file", "/v1/convert/file/async"):
    _BODIES[_p] = (_OPTS, "", (), ())
for _p in ("/v1/convert/source", "/v1/convert/source/async"):
    _BODIES[_p] = (dapi.SourcesRequest, None, (), ())
for _name, _chunker in dapi.CHUNKERS.items():
    for _p in (f"/v1/chunk/{_name}/file", f"/v1/chunk/{_name}/file/async"):
        _BODIES[_p] = (_OPTS, "convert_", ("to_formats",), ((_chunker, "chunking_", ("chunker",)),))
    for _p in (f"/v1/chunk/{_name}/source", f"/v1/chunk/{_name}/source/async"):
        _BODIES[_p] = (dapi.CHUNK_REQUESTS[_name], None, (), ())


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(app)
class Api:
    def __init__(self, engines: Any, cfg_data: dict[str, Any]):
        self.engines = engines
        self.cfg = JobConfig.model_validate(cfg_data)
        self.api_key = os.environ.get("UNITOK_API_KEY") or self.cfg.serve.api_key
        self.tasks: dict[str, Task] = {}
        self.results = Path(tempfile.mkdtemp(prefix="unitok-results-"))
        self.budget = ByteBudget(self.cfg.serve.max_inflight_mib << 20)
        self.metrics = Metrics()

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "results", ""), ignore_errors=True)

    # -- plumbing -------------------------------------------------------------------------------------
    def _auth(self, request: Request) -> None:
        if self.api_key and not secrets.compare_digest(request.headers.get("x-api-key", ""), self.api_key):
            raise HTTPException(401, "missing or wrong X-Api-Key")

    def _limit(self) -> int:
        return self.cfg.serve.max_upload_mib << 20

    def _too_big(self) -> HTTPException:
        return HTTPException(413, f"body over serve.max_upload_mib ({self.cfg.serve.max_upload_mib} MiB)")

    async def _stream(self, request: Request):
        """The body's chunks, at most serve.max_upload_mib in all."""
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._limit():
                raise self._too_big()
            yield chunk

    async def _deadline(self, work: Awaitable[Any]) -> Any:
        try:
            return await asyncio.wait_for(work, self.cfg.serve.body_timeout_s)
        except TimeoutError:
            raise HTTPException(
                408, f"the body did not arrive within {self.cfg.serve.body_timeout_s:g} s"
            ) from None

    async def _body(self, request: Request) -> bytes:
        """A JSON body, read with a deadline and a size limit."""
        if int(request.headers.get("content-length") or 0) > self._limit():
            raise self._too_big()

        async def read() -> bytes:
            return b"".join([chunk async for chunk in self._stream(request)])

        return await self._deadline(read())

    async def _form(self, request: Request) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
        """(name, upload) of each file and (field, value) of each other part of a multipart body, files
        spooled to disk past 1 MiB; or a raw body named by ?filename= with options as query parameters."""
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        if int(request.headers.get("content-length") or 0) > self._limit():
            raise self._too_big()
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            upload = UploadFile(
                tempfile.SpooledTemporaryFile(1 << 20), filename=request.query_params.get("filename")
            )

            async def spool() -> None:
                async for chunk in self._stream(request):
                    await upload.write(chunk)

            await self._deadline(spool())
            await upload.seek(0)
            fields = [(k, v) for k, v in request.query_params.multi_items() if k != "filename"]
            return [(dapi.safe_filename(upload.filename), upload)], fields
        parser = MultiPartParser(
            request.headers, self._stream(request), max_files=MAX_PARTS, max_fields=MAX_PARTS
        )
        try:
            form = await self._deadline(parser.parse())
        except MultiPartException as e:
            raise HTTPException(400, f"malformed multipart body: {e.message}") from None
        files = [
            (dapi.safe_filename(v.filename), v)
            for k, v in form.multi_items()
            if isinstance(v, UploadFile) and k in ("files", "file")
        ]
        fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
        if not files:
            raise dapi.RequestError([{"type": "missing", "loc": ["body", "files"], "msg": "Field required"}])
        return files, fields

    async def _timed(self, route: str, request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        status = 500
        try:
            self._auth(request)  # before any byte of the body is read
            response = await asyncio.wait_for(work(), self.cfg.serve.request_timeout_s)
            status = response.status_code
            return response
        except TimeoutError:
            status = 504
            return JSONResponse(
                {
                    "detail": "Conversion is taking too long. The maximum wait time is "
                    f"serve.request_timeout_s={self.cfg.serve.request_timeout_s:g}."
                },
                status_code=504,
            )
        except dapi.RequestError as e:
            status = e.status
            return JSONResponse({"detail": e.detail}, status_code=e.status)
        except HTTPException as e:
            status = e.status_code
            return JSONResponse({"detail": e.detail}, status_code=e.status_code, headers=e.headers)
        finally:
            elapsed = time.perf_counter() - t0
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info("%s %s %d %.0f ms", request.method, request.url.path, status, elapsed * 1000)

    def _installed_languages(self) -> set[str] | None:
        """The Tesseract language packs the engines find (None where none is found here)."""
        if not hasattr(self, "_langs"):
            from unitok.actors.ocr_tesseract import find_tessdata

            try:
                folder = find_tessdata(self.cfg.ocr.tessdata_dir, "eng")
                self._langs = {p.stem for p in Path(folder).glob("*.traineddata")} - {"osd"}
            except Exception:  # noqa: BLE001 - no OCR here: the engines will say so
                self._langs = None
        return self._langs

    def _settings(self, opts: Any, chunker: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(the setting changes of a request's options, notes for every document's errors). Requested OCR
        languages that are not installed are left out and said in a note: docling-serve's clients send
        lists such as eng,fra,deu,spa whatever the server has."""
        changes = dapi.overrides(opts, chunker)
        notes = []
        langs, installed = changes.get("ocr.languages"), self._installed_languages()
        if langs and langs != "auto" and installed is not None:
            asked = langs.split("+")
            kept = [x for x in asked if x in installed]
            if not kept:
                raise dapi.RequestError(f"ocr_lang: none of {', '.join(asked)} is installed here "
                                        f"(installed: {', '.join(sorted(installed))})")  # fmt: skip
            if len(kept) < len(asked):
                changes["ocr.languages"] = "+".join(kept)
                missing = ", ".join(x for x in asked if x not in installed)
                notes.append({"component_type": "user_input", "module_name": "unitok.serve",
                              "error_message": f"ocr_lang: {missing} not installed here; OCR read with "
                              f"{changes['ocr.languages']}"})  # fmt: skip
        self._check_overridable(changes)
        return changes, notes

    def _check_overridable(self, changes: dict[str, Any]) -> None:
        allowed = set(self.cfg.serve.overridable)
        for dotted in changes:
            if dotted not in allowed:
                raise HTTPException(
                    403, f"this server does not let requests set {dotted} (serve.overridable)"
                )
        try:
            with_overrides(self.cfg, changes)
        except Exception as e:  # noqa: BLE001 - a value the config refuses: 422 with its reason
            raise dapi.RequestError(f"bad option: {str(e).splitlines()[-1]}") from None

    # -- sources --------------------------------------------------------------------------------------
    def _allowed(self, uri: str) -> str:
        if ".." in uri.split("/") or "\x00" in uri:
            raise HTTPException(403, f"{uri}: path tricks are refused")
        prefix = next((p for p in self.cfg.serve.allowed_sources if _under(uri, p)), None)
        if prefix is None:
            raise HTTPException(403, f"{uri}: not under serve.allowed_sources")
        return prefix

    def _check_http(self, url: str) -> None:
        """Under a configured prefix; a loopback, private or link-local address only where the prefix
        names that host (as docling-core refuses them unless allowed)."""
        prefix = self._allowed(url)
        host = urlparse(url).hostname or ""
        try:
            addresses = {ipaddress.ip_address(a[4][0].split("%")[0]) for a in socket.getaddrinfo(host, None)}
        except (OSError, ValueError):
            raise HTTPException(422, f"{url}: the host {host!r} does not resolve") from None
        internal = any(
            a.is_private
            or a.is_loopback
            or a.is_link_local
            or a.is_reserved
            or a.is_multicast
            or a.is_unspecified
            for a in addresses
        )
        if internal and urlparse(prefix).hostname != host:
            raise HTTPException(
                403,
                f"{url}: {host} is a private or loopback address; a prefix in "
                "serve.allowed_sources must name it",
            )

    def _fetch_http(self, url: str, headers: dict[str, str]) -> tuple[str, bytes]:
        """The body of an http source (redirects followed, each checked again), at most the upload limit."""
        import requests

        for _ in range(5):
            self._check_http(url)
            with requests.get(
                url,
                headers=headers,
                stream=True,
                allow_redirects=False,
                timeout=(10, self.cfg.serve.body_timeout_s),
            ) as r:
                if r.is_redirect:
                    url = requests.compat.urljoin(url, r.headers["location"])
                    continue
                r.raise_for_status()
                chunks, size = [], 0
                for chunk in r.iter_content(1 << 16):
                    size += len(chunk)
                    if size > self._limit():
                        raise self._too_big()
                    chunks.append(chunk)
                name = unquote(urlparse(url).path.rsplit("/", 1)[-1]) or "file"
                return dapi.safe_filename(name), b"".join(chunks)
        raise HTTPException(422, f"{url}: more than 5 redirects")

    def _fetch_object(self, kind: str, uri: str) -> tuple[str, bytes, str]:
        from unitok.connectors.objects import ObjectInfo
        from unitok.connectors.store import open_store

        if kind == "file":
            uri = str(Path(uri.removeprefix("file://")).resolve())
        elif not uri.startswith("s3://"):
            raise HTTPException(403, f"{uri}: an s3 source is an s3:// URI")
        prefix = self._allowed(uri)
        if kind == "file":
            path = Path(uri)
            if not path.is_file():
                raise HTTPException(404, f"{uri}: no such file")
            return path.name, path.read_bytes(), path.as_uri()
        store = open_store(prefix, {"endpoint_url": self.cfg.source.s3.endpoint_url})
        info = ObjectInfo(uri=uri, key=uri.rsplit("/", 1)[-1], size=0, modified_at=0.0)
        with store.fetch(info) as (path, _):
            return dapi.safe_filename(info.key), path.read_bytes(), uri

    def _source_loaders(self, sources: list[Any]) -> list[Loader]:
        """(name, loader, at most how many bytes it reads) of each source, every one checked against the
        policy before any is fetched."""
        out = []
        for src in sources:
            if src.kind == "http":
                url = str(src.url)
                self._check_http(url)
                headers = {str(k): str(v) for k, v in (src.headers or {}).items()}

                async def http(url=url, headers=headers) -> tuple[str, bytes, str]:
                    name, data = await asyncio.to_thread(self._fetch_http, url, headers)
                    return name, data, url

                out.append((unquote(urlparse(url).path.rsplit("/", 1)[-1]) or "file", http, self._limit()))
            elif isinstance(src, dapi.ObjectSource):
                if ".." in src.uri.split("/"):  # refused before the path is resolved
                    raise HTTPException(403, f"{src.uri}: path tricks are refused")
                local = src.kind == "file"
                self._allowed(str(Path(src.uri.removeprefix("file://")).resolve()) if local else src.uri)

                async def obj(kind=src.kind, uri=src.uri) -> tuple[str, bytes, str]:
                    return await asyncio.to_thread(self._fetch_object, kind, uri)

                out.append((src.uri.rsplit("/", 1)[-1], obj, self._limit()))
            else:  # docling's file source: base64 in the body
                name = dapi.safe_filename(src.filename)
                try:
                    data = base64.b64decode(src.base64_string, validate=True)
                except (binascii.Error, ValueError):
                    raise dapi.RequestError(
                        [
                            {
                                "type": "value_error",
                                "loc": ["body", "sources", "base64_string"],
                                "msg": "Value error, not base64",
                            }
                        ]
                    ) from None

                async def inline(name=name, data=data) -> tuple[str, bytes, None]:
                    return name, data, None

                out.append((name, inline, len(data)))
        return out

    def _upload_loaders(self, files: list[tuple[str, Any]]) -> list[Loader]:
        def loader(name: str, upload: Any) -> Callable[[], Awaitable[tuple]]:
            async def load() -> tuple[str, bytes, None]:
                try:
                    return name, await upload.read(), None
                finally:
                    await upload.close()

            return load

        return [(name, loader(name, upload), upload.size or self._limit()) for name, upload in files]

    # -- conversion -----------------------------------------------------------------------------------
    def _failed(
        self, name: str, message: str, status: str = "failure", component: str = "user_input"
    ) -> dict:
        return {
            "filename": name,
            "status": status,
            "export": {"filename": name},
            "chunks": [],
            "unitok": None,
            "errors": [
                {"component_type": component, "module_name": "unitok.serve", "error_message": message}
            ],
            "processing_time": 0.0,
        }

    async def _convert_one(
        self, name: str, load: Callable[[], Awaitable[tuple]], size: int, opts: Any, changes: dict[str, Any],
        chunker: Any,
    ) -> dict:  # fmt: skip
        """One document, its bytes held in memory only within serve.max_inflight_mib (past it a request
        waits with its upload on disk)."""
        async with self.budget.hold(size):
            return await self._convert_loaded(name, load, opts, changes, chunker)

    async def _convert_loaded(
        self,
        name: str,
        load: Callable[[], Awaitable[tuple]],
        opts: Any,
        changes: dict[str, Any],
        chunker: Any,
    ) -> dict:
        from unitok.pipeline.formats.detect import sniff
        from unitok.pipeline.formats.split import CONVERTED

        try:
            name, data, uri = await load()
        except HTTPException as e:
            return self._failed(name, f"the source could not be read: {e.detail}")
        except Exception as e:  # noqa: BLE001 - an unreachable source fails its document, as in docling
            return self._failed(name, f"the source could not be read: {type(e).__name__}: {e}")
        ft = sniff(data[:4096], name=name)
        if data and not ft.supported and ft.mime_type not in ("application/zip", "application/x-ole-storage"):
            return self._failed(name, f"{name}: content is {ft.mime_type}; unitok converts {CONVERTED}")
        allowed = {f.value for f in opts.from_formats}
        fmt = dapi.input_format(name, ft.mime_type)
        if fmt is not None and fmt not in allowed:
            return self._failed(name, f"File format not allowed: {name}", status="skipped")
        job = {
            "overrides": changes,
            "options": opts.model_dump(mode="json"),
            "chunker": chunker.model_dump(mode="json") if chunker is not None else None,
        }
        self.metrics.queue.inc()
        try:
            work = self.engines.convert.remote(data, name, uri, job)
            del data
            if opts.document_timeout:
                result = await asyncio.wait_for(work, opts.document_timeout)
            else:
                result = await work
        except TimeoutError:
            return self._failed(
                name, f"document_timeout ({opts.document_timeout:g} s) reached", component="pipeline"
            )
        except Exception as e:  # noqa: BLE001 - a replica lost, an engine that cannot load: this document failed
            return self._failed(
                name, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", component="pipeline"
            )
        finally:
            self.metrics.queue.dec()
        unitok = result.get("unitok") or {}
        self.metrics.pages.inc(len(unitok.get("segments") or []))
        self.metrics.errors.inc(len(unitok.get("errors") or []))
        return result

    async def _convert_all(
        self,
        loaders: list[Loader],
        opts: Any,
        settings: tuple[dict[str, Any], list[dict[str, Any]]],
        chunker: Any = None,
        task: Task | None = None,
    ) -> list[dict]:
        """Each loader's document converted with `settings` (changes, and notes said in every document's
        errors: see _settings)."""
        changes, notes = settings

        async def one(name: str, load: Callable, size: int) -> dict:
            if task is not None:
                task.status = "started"
                task.touch()
            result = await self._convert_one(name, load, size, opts, changes, chunker)
            if notes and result["status"] in ("success", "partial_success"):
                result["errors"] = notes + result["errors"]
                result["status"] = "partial_success"
            if task is not None:
                task.count(result["status"])
            return result

        if not opts.abort_on_error:
            return list(await asyncio.gather(*(one(*loader) for loader in loaders)))
        results: list[dict] = []
        for name, load, size in loaders:  # one after another: a failure stops the rest
            if results and results[-1]["status"] == "failure":
                results.append(
                    self._failed(
                        name, "not converted: an earlier document failed (abort_on_error)", status="skipped"
                    )
                )
                continue
            results.append(await one(name, load, size))
        return results

    def _convert_response(self, request: Request, results: list[dict], target: str, t0: float) -> Response:
        elapsed = round(time.perf_counter() - t0, 4)
        if "text/markdown" in request.headers.get("accept", ""):  # unitok's extension: Markdown alone
            texts = [r["export"].get("md_content") for r in results if r["export"].get("md_content")]
            return PlainTextResponse(
                "\n\n---\n\n".join(texts), status_code=200 if texts else 422, media_type="text/markdown"
            )
        if len(results) == 1 and target == "inbody":
            r = results[0]
            return JSONResponse(
                {
                    "document": r["export"],
                    "status": r["status"],
                    "errors": r["errors"],
                    "processing_time": elapsed,
                    "timings": {},
                    "confidence": None,
                    "unitok": r["unitok"],
                }
            )
        return self._zip([r["export"] for r in results if r["status"] in ("success", "partial_success")])

    @staticmethod
    def _zip(exports: list[dict[str, Any]], extra: dict[str, str] | None = None) -> Response:
        return Response(
            dapi.zip_archive(exports, extra),
            media_type="application/zip",
            headers={"Content-Disposition": 'attachment; filename="converted_docs.zip"'},
        )

    def _chunk_response(self, results: list[dict], include_doc: bool, target: str, t0: float) -> Response:
        chunks = [c for r in results for c in r["chunks"]]
        documents = [
            {
                "kind": "ExportResult",
                "content": {"filename": r["filename"], "json_content": r["export"].get("json_content")}
                if include_doc
                else {"filename": r["filename"]},
                "status": r["status"],
                "errors": r["errors"],
                "timings": {},
                "confidence": None,
            }
            for r in results
        ]
        if target == "zip":
            lines = {}
            for r, stem in zip(results, dapi.unique_stems([r["filename"] for r in results]), strict=True):
                own = [c for c in chunks if c["filename"] == r["filename"]]
                lines[f"{stem}.chunks.jsonl"] = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in own)
            exports = [d["content"] for d in documents] if include_doc else []
            return self._zip(exports, lines)
        return JSONResponse(
            {"chunks": chunks, "documents": documents, "processing_time": round(time.perf_counter() - t0, 4)}
        )

    # -- the two request shapes -----------------------------------------------------------------------
    async def _file_request(self, request: Request, chunker_cls: Any = None) -> tuple:
        """(loaders, options, setting changes, chunker, target, include_converted_doc) of a multipart
        upload."""
        files, fields = await self._form(request)
        if len(files) > MAX_PARTS:
            raise dapi.RequestError(f"Too many files: {len(files)} exceeds the maximum of {MAX_PARTS}.")
        target = next((v for k, v in reversed(fields) if k == "target_type"), "inbody")
        dapi.check_target(target, chunking=chunker_cls is not None)
        chunker = include = None
        if chunker_cls is None:
            opts = dapi.form_model(fields, dapi.ConvertDocumentsOptions)
        else:
            opts = dapi.form_model(fields, dapi.ConvertDocumentsOptions, "convert_", ("to_formats",))
            opts.to_formats = ["json"]
            chunker = dapi.form_model(fields, chunker_cls, "chunking_", ("chunker",))
            flag = next((v for k, v in reversed(fields) if k == "include_converted_doc"), "false")
            include = flag.strip().lower() in ("1", "true", "yes", "on")
        changes, notes = self._settings(opts, chunker)
        return self._upload_loaders(files), opts, (changes, notes), chunker, target, include

    async def _source_request(self, request: Request, model: Any, chunking: bool = False) -> tuple:
        body = dapi.parse_json(await self._body(request), model)
        dapi.check_target(body.target.kind, chunking=chunking)
        opts = body.convert_options if chunking else body.options
        chunker = body.chunking_options if chunking else None
        if chunking:
            opts.to_formats = ["json"]
        changes, notes = self._settings(opts, chunker)
        include = getattr(body, "include_converted_doc", None)
        return self._source_loaders(body.sources), opts, (changes, notes), chunker, body.target.kind, include

    # -- async tasks ----------------------------------------------------------------------------------
    def _submit(self, task_type: str, loaders: list, work: Callable[[Task], Awaitable[Response]]) -> Response:
        self._expire()
        if len(self.tasks) >= self.cfg.serve.max_tasks:
            raise HTTPException(
                503,
                f"{len(self.tasks)} tasks are held (serve.max_tasks); try again later",
                headers={"Retry-After": "5"},
            )
        task = Task(secrets.token_hex(16), task_type, len(loaders))
        self.tasks[task.id] = task
        self.metrics.tasks.set(len(self.tasks))

        async def run() -> None:
            try:
                response = await work(task)
                path = self.results / task.id
                await asyncio.to_thread(path.write_bytes, bytes(response.body))
                task.result, task.media_type = path, response.media_type or "application/json"
                # docling-serve's task fails where no document could be converted
                meta = task.meta
                task.status = (
                    "failure" if meta["num_docs"] and meta["num_failed"] == meta["num_docs"] else "success"
                )
            except Exception as e:  # noqa: BLE001 - the task failed, and its result says why
                task.status, task.error = (
                    "failure",
                    f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                )
            finally:
                task.done.set()
                task.touch()

        task.job = asyncio.get_running_loop().create_task(run())
        return JSONResponse(self._status(task))

    def _status(self, task: Task) -> dict[str, Any]:
        pending = [t for t in self.tasks.values() if t.status == "pending"]
        position = pending.index(task) + 1 if task.status == "pending" else None
        return dapi.task_status(task.id, task.type, task.status, position, dict(task.meta), task.error)

    def _task(self, task_id: str) -> Task:
        self._expire()
        task = self.tasks.get(task_id)
        if task is None:
            raise HTTPException(404, dapi.TASK_NOT_FOUND)
        return task

    def _expire(self) -> None:
        ttl = self.cfg.serve.result_ttl_s
        now = time.monotonic()
        for task_id in [t for t, v in self.tasks.items() if v.done.is_set() and now - v.created > ttl]:
            task = self.tasks.pop(task_id)
            if task.result is not None:
                task.result.unlink(missing_ok=True)
        self.metrics.tasks.set(len(self.tasks))

    # -- routes ---------------------------------------------------------------------------------------
    @app.get("/health", tags=["health"])
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", tags=["health"])
    async def ready(self) -> Response:
        try:
            await asyncio.wait_for(self.engines.ready.remote(), 2.0)
            return JSONResponse({"status": "ok"})
        except Exception:  # noqa: BLE001 - not yet: the engines are loading
            return JSONResponse({"detail": "Models not yet loaded"}, status_code=503)

    @app.get("/version", tags=["health"])
    async def version(self) -> dict[str, str]:
        import importlib.metadata as md
        import platform
        import sys

        from unitok.pipeline.core.version import __version__

        return {
            "unitok": __version__,
            "docling-serve-api": "1.38.2",
            "docling": md.version("docling-slim"),
            "docling-core": md.version("docling-core"),
            "ray": md.version("ray"),
            "python": f"{sys.implementation.cache_tag} ({platform.python_version()})",
            "platform": platform.platform(),
        }

    @app.get("/metrics", include_in_schema=False)
    async def metrics(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/convert/file", tags=["convert"])
    async def convert_file(self, request: Request) -> Response:
        """Multipart `files` (one or more) with docling's options as form fields."""

        async def work() -> Response:
            t0 = time.perf_counter()
            loaders, opts, changes, _, target, _ = await self._file_request(request)
            return self._convert_response(
                request, await self._convert_all(loaders, opts, changes), target, t0
            )

        return await self._timed("/v1/convert/file", request, work)

    @app.post("/v1/convert/source", tags=["convert"])
    async def convert_source(self, request: Request) -> Response:
        """JSON {"sources": [http, file (base64) or unitok's s3/file URI], "options", "target"}."""

        async def work() -> Response:
            t0 = time.perf_counter()
            loaders, opts, changes, _, target, _ = await self._source_request(request, dapi.SourcesRequest)
            return self._convert_response(
                request, await self._convert_all(loaders, opts, changes), target, t0
            )

        return await self._timed("/v1/convert/source", request, work)

    @app.post("/v1/convert/file/async", tags=["convert"])
    async def convert_file_async(self, request: Request) -> Response:
        async def work() -> Response:
            loaders, opts, changes, _, target, _ = await self._file_request(request)
            return self._submit(
                "convert",
                loaders,
                lambda task: self._run_convert(request, loaders, opts, changes, target, task),
            )

        return await self._timed("/v1/convert/file/async", request, work)

    @app.post("/v1/convert/source/async", tags=["convert"])
    async def convert_source_async(self, request: Request) -> Response:
        async def work() -> Response:
            loaders, opts, changes, _, target, _ = await self._source_request(request, dapi.SourcesRequest)
            return self._submit(
                "convert",
                loaders,
                lambda task: self._run_convert(request, loaders, opts, changes, target, task),
            )

        return await self._timed("/v1/convert/source/async", request, work)

    async def _run_convert(
        self, request: Request, loaders: list, opts: Any, changes: dict, target: str, task: Task
    ) -> Response:
        t0 = time.perf_counter()
        results = await self._convert_all(loaders, opts, changes, task=task)
        return self._convert_response(request, results, target, t0)

    async def _chunk(
        self, route: str, request: Request, name: str, source: bool, asynchronous: bool
    ) -> Response:
        async def work() -> Response:
            t0 = time.perf_counter()
            if source:
                parsed = await self._source_request(request, dapi.CHUNK_REQUESTS[name], chunking=True)
            else:
                parsed = await self._file_request(request, dapi.CHUNKERS[name])
            loaders, opts, changes, chunker, target, include = parsed

            async def run(task: Task | None = None) -> Response:
                results = await self._convert_all(loaders, opts, changes, chunker, task=task)
                return self._chunk_response(results, bool(include), target, t0)

            if asynchronous:
                return self._submit("chunk", loaders, run)
            return await run()

        return await self._timed(route, request, work)

    @app.post("/v1/chunk/hybrid/file", tags=["chunk"])
    async def chunk_hybrid_file(self, request: Request) -> Response:
        return await self._chunk("/v1/chunk/hybrid/file", request, "hybrid", False, False)

    @app.post("/v1/chunk/hybrid/file/async", tags=["chunk"])
    async def chunk_hybrid_file_async(self, request: Request) -> Response:
        return await self._chunk("/v1/chunk/hybrid/file/async", request, "hybrid", False, True)

    @app.post("/v1/chunk/hybrid/source", tags=["chunk"])
    async def chunk_hybrid_source(self, request: Request) -> Response:
        return await self._chunk("/v1/chunk/hybrid/source", request, "hybrid", True, False)

    @app.post("/v1/chunk/hybrid/source/async", tags=["chunk"])
    async def chunk_hybrid_source_async(self, request: Request) -> Response:
        return await self._chunk("/v1/chunk/hybrid/source/async", request, "hybrid", True, True)

    @app.post("/v1/chunk/hierarchical/file", tags=["chunk"])
    async def chunk_hierarchical_file(self, request: Request) -> Response:
        return await self._chunk("/v1/chunk/hierarchical/file", request, "hierarchical", False, False)

    @app.post("/v1/chunk/hierarchical/file/async", tags=["chunk"])
    async def chunk_hierarchical_file_async(self, request: Request) -> Response:
        return await self._chunk("/v1/chunk/hierarchical/file/async", request, "hierarchical", False, True)

    @app.post("/v1/chunk/hierarchical/source", tags=["chunk"])
    async def chunk_hierarchical_source(self, request: Request) -> Response:
        return await self._chunk("/v1/chunk/hierarchical/source", request, "hierarchical", True, False)

    @app.post("/v1/chunk/hierarchical/source/async", tags=["chunk"])
    async def chunk_hierarchical_source_async(self, request: Request) -> Response:
        return await self._chunk("/v1/chunk/hierarchical/source/async", request, "hierarchical", True, True)

    @app.get("/v1/status/poll/{task_id}", tags=["tasks"])
    async def poll(self, task_id: str, request: Request, wait: float = 0.0) -> Response:
        try:
            self._auth(request)
            task = self._task(task_id)
        except HTTPException as e:
            return JSONResponse({"detail": e.detail}, status_code=e.status_code)
        if not task.done.is_set() and wait > 0:
            try:
                await asyncio.wait_for(asyncio.shield(task.done.wait()), min(wait, 60.0))
            except TimeoutError:
                pass
        return JSONResponse(self._status(task))

    @app.websocket("/v1/status/ws/{task_id}")
    async def status_ws(self, websocket: WebSocket, task_id: str, api_key: str = "") -> None:
        """docling-serve's status socket: a "connection" message, then an "update" at each change (and
        at each message from the client) until the task ends, then the socket closes."""
        if self.api_key and not secrets.compare_digest(api_key, self.api_key):
            await websocket.close(
                code=1008, reason="Api key is required as the ?api_key=SECRET query parameter."
            )
            return
        await websocket.accept()
        task = self.tasks.get(task_id)
        if task is None:
            await websocket.send_text(
                json.dumps({"message": "error", "task": None, "error": dapi.TASK_NOT_FOUND})
            )
            await websocket.close()
            return
        await websocket.send_text(
            json.dumps({"message": "connection", "task": self._status(task), "error": None})
        )
        # One receive kept across updates: a receive cancelled when the task changed first lost the
        # client's message, and with it the socket, before the final status.
        asked: asyncio.Future | None = None
        try:
            while True:
                changed = task.changed  # a change from here on wakes this watcher
                await websocket.send_text(
                    json.dumps({"message": "update", "task": self._status(task), "error": None})
                )
                if task.done.is_set():
                    await websocket.close()
                    return
                if asked is None:
                    asked = asyncio.ensure_future(websocket.receive_text())
                waiter = asyncio.ensure_future(changed.wait())
                done, _ = await asyncio.wait({asked, waiter}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if asked in done:
                    asked.result()  # a closed socket raises here
                    asked = None
        except (WebSocketDisconnect, RuntimeError):
            return  # the client went away
        finally:
            if asked is not None and not asked.done():
                asked.cancel()

    @app.get("/v1/result/{task_id}", tags=["tasks"])
    async def result(self, task_id: str, request: Request) -> Response:
        try:
            self._auth(request)
            task = self._task(task_id)
        except HTTPException as e:
            return JSONResponse({"detail": e.detail}, status_code=e.status_code)
        if not task.done.is_set():
            return JSONResponse({"detail": dapi.RESULT_NOT_READY}, status_code=404)
        if task.result is None:
            failure = {
                "category": "internal",
                "message": task.error or "the task failed",
                "retryable": True,
                "phase": "execution",
                "details": {},
            }
            return JSONResponse({"kind": "TaskFailureResult", "failure": failure})
        body = await asyncio.to_thread(task.result.read_bytes)
        headers = {"Content-Disposition": 'attachment; filename="converted_docs.zip"'}
        return Response(
            body,
            media_type=task.media_type,
            headers=headers if task.media_type == "application/zip" else None,
        )
