"""The HTTP API on Ray Serve, after docling-serve's v1 routes: two deployments.

- `Api`, the FastAPI ingress: authentication, limits, type detection, async tasks, metrics. It is async
  and takes many requests at once, and reads every body with a deadline, so a slow or stalled client
  holds a coroutine, never a worker: /health and other requests answer meanwhile.
- `Engines`, the replicas holding the engines (and models): concurrent requests batched into one call
  (`@serve.batch`), their files converted one at a time (Tesseract and the models are not thread-safe),
  autoscaled between serve.min_replicas and serve.max_replicas on the requests waiting for them. They
  convert with the same stage functions as a job (stages.convert_file).

Routes: POST /v1/convert/file (multipart `files`, options as form fields), POST /v1/convert/source (JSON
`{"sources": [{"kind": "s3" | "file", "uri": ...}], "options": {...}}`, only under serve.allowed_sources),
their /async forms with GET /v1/status/poll/{task_id}?wait=s and GET /v1/result/{task_id}; GET /health,
/ready, /metrics; /openapi.json and /docs.
"""

# No `from __future__ import annotations`: FastAPI reads the route methods' annotations at runtime (a
# string `Request` behind Serve's ingress wrapper would become a query parameter).
import asyncio
import logging
import os
import re
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from ray import serve
from unitok.pipeline.core.config import JobConfig

log = logging.getLogger("unitok")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(raw: str | None) -> str:
    """The upload's base name, reduced to safe characters (it becomes a temp file's name and a URI)."""
    name = _UNSAFE.sub("_", Path(raw or "").name).strip("._")
    return name or "upload"


def _under(uri: str, prefix: str) -> bool:
    if prefix.startswith("s3://"):
        return uri.startswith(prefix.rstrip("/") + "/")
    root = str(Path(prefix.removeprefix("file://")).resolve()).rstrip("/") + "/"
    return uri.startswith(root)


def with_options(cfg: JobConfig, options: dict[str, Any]) -> JobConfig:
    """The config with a request's overrides, each one serve.overridable allows (else 403)."""
    allowed = set(cfg.serve.overridable)
    names = {"ocr_languages": "ocr.languages", "do_chunking": "chunking.enabled",
             "chunk_max_tokens": "chunking.max_tokens"}  # fmt: skip
    data = cfg.model_dump()
    for key, value in options.items():
        if value is None or value == "":
            continue
        dotted = names.get(key)
        if dotted is None:
            raise HTTPException(422, f"unknown option {key!r} (options: {', '.join(sorted(names))})")
        if dotted not in allowed:
            raise HTTPException(403, f"option {key!r} ({dotted}) is not overridable (serve.overridable)")
        section, field = dotted.split(".")
        if isinstance(value, str) and field in ("enabled",):
            value = value.lower() in ("1", "true", "yes", "on")
        data[section][field] = value
    try:
        return JobConfig.model_validate(data)
    except Exception as e:  # noqa: BLE001 - a bad option value: 422 with the reason
        raise HTTPException(422, f"bad option: {str(e).splitlines()[-1]}") from None


@serve.deployment
class Engines:
    """Engine replicas: a file's bytes in, the rows a job writes for it out.

    Concurrent requests are gathered into batches (`@serve.batch`, up to serve.max_batch_size files), so
    one replica call and one wake-up serve several files, and the replica queues them itself instead of
    the router probing busy replicas. The files of a batch are converted one after another on one
    thread (Tesseract and the models are not thread-safe); engine batches stay per file, so a file's
    rows are byte-identical to a job's whatever else shares its batch."""

    def __init__(self, cfg_data: dict[str, Any]):
        from concurrent.futures import ThreadPoolExecutor

        self.cfg = JobConfig.model_validate(cfg_data)
        self._pools: dict[str, Any] = {}
        self._chunkers: dict[str, Any] = {}
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="unitok-engines")
        self._batched.set_max_batch_size(self.cfg.serve.max_batch_size)
        self.pool(self.cfg)  # loaded before the replica reports ready
        if self.cfg.chunking.enabled:
            self.chunking(self.cfg).load()

    def pool(self, cfg: JobConfig) -> Any:
        """The engines of these settings (one set per OCR language choice), loaded once."""
        from unitok.actors.registry import engine_options
        from unitok.pipeline.stages.convert import EnginePool

        options = engine_options(cfg)
        key = repr(sorted(options.items()))
        if key not in self._pools:
            self._pools[key] = EnginePool(options)
        return self._pools[key]

    def chunking(self, cfg: JobConfig) -> Any:
        """The chunker (and embedder) of these settings, loaded once."""
        from unitok.pipeline.stages.doc_chunks import DocumentChunks

        key = cfg.chunking.model_dump_json() + cfg.embedding.model_dump_json()
        if key not in self._chunkers:
            self._chunkers[key] = DocumentChunks(cfg)
        return self._chunkers[key]

    def ready(self) -> bool:
        return True

    async def convert(self, data: bytes, name: str, uri: str | None, options: dict[str, Any]) -> dict:
        outcome = await self._batched((data, name, uri, options))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def _batched(self, items: list[tuple[bytes, str, str | None, dict[str, Any]]]) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, lambda: [self._one(*item) for item in items])

    def _one(self, data: bytes, name: str, uri: str | None, options: dict[str, Any]) -> Any:
        """One file's result, or the exception it raised (it fails that request, not its batch)."""
        from unitok.pipeline.core.testhooks import checkpoint
        from unitok.pipeline.stages.convert_file import convert_file

        checkpoint("serve.convert")  # a test may kill the replica here
        try:
            cfg = with_options(self.cfg, options) if options else self.cfg
            run_id = f"serve-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="unitok-serve-") as tmp:
                path = Path(tmp) / name
                path.write_bytes(data)
                out = convert_file(path, name, cfg, self.pool(cfg), run_id, uri=uri,
                                   chunking=self.chunking(cfg) if cfg.chunking.enabled else None)  # fmt: skip
        except Exception as e:  # noqa: BLE001 - handed to the waiting request
            return e
        out.setdefault("chunks", [])
        failed_object = any(e["segment_index"] < 0 for e in out["errors"])
        out["status"] = ("failure" if out["document"] is None else
                         "partial_success" if out["errors"] or failed_object else "success")  # fmt: skip
        out["processing_time"] = round(time.perf_counter() - t0, 4)
        return out


class SourceRef(BaseModel):
    kind: str = Field(description="s3 or file")
    uri: str


class SourceRequest(BaseModel):
    sources: list[SourceRef]
    options: dict[str, Any] = Field(default_factory=dict)


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
        self.queue = Gauge("unitok_queue_depth", "Conversions waiting for or on an engine replica",
                           registry=self.registry)  # fmt: skip


app = FastAPI(
    title="unitok",
    version="1",
    description="Documents, decks, images, recordings and videos in; Markdown with provenance out.",
)


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(app)
class Api:
    def __init__(self, engines: Any, cfg_data: dict[str, Any]):
        self.engines = engines
        self.cfg = JobConfig.model_validate(cfg_data)
        self.api_key = os.environ.get("UNITOK_API_KEY") or self.cfg.serve.api_key
        self.tasks: dict[str, dict[str, Any]] = {}
        self.metrics = Metrics()

    # -- plumbing -------------------------------------------------------------------------------------
    def _auth(self, request: Request) -> None:
        if self.api_key and not secrets.compare_digest(request.headers.get("x-api-key", ""), self.api_key):
            raise HTTPException(401, "missing or wrong X-Api-Key")

    async def _body(self, request: Request) -> bytes:
        """The body, read with a deadline and a size limit: a slow client costs a coroutine only."""
        limit = self.cfg.serve.max_upload_mib << 20
        if int(request.headers.get("content-length") or 0) > limit:
            raise HTTPException(413, f"body over serve.max_upload_mib ({self.cfg.serve.max_upload_mib} MiB)")

        async def read() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413, f"body over serve.max_upload_mib ({self.cfg.serve.max_upload_mib} MiB)"
                    )
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            return await asyncio.wait_for(read(), self.cfg.serve.body_timeout_s)
        except TimeoutError:
            raise HTTPException(
                408, f"the body did not arrive within {self.cfg.serve.body_timeout_s:g} s"
            ) from None

    async def _files(self, request: Request) -> tuple[list[tuple[str, bytes]], dict[str, Any]]:
        """(name, bytes) of each file, and the options: multipart `files` parts with form fields, or a raw
        body named by ?filename=."""
        body = await self._body(request)
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            from starlette.datastructures import UploadFile
            from starlette.formparsers import MultiPartParser

            async def stream():
                yield body

            form = await MultiPartParser(request.headers, stream()).parse()
            files = [(safe_name(v.filename), await v.read()) for k, v in form.multi_items()
                     if isinstance(v, UploadFile) and k in ("files", "file")]  # fmt: skip
            options = {k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)}
            if not files:
                raise HTTPException(422, "no `files` part in the multipart body")
            return files, options
        return [(safe_name(request.query_params.get("filename")), body)], dict(request.query_params) | {
            "filename": None
        }

    async def _convert_one(self, name: str, data: bytes, uri: str | None, options: dict[str, Any]) -> dict:
        from unitok.pipeline.formats.detect import sniff
        from unitok.pipeline.formats.split import CONVERTED

        ft = sniff(data[:4096], name=name)
        if data and not ft.supported and ft.mime_type not in ("application/zip", "application/x-ole-storage"):
            raise HTTPException(415, f"{name}: content is {ft.mime_type}; unitok converts {CONVERTED}")
        options = {k: v for k, v in options.items() if k != "filename"}
        if options:
            with_options(self.cfg, options)  # 403/422 before any work
        self.metrics.queue.inc()
        try:
            result = await self.engines.convert.remote(data, name, uri, options)
        finally:
            self.metrics.queue.dec()
        self.metrics.pages.inc(len(result["segments"]))
        self.metrics.errors.inc(len(result["errors"]))
        return result

    async def _convert_all(self, items: list[tuple[str, bytes, str | None]], options: dict[str, Any]) -> list:
        return list(await asyncio.gather(*(self._convert_one(n, d, u, options) for n, d, u in items)))

    def _respond(self, request: Request, results: list[dict[str, Any]]) -> Response:
        if "text/markdown" in request.headers.get("accept", ""):
            # An e-mail's attachments follow their message, as further documents.
            texts = [
                d["markdown"]
                for r in results
                if r["document"]
                for d in [r["document"], *r.get("attachments", [])]
            ]
            status = 200 if texts else 422
            return PlainTextResponse(
                "\n\n---\n\n".join(texts), status_code=status, media_type="text/markdown"
            )
        if len(results) == 1:
            only = results[0]
            return JSONResponse(only, status_code=422 if only["status"] == "failure" else 200)
        return JSONResponse(results)

    async def _timed(self, route: str, request: Request, work) -> Response:
        t0 = time.perf_counter()
        status = 500
        try:
            self._auth(request)
            response = await asyncio.wait_for(work(), self.cfg.serve.request_timeout_s)
            status = response.status_code
            return response
        except TimeoutError:
            status = 504
            return JSONResponse({"detail": f"no answer within serve.request_timeout_s "
                                 f"({self.cfg.serve.request_timeout_s:g} s)"}, status_code=504)  # fmt: skip
        except HTTPException as e:
            status = e.status_code
            return JSONResponse({"detail": e.detail}, status_code=e.status_code)
        finally:
            elapsed = time.perf_counter() - t0
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(elapsed)
            log.info("%s %s %d %.0f ms", request.method, request.url.path, status, elapsed * 1000)

    def _sources(self, req: SourceRequest) -> list[tuple[str, str, str]]:
        """(kind, uri, allowed prefix) of each source, each under serve.allowed_sources (else 403)."""
        out = []
        for src in req.sources:
            uri = src.uri
            if src.kind not in ("s3", "file") or (src.kind == "s3") != uri.startswith("s3://"):
                raise HTTPException(403, f"{uri}: only s3:// and file sources under serve.allowed_sources")
            if ".." in uri.split("/") or "\x00" in uri:
                raise HTTPException(403, f"{uri}: path tricks are refused")
            if src.kind == "file":
                uri = str(Path(uri.removeprefix("file://")).resolve())
            prefix = next((p for p in self.cfg.serve.allowed_sources if _under(uri, p)), None)
            if prefix is None:
                raise HTTPException(403, f"{src.uri}: not under serve.allowed_sources")
            out.append((src.kind, uri, prefix))
        return out

    async def _fetch(self, kind: str, uri: str, prefix: str) -> tuple[str, bytes, str]:
        from unitok.connectors.objects import ObjectInfo
        from unitok.connectors.store import open_store

        def fetch() -> tuple[str, bytes, str]:
            if kind == "file":
                path = Path(uri)
                if not path.is_file():
                    raise HTTPException(404, f"{uri}: no such file")
                return path.name, path.read_bytes(), path.as_uri()
            store = open_store(prefix, {"endpoint_url": self.cfg.source.s3.endpoint_url})
            info = ObjectInfo(uri=uri, key=uri.rsplit("/", 1)[-1], size=0, modified_at=0.0)
            with store.fetch(info) as (path, _):
                return safe_name(info.key), path.read_bytes(), uri

        try:
            return await asyncio.to_thread(fetch)
        except HTTPException:
            raise
        except Exception as e:  # noqa: BLE001 - an unreadable source: one line
            raise HTTPException(404, f"{uri}: {str(e).splitlines()[0]}") from None

    # -- routes ---------------------------------------------------------------------------------------
    @app.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(self) -> Response:
        try:
            await asyncio.wait_for(self.engines.ready.remote(), 2.0)
            return JSONResponse({"status": "ready"})
        except Exception:  # noqa: BLE001 - not yet: the engines are loading
            return JSONResponse({"status": "loading"}, status_code=503)

    @app.get("/metrics")
    async def metrics(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/convert/file")
    async def convert_file(self, request: Request) -> Response:
        """Multipart `files` (one or more) with options as form fields, or a raw body with ?filename=."""

        async def work() -> Response:
            files, options = await self._files(request)
            results = await self._convert_all([(n, d, None) for n, d in files], options)
            return self._respond(request, results)

        return await self._timed("/v1/convert/file", request, work)

    @app.post("/v1/convert/source")
    async def convert_source(self, request: Request, body: SourceRequest) -> Response:
        async def work() -> Response:
            fetched = [await self._fetch(*s) for s in self._sources(body)]
            results = await self._convert_all([(n, d, u) for n, d, u in fetched], body.options)
            return self._respond(request, results)

        return await self._timed("/v1/convert/source", request, work)

    @app.post("/v1/convert/file/async")
    async def convert_file_async(self, request: Request) -> Response:
        async def work() -> Response:
            files, options = await self._files(request)
            return self._submit([(n, d, None) for n, d in files], options)

        return await self._timed("/v1/convert/file/async", request, work)

    @app.post("/v1/convert/source/async")
    async def convert_source_async(self, request: Request, body: SourceRequest) -> Response:
        async def work() -> Response:
            fetched = [await self._fetch(*s) for s in self._sources(body)]
            return self._submit(fetched, body.options)

        return await self._timed("/v1/convert/source/async", request, work)

    @app.get("/v1/status/poll/{task_id}")
    async def poll(self, task_id: str, request: Request, wait: float = 0.0) -> Response:
        self._auth(request)
        task = self._task(task_id)
        if task["status"] in ("pending", "started") and wait > 0:
            try:
                await asyncio.wait_for(asyncio.shield(task["done"].wait()), min(wait, 60.0))
            except TimeoutError:
                pass
        return JSONResponse({"task_id": task_id, "task_status": task["status"], "error": task.get("error")})

    @app.get("/v1/result/{task_id}")
    async def result(self, task_id: str, request: Request) -> Response:
        self._auth(request)
        task = self._task(task_id)
        if task["status"] in ("pending", "started"):
            return JSONResponse({"task_id": task_id, "task_status": task["status"]}, status_code=202)
        if task["status"] == "failure" and task.get("result") is None:
            return JSONResponse({"task_id": task_id, "task_status": "failure", "error": task["error"]},
                                status_code=500)  # fmt: skip
        return self._respond(request, task["result"])

    # -- async tasks ----------------------------------------------------------------------------------
    def _submit(self, items: list[tuple[str, bytes, str | None]], options: dict[str, Any]) -> Response:
        self._expire()
        if options:
            with_options(self.cfg, {k: v for k, v in options.items() if k != "filename"})
        task_id = secrets.token_hex(12)
        task = {"status": "pending", "created": time.monotonic(), "done": asyncio.Event(), "result": None}
        self.tasks[task_id] = task

        async def run() -> None:
            task["status"] = "started"
            try:
                task["result"] = await self._convert_all(items, options)
                task["status"] = (
                    "success" if all(r["status"] != "failure" for r in task["result"]) else "failure"
                )
            except Exception as e:  # noqa: BLE001 - an engine replica lost, a bad file: the task failed
                task["status"], task["error"] = "failure", f"{type(e).__name__}: {str(e).splitlines()[0]}"
            finally:
                task["done"].set()

        task["job"] = asyncio.get_running_loop().create_task(run())
        return JSONResponse({"task_id": task_id, "task_status": "pending"}, status_code=202)

    def _task(self, task_id: str) -> dict[str, Any]:
        self._expire()
        task = self.tasks.get(task_id)
        if task is None:
            raise HTTPException(404, f"no task {task_id} (never submitted, expired, or lost with a replica)")
        return task

    def _expire(self) -> None:
        ttl = self.cfg.serve.result_ttl_s
        now = time.monotonic()
        for task_id in [t for t, v in self.tasks.items() if v["done"].is_set() and now - v["created"] > ttl]:
            del self.tasks[task_id]
