"""S3 in, incremental reruns, against a real S3-compatible server (SeaweedFS) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import BUCKET, REPO, committed_run, corpus, deleted_by_last_run, last_commit, put
from unitok.connectors.output import read_table
from unitok.connectors.table_files import object_key
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.testhooks import wait_reached
from unitok.pipeline.job import run_job

from infra.local_s3 import free_port


def job(endpoint, out, **extra):
    return parse_config(
        {
            "source": {"uri": f"s3://{BUCKET}/inbox/", "s3": {"endpoint_url": endpoint}},
            "output": {"uri": str(out)},
            "runtime": {"executor": "local"},
            **extra,
        }
    )


def rows(out, name):
    return read_table(out, name).to_pylist()


def test_incremental_rerun_converts_only_new_and_changed_and_records_deletions(s3, tmp_path):
    client, endpoint, _ = s3
    put(client, "inbox/memo.pdf", corpus("pdf/fake-memo.pdf"))
    put(client, "inbox/scan.png", corpus("image/DA-1p.png"))
    put(client, "inbox/papers/layout.pdf", corpus("pdf/layout-parser-paper-fast.pdf"))
    put(client, "inbox/rotated.pdf", corpus("pdf/rotated-page-90.pdf"))
    out = tmp_path / "out"
    cfg = job(endpoint, out)
    assert cfg.run_mode == "incremental"  # the default for s3 sources

    first = run_job(cfg)
    assert (first.objects, first.converted_objects, first.failures) == (4, 4, 0)
    docs = {r["source_uri"]: r for r in rows(out, "documents")}
    memo = docs[f"s3://{BUCKET}/inbox/memo.pdf"]
    assert "20,000 bottles" in memo["markdown"] and memo["source_version"].startswith("etag:")
    assert "maleficar" in docs[f"s3://{BUCKET}/inbox/scan.png"]["markdown"]

    put(client, "inbox/new.pdf", corpus("pdf/single_table.pdf"))  # added
    put(client, "inbox/memo.pdf", corpus("pdf/multi-column-2p.pdf"))  # changed
    client.delete_object(Bucket=BUCKET, Key="inbox/rotated.pdf")  # deleted
    second = run_job(cfg)
    assert (second.objects, second.converted_objects, second.carried_objects, second.deleted_objects) == (
        4,
        2,
        2,
        1,
    )

    segs = rows(out, "segments")
    converted_now = {r["source_uri"] for r in segs if r["run_id"] == second.run_id}
    assert converted_now == {f"s3://{BUCKET}/inbox/new.pdf", f"s3://{BUCKET}/inbox/memo.pdf"}
    keys = [(r["doc_id"], r["segment_index"]) for r in segs]
    assert len(keys) == len(set(keys))
    docs = {r["source_uri"]: r for r in rows(out, "documents")}
    assert set(docs) == {
        f"s3://{BUCKET}/inbox/{k}" for k in ("memo.pdf", "scan.png", "papers/layout.pdf", "new.pdf")
    }
    assert "Dense Passage Retrieval" in docs[f"s3://{BUCKET}/inbox/memo.pdf"]["markdown"]
    assert docs[f"s3://{BUCKET}/inbox/scan.png"]["run_id"] == first.run_id  # left untouched
    assert deleted_by_last_run(out) == [f"s3://{BUCKET}/inbox/rotated.pdf"]

    third = run_job(cfg)  # nothing changed
    assert (third.converted_objects, third.carried_objects, third.deleted_objects) == (0, 4, 0)
    assert len(rows(out, "documents")) == 4

    full = run_job(job(endpoint, out, mode="full"))
    assert full.converted_objects == 4 and {r["run_id"] for r in rows(out, "documents")} == {full.run_id}


def cli(*args):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env=env)  # fmt: skip


def write_job(tmp_path, uri, endpoint):
    p = tmp_path / "job.yaml"
    p.write_text(f"source:\n  uri: {uri}\n  s3:\n    endpoint_url: {endpoint}\n    max_attempts: 2\n"
                 f"output:\n  uri: {tmp_path / 'out'}\n")  # fmt: skip
    return p


def test_wrong_credentials_missing_bucket_and_unreachable_endpoint_are_one_line_errors(
    s3, tmp_path, monkeypatch
):
    _, endpoint, _ = s3
    r = cli("run", str(write_job(tmp_path, "s3://no-such-bucket/x/", endpoint)))
    assert r.returncode == 2 and "bucket does not exist" in r.stderr and "Traceback" not in r.stderr

    r = cli("run", str(write_job(tmp_path, f"s3://{BUCKET}/inbox/", f"http://127.0.0.1:{free_port()}")))
    assert r.returncode == 2 and "cannot reach the endpoint" in r.stderr and "Traceback" not in r.stderr

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    r = cli("run", str(write_job(tmp_path, f"s3://{BUCKET}/inbox/", endpoint)))
    assert r.returncode == 2 and "access denied" in r.stderr and "credentials" in r.stderr
    assert "wrong-secret" not in r.stderr + r.stdout


def test_a_server_that_stalls_mid_run_loses_nothing_after_the_rerun(s3, tmp_path, monkeypatch):
    """The server is frozen (SIGSTOP) while the run reads its third object: the reads time out and retry,
    the object becomes an explained error row, the run goes on once the server is back, and the rerun
    converts exactly that object, with no duplicates and nothing lost."""
    import signal
    import threading

    from unitok.pipeline.core import testhooks

    client, endpoint, server = s3
    names = [f"stall/doc{i:02d}.pdf" for i in range(6)]
    for name in names:
        put(client, name, corpus("pdf/layout-parser-paper-fast.pdf"))
    cfg = parse_config(
        {
            "source": {
                "uri": f"s3://{BUCKET}/stall/",
                "s3": {
                    "endpoint_url": endpoint,
                    "max_attempts": 2,
                    "connect_timeout_s": 1,
                    "read_timeout_s": 1,
                },
            },
            "output": {"uri": str(tmp_path / "out")},
            "runtime": {"executor": "local", "max_workers": 1, "local_max_objects": 100},
        }
    )
    out = tmp_path / "out"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    testhooks.reset()
    monkeypatch.setenv("UNITOK_PAUSE_AT", "split.object#3,split.object#4")
    monkeypatch.setenv("UNITOK_PAUSE_DIR", str(hooks))

    def stall():  # the server is frozen for the third object's download, thawed before the fourth's
        testhooks.wait_reached(hooks, "split.object", 3)
        server.send_signal(signal.SIGSTOP)
        testhooks.release(hooks, "split.object", 3)
        testhooks.wait_reached(hooks, "split.object", 4)
        server.send_signal(signal.SIGCONT)
        testhooks.release(hooks, "split.object", 4)

    staller = threading.Thread(target=stall)
    staller.start()
    try:
        first = run_job(cfg)
    finally:
        staller.join(timeout=120)
        server.send_signal(signal.SIGCONT)
    monkeypatch.delenv("UNITOK_PAUSE_AT")
    assert first.committed and first.failed_objects == 1
    (error,) = rows(out, "errors")
    assert error["stage"] == "split" and "at " + endpoint in error["message"], error
    assert error["source_uri"] == f"s3://{BUCKET}/stall/doc02.pdf"
    second = run_job(cfg)
    assert (second.converted_objects, second.carried_objects) == (1, len(names) - 1)
    docs = rows(out, "documents")
    assert sorted(d["source_uri"] for d in docs) == sorted(f"s3://{BUCKET}/{n}" for n in names)
    segs = rows(out, "segments")
    keys = [(r["doc_id"], r["segment_index"]) for r in segs]
    assert len(keys) == len(set(keys)) == 2 * len(names)
    assert rows(out, "errors") == []


def storage(endpoint):
    from unitok.connectors.output import delta_storage_options

    return delta_storage_options({"endpoint_url": endpoint})


def test_s3_to_s3_delta_tables_merge_by_object_feed_changes_and_survive_a_kill(s3, tmp_path):
    import signal

    from deltalake import DeltaTable
    from unitok.connectors.output import changes

    client, endpoint, _ = s3
    for i in range(3):
        put(client, f"s2s/doc{i}.pdf", corpus("pdf/fake-memo.pdf"))
    out = f"s3://{BUCKET}/out"
    spec = {
        "source": {"uri": f"s3://{BUCKET}/s2s/", "s3": {"endpoint_url": endpoint}},
        "output": {"uri": out + "/", "s3": {"endpoint_url": endpoint}},
        "runtime": {"executor": "local"},
    }
    opts = storage(endpoint)
    first = run_job(parse_config(spec))
    assert committed_run(out, opts) == first.run_id
    assert read_table(out, "documents", opts).num_rows == 3
    files_before = dict(zip(*pa_list(DeltaTable(f"{out}/documents", storage_options=opts)), strict=True))

    # A run killed mid-way (a long PDF being converted) leaves every table at its version.
    put(client, "s2s/long.pdf", corpus("pdf/DA-619p.pdf"))
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps(spec))
    work = tmp_path / "work"
    work.mkdir()
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "TMPDIR": str(work),  # where the run stages
           "UNITOK_PAUSE_AT": "converted.batch", "UNITOK_PAUSE_DIR": str(hooks)}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "unitok.pipeline.cli", "run", str(job)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_reached(hooks, "converted.batch", alive=lambda: proc.poll() is None)  # held mid-conversion
    os.killpg(proc.pid, signal.SIGKILL)  # nothing uploaded or committed
    proc.wait()
    assert committed_run(out, opts) == first.run_id and last_commit(out, "segments", opts)["version"] == 1

    # One added (long.pdf), one changed, one deleted: one commit per table, exactly those changes.
    put(client, "s2s/doc0.pdf", corpus("pdf/rotated-page-90.pdf"))
    client.delete_object(Bucket=BUCKET, Key="s2s/doc1.pdf")
    second = run_job(parse_config(spec))
    assert (second.converted_objects, second.carried_objects, second.deleted_objects) == (2, 1, 1)
    assert all(v == 2 for v in second.table_versions.values()), second.table_versions
    feed = changes(out, "documents", 1, opts).to_pylist()
    seen = sorted((r["source_uri"].rsplit("/", 1)[-1], r["_change_type"]) for r in feed)
    assert seen == [("doc0.pdf", "delete"), ("doc0.pdf", "insert"), ("doc1.pdf", "delete"),
                    ("long.pdf", "insert")]  # fmt: skip
    segs = read_table(out, "segments", opts).to_pylist()
    keys = [(r["doc_id"], r["segment_index"]) for r in segs]
    assert len(keys) == len(set(keys)) == 2 + 619
    files_after = dict(zip(*pa_list(DeltaTable(f"{out}/documents", storage_options=opts)), strict=True))
    doc2 = [p for p in files_before if p.startswith(object_key(f"s3://{BUCKET}/s2s/doc2.pdf"))]
    assert doc2 and all(files_after.get(p) == files_before[p] for p in doc2)  # unchanged: same file, size


def pa_list(dt):
    import pyarrow as pa

    actions = pa.table(dt.get_add_actions(flatten=True))
    return actions["path"].to_pylist(), actions["size_bytes"].to_pylist()


def test_versioned_bucket_records_and_reads_version_ids(s3, tmp_path):
    client, endpoint, _ = s3
    client.create_bucket(Bucket="versioned")
    client.put_bucket_versioning(Bucket="versioned", VersioningConfiguration={"Status": "Enabled"})
    client.upload_file(str(corpus("pdf/fake-memo.pdf")), "versioned", "in/a.pdf")
    client.upload_file(str(corpus("pdf/rotated-page-90.pdf")), "versioned", "in/b.pdf")
    cfg = parse_config(
        {
            "source": {"uri": "s3://versioned/in/", "s3": {"endpoint_url": endpoint}},
            "output": {"uri": str(tmp_path / "out")},
            "runtime": {"executor": "local"},
        }
    )
    first = run_job(cfg)
    docs = {r["source_uri"]: r for r in rows(tmp_path / "out", "documents")}
    a = docs["s3://versioned/in/a.pdf"]
    assert (
        first.failures == 0 and a["source_version"].startswith("version:") and " etag:" in a["source_version"]
    )

    client.upload_file(str(corpus("pdf/multi-column-2p.pdf")), "versioned", "in/a.pdf")  # a new version
    client.delete_object(Bucket="versioned", Key="in/b.pdf")  # a delete marker becomes the latest
    second = run_job(cfg)
    assert (second.objects, second.converted_objects, second.deleted_objects) == (1, 1, 1)
    (doc,) = rows(tmp_path / "out", "documents")
    assert "Dense Passage Retrieval" in doc["markdown"] and doc["source_version"] != a["source_version"]


def test_a_prefix_that_lists_nothing_stops_before_the_corpus_is_deleted(s3, tmp_path):
    from unitok.pipeline.stages.plan import MassDeleteError

    client, endpoint, _ = s3
    for i in range(3):
        put(client, f"guard/doc{i}.pdf", corpus("pdf/fake-memo.pdf"))
    spec = {
        "source": {"uri": f"s3://{BUCKET}/guard/", "s3": {"endpoint_url": endpoint}},
        "output": {"uri": f"s3://{BUCKET}/guard-out/", "s3": {"endpoint_url": endpoint}},
        "runtime": {"executor": "local"},
    }
    first = run_job(parse_config(spec))

    def committed():
        out = f"s3://{BUCKET}/guard-out"
        return committed_run(out, storage(endpoint)), read_table(out, "documents", storage(endpoint)).num_rows

    assert committed() == (first.run_id, 3)
    wrong = {**spec, "source": {**spec["source"], "uri": f"s3://{BUCKET}/gaurd/"}}  # a typo in the prefix
    with pytest.raises(MassDeleteError, match="lists 0 objects where the last run listed 3"):
        run_job(parse_config(wrong))
    client.delete_object(Bucket=BUCKET, Key="guard/doc0.pdf")
    client.delete_object(Bucket=BUCKET, Key="guard/doc1.pdf")
    with pytest.raises(MassDeleteError, match="would delete 2 of the 3 objects"):
        run_job(parse_config(spec))
    assert committed() == (first.run_id, 3)  # nothing committed by either
    allowed = run_job(parse_config(spec), allow_mass_delete=True)
    assert allowed.deleted_objects == 2 and committed() == (allowed.run_id, 1)


def test_beam_reads_s3_with_the_same_globs_and_plan(s3, tmp_path):
    """The Beam driver's workers download from S3 themselves; the listing, the globs and the incremental
    plan are the driver's, as on every executor."""
    pytest.importorskip("apache_beam")
    client, endpoint, _ = s3
    put(client, "beam/memo.pdf", corpus("pdf/fake-memo.pdf"))
    put(client, "beam/scan.png", corpus("image/DA-1p.png"))  # excluded by the include glob
    put(client, "beam/deep/table.pdf", corpus("pdf/single_table.pdf"))
    out = tmp_path / "out"
    spec = {
        "source": {"uri": f"s3://{BUCKET}/beam/", "s3": {"endpoint_url": endpoint}, "include": ["*.pdf"]},
        "output": {"uri": str(out)},
        "runtime": {"executor": "beam", "max_workers": 2},
    }
    first = run_job(parse_config(spec))
    assert (first.executor, first.objects, first.converted_objects, first.failures) == ("beam", 2, 2, 0)
    docs = {r["source_uri"]: r for r in rows(out, "documents")}
    assert set(docs) == {f"s3://{BUCKET}/beam/memo.pdf", f"s3://{BUCKET}/beam/deep/table.pdf"}
    assert "20,000 bottles" in docs[f"s3://{BUCKET}/beam/memo.pdf"]["markdown"]

    put(client, "beam/memo.pdf", corpus("pdf/multi-column-2p.pdf"))
    second = run_job(parse_config(spec))
    assert (second.converted_objects, second.carried_objects) == (1, 1)
    docs = {r["source_uri"]: r for r in rows(out, "documents")}
    assert "Dense Passage Retrieval" in docs[f"s3://{BUCKET}/beam/memo.pdf"]["markdown"]
    assert docs[f"s3://{BUCKET}/beam/deep/table.pdf"]["run_id"] == first.run_id
