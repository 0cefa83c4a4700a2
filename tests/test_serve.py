"""The HTTP API: real HTTP against Ray Serve (on the session's local Ray) and the CPU engines. Uploads as
multipart and raw bodies, several files at once, 32 concurrent requests, a slow client that holds a
connection while /health and a conversion answer, every status from a real request, async tasks, auth,
sources under serve.allowed_sources only, and the OpenAPI document."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO, corpus
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
    from ray import serve
    from unitok.pipeline.drivers.serve import build_app

    allowed = tmp_path_factory.mktemp("allowed")
    (allowed / "report.pdf").write_bytes((SAMPLE / "field-report.pdf").read_bytes())
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    base = {"source": {"uri": "/unused"}, "output": {"uri": "/unused"}}
    cfg = parse_config({**base, "serve": {"max_upload_mib": 1, "body_timeout_s": 10, "api_key": "test-key",
                                          "allowed_sources": [str(allowed)]}})  # fmt: skip
    serve.run(build_app(cfg), name="unitok", route_prefix="/")
    strict = parse_config({**base, "serve": {"request_timeout_s": 0.001}})
    serve.run(build_app(strict), name="strict", route_prefix="/strict")
    url = f"http://127.0.0.1:{port}"
    assert until_ready(url), "the API never became ready"
    yield url, port, allowed
    serve.shutdown()


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


def test_multipart_and_raw_uploads_give_a_jobs_size_hash_and_words(api):
    import unitok

    url, _, _ = api
    for name, words in (("field-report.pdf", "water filters"), ("signup-sheet.png", "sign-up"),
                        ("talk.mp4", "")):  # fmt: skip
        r = upload(url, name)
        assert r.status_code == 200, r.text
        out = r.json()
        job = unitok.convert(SAMPLE / name).row
        doc = out["document"]
        assert out["status"] == "success" and doc["source_uri"] == f"upload://{name}"
        assert (doc["source_size"], doc["source_version"]) == (job["source_size"], job["source_version"])
        assert doc["markdown"] == job["markdown"] and words in doc["markdown"].lower()
        assert out["chunks"] and out["processing_time"] > 0
    deck = corpus("pptx/sample-presentation.pptx")
    raw = requests.post(f"{url}/v1/convert/file?filename={deck.name}", data=deck.read_bytes(), headers=KEY,
                        timeout=300)  # fmt: skip
    assert raw.status_code == 200 and raw.json()["document"]["modality"] == "presentation"
    md = upload(url, "field-report.pdf", headers={**KEY, "Accept": "text/markdown"})
    assert md.headers["content-type"].startswith("text/markdown") and md.text.startswith(
        "# Quarterly Field Report"
    )


def test_several_files_in_one_request_and_32_at_once(api):
    url, _, _ = api
    r = upload(url, "field-report.pdf", "scanned-memo.pdf")
    assert r.status_code == 200
    both = r.json()
    assert [d["document"]["source_uri"] for d in both] == [
        "upload://field-report.pdf",
        "upload://scanned-memo.pdf",
    ]
    assert both[1]["segments"][0]["engine"] == "tesseract"
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda _: upload(url, "field-report.pdf"), range(32)))
    assert [a.status_code for a in answers] == [200] * 32
    assert len({a.json()["document"]["doc_id"] for a in answers}) == 1  # the same file, the same id


def test_a_slow_client_holds_no_worker(api):
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


def test_every_status_from_a_real_request(api, tmp_path):
    url, _, _ = api
    assert upload(url, "field-report.pdf", headers={}).status_code == 401
    assert requests.get(f"{url}/v1/convert/file", headers=KEY, timeout=30).status_code == 405
    big = tmp_path / "big.pdf"
    big.write_bytes(b"%PDF-1.4\n" + b"0" * (2 << 20))
    assert upload(url, str(big)).status_code == 413
    data = tmp_path / "settings.json"  # text, but not a kind this version converts
    data.write_text('{"plain": "words"}')
    assert upload(url, str(data)).status_code == 415
    corrupt = upload(url, "not-really-a.pdf")
    assert corrupt.status_code == 415  # text under a .pdf name: the bytes decide
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj <<>> garbage")
    r = upload(url, str(broken))
    assert r.status_code == 422 and r.json()["status"] == "failure" and r.json()["errors"][0]["message"]
    assert upload(url, "field-report.pdf", data={"bogus": "1"}).status_code == 422
    assert (
        upload(url, "scanned-memo.pdf", data={"ocr_languages": "eng", "do_chunking": "false"}).json()[
            "chunks"
        ]
        == []
    )
    one = [("files", ("a.pdf", (SAMPLE / "field-report.pdf").read_bytes()))]
    strict = requests.post(f"{url}/strict/v1/convert/file", files=one, timeout=120)
    assert strict.status_code == 504


def test_sources_only_under_the_allowed_prefixes(api):
    import unitok

    url, _, allowed = api
    ok = requests.post(f"{url}/v1/convert/source", headers=KEY, timeout=120,
                       json={"sources": [{"kind": "file", "uri": str(allowed / "report.pdf")}]})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert (
        ok.json()["document"]["doc_id"] == unitok.convert(allowed / "report.pdf").row["doc_id"]
    )  # a job's id
    for uri in (str(SAMPLE / "field-report.pdf"), f"{allowed}/../{allowed.name}/report.pdf", "/etc/passwd"):
        r = requests.post(f"{url}/v1/convert/source", headers=KEY, timeout=60,
                          json={"sources": [{"kind": "file", "uri": uri}]})  # fmt: skip
        assert r.status_code == 403, (uri, r.text)
    r = requests.post(f"{url}/v1/convert/source", headers=KEY, timeout=60,
                      json={"sources": [{"kind": "http", "uri": "http://example.com/a.pdf"}]})  # fmt: skip
    assert r.status_code == 403


def test_async_submit_poll_result_and_the_service_routes(api):
    from openapi_spec_validator import validate

    url, _, _ = api
    files = [("files", ("memo.pdf", (SAMPLE / "scanned-memo.pdf").read_bytes()))]
    sub = requests.post(f"{url}/v1/convert/file/async", files=files, headers=KEY, timeout=60)
    assert sub.status_code == 202
    task = sub.json()["task_id"]
    status = "pending"
    for _ in range(120):
        status = requests.get(f"{url}/v1/status/poll/{task}?wait=5", headers=KEY, timeout=60).json()[
            "task_status"
        ]
        if status not in ("pending", "started"):
            break
    assert status == "success"
    result = requests.get(f"{url}/v1/result/{task}", headers=KEY, timeout=60).json()
    assert "generator needs fuel" in result["document"]["markdown"].lower()  # one file: one answer
    assert requests.get(f"{url}/v1/result/nope", headers=KEY, timeout=30).status_code == 404
    spec = requests.get(f"{url}/openapi.json", timeout=30).json()
    validate(spec)
    assert {"/v1/convert/file", "/v1/convert/source", "/v1/status/poll/{task_id}", "/health"} <= set(
        spec["paths"]
    )
    assert requests.get(f"{url}/docs", timeout=30).status_code == 200
    metrics = requests.get(f"{url}/metrics", timeout=30).text
    assert 'unitok_requests_total{route="/v1/convert/file",status="200"}' in metrics
    assert "unitok_queue_depth" in metrics


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
        assert sub.status_code == 202, sub.text
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
        assert poll["task_status"] == "failure", poll
        assert "Actor" in poll["error"] or "died" in poll["error"], poll["error"]
        result = requests.get(f"{url}/fragile/v1/result/{task}", timeout=60)
        assert result.status_code == 500 and result.json()["task_status"] == "failure"
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
