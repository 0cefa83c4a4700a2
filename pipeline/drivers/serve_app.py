"""The engine stage behind a Ray Serve HTTP endpoint: POST a file's bytes, get back the rows a job would
write for it (document, segments with provenance, errors) as JSON.

    POST /convert?filename=report.pdf     body: the file's bytes
      200  {"document": {...}, "segments": [...], "errors": [...]}   (errors: segments that failed)
      422  the file could not be converted at all: "errors" says why
      413  the body is over the size limit
    GET /healthz                          200 "ok" once the replica is up

A replica loads its engines once and converts one request at a time (Tesseract and the models are not
thread-safe); Serve queues the rest and spreads them over replicas. The conversion itself is a function
handed in by drivers/serve.py; the replica holds an EnginePool, which applies the worker environment
contract.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from unitok.pipeline.stages.convert import EnginePool

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(raw: str | None) -> str:
    """The upload's base name, reduced to safe characters (it becomes a temp file's name and a URI)."""
    name = _UNSAFE.sub("_", Path(raw or "").name).strip("._")
    return name or "upload"


@serve.deployment(max_ongoing_requests=1)
class ConvertEndpoint:
    def __init__(
        self,
        convert: Callable[[Path, str, EnginePool], dict[str, Any]],
        engine_options: dict[str, dict[str, Any]],
        max_upload_bytes: int,
    ):
        self.convert = convert
        self.engines = EnginePool(engine_options)
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, request: Request):
        path = request.url.path.rstrip("/")
        if request.method == "GET" and path.endswith("/healthz"):
            return PlainTextResponse("ok")
        if request.method != "POST" or not path.endswith("/convert"):
            return PlainTextResponse("POST /convert?filename=NAME with the file as the body", status_code=404)
        declared = int(request.headers.get("content-length") or 0)
        if declared > self.max_upload_bytes:
            return PlainTextResponse(f"body over {self.max_upload_bytes} bytes", status_code=413)
        body = await request.body()
        if len(body) > self.max_upload_bytes:
            return PlainTextResponse(f"body over {self.max_upload_bytes} bytes", status_code=413)
        name = safe_name(request.query_params.get("filename"))
        result = await asyncio.to_thread(self._convert, body, name)
        return JSONResponse(result, status_code=200 if result["document"] else 422)

    def _convert(self, body: bytes, name: str) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="unitok-serve-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(body)
            return self.convert(path, name, self.engines)
