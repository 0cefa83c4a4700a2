"""The HTTP API: real HTTP against Ray Serve (on the session's local Ray) and the CPU engines. Uploads as
multipart and raw bodies, several files at once, 32 concurrent requests, a slow client that holds a
connection while /health and a conversion answer, every status from a real request, async tasks, auth,
sources under serve.allowed_sources only, and the OpenAPI document."""

from __future__ import annotations

import io
import json
import socket
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, corpus, http_folder
from unitok.pipeline.core.config import parse_config

from infra.local_s3 import free_port

pytest.importorskip("fastapi")
requests = pytest.importorskip("requests")
SAMPLE = REPO / "sample"
KEY = {"X-Api-Key": "test-key"}


@pytest.fixture(scope="module")
def api(ray_local, tmp_path_factory):
    """The API with a 1 MiB upload limit, a 10 s body deadline, an API key and one allowed folder; and a
    second application whose request timeout no conversion can meet (the 504)."""

    allowed = tmp_path_factory.mktemp("allowed")
    (allowed / "report.pdf").write_bytes((SAMPLE / "field-report.pdf").read_bytes())
    with http_folder(allowed) as http_url:
        yield from _served(allowed, http_url)


def _served(allowed: Path, http_url: str):
    from ray import serve
    from unitok.pipeline.drivers.serve import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    base = {"source": {"uri": "/unused"}, "output": {"uri": "/unused"}}
    # http:// at large, but a loopback address only under the prefix that names it
    cfg = parse_config(
        {
            **base,
            "serve": {
                "max_upload_mib": 1,
                "body_timeout_s": 10,
                "api_key": "test-key",
                "allowed_sources": [str(allowed), f"{http_url}/", "http://"],
            },
        }
    )
    serve.run(build_app(cfg), name="unitok", route_prefix="/")
    strict = parse_config({**base, "serve": {"request_timeout_s": 0.001}})
    serve.run(build_app(strict), name="strict", route_prefix="/strict")
    url = f"http://127.0.0.1:{port}"
    assert until_ready(url), "the API never became ready"
    yield Served((url, port, allowed), http_url)
    serve.shutdown()


class Served(tuple):
    """(url, port, allowed folder), and .http: a plain HTTP server on 127.0.0.1 over that folder."""

    def __new__(cls, values, http):
        obj = super().__new__(cls, values)
        obj.http = http
        return obj


def until_ready(url, alive=lambda: True, within_s=300.0) -> bool:
    """Poll /ready (the engines load before it answers 200) until it does, the server dies, or
    within_s passes: a wait for a condition, not a guess at how long it takes."""
    import time

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and alive():
        try:
            if requests.get(f"{url}/ready", timeout=5).status_code == 200:
                return True
        # Not up yet: nothing listens, or Serve's proxy holds the request until the ingress replica runs.
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.1)
    return False


def upload(url, *names, headers=KEY, data=None, **kw):
    files = [("files", (n, (SAMPLE / n).read_bytes() if (SAMPLE / n).exists() else Path(n).read_bytes()))
             for n in names]  # fmt: skip
    return requests.post(f"{url}/v1/convert/file", files=files, data=data, headers=headers, timeout=300, **kw)


def docling_document(content):
    """json_content read by docling-core's own model (what Docling's client, LangChain and Haystack do)."""
    from docling_core.types.doc.document import DoclingDocument

    return DoclingDocument.model_validate(content)


def test_multipart_and_raw_uploads_answer_as_docling_serve_with_a_jobs_rows(api):
    import unitok

    url, _, _ = api
    for name, words in (("field-report.pdf", "water filters"), ("signup-sheet.png", "sign-up"),
                        ("talk.mp4", "")):  # fmt: skip
        r = upload(url, name, data={"to_formats": ["md", "json", "text"], "image_export_mode": "placeholder"})
        assert r.status_code == 200, r.text
        out = r.json()
        job = unitok.convert(SAMPLE / name).row
        assert out["status"] == "success" and out["errors"] == [] and out["processing_time"] > 0
        assert set(out["document"]) == {"filename", "md_content", "json_content", "text_content"}
        assert out["document"]["filename"] == name and out["document"]["md_content"] == job["markdown"]
        assert words in out["document"]["md_content"].lower()
        doc = docling_document(out["document"]["json_content"])
        assert words in doc.export_to_markdown().lower() and doc.origin.filename == name
        row = out["unitok"]["document"]  # unitok's own rows, under their own key
        assert row["source_uri"] == f"upload://{name}"
        assert (row["source_size"], row["source_version"]) == (job["source_size"], job["source_version"])
        assert out["unitok"]["segments"] and out["unitok"]["chunks"]
    deck = corpus("pptx/sample-presentation.pptx")
    raw = requests.post(f"{url}/v1/convert/file?filename={deck.name}", data=deck.read_bytes(), headers=KEY,
                        timeout=300)  # fmt: skip
    assert raw.status_code == 200 and raw.json()["unitok"]["document"]["modality"] == "presentation"
    assert set(raw.json()["document"]) == {"filename", "md_content"}  # docling's default: Markdown only
    md = upload(url, "field-report.pdf", headers={**KEY, "Accept": "text/markdown"})
    assert md.headers["content-type"].startswith("text/markdown") and md.text.startswith(
        "# Quarterly Field Report"
    )


def test_options_docling_serve_takes(api):
    url, _, _ = api
    ocr_off = upload(url, "scanned-memo.pdf", data={"do_ocr": "false"}).json()
    assert ocr_off["document"]["md_content"] == "" and "ocr.mode off" in json.dumps(
        ocr_off["unitok"]["segments"]
    )
    forced = upload(url, "field-report.pdf", data={"force_ocr": "true", "ocr_lang": ["en"]}).json()
    assert {s["engine"] for s in forced["unitok"]["segments"]} == {"tesseract"}
    assert "water filters" in forced["document"]["md_content"].lower()
    # Clients send language lists whatever the server has: those installed are used, the rest said.
    mixed = upload(url, "scanned-memo.pdf", data={"ocr_lang": ["en", "yo"]}).json()
    assert (
        mixed["status"] == "partial_success"
        and "generator needs fuel" in mixed["document"]["md_content"].lower()
    )
    assert "yor not installed" in mixed["errors"][0]["error_message"]
    second = upload(url, "field-report.pdf", data={"page_range": ["2", "2"]}).json()
    assert [s["page_number"] for s in second["unitok"]["segments"]] == [2]
    breaks = upload(url, "field-report.pdf", data={"md_page_break_placeholder": "<!-- page-break -->"}).json()
    assert breaks["document"]["md_content"].count("<!-- page-break -->") == 1
    skipped = upload(url, "field-report.pdf", data={"from_formats": ["docx", "image"]}).json()
    assert skipped["status"] == "skipped" and "not allowed" in skipped["errors"][0]["error_message"]
    html = upload(url, "field-report.pdf", data={"to_formats": ["html", "doctags"]}).json()["document"]
    assert "water filters" in html["html_content"] and "water filters" in html["doctags_content"]
    late = upload(url, "scanned-memo.pdf", data={"document_timeout": "0.001"}).json()
    assert late["status"] == "failure" and "document_timeout" in late["errors"][0]["error_message"]
    broken = ("files", ("broken.pdf", b"%PDF-1.7\n1 0 obj <<>> garbage"))
    good = ("files", ("report.pdf", (SAMPLE / "field-report.pdf").read_bytes()))
    for abort, names in (("true", []), ("false", ["report.md"])):
        r = requests.post(f"{url}/v1/convert/file", files=[broken, good], data={"abort_on_error": abort},
                          headers=KEY, timeout=120)  # fmt: skip
        assert zipfile.ZipFile(io.BytesIO(r.content)).namelist() == names
    # Options docling-serve has and unitok has no meaning for are accepted, as docling-serve accepts them.
    ignored = {"pdf_backend": "dlparse_v4", "table_mode": "fast", "pipeline": "standard", "bogus": "1"}
    assert upload(url, "field-report.pdf", data=ignored).json()["status"] == "success"


def test_several_files_in_one_request_give_docling_serves_zip_and_32_at_once(api):
    url, _, _ = api
    r = upload(url, "field-report.pdf", "scanned-memo.pdf", data={"to_formats": ["md", "json"]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == 'attachment; filename="converted_docs.zip"'
    z = zipfile.ZipFile(io.BytesIO(r.content))
    assert sorted(z.namelist()) == [
        "field-report.json",
        "field-report.md",
        "scanned-memo.json",
        "scanned-memo.md",
    ]
    assert "generator needs fuel" in z.read("scanned-memo.md").decode().lower()
    docling_document(json.loads(z.read("field-report.json")))
    one = upload(url, "field-report.pdf", data={"target_type": "zip"})
    assert zipfile.ZipFile(io.BytesIO(one.content)).namelist() == ["field-report.md"]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: upload(url, "field-report.pdf"), range(32)))
    assert [a.status_code for a in answers] == [200] * 32
    assert len({a.json()["unitok"]["document"]["doc_id"] for a in answers}) == 1  # the same file, the same id


def test_a_slow_client_holds_no_worker_and_no_body_is_read_before_the_key(api):
    url, port, _ = api
    slow = socket.create_connection(("127.0.0.1", port))
    try:  # declares 900 KB, sends 10 bytes, and keeps the connection open
        slow.sendall(b"POST /v1/convert/file?filename=x.pdf HTTP/1.1\r\nHost: x\r\nX-Api-Key: test-key\r\n"
                     b"Content-Length: 900000\r\n\r\n%PDF-1.4\n%")  # fmt: skip
        assert requests.get(f"{url}/health", timeout=30).json() == {"status": "ok"}
        assert upload(url, "field-report.pdf").status_code == 200
        slow.settimeout(120)
        head = slow.recv(4096).decode()  # the body deadline passes: 408, and the worker was never held
        assert head.startswith("HTTP/1.1 408")
    finally:
        slow.close()
    anonymous = socket.create_connection(("127.0.0.1", port))
    try:  # a body that would take long to send: refused at once, from its headers
        anonymous.sendall(b"POST /v1/convert/source HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 900000\r\n\r\n{")  # fmt: skip
        anonymous.settimeout(60)
        assert anonymous.recv(4096).decode().startswith("HTTP/1.1 401")
    finally:
        anonymous.close()


def test_every_status_from_a_real_request(api, tmp_path):
    url, _, _ = api
    assert upload(url, "field-report.pdf", headers={}).status_code == 401
    assert requests.get(f"{url}/v1/convert/file", headers=KEY, timeout=30).status_code == 405
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"0" * (2 << 20))
    assert upload(url, str(big)).status_code == 413
    # A document that cannot be converted is a 200 with status failure and the reason, as in docling-serve.
    data = tmp_path / "settings.json"  # text, but not a kind this version converts
    data.write_text('{"plain": "words"}')
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj <<>> garbage")
    for path in (str(data), "not-really-a.pdf", str(broken)):  # not-really-a.pdf: text under a .pdf name
        r = upload(url, path)
        assert r.status_code == 200 and r.json()["status"] == "failure", r.text
        assert r.json()["errors"][0]["error_message"] and r.json()["document"] == {
            "filename": Path(path).name
        }
    bad = upload(url, "field-report.pdf", data={"to_formats": "pdf", "do_ocr": "maybe"})
    assert bad.status_code == 422
    assert {tuple(d["loc"]) for d in bad.json()["detail"]} == {("body", "to_formats", 0), ("body", "do_ocr")}
    presigned = upload(url, "field-report.pdf", data={"target_type": "presigned_url"})
    assert presigned.status_code == 422 and "artifact storage to be configured" in presigned.json()["detail"]
    assert upload(url, "field-report.pdf", data={"target_type": "s3"}).status_code == 422
    long_name = [("files", ("x" * 5000 + ".pdf", (SAMPLE / "field-report.pdf").read_bytes()))]
    refused = requests.post(f"{url}/v1/convert/file", files=long_name, headers=KEY, timeout=60)
    assert refused.status_code in (400, 422) and refused.json()["detail"]
    many = [("files", (f"{i}.txt", b"x")) for i in range(1001)]
    assert requests.post(f"{url}/v1/convert/file", files=many, headers=KEY, timeout=60).status_code == 400
    torn = requests.post(
        f"{url}/v1/convert/file",
        data=b"--b\r\nContent-Disposition: form-data; name=files",
        headers={**KEY, "Content-Type": "multipart/form-data; boundary=b"},
        timeout=60,
    )
    assert torn.status_code in (400, 422), torn.text
    junk = requests.post(f"{url}/v1/convert/source", data=b"{", headers=KEY, timeout=60)
    assert junk.status_code == 422 and junk.json()["detail"][0]["type"] == "json_invalid"
    assert upload(url, "scanned-memo.pdf", data={"ocr_lang": "xx-nope"}).status_code == 422
    one = [("files", ("a.pdf", (SAMPLE / "field-report.pdf").read_bytes()))]
    strict = requests.post(f"{url}/strict/v1/convert/file", files=one, timeout=120)
    assert strict.status_code == 504


def test_sources_http_file_and_object_only_where_allowed(api, tmp_path):
    import base64

    import unitok

    url, _, allowed = api
    pdf = (SAMPLE / "field-report.pdf").read_bytes()
    inline = {"kind": "file", "base64_string": base64.b64encode(pdf).decode(), "filename": "inline.pdf"}
    ok = requests.post(f"{url}/v1/convert/source", headers=KEY, timeout=120, json={"sources": [inline]})
    assert ok.status_code == 200 and ok.json()["document"]["filename"] == "inline.pdf", ok.text
    web = requests.post(f"{url}/v1/convert/source", headers=KEY, timeout=120,
                        json={"sources": [{"kind": "http", "url": f"{api.http}/report.pdf"}],
                              "options": {"to_formats": ["json"]}})  # fmt: skip
    assert web.status_code == 200, web.text
    assert "water filters" in docling_document(web.json()["document"]["json_content"]).export_to_markdown()
    obj = requests.post(f"{url}/v1/convert/source", headers=KEY, timeout=120,
                        json={"sources": [{"kind": "file", "uri": str(allowed / "report.pdf")}]})  # fmt: skip
    assert obj.status_code == 200, obj.text
    assert obj.json()["unitok"]["document"]["doc_id"] == unitok.convert(allowed / "report.pdf").row["doc_id"]
    for uri in (str(SAMPLE / "field-report.pdf"), f"{allowed}/../{allowed.name}/report.pdf", "/etc/passwd"):
        r = requests.post(f"{url}/v1/convert/source", headers=KEY, timeout=60,
                          json={"sources": [{"kind": "file", "uri": uri}]})  # fmt: skip
        assert r.status_code == 403, (uri, r.text)
    for where in ("http://example.invalid/a.pdf", f"http://localhost:{api.http.rsplit(':', 1)[1]}/report.pdf",
                  "http://169.254.169.254/latest/meta-data"):  # fmt: skip
        r = requests.post(f"{url}/v1/convert/source", headers=KEY, timeout=60,
                          json={"sources": [{"kind": "http", "url": where}]})  # fmt: skip
        assert r.status_code in (403, 422), (where, r.text)
    missing = requests.post(
        f"{url}/v1/convert/source",
        headers=KEY,
        timeout=60,
        json={"sources": [{"kind": "http", "url": f"{api.http}/missing.pdf"}]},
    )
    assert missing.json()["status"] == "failure" and "404" in missing.json()["errors"][0]["error_message"]
    s3_target = requests.post(
        f"{url}/v1/convert/source",
        headers=KEY,
        timeout=60,
        json={"sources": [inline], "target": {"kind": "put", "url": "http://x/y"}},
    )
    assert s3_target.status_code == 422 and "not allowed" in s3_target.json()["detail"]


def test_async_tasks_poll_websocket_result_and_the_service_routes(api):
    import asyncio

    import websockets
    from openapi_spec_validator import validate

    url, _, _ = api
    files = [("files", ("memo.pdf", (SAMPLE / "scanned-memo.pdf").read_bytes()))]
    sub = requests.post(f"{url}/v1/convert/file/async", files=files, headers=KEY, timeout=60)
    assert sub.status_code == 200
    task = sub.json()
    assert task["task_type"] == "convert" and task["task_status"] in ("pending", "started")
    assert task["task_meta"]["num_docs"] == 1

    async def watch() -> list[dict]:
        ws_url = url.replace("http://", "ws://") + f"/v1/status/ws/{task['task_id']}?api_key=test-key"
        async with websockets.connect(ws_url) as ws:
            return [json.loads(m) async for m in ws]

    messages = asyncio.run(watch())
    assert messages[0]["message"] == "connection" and messages[-1]["task"]["task_status"] == "success"
    assert messages[-1]["task"]["task_meta"]["num_succeeded"] == 1
    poll = requests.get(f"{url}/v1/status/poll/{task['task_id']}?wait=5", headers=KEY, timeout=60).json()
    assert poll["task_status"] == "success"
    result = requests.get(f"{url}/v1/result/{task['task_id']}", headers=KEY, timeout=60).json()
    assert "generator needs fuel" in result["document"]["md_content"].lower()  # one file: one answer
    nope = requests.get(f"{url}/v1/result/nope", headers=KEY, timeout=30)
    assert nope.status_code == 404 and nope.json() == {"detail": "Task not found."}
    spec = requests.get(f"{url}/openapi.json", timeout=30).json()
    validate(spec)
    assert {"/v1/convert/file", "/v1/convert/source", "/v1/status/poll/{task_id}", "/health",
            "/v1/chunk/hybrid/file", "/v1/chunk/hierarchical/source/async"} <= set(spec["paths"])  # fmt: skip
    form = spec["paths"]["/v1/convert/file"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert {"files", "to_formats", "do_ocr", "ocr_lang", "page_range", "target_type"} <= set(
        form["schema"]["properties"]
    )
    assert requests.get(f"{url}/docs", timeout=30).status_code == 200
    assert requests.get(f"{url}/version", timeout=30).json()["docling-serve-api"]
    assert upload(url, "field-report.pdf").status_code == 200  # counted, whatever ran before
    metrics = requests.get(f"{url}/metrics", timeout=30).text
    assert 'unitok_requests_total{route="/v1/convert/file",status="200"}' in metrics
    assert "unitok_queue_depth" in metrics


def test_chunk_routes_give_docling_serves_chunks_from_unitoks_chunker(api):
    import base64

    url, _, _ = api
    files = [("files", ("report.pdf", (SAMPLE / "field-report.pdf").read_bytes()))]
    hybrid = requests.post(f"{url}/v1/chunk/hybrid/file", files=files, headers=KEY, timeout=120,
                           data={"chunking_max_tokens": "20", "chunking_include_raw_text": "true",
                                 "include_converted_doc": "true"})  # fmt: skip
    assert hybrid.status_code == 200, hybrid.text
    out = hybrid.json()
    chunks = out["chunks"]
    assert len(chunks) >= 2 and all(c["num_tokens"] <= 20 and c["filename"] == "report.pdf" for c in chunks)
    assert all(c["doc_items"] and c["page_numbers"] and c["raw_text"] in c["text"] for c in chunks)
    assert "water filters" in " ".join(c["text"] for c in chunks)
    doc = docling_document(out["documents"][0]["content"]["json_content"])
    refs = {item.self_ref for item, _ in doc.iterate_items()}
    assert {r for c in chunks for r in c["doc_items"]} <= refs
    encoded = base64.b64encode((SAMPLE / "field-report.pdf").read_bytes()).decode()
    source = {"kind": "file", "base64_string": encoded, "filename": "report.pdf"}
    hier = requests.post(f"{url}/v1/chunk/hierarchical/source", headers=KEY, timeout=120,
                         json={"sources": [source]}).json()  # fmt: skip
    assert hier["chunks"] and all(c["num_tokens"] is None for c in hier["chunks"])
    assert hier["documents"][0]["content"] == {"filename": "report.pdf"}
    sub = requests.post(f"{url}/v1/chunk/hybrid/source/async", headers=KEY, timeout=60,
                        json={"sources": [source]}).json()  # fmt: skip
    assert sub["task_type"] == "chunk"
    requests.get(f"{url}/v1/status/poll/{sub['task_id']}?wait=30", headers=KEY, timeout=60)
    assert requests.get(f"{url}/v1/result/{sub['task_id']}", headers=KEY, timeout=60).json()["chunks"]


def test_bounded_engine_sets_and_languages():
    from unitok.pipeline.drivers import docling_api
    from unitok.pipeline.drivers.serve_app import _Lru

    closed = []

    class Pool:
        def __init__(self, key):
            self.key = key

        def close(self):
            closed.append(self.key)

    lru = _Lru(2)
    for key in ("eng", "deu", "eng", "fra", "spa"):
        lru.get_or(key, lambda key=key: Pool(key))
    assert list(lru) == ["fra", "spa"] and closed == ["deu", "eng"]
    assert docling_api.tesseract_languages(["en", "de-DE", "deu", "zh-Hant"]) == "eng+deu+chi_tra"

    import asyncio

    from unitok.pipeline.drivers.serve_app import ByteBudget

    async def held() -> tuple[list, list, list]:
        budget, seen = ByteBudget(1000), []

        async def convert(name: str, size: int, go: asyncio.Event) -> None:
            async with budget.hold(size):
                seen.append((name, budget.used))
                await go.wait()

        a, b, c = asyncio.Event(), asyncio.Event(), asyncio.Event()
        tasks = [asyncio.create_task(convert(*x)) for x in (("a", 600, a), ("b", 600, b), ("huge", 5000, c))]
        await asyncio.sleep(0)
        first = list(seen)  # b waits: 1200 bytes would pass the budget
        a.set()
        await tasks[0]
        while len(seen) < 2:  # b goes in once a is out; the huge file waits for the budget to empty
            await asyncio.sleep(0)
        second = list(seen)
        b.set()
        c.set()
        await asyncio.gather(*tasks)
        return first, second, seen

    first, second, seen = asyncio.run(held())
    assert first == [("a", 600)] and second == [("a", 600), ("b", 600)] and seen[2] == ("huge", 5000)
    assert docling_api.tesseract_languages(["mul"]) == "auto"


def test_serve_without_fastapi_installed_names_the_extra(tmp_path: Path, monkeypatch, capsys):
    import sys

    from unitok.pipeline.cli import main

    job = tmp_path / "job.yaml"
    job.write_text("source: {uri: /unused}\noutput: {uri: /unused}\n")
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the serve extra were not installed
    assert main(["serve", str(job)]) == 2
    assert (
        "serve needs Ray Serve (fastapi is missing): pip install -c constraints.txt -e '.[serve]'"
        in capsys.readouterr().err
    )


def test_the_serve_config_file_names_a_real_builder():
    import yaml
    from unitok.pipeline.drivers import serve as driver

    (app,) = yaml.safe_load((REPO / "configs" / "serve.yaml").read_text())["applications"]
    module, name = app["import_path"].split(":")
    assert module == driver.__name__ and callable(getattr(driver, name))
    assert json.dumps(app["args"]) and (REPO / app["args"]["config"]).is_file()


def test_unitok_serve_answers_then_drains_on_sigterm_with_one_line(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    job = tmp_path / "job.yaml"
    job.write_text("source: {uri: /unused}\noutput: {uri: /unused}\nruntime: {num_cpus: 1}\n")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    command = [sys.executable, "-m", "unitok.pipeline.cli", "serve", str(job), "--port", str(port)]
    log = (tmp_path / "serve.log").open("w")  # a file, not a pipe: Ray's log lines never block the server
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = until_ready(f"http://127.0.0.1:{port}", alive=lambda: proc.poll() is None)
        assert ready, (tmp_path / "serve.log").read_text()[-3000:]
        assert upload(f"http://127.0.0.1:{port}", "field-report.pdf", headers={}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    err = (tmp_path / "serve.log").read_text()
    assert proc.returncode == 0, err[-3000:]
    assert "unitok: stopped serving" in err and "Traceback" not in err and "Fatal Python error" not in err
    assert err.count("unitok: no API key is configured") == 1


def test_a_task_lost_with_its_engine_replica_reports_failure(api, tmp_path):
    """An engine replica killed while it converts an async task's file: the task ends as a failure with
    the reason, never pending forever (the replica is held at a pause point, then killed)."""
    import ray
    from ray import serve
    from unitok.pipeline.core.testhooks import wait_reached
    from unitok.pipeline.drivers.serve import build_app

    url, _, _ = api
    held = {"UNITOK_PAUSE_AT": "serve.convert", "UNITOK_PAUSE_DIR": str(tmp_path)}
    cfg = parse_config({"source": {"uri": "/unused"}, "output": {"uri": "/unused"}})
    # No CPU reserved: the module's two applications hold the session's two.
    app = build_app(cfg, replicas=1, engine_actor={"num_cpus": 0, "runtime_env": {"env_vars": held}})
    serve.run(app, name="fragile", route_prefix="/fragile")
    try:
        files = [("files", ("report.pdf", (SAMPLE / "field-report.pdf").read_bytes()))]
        sub = requests.post(f"{url}/fragile/v1/convert/file/async", files=files, timeout=60)
        assert sub.status_code == 200, sub.text
        task = sub.json()["task_id"]
        wait_reached(tmp_path, "serve.convert")
        replica = next(a for a in ray.util.list_named_actors(all_namespaces=True)
                       if a["name"].startswith("SERVE_REPLICA::fragile#Engines"))  # fmt: skip
        ray.kill(ray.get_actor(replica["name"], namespace=replica["namespace"]), no_restart=True)
        poll = {"task_status": "started"}
        for _ in range(60):  # each poll waits up to 5 s for the task to end
            poll = requests.get(f"{url}/fragile/v1/status/poll/{task}?wait=5", timeout=60).json()
            if poll["task_status"] not in ("pending", "started"):
                break
        assert poll["task_status"] == "failure" and poll["task_meta"]["num_failed"] == 1, poll
        result = requests.get(f"{url}/fragile/v1/result/{task}", timeout=60)
        assert result.status_code == 200 and result.json()["status"] == "failure"
        reason = result.json()["errors"][0]["error_message"]
        assert "Actor" in reason or "died" in reason, reason
    finally:
        serve.delete("fragile")


def test_validate_of_the_serve_config_names_the_extra_when_serve_is_missing(monkeypatch, capsys):
    import sys

    from unitok.pipeline.cli import main

    monkeypatch.chdir(REPO)  # the Serve config names its job config relative to the checkout
    assert main(["validate", "configs/serve.yaml"]) == 0
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the serve extra were not installed
    assert main(["validate", "configs/serve.yaml"]) == 2
    assert "serve needs Ray Serve (fastapi is missing)" in capsys.readouterr().err


def test_tasks_past_serve_max_tasks_are_refused_until_results_expire(api):
    from ray import serve
    from unitok.pipeline.drivers.serve import build_app

    url, _, _ = api
    cfg = parse_config({"source": {"uri": "/unused"}, "output": {"uri": "/unused"},
                        "serve": {"max_tasks": 1, "result_ttl_s": 3600}})  # fmt: skip
    serve.run(
        build_app(cfg, replicas=1, engine_actor={"num_cpus": 0}), name="bounded", route_prefix="/bounded"
    )
    try:
        files = [("files", ("report.pdf", (SAMPLE / "field-report.pdf").read_bytes()))]
        first = requests.post(f"{url}/bounded/v1/convert/file/async", files=files, timeout=60)
        assert first.status_code == 200, first.text
        second = requests.post(f"{url}/bounded/v1/convert/file/async", files=files, timeout=60)
        assert (
            second.status_code == 503 and second.headers["retry-after"] and "serve.max_tasks" in second.text
        )
        task = first.json()["task_id"]
        assert requests.get(f"{url}/bounded/v1/status/poll/{task}?wait=60", timeout=90).json()[
            "task_status"
        ] == ("success")
        assert (
            "water filters"
            in requests.get(f"{url}/bounded/v1/result/{task}", timeout=60).json()["document"]["md_content"]
        )
    finally:
        serve.delete("bounded")
