"""The HTTP endpoint: Ray Serve (real, on the session's local Ray) in front of the same stage functions as
a job. Uploads get the rows a job would write; broken uploads get their reason; the CLI starts it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO
from unitok.pipeline.core.config import parse_config

from infra.local_s3 import free_port

pytest.importorskip("starlette")
SAMPLE = REPO / "sample"


def post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}") if e.code == 422 else {}


@pytest.fixture(scope="module")
def endpoint(ray_local):
    from ray import serve
    from unitok.pipeline.drivers.serve import build_app

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    cfg = parse_config({"source": {"uri": "/unused"}, "output": {"uri": "/unused"}})
    serve.run(build_app(cfg, max_upload_mib=1), name="unitok", route_prefix="/")
    yield f"http://127.0.0.1:{port}"
    serve.shutdown()


def test_an_upload_comes_back_as_a_document_with_provenance(endpoint):
    with urllib.request.urlopen(f"{endpoint}/healthz", timeout=30) as r:
        assert r.read() == b"ok"
    status, out = post(
        f"{endpoint}/convert?filename=../../field-report.pdf", (SAMPLE / "field-report.pdf").read_bytes()
    )
    assert status == 200 and out["errors"] == []
    doc = out["document"]
    assert doc["source_uri"] == "upload://field-report.pdf"  # the name is reduced to its base name
    assert doc["source_version"].startswith("sha256:") and "Quarterly Field Report" in doc["markdown"]
    assert [s["page_number"] for s in out["segments"]] == [1, 2]
    assert {s["engine"] for s in out["segments"]} == {"pdf_text"} and out["segments"][0]["run_id"].startswith(
        "serve-"
    )


def test_scans_and_media_go_to_their_engines(endpoint):
    status, out = post(f"{endpoint}/convert?filename=memo.pdf", (SAMPLE / "scanned-memo.pdf").read_bytes())
    assert status == 200 and "generator needs fuel" in out["document"]["markdown"].lower()
    assert out["segments"][0]["engine"] == "tesseract"
    status, out = post(f"{endpoint}/convert?filename=talk.mp4", (SAMPLE / "talk.mp4").read_bytes())
    assert status == 200 and {s["segment_kind"] for s in out["segments"]} == {"audio_window", "video_frames"}
    assert out["document"]["markdown"].startswith("### [00:00:00]") and out["segments"][0]["spans"]


def test_a_broken_upload_gets_its_reason_and_an_oversized_one_is_refused(endpoint):
    status, out = post(f"{endpoint}/convert?filename=a.pdf", (SAMPLE / "not-really-a.pdf").read_bytes())
    assert status == 422 and out["document"] is None
    assert "content is text/plain" in out["errors"][0]["message"]
    status, _ = post(f"{endpoint}/convert?filename=big.bin", b"x" * (2 << 20))
    assert status == 413


def test_serve_without_ray_serve_installed_names_the_extra(tmp_path: Path, monkeypatch, capsys):
    import sys

    from unitok.pipeline.cli import main

    job = tmp_path / "job.yaml"
    job.write_text("source: {uri: /unused}\noutput: {uri: /unused}\n")
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if the serve extra were not installed
    assert main(["serve", str(job)]) == 2
    assert (
        "serve needs Ray Serve (starlette is missing): pip install -e '.[serve]'" in capsys.readouterr().err
    )
