"""Day two of a scheduled incremental job: its config changes, its files are touched, embeddings are turned
on later, a model goes missing, the endpoint comes from the environment, an object is overwritten while the
run reads it. Every case through real runs and their Delta tables (and LanceDB)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import BUCKET, REPO, corpus, last_commit, put
from unitok.connectors.output import changes, delta_storage_options, read_table
from unitok.pipeline.core import testhooks
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.job import run_job

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]
SAMPLE = REPO / "sample"


def spec(src, out, executor="local", **extra):
    base = {
        "mode": "incremental",
        "source": {"uri": str(src)},
        "output": {"uri": str(out)},
        "runtime": {"executor": executor, "max_workers": 1},
    }
    return parse_config({**base, **extra})


@pytest.fixture(params=["local", "ray"])
def executor(request):
    if request.param == "ray":
        request.getfixturevalue("ray_local")
    return request.param


def docs_folder(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(SAMPLE / "field-report.pdf", src / "report.pdf")
    shutil.copy(corpus("pdf/layout-parser-paper-fast.pdf"), src / "paper.pdf")
    return src


def rows(out, name):
    return read_table(str(out), name).to_pylist()


def versions(out):
    names = ("segments", "documents", "chunks", "errors", "objects")
    return {n: last_commit(str(out), n)["version"] for n in names}


def test_chunking_change_rechunks_stored_documents_and_conversion_change_converts(tmp_path, executor):
    src, out = docs_folder(tmp_path), tmp_path / "out"
    first = run_job(spec(src, out, executor, chunking={"max_tokens": 256}))
    assert first.converted_objects == 2
    before = {n: rows(out, n) for n in ("segments", "documents", "chunks")}
    assert max(c["n_tokens"] for c in before["chunks"]) > 128

    second = run_job(spec(src, out, executor, chunking={"max_tokens": 128}))
    assert (second.converted_objects, second.rechunked_objects) == (0, 2)
    assert second.reasons == {"chunk_settings": 2}
    assert "chunking settings changed: 2 documents re-chunked" in second.describe_work()
    # Segments and documents are the first run's rows, untouched; the chunks are new and within budget.
    assert rows(out, "segments") == before["segments"] and rows(out, "documents") == before["documents"]
    chunks = rows(out, "chunks")
    assert max(c["n_tokens"] for c in chunks) <= 128 and len(chunks) > len(before["chunks"])
    assert {c["run_id"] for c in chunks} == {second.run_id}
    text = "".join(c["text"] for c in sorted(chunks, key=lambda c: (c["source_uri"], c["chunk_index"])))
    assert "layout" in text.lower()
    # The feed of that version: the chunks replaced, nothing in segments or documents.
    v = versions(out)
    assert changes(str(out), "segments", v["segments"] - 1).num_rows == 0
    assert changes(str(out), "documents", v["documents"] - 1).num_rows == 0
    assert changes(str(out), "chunks", v["chunks"] - 1).num_rows == len(chunks) + len(before["chunks"])

    third = run_job(spec(src, out, executor, chunking={"max_tokens": 128}))
    assert (third.converted_objects, third.rechunked_objects, third.carried_objects) == (0, 0, 2)

    # A setting that shapes the conversion converts again; an operational one does not.
    fourth = run_job(spec(src, out, executor, chunking={"max_tokens": 128}, audio={"decode_timeout_s": 30}))
    assert fourth.carried_objects == 2
    fifth = run_job(spec(src, out, executor, chunking={"max_tokens": 128}, pdf={"min_text_chars": 8}))
    assert (fifth.converted_objects, fifth.reasons) == (2, {"convert_settings": 2})
    assert {s["run_id"] for s in rows(out, "segments")} == {fifth.run_id}


def test_every_format_section_shapes_the_conversion_fingerprint_and_its_timeouts_do_not():
    from unitok.pipeline.core.fingerprint import fingerprints

    def convert_fp(**extra):
        return fingerprints(spec("in", "out", **extra))["convert_fingerprint"]

    base = convert_fp()
    shaping = [("documents", "max_rows_per_segment", 7), ("documents", "max_attachments", 3),
               ("pdf", "min_text_chars", 8), ("pptx", "ocr_pictures", True)]  # fmt: skip
    for section, field, value in shaping:
        assert convert_fp(**{section: {field: value}}) != base, f"{section}.{field}"
    for section, field, value in (("documents", "convert_timeout_s", 99), ("pptx", "convert_timeout_s", 99),
                                  ("audio", "decode_timeout_s", 99)):  # fmt: skip
        assert convert_fp(**{section: {field: value}}) == base, f"{section}.{field}"


def test_pipeline_upgrade_reconverts_unless_kept_and_the_feed_deletes_before_it_inserts(
    tmp_path, monkeypatch
):
    import unitok.pipeline.job as job
    import unitok.pipeline.stages.per_object as per_object

    src, out = docs_folder(tmp_path), tmp_path / "out"
    run_job(spec(src, out))
    v = versions(out)
    for module in (job, per_object):
        monkeypatch.setattr(module, "PIPELINE_VERSION", "unitok/99.0.0")
    kept = run_job(spec(src, out, runtime={"executor": "local", "on_pipeline_upgrade": "keep"}))
    assert (kept.converted_objects, kept.carried_objects) == (0, 2)
    upgraded = run_job(spec(src, out))
    assert (upgraded.converted_objects, upgraded.reasons) == (2, {"pipeline": 2})
    assert {s["pipeline_version"] for s in rows(out, "segments")} == {"unitok/99.0.0"}
    # Same bytes, same chunking: the same chunk ids, deleted and inserted in one version, deletes first.
    feed = changes(str(out), "chunks", v["chunks"]).to_pylist()
    last = max(r["_commit_version"] for r in feed)
    kinds = [r["_change_type"] for r in feed if r["_commit_version"] == last]
    assert kinds == sorted(kinds) and set(kinds) == {"delete", "insert"}  # 'delete' < 'insert'
    deleted = {r["chunk_id"] for r in feed if r["_change_type"] == "delete"}
    assert deleted == {r["chunk_id"] for r in feed if r["_change_type"] == "insert"}


def test_a_touched_file_is_hashed_and_carried_and_a_changed_one_converted(tmp_path, executor):
    src, out = docs_folder(tmp_path), tmp_path / "out"
    run_job(spec(src, out, executor))
    v = versions(out)
    (state_before,) = [o for o in rows(out, "objects") if o["source_uri"].endswith("report.pdf")]
    st = (src / "report.pdf").stat()
    os.utime(src / "report.pdf", (st.st_atime + 3600, st.st_mtime + 3600))  # touch, rsync without -t
    touched = run_job(spec(src, out, executor))
    assert (touched.converted_objects, touched.refreshed_objects, touched.carried_objects) == (0, 1, 2)
    for name in ("segments", "documents", "chunks", "errors"):
        assert changes(str(out), name, v[name]).num_rows == 0
    (state,) = [o for o in rows(out, "objects") if o["source_uri"].endswith("report.pdf")]
    assert state["listing_version"] != state_before["listing_version"]
    assert state["source_version"] == state_before["source_version"]
    assert run_job(spec(src, out, executor)).carried_objects == 2  # the new listing version was recorded
    shutil.copy(SAMPLE / "scanned-memo.pdf", src / "report.pdf")  # new content under the same name
    changed = run_job(spec(src, out, executor))
    assert (changed.converted_objects, changed.refreshed_objects) == (1, 0)
    (doc,) = [d for d in rows(out, "documents") if d["source_uri"].endswith("report.pdf")]
    assert doc["source_version"] != state_before["source_version"]


def test_embeddings_turned_on_later_backfill_every_chunk_and_lancedb_follows(tmp_path):
    import lancedb
    from encoder_tiny import build_tiny_encoder

    model = build_tiny_encoder(tmp_path / "tiny-encoder")
    src, out, lance = docs_folder(tmp_path), tmp_path / "out", tmp_path / "lance"
    sink = {"uri": str(out), "lancedb": {"uri": str(lance)}}
    run_job(spec(src, out, output=sink, chunking={"max_tokens": 64}))
    table = lancedb.connect(str(lance)).open_table("chunks")
    assert "embedding" not in table.schema.names

    embed = {"enabled": True, "model": str(model), "batch_size": 4}
    on = run_job(spec(src, out, output=sink, chunking={"max_tokens": 64}, embedding=embed))
    assert (on.converted_objects, on.reembedded_objects) == (0, 2)
    chunks = rows(out, "chunks")
    assert chunks and all(
        c["embedding"] is not None and c["embedding_model"] == "tiny-encoder" for c in chunks
    )
    table = lancedb.connect(str(lance)).open_table("chunks")
    assert table.count_rows() == len(chunks) and on.lancedb["loaded"] == len(chunks)
    probe = chunks[3]
    (hit,) = table.search(probe["embedding"], vector_column_name="embedding").limit(1).to_list()
    assert hit["chunk_id"] == probe["chunk_id"]

    # A full run with embeddings on commits and syncs (its rows replace every chunk).
    full = run_job(spec(src, out, mode="full", output=sink, chunking={"max_tokens": 64}, embedding=embed))
    assert (
        full.converted_objects == 2 and full.lancedb["version"] == last_commit(str(out), "chunks")["version"]
    )
    off = run_job(spec(src, out, output=sink, chunking={"max_tokens": 64}))
    assert off.reembedded_objects == 2
    assert all(c["embedding"] is None for c in rows(out, "chunks"))
    table = lancedb.connect(str(lance)).open_table("chunks")
    assert "embedding" not in table.schema.names and table.count_rows() == len(chunks)


def unitok(*args, env=None):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})}
    return subprocess.run([*UNITOK, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize(
    "section, problem",
    [
        ("engine:\n  name: phi4\n  phi4:\n    model: microsoft/Phi-4-multimodal-instruct\n",
         "is not a folder and not in the local Hugging Face cache"),
        ("engine:\n  name: phi4\n  phi4:\n    model: {empty}\n", "has no config.json"),
        ("audio:\n  asr_model: {empty}\n", "has no model.bin"),
        ("embedding:\n  enabled: true\n  model: {empty}\n", "has no config.json"),
    ],
)  # fmt: skip
def test_a_missing_model_fails_validate_and_run_before_listing(tmp_path, section, problem):
    if "phi4" in section:
        pytest.importorskip("transformers")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    src, out = docs_folder(tmp_path), tmp_path / "out"
    job = tmp_path / "job.yaml"
    job.write_text(f"source:\n  uri: {src}\noutput:\n  uri: {out}\n" + section.format(empty=empty))
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    for command in ("validate", "run"):
        r = unitok(command, str(job), env=env)
        assert r.returncode == 2, (command, r.stdout, r.stderr)
        (line,) = [x for x in r.stderr.splitlines() if x.strip()]
        assert problem in line and "Traceback" not in r.stderr
    assert not out.exists() or not any((out / "objects").glob("*"))  # nothing committed


def test_the_endpoint_from_the_environment_reaches_source_and_output(s3, tmp_path, monkeypatch):
    client, endpoint, _ = s3
    put(client, "env/report.pdf", SAMPLE / "field-report.pdf")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # plain http, as boto3, MinIO and SeaweedFS users set it
    cfg = parse_config(
        {
            "source": {"uri": f"s3://{BUCKET}/env/"},
            "output": {"uri": f"s3://{BUCKET}/env-out"},
            "runtime": {"executor": "local"},
        }
    )
    summary = run_job(cfg)
    assert summary.committed and summary.converted_objects == 1 and summary.failed_objects == 0
    (doc,) = read_table(f"s3://{BUCKET}/env-out", "documents", delta_storage_options({})).to_pylist()
    assert "field report" in doc["markdown"].lower()


def test_an_object_overwritten_after_listing_is_recorded_as_the_bytes_converted(s3, tmp_path, monkeypatch):
    client, endpoint, _ = s3
    put(client, "overwrite/memo.pdf", SAMPLE / "field-report.pdf")
    cfg = parse_config(
        {
            "mode": "incremental",
            "source": {"uri": f"s3://{BUCKET}/overwrite/", "s3": {"endpoint_url": endpoint}},
            "output": {"uri": str(tmp_path / "out")},
            "runtime": {"executor": "local", "max_workers": 1},
        }
    )
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    monkeypatch.setenv("UNITOK_PAUSE_AT", "split.object#1")
    monkeypatch.setenv("UNITOK_PAUSE_DIR", str(hooks))
    import threading

    def overwrite():  # listed as the report; replaced by the scanned memo before its worker reads it
        testhooks.wait_reached(hooks, "split.object", 1)
        put(client, "overwrite/memo.pdf", SAMPLE / "scanned-memo.pdf")
        testhooks.release(hooks, "split.object", 1)

    thread = threading.Thread(target=overwrite)
    thread.start()
    try:
        first = run_job(cfg)
    finally:
        thread.join(timeout=120)
    monkeypatch.delenv("UNITOK_PAUSE_AT")
    etag = client.head_object(Bucket=BUCKET, Key="overwrite/memo.pdf")["ETag"].strip('"')
    (doc,) = rows(tmp_path / "out", "documents")
    assert doc["source_version"] == f"etag:{etag}" and "memo" in doc["markdown"].lower()
    (state,) = rows(tmp_path / "out", "objects")
    assert state["listing_version"] == state["source_version"] == f"etag:{etag}"
    assert first.converted_objects == 1
    again = run_job(cfg)
    assert (again.converted_objects, again.carried_objects) == (0, 1)


def test_maintain_compacts_lancedb_and_builds_the_vector_index_past_its_size(tmp_path):
    import lancedb
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(600, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 32)
    rows = pa.table({"chunk_id": [f"c{i}" for i in range(600)], "embedding": embedding})
    db = lancedb.connect(str(tmp_path / "lance"))
    db.create_table("chunks", rows.slice(0, 200))
    for start in (200, 400):  # three fragments, as three syncs leave them
        db.open_table("chunks").add(rows.slice(start, 200))
    job = tmp_path / "job.yaml"

    def maintain(min_rows):
        job.write_text(
            f"source:\n  uri: {tmp_path}\noutput:\n  uri: {tmp_path / 'out'}\n  lancedb:\n"
            f"    uri: {tmp_path / 'lance'}\n    index_min_rows: {min_rows}\n"
        )
        r = unitok("maintain", str(job))
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    assert (
        maintain(1000)
        == "lancedb chunks: 600 rows, compacted, vector index none (600 rows, below index_min_rows 1000)"
    )
    assert db.open_table("chunks").stats()["fragment_stats"]["num_fragments"] == 1  # compacted from 3
    assert maintain(256) == "lancedb chunks: 600 rows, compacted, vector index created"
    assert [ix.columns for ix in db.open_table("chunks").list_indices()] == [["embedding"]]
    (hit,) = db.open_table("chunks").search(vectors[42], vector_column_name="embedding").limit(1).to_list()
    assert hit["chunk_id"] == "c42"
    assert maintain(256) == "lancedb chunks: 600 rows, compacted, vector index up to date"
