"""One output, one commit protocol, for folders and S3: every dataset is a Delta Lake table, so DuckDB,
Polars, Spark, Trino, Ray Data and `deltalake` read it with nothing else.

Layout under the output URI:
  segments/ documents/ chunks/ errors/ objects/   Delta tables (change data feed on)
  _staging/<run_id>/                              a run's scratch (never read by consumers)

Workers write each object's rows of every table as data files inside the tables' folders
(connectors.table_files: `<key>-<run_id>-<n>.parquet`, key a hash of the source URI) and hand the driver
their metadata; the driver commits it as the run goes, each commit covering whole objects in every table
(segments, documents, chunks, errors, then objects, the run state, last). A commit replaces exactly the
files of the objects it covers (and, in a run's last commit, of objects gone from the listing), never an
unchanged object's rows: bytes written grow with the change, not with the corpus. Every commit carries the
run id, pipeline version and counts in its metadata and an application transaction ("unitok"), so of two
runs overlapping on one output the later committer fails cleanly (Delta's optimistic concurrency) instead
of interleaving. Files a killed run wrote but never committed are referenced by no version: readers never
see them, and `unitok maintain` vacuums them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from unitok.connectors.local import path_from_uri
from unitok.connectors.table_files import STAGING_FOLDER, TableFiles
from unitok.pipeline.core.redact import redact_uri
from unitok.pipeline.core.schemas import TABLES
from unitok.pipeline.core.testhooks import checkpoint

STAGING = STAGING_FOLDER
TABLE_NAMES = tuple(TABLES)
APP_ID = "unitok"
STALE_STAGING_S = 24 * 3600  # staging of a run on another host, older than this, is removed
OWNER = ".owner"  # which process stages in a staging folder


def _abandoned(staging: Path) -> bool:
    """A staging folder whose run is gone: its process no longer runs on this host, or it is stale."""
    try:
        owner = json.loads((staging / OWNER).read_text())
    except (OSError, ValueError):
        owner = {}
    if owner.get("host") == socket.gethostname():
        try:
            os.kill(int(owner["pid"]), 0)
            return False
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError):
            pass
    try:
        return time.time() - staging.stat().st_mtime > STALE_STAGING_S
    except OSError:
        return False


class OutputError(RuntimeError):
    """The output cannot be written at all (a file where the folder should be, a read-only or full disk,
    a place inside the source): the job stops before converting, with this one line."""


class ConcurrentRunError(RuntimeError):
    """Another run committed to the same output while this one ran: nothing of this run was committed
    to the table that refused it. Rerun it."""


def check_output_location(source_uri: str, output_uri: str) -> None:
    """An output inside the source would be listed, and converted, by the next run."""
    if source_uri.startswith("s3://") != output_uri.startswith("s3://"):
        return
    if source_uri.startswith("s3://"):
        src, out = source_uri.rstrip("/") + "/", output_uri.rstrip("/") + "/"
    else:
        src_path, out_path = path_from_uri(source_uri).resolve(), path_from_uri(output_uri).resolve()
        if src_path.is_file():
            return
        src, out = str(src_path).rstrip("/") + "/", str(out_path).rstrip("/") + "/"
    if out.startswith(src):
        raise OutputError(
            f"output.uri {redact_uri(output_uri)} is inside source.uri {redact_uri(source_uri)}: "
            "the next run would list the output as input; choose an output outside the source"
        )


def check_lancedb_location(uri: str) -> None:
    """A local LanceDB database path with a file in the way would fail only after the whole run: say so
    before converting (remote URIs are LanceDB's to check)."""
    if "://" in uri and not uri.startswith("file://"):
        return
    path = path_from_uri(uri)
    if path.exists() and not path.is_dir():
        raise OutputError(
            f"output.lancedb.uri {redact_uri(uri)}: a file is in the way: the LanceDB database is a folder"
        )


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileExistsError | NotADirectoryError):
        return "a file is in the way: the output must be a folder"
    return exc.strerror or type(exc).__name__


def _explain_store(exc: BaseException) -> str:
    """delta-rs's object-store errors (many lines, colour codes) as one reason."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    if re.search(
        r"(?i)connection refused|tcp connect|dns error|timed out|connect timeout|error sending request", text
    ):
        return "cannot reach the endpoint"
    if re.search(r"NoSuchBucket|bucket does not exist", text):
        return "bucket does not exist"
    if re.search(r"(?i)403|forbidden|InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied", text):
        return "access denied; check the AWS credentials in the environment"
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def delta_files(dt: Any, storage_options: dict[str, str] | None, paths: list[str] | None = None) -> Any:
    """A pyarrow dataset over the table's current data files (or the given ones), in the table's schema
    (columns a file lacks read null). Read with pyarrow itself: deltalake's own pyarrow dataset left a
    native thread behind that aborted the interpreter at exit ("terminate called without an active
    exception", 4 exits in 20), which would turn a committed run's exit 0 into 134."""
    import pyarrow.fs as pafs

    schema = _plain_schema(pa.schema(dt.schema().to_arrow()))
    root = dt.table_uri.rstrip("/")
    uris = dt.file_uris() if paths is None else [f"{root}/{p}" for p in paths]
    if not uris or not uris[0].startswith("s3://"):
        local = [u[len("file://") :] if u.startswith("file://") else u for u in uris]
        return pads.dataset(local, format="parquet", schema=schema)
    opts = storage_options or {}
    endpoint = opts.get("AWS_ENDPOINT_URL", "")
    fs = pafs.S3FileSystem(
        access_key=opts.get("AWS_ACCESS_KEY_ID"),
        secret_key=opts.get("AWS_SECRET_ACCESS_KEY"),
        session_token=opts.get("AWS_SESSION_TOKEN"),
        region=opts.get("AWS_REGION"),
        endpoint_override=endpoint.split("://", 1)[-1] or None,
        scheme="http" if endpoint.startswith("http://") else "https",
    )
    return pads.dataset([u[len("s3://") :] for u in uris], format="parquet", schema=schema, filesystem=fs)


def delta_storage_options(s3_options: dict[str, Any] | None) -> dict[str, str]:
    """delta-rs object-store settings for an s3:// output, from the job's s3 section and the AWS chain's
    environment variables."""
    opts = {k: v for k, v in os.environ.items() if k.startswith("AWS_") and v}
    s3 = s3_options or {}
    # The endpoint as boto3 finds it: the config's, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL.
    endpoint = s3.get("endpoint_url") or opts.get("AWS_ENDPOINT_URL_S3") or opts.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            opts["AWS_ALLOW_HTTP"] = "true"  # the object store refuses plain http unless told
    if s3.get("region"):
        opts["AWS_REGION"] = s3["region"]
    opts.setdefault("AWS_REGION", "us-east-1")
    # Commits are put-if-absent (S3's conditional writes): two writers never both create one version.
    opts.setdefault("AWS_CONDITIONAL_PUT", "etag")
    return opts


# A file of one object's rows, as workers write them, is a few KB; one a compaction wrote is far larger.
SMALL_FILE_BYTES = 1 << 20


class RunOutput:
    """The output of a job: the tables' current state (for planning), and the staging and commit of a
    new run. Use as a context manager; close() removes the local work folder of an s3:// output."""

    def __init__(
        self,
        uri: str,
        s3_options: dict[str, Any] | None = None,
        compression: str = "zstd",
        table_config: dict[str, str] | None = None,
        rows_per_file: int = 100_000,
    ):
        self.uri = uri.rstrip("/")
        self.compression = compression
        self.rows_per_file = rows_per_file
        self.remote = uri.startswith("s3://")
        self.s3_options = s3_options or {}
        self.storage_options: dict[str, str] | None = None
        self.read_versions: dict[str, int | None] = {}
        self.new_tables: set[str] = set()  # tables that did not exist when this run planned
        self.table_config = table_config or {"delta.enableChangeDataFeed": "true"}
        if self.remote:
            self.storage_options = delta_storage_options(s3_options)
            self.dir = Path(tempfile.mkdtemp(prefix="unitok-out-"))
        else:
            self.dir = path_from_uri(uri).resolve()
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                # Probe now: a read-only or full disk should stop the job before any conversion.
                with tempfile.NamedTemporaryFile(dir=self.dir, prefix=".unitok-probe-"):
                    pass
            except OSError as e:
                raise OutputError(
                    f"output.uri {redact_uri(uri)}: cannot write there ({_os_reason(e)})"
                ) from None
        self.committing: list[str] = []  # tables of the commit under way that have landed

    def __enter__(self) -> RunOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.remote:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- tables ---------------------------------------------------------------------------------------
    def table_uri(self, name: str) -> str:
        return f"{self.uri}/{name}" if self.remote else str(self.dir / name)

    def table(self, name: str) -> Any:
        """The Delta table, or None where it does not exist yet."""
        from deltalake import DeltaTable

        uri = self.table_uri(name)
        try:
            if not DeltaTable.is_deltatable(uri, storage_options=self.storage_options):
                return None
            return DeltaTable(uri, storage_options=self.storage_options)
        except Exception as e:  # noqa: BLE001 - an unreachable store: one line
            raise OutputError(f"output.uri {redact_uri(self.uri)}: {_explain_store(e)}") from None

    def previous_rows(self, name: str, columns: list[str]) -> pa.Table:
        """The table's rows as of now (those columns). Every table's version is remembered here, where the
        run plans: a commit on top of another run's later commit to any of them is refused."""
        for other in TABLE_NAMES:
            if other != name:
                found = self.table(other)
                self.read_versions[other] = found.version() if found is not None else None
        dt = self.table(name)
        self.read_versions[name] = dt.version() if dt is not None else None
        self.new_tables = {t for t, v in self.read_versions.items() if v is None}
        if dt is None:
            return TABLES[name].empty_table().select(columns)
        have = set(
            pa.schema(dt.schema().to_arrow()).names
        )  # a table written by an older version lacks new columns
        table = plain_types(
            delta_files(dt, self.storage_options).to_table(columns=[c for c in columns if c in have])
        )
        for c in columns:
            if c not in have:
                table = table.append_column(
                    TABLES[name].field(c), pa.nulls(table.num_rows, TABLES[name].field(c).type)
                )
        return table.select(columns)

    def compact(
        self, at_files: int, metadata: dict[str, Any], tables: tuple[str, ...] = ("objects",)
    ) -> dict[str, int]:
        """Merge the small files of each of `tables` that holds more than `at_files` small data files (a
        commit without data change: the change feed shows none); a checkpoint follows, so readers start
        from it. Returns, per table compacted, the files it merged. Done in a process of its own: delta-rs
        holds on to about 120 MiB merging 4,000 small files, which the driver would keep for the rest of
        its life; the run's workers are gone by then."""
        merged: dict[str, int] = {}
        for name in tables:
            dt = self.table(name)
            if dt is None or _small_files(dt) <= at_files:
                continue  # the usual case: no process started (a Python start-up costs a small job ~0.6 s)
            about = {**metadata, "table": name, "unitok_operation": "compact"}
            job = {"uri": self.table_uri(name), "storage_options": self.storage_options, "at_files": at_files,
                   "metadata": about}  # fmt: skip
            code = "from unitok.connectors.output import _compact_main; _compact_main()"
            done = subprocess.run(
                [sys.executable, "-c", code], input=json.dumps(job), capture_output=True, text=True
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                raise OutputError(f"compacting {name}: {last}")
            result = json.loads(done.stdout)
            if result is not None:
                merged[name] = result["merged"]
                self.read_versions[name] = result["version"]
        return merged

    def object_files(self, name: str, uris: pa.Array) -> dict[str, list[str]]:
        """The table's data files (paths relative to it) that hold rows of these objects: what a worker
        reads to re-chunk or re-embed an object without converting it."""
        dt = self.table(name)
        if dt is None or not len(uris):
            return {}
        wanted = set(uris.to_pylist())
        out: dict[str, list[str]] = {}
        for f in self._touched(dt, wanted, None):
            for uri in f["uris"] & wanted:
                out.setdefault(uri, []).append(f["path"])
        return out

    # -- a new run ------------------------------------------------------------------------------------
    def begin(self, run_id: str) -> Path:
        """The run's staging folder: beside the tables for a local output (same filesystem), in the work
        folder for S3. Other runs' staging is left alone unless their process is gone (a crash)."""
        root = self.dir / STAGING
        if root.is_dir():
            for old in root.iterdir():
                if _abandoned(old):
                    shutil.rmtree(old, ignore_errors=True)
        staging = root / run_id
        try:
            staging.mkdir(parents=True)
            (staging / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        except OSError as e:
            raise OutputError(
                f"output.uri {redact_uri(self.uri)}: cannot stage the run ({_os_reason(e)})"
            ) from None
        return staging

    @property
    def files(self) -> TableFiles:
        """Where workers write this output's data files (an absolute folder path or the S3 prefix)."""
        where = self.uri if self.remote else str(self.dir)
        return TableFiles(where, self.s3_options, self.compression, self.rows_per_file)

    def commit(
        self,
        metas: list[dict[str, Any]],
        run_id: str,
        schemas: dict[str, pa.Schema],
        metadata: dict[str, Any] | Callable[[dict[str, int]], dict[str, Any]],
        listed_uris: pa.Array | None = None,
    ) -> dict[str, int]:
        """One commit of each table, in the order given (the run state last), of the objects in `metas`
        (what workers wrote: each object's files per table): their files are added, and the files that
        held their earlier rows removed, in the tables each object's "tables" names (default: all).
        With listed_uris (a run's last commit), the files of objects no longer listed are removed too.
        Returns each table's new version. self.committing holds the tables whose commit has landed while
        one is under way, so a failure part-way can say what is committed."""
        listed = None if listed_uris is None else listed_uris.cast(pa.string())
        versions: dict[str, int] = {}
        for name, schema in schemas.items():
            # An object re-chunked replaces its chunks only: its other tables' rows stand.
            replace = {m["uri"] for m in metas if name in m.get("tables", TABLE_NAMES)}
            adds = [f for m in metas for f in m["files"].get(name, [])]
            versions[name] = self._commit_table(
                name, schema, adds, run_id, replace, listed, metadata, versions
            )
            self.committing.append(name)
        self.committing = []
        return versions

    def discard(self, run_id: str) -> None:
        shutil.rmtree(self.dir / STAGING / run_id, ignore_errors=True)
        try:
            (self.dir / STAGING).rmdir()
        except OSError:
            pass  # other runs' staging remains

    def _commit_table(
        self,
        name: str,
        schema: pa.Schema,
        files: list[dict[str, Any]],
        run_id: str,
        replace: set[str],
        listed: pa.Array | None,
        metadata: dict[str, Any] | Callable[[dict[str, int]], dict[str, Any]],
        versions: dict[str, int] | None = None,
    ) -> int:
        from deltalake import DeltaTable
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import CommitProperties, RemoveAction, Transaction

        uri = self.table_uri(name)
        dt = self.table(name)
        created = dt is None
        if created:
            try:
                dt = DeltaTable.create(
                    uri,
                    schema=schema,
                    name=name,
                    configuration=self.table_config,
                    storage_options=self.storage_options,
                )
            except Exception as e:  # noqa: BLE001 - one line
                raise OutputError(
                    f"output.uri {redact_uri(self.uri)}: cannot create {name} ({_explain_store(e)})"
                ) from None
        # The version this run planned from, or last committed (None: the table did not exist then).
        read = self.read_versions.get(name, dt.version()) if not created else self.read_versions.get(name)
        if read is None and created:
            read = dt.version()
        if read is None or dt.version() != read:
            raise ConcurrentRunError(
                f"another run committed {name} (now at version {dt.version()}) while this run, which planned "
                f"from {'no table' if read is None else f'version {read}'}, was converting; nothing more of "
                f"this run was committed to {name}: rerun it"
            )
        if self._evolve(dt, schema):
            read = dt.version()
        if name in self.new_tables:
            # Made by this run: it holds only this run's objects, each committed once, so no file of it
            # is replaced (and its growing file list is not read at every progress commit).
            replace, listed = set(), None
        touched = self._touched(dt, replace, listed)
        mixed = [f for f in touched if len(f["uris"]) > 1]
        listed_set = set(listed.to_pylist()) if mixed and listed is not None else set()
        if mixed:
            # Files holding several objects (a compaction): first split them into files per object, in a
            # commit without data change (the change feed shows nothing), so that the run's own commit
            # replaces exactly its objects' files and its feed shows only them.
            split_out = {
                u
                for f in mixed
                for u in f["uris"]
                if u in replace or (listed is not None and u not in listed_set)
            }
            self._split(dt, name, schema, run_id, mixed, split_out, metadata, read)
            read = dt.version()
            touched = self._touched(dt, replace, listed)
        now = int(time.time() * 1000)
        removes = [RemoveAction(f["path"], True, now, f["size"], {}) for f in touched]
        adds = [_add_action(f) for f in files]
        if callable(metadata):  # given the versions this commit reaches, this table's included
            metadata = metadata({**(versions or {}), name: dt.version() + 1})
        props = CommitProperties(
            custom_metadata={**metadata, "table": name},
            app_transactions=[Transaction(APP_ID, read + 1)],
            max_commit_retries=0,
        )
        checkpoint("commit.table")  # tests hold a run here: files written, this table not yet committed
        try:
            dt.create_write_transaction(removes + adds, "append", schema, commit_properties=props)
        except CommitFailedError as e:
            raise ConcurrentRunError(
                f"another run committed {name} while this run was committing ({e}); "
                f"nothing more of this run was committed to {name}: rerun it"
            ) from None
        except OSError as e:
            raise OutputError(
                f"output.uri {redact_uri(self.uri)}: cannot commit {name} ({_os_reason(e)})"
            ) from None
        except Exception as e:  # noqa: BLE001 - delta-rs's store errors: one line
            raise OutputError(
                f"output.uri {redact_uri(self.uri)}: cannot commit {name} ({_explain_store(e)})"
            ) from None
        dt.update_incremental()
        self.read_versions[name] = dt.version()  # this run's next commit builds on its own
        return dt.version()

    def _evolve(self, dt: Any, schema: pa.Schema) -> bool:
        """Columns added to a table's schema since it was created are added to the table (old rows read
        null). Whether it did."""
        from deltalake.schema import Field
        from deltalake.schema import Schema as DeltaSchema

        have = {f.name for f in dt.schema().fields}
        missing = [f for f in schema if f.name not in have]
        if missing:
            fields = DeltaSchema.from_arrow(pa.schema(missing)).fields
            dt.alter.add_columns([Field(f.name, f.type, nullable=True) for f in fields])
            dt.update_incremental()
        return bool(missing)

    def _touched(self, dt: Any, replace: set[str], listed: pa.Array | None) -> list[dict[str, Any]]:
        """The table's files that hold an object this run converts again (replace: source URIs) or that
        is no longer listed (listed: every listed URI, in a run's last commit), with the objects each
        holds: from the file's source_uri statistics (one object when min equals max), vectorized over
        the table's files; else from the file's source_uri column."""
        if not replace and listed is None:  # a commit of new objects only: the file list is not read
            return []
        actions = pa.table(dt.get_add_actions(flatten=True))
        if actions.num_rows == 0:
            return []
        if "min.source_uri" in actions.column_names:
            lo = actions["min.source_uri"].cast(pa.string())
            single = pc.fill_null(pc.equal(lo, actions["max.source_uri"].cast(pa.string())), False)
        else:
            lo, single = pa.nulls(actions.num_rows, pa.string()), pa.repeat(False, actions.num_rows)

        def hits(uris: Any) -> Any:
            hit = pc.is_in(uris, value_set=pa.array(sorted(replace), pa.string()))
            if listed is not None:
                hit = pc.or_(hit, pc.invert(pc.is_in(uris, value_set=listed)))
            return pc.fill_null(hit, False)

        files = actions.select(["path", "size_bytes"]).append_column("uri", lo)
        picked = files.filter(pc.and_(single, hits(lo))).to_pylist()
        out = [{"path": f["path"], "size": f["size_bytes"], "uris": {f["uri"]}} for f in picked]
        unknown = files.filter(pc.invert(single)).to_pylist()  # several objects, or no statistics
        if unknown:
            fragments = {fr.path: fr for fr in delta_files(dt, self.storage_options).get_fragments()}
            for f in unknown:
                frag = next((fr for p, fr in fragments.items() if p.endswith(f["path"])), None)
                empty = pa.chunked_array([], pa.string())
                uris = frag.to_table(columns=["source_uri"])["source_uri"] if frag else empty
                if pc.any(hits(uris.cast(pa.string()))).as_py():
                    out.append({"path": f["path"], "size": f["size_bytes"], "uris": set(uris.to_pylist())})
        return out

    def _split(
        self,
        dt: Any,
        name: str,
        schema: pa.Schema,
        run_id: str,
        mixed: list[dict[str, Any]],
        split_out: set[str],
        metadata: dict[str, Any] | Callable[[dict[str, int]], dict[str, Any]],
        read: int,
    ) -> None:
        from deltalake.exceptions import CommitFailedError
        from deltalake.transaction import CommitProperties, RemoveAction, Transaction

        rows = delta_files(dt, self.storage_options, [f["path"] for f in mixed]).to_table()
        now = int(time.time() * 1000)
        removes = [RemoveAction(f["path"], False, now, f["size"], {}) for f in mixed]
        # The objects this commit replaces get files of their own; the rest stay together, as compacted.
        out = pc.fill_null(
            pc.is_in(rows["source_uri"], value_set=pa.array(sorted(split_out), pa.string())), False
        )
        files = self.files.write(name, rows.filter(out), f"{run_id}-split", schema, data_change=False)
        rest = rows.filter(pc.invert(out))
        files += self.files.write(name, rest, f"{run_id}-rest", schema, data_change=False, per_object=False)
        if callable(metadata):
            metadata = metadata({name: dt.version() + 1})
        props = CommitProperties(
            custom_metadata={**metadata, "table": name, "unitok_operation": "split files per object"},
            app_transactions=[Transaction(APP_ID, read + 1)],
            max_commit_retries=0,
        )
        try:
            dt.create_write_transaction(
                removes + [_add_action(f) for f in files], "append", schema, commit_properties=props
            )
        except CommitFailedError as e:
            raise ConcurrentRunError(
                f"another run committed {name} while this run was committing ({e})"
            ) from None
        dt.update_incremental()


def _small_files(dt: Any) -> int:
    sizes = pa.table(dt.get_add_actions(flatten=True))["size_bytes"]
    return pc.sum(pc.less(sizes, SMALL_FILE_BYTES)).as_py() or 0


def compact_table(
    uri: str, storage_options: dict[str, str] | None, at_files: int, metadata: dict[str, Any]
) -> dict[str, int] | None:
    """Merge a table's small files once it holds more than `at_files` of them, with a checkpoint after:
    {"merged": files merged, "version": the table's version}; None where it did not need it."""
    from deltalake import DeltaTable
    from deltalake.transaction import CommitProperties

    if not DeltaTable.is_deltatable(uri, storage_options=storage_options):
        return None
    dt = DeltaTable(uri, storage_options=storage_options)
    if _small_files(dt) <= at_files:
        return None
    # The run's metadata on this commit too: readers take a table's last commit as its last run's.
    metrics = dt.optimize.compact(commit_properties=CommitProperties(custom_metadata=metadata))
    dt.create_checkpoint()
    return {"merged": int(metrics.get("numFilesRemoved", 0)), "version": dt.version()}


def _compact_main() -> None:
    """compact_table in a process of its own: the job as JSON on stdin, the result as JSON on stdout."""
    job = json.loads(sys.stdin.read())
    print(json.dumps(compact_table(job["uri"], job["storage_options"], job["at_files"], job["metadata"])))


def _add_action(f: dict[str, Any]) -> Any:
    """A worker's file metadata (connectors.table_files) as a Delta add action."""
    from deltalake.transaction import AddAction

    return AddAction(f["path"], f["size"], {}, f["modification_time"], f["data_change"], f["stats"])


def open_table(uri: str | Path, name: str, storage_options: dict[str, str] | None = None) -> Any:
    """One table of a unitok output, as a deltalake DeltaTable."""
    from deltalake import DeltaTable

    return DeltaTable(f"{str(uri).rstrip('/')}/{name}", storage_options=storage_options)


def read_table(uri: str, name: str, storage_options: dict[str, str] | None = None) -> pa.Table:
    """A table of a unitok output as Arrow, at its current version (tests and small tools; any Delta
    reader does the same)."""
    return delta_files(open_table(uri, name, storage_options), storage_options).to_table()


def changes(uri: str, name: str, since: int, storage_options: dict[str, str] | None = None) -> pa.Table:
    """The table's change feed after version `since`: each row with _change_type (insert, delete),
    _commit_version and _commit_timestamp, in the order of feed_order. An object converted again shows
    as a delete of its old rows and an insert of its new ones in one version."""
    dt = open_table(uri, name, storage_options)
    if since > dt.version():
        raise OutputError(f"{name} is at version {dt.version()}: --since {since} is ahead of it")
    if since == dt.version():
        return pa.table({})
    feed = plain_types(pa.table(dt.load_cdf(starting_version=since + 1).read_all()))
    return feed_order(feed)


# The change feed's contract: versions in order; within a version every delete before any insert (a
# consumer applying rows in order never deletes a row that version inserted), then by source URI.
_CHANGE_RANK = pa.array(["delete", "update_preimage", "update_postimage", "insert"])


def feed_order(feed: pa.Table) -> pa.Table:
    rank = pc.index_in(feed["_change_type"], value_set=_CHANGE_RANK)
    keys = [("_commit_version", "ascending"), ("_rank", "ascending"), ("source_uri", "ascending")]
    sort_key = [c for c in ("chunk_id", "segment_index") if c in feed.column_names]
    keys += [(c, "ascending") for c in sort_key]
    return feed.append_column("_rank", rank).sort_by(keys).drop_columns(["_rank"])


def _plain_type(t: pa.DataType) -> pa.DataType:
    if t == pa.string_view():
        return pa.string()
    if t == pa.binary_view():
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return pa.list_(_plain_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain_type(f.type)) for f in t])
    return t


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _plain_type(f.type)) for f in schema])


def plain_types(table: pa.Table) -> pa.Table:
    """delta-rs hands back string_view/binary_view columns; plain string/binary sort and compare."""
    return table.cast(_plain_schema(table.schema))


def maintain(
    uri: str,
    storage_options: dict[str, str] | None,
    retention_hours: int,
    dry_run: bool = False,
    compact: bool = False,
) -> dict[str, dict[str, int]]:
    """Per table: optionally compact its small files (one file per object per run) into large ones, then
    vacuum data files that no version younger than retention_hours uses, write a checkpoint, and drop
    commit log entries past the table's log retention. Returns, per table, the files compacted, the files
    vacuumed (or that would be) and the version reached. A compacted file that later holds a changed
    object is split again by the next run's commit: only that file is rewritten."""
    from deltalake import DeltaTable

    report = {}
    for name in TABLE_NAMES:
        if not DeltaTable.is_deltatable(f"{str(uri).rstrip('/')}/{name}", storage_options=storage_options):
            continue
        dt = open_table(uri, name, storage_options)
        compacted = 0
        if compact and not dry_run:
            metrics = dt.optimize.compact()  # a commit without data change: the change feed shows none
            compacted = int(metrics.get("numFilesRemoved", 0))
        removed = dt.vacuum(
            retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False
        )
        if not dry_run:
            dt.create_checkpoint()
            dt.cleanup_metadata()
        report[name] = {"compacted_files": compacted, "vacuumed_files": len(removed), "version": dt.version()}
    return report
