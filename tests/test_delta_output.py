"""The output as Delta Lake tables on a local folder: one commit per table per run, merges that touch only
the changed objects' files, the change feed, a kill mid-commit, overlapping runs, and three other readers
(DuckDB with its delta extension from PyPI, deltalake, Ray Data) giving the same rows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset  # noqa: F401 - pa.dataset
import pytest
from conftest import REPO, committed_run, last_commit, reports
from deltalake import DeltaTable
from unitok.connectors.output import changes, read_table
from unitok.connectors.table_files import object_key
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.testhooks import release, wait_reached
from unitok.pipeline.job import run_job

SAMPLE = REPO / "sample"
TABLES = ("segments", "documents", "chunks", "errors", "objects")


def files(out: Path, name: str) -> dict[str, int]:
    actions = pa.table(DeltaTable(str(out / name)).get_add_actions(flatten=True))
    return dict(zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist(), strict=True))


@pytest.fixture
def corpus4(tmp_path):
    return reports(tmp_path / "in", 4)


def spec(src: Path, out: Path, **extra) -> dict:
    return {"mode": "incremental", "source": {"uri": str(src)}, "output": {"uri": str(out)},
            "runtime": {"executor": "local"}, **extra}  # fmt: skip


def test_an_incremental_run_commits_once_per_table_and_touches_only_the_changes(tmp_path, corpus4):
    out = tmp_path / "out"
    first = run_job(parse_config(spec(corpus4, out)))
    assert first.table_versions == dict.fromkeys(TABLES, 1)
    before = {name: files(out, name) for name in TABLES}

    shutil.copy(SAMPLE / "scanned-memo.pdf", corpus4 / "added.pdf")
    shutil.copy(SAMPLE / "scanned-memo.pdf", corpus4 / "report-1.pdf")  # changed
    (corpus4 / "report-2.pdf").unlink()  # deleted
    second = run_job(parse_config(spec(corpus4, out)))
    assert second.table_versions == dict.fromkeys(TABLES, 2)
    # added, changed, and broken.pdf (failed objects are tried again); report-0 and report-3 unchanged
    assert (second.converted_objects, second.carried_objects, second.deleted_objects) == (3, 2, 1)

    feed = changes(out, "documents", 1).to_pylist()
    seen = sorted((r["source_uri"].rsplit("/", 1)[-1], r["_change_type"], r["_commit_version"]) for r in feed)
    assert seen == [
        ("added.pdf", "insert", 2), ("report-1.pdf", "delete", 2), ("report-1.pdf", "insert", 2),
        ("report-2.pdf", "delete", 2),
    ]  # fmt: skip
    for name in ("segments", "documents", "chunks", "objects"):
        after = files(out, name)
        for i in (0, 3):  # unchanged objects: the same files, same sizes
            key = object_key((corpus4 / f"report-{i}.pdf").as_uri())
            mine = {p: s for p, s in before[name].items() if p.startswith(key)}
            assert mine and all(after.get(p) == s for p, s in mine.items()), (name, i)
    docs = read_table(out, "documents").to_pylist()
    assert sorted(d["source_uri"].rsplit("/", 1)[-1] for d in docs) == [
        "added.pdf", "report-0.pdf", "report-1.pdf", "report-3.pdf",
    ]  # fmt: skip

    r = subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", "changes", str(out), "--since", "1"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    assert len(r.stdout.splitlines()) == 4 and '"_change_type": "insert"' in r.stdout


def cli_run(job: Path, hooks: Path, hold: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "UNITOK_PAUSE_AT": hold, "UNITOK_PAUSE_DIR": str(hooks)}
    return subprocess.Popen([sys.executable, "-m", "unitok.pipeline.cli", "run", str(job)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def test_a_kill_mid_commit_leaves_each_table_whole_and_the_rerun_commits_once(tmp_path, corpus4):
    out = tmp_path / "out"
    job = tmp_path / "job.yaml"
    job.write_text(f"mode: incremental\nsource: {{uri: {corpus4}}}\noutput: {{uri: {out}}}\n"
                   "runtime: {executor: local}\n")  # fmt: skip
    first = run_job(parse_config(spec(corpus4, out)))
    shutil.copy(SAMPLE / "scanned-memo.pdf", corpus4 / "report-1.pdf")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    proc = cli_run(job, hooks, "commit.table#2")  # segments committed, documents about to be
    wait_reached(hooks, "commit.table", 2, alive=lambda: proc.poll() is None)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last_commit(out, "segments")["version"] == 2  # this table's commit had landed
    for name in ("documents", "chunks", "errors", "objects"):  # these had not: their previous version, whole
        assert last_commit(out, name)["version"] == 1 and last_commit(out, name)["run_id"] == first.run_id

    rerun = run_job(parse_config(spec(corpus4, out)))
    assert rerun.converted_objects == 2  # report-1 (the run state never recorded it) and broken.pdf
    assert rerun.table_versions == {"segments": 3, "documents": 2, "chunks": 2, "errors": 2, "objects": 2}
    segs = read_table(out, "segments").to_pylist()
    keys = [(r["doc_id"], r["segment_index"]) for r in segs]
    assert len(keys) == len(set(keys))
    assert {r["run_id"] for r in segs if r["source_uri"].endswith("report-1.pdf")} == {rerun.run_id}


@pytest.mark.parametrize("hold", ["split.object", "commit.table"])
def test_overlapping_runs_on_one_output_end_well_defined(tmp_path, corpus4, hold):
    """A is held (while converting, or with its files written and nothing committed) while B runs and
    commits; then A goes on. A must fail cleanly, nothing of it committed, and B's output stands."""
    out = tmp_path / "out"
    job = tmp_path / "job.yaml"
    job.write_text(f"mode: incremental\nsource: {{uri: {corpus4}}}\noutput: {{uri: {out}}}\n"
                   "runtime: {executor: local}\n")  # fmt: skip
    run_job(parse_config(spec(corpus4, out)))
    shutil.copy(SAMPLE / "scanned-memo.pdf", corpus4 / "added.pdf")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    a = cli_run(job, hooks, hold)
    wait_reached(hooks, hold, alive=lambda: a.poll() is None)
    b = run_job(parse_config(spec(corpus4, out)))  # B: converts added.pdf and commits
    release(hooks, hold)
    _, err = a.communicate(timeout=300)
    assert a.returncode == 2 and "another run committed" in err and "rerun it" in err, err[-2000:]
    assert committed_run(out) == b.run_id
    assert all(last_commit(out, name)["run_id"] == b.run_id for name in TABLES)
    segs = read_table(out, "segments").to_pylist()
    keys = [(r["doc_id"], r["segment_index"]) for r in segs]
    assert len(keys) == len(set(keys))
    assert (
        sum(1 for r in read_table(out, "documents").to_pylist() if r["source_uri"].endswith("added.pdf")) == 1
    )
    assert not (out / "_staging").exists()


def test_duckdb_deltalake_and_ray_read_the_same_rows(tmp_path, corpus4, ray_local):
    import duckdb
    import ray

    out = tmp_path / "out"
    run_job(parse_config(spec(corpus4, out)))
    shutil.copy(SAMPLE / "scanned-memo.pdf", corpus4 / "report-1.pdf")
    run_job(parse_config(spec(corpus4, out)))  # a second version, with removed files in the log

    def key(rows):
        return sorted((r["doc_id"], r["segment_index"], r["markdown"]) for r in rows)

    mine = key(read_table(out, "segments").to_pylist())
    import duckdb_ext  # noqa: F401 - the packaged extension's folder

    con = duckdb.connect()
    con.execute(f"SET extension_directory='{Path(duckdb_ext.__path__[0]) / 'extensions'}'")
    con.execute("LOAD delta")
    rows = con.execute(
        f"SELECT doc_id, segment_index, markdown FROM delta_scan('{out / 'segments'}')"
    ).fetchall()
    assert key([{"doc_id": d, "segment_index": i, "markdown": m} for d, i, m in rows]) == mine
    # deltalake's log, pyarrow's reader (deltalake's own pyarrow dataset can abort the interpreter at exit)
    dt = DeltaTable(str(out / "segments"))
    assert key(pa.dataset.dataset(dt.file_uris(), format="parquet").to_table().to_pylist()) == mine
    assert key(ray.data.read_delta(str(out / "segments")).take_all()) == mine


def test_maintain_vacuums_what_no_version_uses_and_checkpoints(tmp_path, corpus4):
    out = tmp_path / "out"
    run_job(parse_config(spec(corpus4, out)))
    shutil.copy(SAMPLE / "scanned-memo.pdf", corpus4 / "report-1.pdf")
    run_job(parse_config(spec(corpus4, out)))
    rows = read_table(out, "segments").sort_by([("doc_id", "ascending"), ("segment_index", "ascending")])
    on_disk = {p.name for p in (out / "segments").glob("*.parquet")}
    stale = len(on_disk) - len(files(out, "segments"))
    assert stale >= 1  # report-1's first files, removed from the table, still on disk

    cmd = [sys.executable, "-m", "unitok.pipeline.cli", "maintain", str(out), "--retention-hours", "0"]
    dry = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, check=True)
    assert f"segments: version 2, would vacuum {stale} file(s)" in dry.stdout, dry.stdout
    assert {p.name for p in (out / "segments").glob("*.parquet")} == on_disk  # a dry run deletes nothing
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    # vacuum records itself in the log (two commits), so the version moves on
    assert f"vacuumed {stale} file(s) older than 0 h, checkpoint written" in done.stdout.splitlines()[0]
    assert {p.name for p in (out / "segments").glob("*.parquet")} == set(files(out, "segments"))
    assert list((out / "segments" / "_delta_log").glob("*.checkpoint.parquet"))
    after = read_table(out, "segments").sort_by([("doc_id", "ascending"), ("segment_index", "ascending")])
    assert after.equals(rows)


def test_compacted_tables_are_split_again_only_where_an_object_changes(tmp_path, corpus4):
    out = tmp_path / "out"
    first = run_job(parse_config(spec(corpus4, out)))
    before = read_table(out, "segments").sort_by([("doc_id", "ascending"), ("segment_index", "ascending")])
    cmd = [
        sys.executable,
        "-m",
        "unitok.pipeline.cli",
        "maintain",
        str(out),
        "--compact",
        "--retention-hours",
        "0",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "segments: version " in done.stdout and "compacted 4 file(s)" in done.stdout, done.stdout
    assert len(files(out, "segments")) == 1  # one file of every object
    compacted = last_commit(out, "segments")["version"]
    assert compacted > first.table_versions["segments"]
    assert changes(out, "segments", first.table_versions["segments"]).num_rows == 0  # no data changed

    shutil.copy(SAMPLE / "scanned-memo.pdf", corpus4 / "report-1.pdf")
    run_job(parse_config(spec(corpus4, out)))
    after = read_table(out, "segments")
    keys = [(r["doc_id"], r["segment_index"]) for r in after.to_pylist()]
    assert len(keys) == len(set(keys))
    untouched = [r for r in before.to_pylist() if not r["source_uri"].endswith("report-1.pdf")]
    assert all(r in after.to_pylist() for r in untouched)  # the other objects' rows, the same
    feed = changes(out, "segments", compacted).to_pylist()  # the split, then the run
    assert {r["source_uri"].rsplit("/", 1)[-1] for r in feed} == {"report-1.pdf"}
    # The other three objects stay together in one file; the changed one has a file of its own.
    assert len(files(out, "segments")) == 2


def test_a_run_compacts_its_run_state_past_compact_at_files_and_the_rows_and_feed_stay(tmp_path, corpus4):
    out = tmp_path / "out"
    small = {"uri": str(out), "compact_at_files": 3}
    first = run_job(parse_config(spec(corpus4, out, output=small)))
    state = read_table(out, "objects").sort_by("source_uri")
    # The run state of 4 reports and broken.pdf: merged into one file. The data tables keep a file per
    # object (unitok maintain --compact merges those).
    assert len(files(out, "objects")) == 1 and len(files(out, "segments")) == 4
    compaction = last_commit(out, "objects")
    assert compaction["version"] > first.table_versions["objects"]  # the compaction's own commit
    # It carries the run, as every commit does: readers take a table's last commit as its last run's.
    assert compaction["unitok_operation"] == "compact" and compaction["run_id"] == first.run_id
    assert json.loads(compaction["summary"])["committed"] is True
    assert changes(out, "objects", first.table_versions["objects"]).num_rows == 0  # no data changed
    assert read_table(out, "objects").sort_by("source_uri").equals(state)
    # The next run plans from the merged state: only broken.pdf is tried again, and its state row is split
    # out of the merged file on its own, the others stay together.
    again = run_job(parse_config(spec(corpus4, out, output={"uri": str(out), "compact_at_files": 100})))
    assert again.reasons == {"failed": 1}
    assert len(files(out, "objects")) == 2


def test_an_objects_rows_are_data_files_of_its_own_cut_at_max_rows_per_file(tmp_path, corpus4):
    from deltalake import DeltaTable

    out = tmp_path / "out"
    run_job(parse_config(spec(corpus4, out, output={"uri": str(out), "max_rows_per_file": 1})))
    segs = read_table(out, "segments")
    per_object = {u: segs["source_uri"].to_pylist().count(u) for u in set(segs["source_uri"].to_pylist())}
    assert len(per_object) == 4 and all(n >= 2 for n in per_object.values())  # 4 reports, several pages
    actions = pa.table(DeltaTable(str(out / "segments")).get_add_actions(flatten=True)).to_pylist()
    assert len(actions) == segs.num_rows  # one row a file here
    for a in actions:  # each file names its one object in its statistics and its name
        assert a["num_records"] == 1 and a["min.source_uri"] == a["max.source_uri"]
        assert a["path"].startswith(object_key(a["min.source_uri"]))
