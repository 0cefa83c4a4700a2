"""docling-serve's published clients against `unitok serve`, as their users run them: Docling's own client
(docling-client's DoclingServiceClient, sync and async), docling-serve-client, Haystack's
DoclingServeConverter, LangChain's DoclingLoader, Open WebUI's Docling loader and docling-serve's documented
curl commands, installed from PyPI into their own environment (.venv-clients, tests/clients). A PDF, a deck,
an image and a recording, as uploads and as http sources on 127.0.0.1; Markdown and JSON (the
DoclingDocument validated by docling-core), the zip target, both chunk routes. A call passes only when the
client hands its user the document's words."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import REPO, every_modality, http_folder

from infra.local_s3 import free_port

pytest.importorskip("fastapi")
CLIENTS = REPO / ".venv-clients" / "bin" / "python"
HARNESS = REPO / "tests" / "clients" / "run_client.py"
KEY = "clients-key"
WORDS = {"field-report.pdf": "water filters", "sample-presentation.pptx": "sub-bullet",
         "signup-sheet.png": "sign-up", "talk.flac": "replacement parts"}  # fmt: skip


@pytest.fixture(scope="module")
def served(ray_local, tmp_path_factory):
    """The API with an API key and 127.0.0.1's file server as an allowed source (`/keyed`), and the same
    without a key (`/open`, for Open WebUI 0.6's loader, which sends none); the files as uploads and URLs."""
    assert CLIENTS.exists(), "the clients' environment is missing: make clients"
    files = every_modality(tmp_path_factory.mktemp("files"))
    with http_folder(files) as http_url:
        yield from _served(files, http_url)


def _served(files, http_url: str):
    from ray import serve
    from test_serve import until_ready
    from unitok.pipeline.core.config import parse_config
    from unitok.pipeline.drivers.serve import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    base = {"source": {"uri": "/unused"}, "output": {"uri": "/unused"}}
    keyed = parse_config({**base, "serve": {"api_key": KEY, "allowed_sources": [f"{http_url}/"]}})
    serve.run(build_app(keyed), name="keyed", route_prefix="/keyed")
    # No CPU reserved: the keyed application's replica holds one of the session's two.
    open_cfg = parse_config(base)
    serve.run(
        build_app(open_cfg, replicas=1, engine_actor={"num_cpus": 0}), name="open", route_prefix="/open"
    )
    url = f"http://127.0.0.1:{port}"
    assert until_ready(f"{url}/keyed") and until_ready(f"{url}/open"), "the API never became ready"
    yield url, files, http_url
    serve.shutdown()  # test_serve starts Serve again on a port of its own


def run(url: str, calls: list[dict], key: str | None) -> list[dict]:
    command = [str(CLIENTS), str(HARNESS), "--url", url, "--calls", "-", "--timeout", "300"]
    out = subprocess.run(command + (["--api-key", key] if key else []), input=json.dumps(calls), text=True,
                         capture_output=True, timeout=1800, cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def words_of(call: dict) -> str:
    return WORDS[call["source"].rsplit("/", 1)[-1]]


def failures(results: list[dict]) -> list[str]:
    """Each call that did not hand its user the document's words (or handed an invalid DoclingDocument)."""
    bad = []
    for r in results:
        text = " ".join(r["texts"] or []).lower()
        if not r["ok"] or words_of(r) not in text or r["json_valid"] is False:
            bad.append(f"{r['client']}.{r['call']} {r['source']} {r['mode']}: {r['error'] or text[:200]!r}")
    return bad


def test_every_published_client_hands_its_user_the_words(served):
    url, files, http_url = served
    pdf, deck, image, audio = (str(files / n) for n in WORDS)
    listing = subprocess.run(
        [str(CLIENTS), str(HARNESS), "--list"], capture_output=True, text=True, check=True
    )
    every = [tuple(line.split()[:2]) for line in listing.stdout.splitlines() if line.strip()]
    # usage.md's source example still names the pre-1.0 field (http_sources): docling-serve 1.38 refuses it
    # too (below); the README's example converts a URL (further down); Open WebUI 0.6 sends no key (run
    # against /open).
    apart = {("curl", "usage_source"), ("curl", "readme_source"), ("openwebui", "load_legacy")}
    calls = [{"client": c, "call": k, "source": pdf} for c, k in every if (c, k) not in apart]
    for client, call in (
        ("docling_client", "convert"),
        ("docling_client", "submit_zip"),
        ("docling_client", "retrieve_each"),
        ("docling_serve_sdk", "convert"),
        ("docling_serve_sdk", "task"),
        ("haystack", "run"),
        ("haystack", "run_jobs"),
    ):
        calls.append({"client": client, "call": call, "source": pdf, "mode": "json"})
    for source in (deck, image, audio):
        for client, call in (
            ("docling_client", "convert"),
            ("docling_serve_sdk", "convert"),
            ("haystack", "run"),
            ("openwebui", "load"),
            ("langchain", "load"),
            ("curl", "usage_async"),
        ):
            calls.append({"client": client, "call": call, "source": source})
        calls.append({"client": "docling_client", "call": "convert", "source": source, "mode": "json"})
    calls.append({"client": "docling_client", "call": "chunk_hybrid", "source": audio})
    for client, call in (("docling_client", "convert"), ("docling_client", "convert_poll"),
                         ("docling_client", "chunk_hybrid"), ("docling_client", "chunk_hierarchical"),
                         ("docling_serve_sdk", "convert"), ("docling_serve_sdk", "task"),
                         ("docling_serve_sdk", "chunk_hierarchical_task"), ("haystack", "run"),
                         ("haystack", "run_jobs"), ("langchain", "load"), ("curl", "readme_source"),
                         ("curl", "usage_async")):  # fmt: skip
        calls.append({"client": client, "call": call, "source": f"{http_url}/field-report.pdf"})
    # A recording by URL through one sync and one async route of each kind of client (each costs seconds).
    for client, call in (("docling_client", "convert"), ("docling_serve_sdk", "task"), ("haystack", "run")):
        calls.append({"client": client, "call": call, "source": f"{http_url}/talk.flac"})
    results = run(f"{url}/keyed", calls, KEY)
    assert len(results) == len(calls)
    assert not failures(results), "\n".join(failures(results))
    # Open WebUI 0.6's form (ocr_lang eng, fra, deu, spa; booleans as True/False), against a server
    # without a key, as it sends none.
    old_form = [{"client": "openwebui", "call": "load_legacy", "source": s} for s in (pdf, image)]
    legacy = run(f"{url}/open", old_form, None)
    assert not failures(legacy), "\n".join(failures(legacy))
    printed = {"client": "curl", "call": "usage_source", "source": f"{http_url}/field-report.pdf"}
    outdated = run(f"{url}/keyed", [printed], KEY)
    assert not outdated[0]["ok"] and "422" in (outdated[0]["error"] or ""), outdated
