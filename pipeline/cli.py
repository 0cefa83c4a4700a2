"""unitok command line: `unitok run JOB.yaml`, `unitok validate JOB.yaml`, `unitok serve JOB.yaml`, and for an
output's Delta tables `unitok changes JOB.yaml|URI --since N` and `unitok maintain JOB.yaml|URI`.

Exit codes: 0 the run committed (failed objects are error rows, counted in the summary); 1 only with
--fail-on-error and at least one failed object or segment; 2 the job could not run or commit and nothing
was committed (a bad config, an unreachable source, an output that cannot be written, a guarded mass
deletion, or an unexpected failure); 3 part of the run was committed before it stopped (the next run
completes it); 130 interrupted before any commit. Each stop is one line on stderr; the traceback of an
unexpected failure goes to a log file (named in that line) or, with --debug, to the terminal. The read-only
commands (changes, errors, plan, validate) end quietly with 0 when their reader stops early (`| head`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from unitok.pipeline.core.config import ConfigError, JobConfig, OutputConfig, load_config
from unitok.pipeline.core.extras import install_hint
from unitok.pipeline.core.redact import redact_text, redact_uri
from unitok.pipeline.core.version import PIPELINE_VERSION

# 0: all committed; 1: committed, with failures (--fail-on-error); 2: nothing committed; 3: part committed.
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_PARTIAL = 0, 1, 2, 3


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    out = {}
    if getattr(args, "source", None):
        out["source.uri"] = args.source
    if getattr(args, "output", None):
        out["output.uri"] = args.output
    if getattr(args, "executor", None):
        out["runtime.executor"] = args.executor
    if getattr(args, "retry_failed", False):
        out["runtime.retry_failed"] = "true"
    return out


def _load(args: argparse.Namespace) -> tuple[JobConfig, dict[str, Any]]:
    cfg, raw = load_config(args.config, _overrides(args))
    # The shell expanded any variable in an override: what is recorded is redacted.
    written = {k: redact_uri(v) for k, v in _overrides(args).items()}
    return cfg, {"file": str(args.config), "document": raw, "overrides": written}


def format_summary(s: Any) -> str:
    rate = s.segments / s.elapsed_s if s.elapsed_s else 0.0
    engines = ", ".join(f"{k} {v}" for k, v in sorted(s.segments_by_engine.items())) or "-"
    rows = [
        ("run", s.run_id),
        ("source", s.source_uri),
        ("executor", s.executor),
        (
            "mode",
            f"{s.mode}: {s.converted_objects} converted, {s.carried_objects} unchanged, "
            f"{s.deleted_objects} deleted since the last run",
        ),
        *[("", line) for line in s.describe_work()],
        (
            "objects listed",
            s.objects
            if not s.skipped_links
            else f"{s.objects} ({s.skipped_links} symbolic links skipped: source.follow_symlinks is off)",
        ),
        ("documents written", s.documents),
        ("segments written", f"{s.segments} ({engines})"),
        ("chunks written", s.chunks),
        ("failed objects", s.failed_objects),
        ("failed segments", s.failed_segments),
        (
            "committed",
            f"{s.commits} commit(s)"
            + (f", the first {s.first_commit_s:.1f} s in" if s.first_commit_s is not None else ""),
        ),
        ("table versions", ", ".join(f"{k} {v}" for k, v in s.table_versions.items()) or "-"),
        ("elapsed", f"{s.elapsed_s:.1f} s ({rate:.1f} segments/s, start-up included)"),
        ("output", f"{s.output_uri}  (Delta tables segments/ documents/ chunks/ errors/ objects/)"),
        ("report", s.report or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{PIPELINE_VERSION} run summary", "-" * 40]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    if s.failures:
        how = s.errors_command or "the errors table"
        lines.append(f"{s.failures} failure(s): {how} shows the reason of each")
    return "\n".join(lines)


def _serve_config_jobs(path: str) -> list[str] | None:
    """The job configs a Ray Serve config file's unitok applications name (`args.config`), or None when
    the file is not a Serve config."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # the job-config loader says what is wrong with it
    if not isinstance(doc, dict) or not isinstance(doc.get("applications"), list):
        return None
    jobs = []
    for i, app in enumerate(doc["applications"]):
        if not isinstance(app, dict) or not str(app.get("import_path", "")).startswith("unitok."):
            raise ConfigError(f"applications[{i}].import_path: not a unitok application")
        job = (app.get("args") or {}).get("config")
        if not isinstance(job, str):
            raise ConfigError(f"applications[{i}].args.config: the job config the application serves")
        jobs.append(job)
    return jobs


def _check_serve_installed() -> None:
    try:  # Ray Serve and its HTTP stack come with the serve extra
        import fastapi  # noqa: F401
        import python_multipart  # noqa: F401
        import ray.serve  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as e:
        from unitok.actors.contract import EngineSetupError

        missing = (e.name or "a package").split(".")[0]
        raise EngineSetupError(
            f"serve needs Ray Serve ({missing} is missing): {install_hint('serve')}"
        ) from None


def cmd_validate(args: argparse.Namespace) -> int:
    jobs = _serve_config_jobs(args.config)
    if jobs is not None:  # a Ray Serve config (serve run / serve deploy): its applications' job configs
        _check_serve_installed()
        for job in jobs:
            cmd_validate(argparse.Namespace(**{**vars(args), "config": job}))
        print(f"{args.config}: valid (a Ray Serve config serving {', '.join(jobs)})")
        return EXIT_OK
    cfg, _ = _load(args)
    from unitok.connectors.local import SourceNotFound
    from unitok.connectors.store import open_store
    from unitok.pipeline.job import check_engines

    try:
        open_store(cfg.source.uri, cfg.source.s3.model_dump())
    except SourceNotFound as e:
        raise ConfigError(f"source.uri: {e}") from None
    check_engines(cfg)
    from unitok.pipeline.job import check_source_and_output

    found = check_source_and_output(cfg)
    empty = [glob for glob, n in found["per_include"].items() if n == 0]
    where = redact_uri(cfg.source.uri)
    if found["objects"] == 0:
        problem = f"source.include: nothing under {where} is selected"
    elif empty:
        shown = ", ".join(map(repr, empty[:8])) + (f" and {len(empty) - 8} more" if len(empty) > 8 else "")
        of = len(found["per_include"])
        problem = f"source.include: {len(empty)} of {of} globs match nothing under {where}: {shown}"
    else:
        problem = None
    if problem and args.strict:
        raise ConfigError(f"{problem} (--strict)")
    if problem:
        print(f"unitok: warning: {problem}", file=sys.stderr)
    print(
        f"{args.config}: valid (source {redact_uri(cfg.source.uri)}: {found['objects']} objects selected → "
        f"output {redact_uri(cfg.output.uri)}, engine {cfg.engine.name})"
    )
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    cfg, raw = _load(args)
    from unitok.connectors.local import SourceNotFound
    from unitok.pipeline.job import run_job

    # Stdout is the summary's alone: whatever else prints there during the run or after it (Ray's lines
    # about its workers come from a thread, even at exit; a library's prints) goes to stderr, so that
    # `--json` is one JSON object.
    summary_out = sys.stdout
    sys.stdout = sys.stderr
    try:
        summary = run_job(cfg, raw, allow_mass_delete=args.allow_mass_delete)
    except SourceNotFound as e:
        raise ConfigError(f"source.uri: {e}") from None
    finally:
        # What Ray still prints once the run has ended (its autoscaler's and dead workers' lines come
        # from a thread) would follow the run's last line: the outcome is decided, they go nowhere.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    summary.errors_command = f"unitok errors {args.config}" if summary.error_rows else None
    if args.json:
        print(json.dumps(summary.as_dict(), default=str), file=summary_out, flush=True)
    else:
        print(format_summary(summary), file=summary_out, flush=True)
    if summary.failures and (args.fail_on_error or cfg.runtime.fail_on_error):
        return EXIT_FAILED
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    cfg, _ = _load(args)
    from unitok.pipeline.job import check_engines

    check_engines(cfg)
    _check_serve_installed()
    from unitok.pipeline.drivers.serve import serve_forever

    serve_forever(cfg, args.host, args.port, args.replicas)
    return EXIT_OK


def _output_target(args: argparse.Namespace) -> tuple[str, dict[str, str] | None, int]:
    """(output URI, delta storage options, vacuum retention) from a job file or an output URI."""
    from unitok.connectors.output import delta_storage_options

    target = args.target
    if target.endswith((".yaml", ".yml")) and os.path.isfile(target):
        cfg, _ = load_config(target)
        out = cfg.output
        opts = delta_storage_options(out.s3.model_dump()) if out.uri.startswith("s3://") else None
        return out.uri, opts, out.vacuum_retention_hours
    s3 = {"endpoint_url": args.endpoint_url} if args.endpoint_url else {}
    retention = OutputConfig.model_fields["vacuum_retention_hours"].default
    return target, (delta_storage_options(s3) if target.startswith("s3://") else None), retention


def cmd_changes(args: argparse.Namespace) -> int:
    """The change feed of one table since a version, as JSON lines (one change per line)."""
    import json

    from unitok.connectors.output import changes

    uri, opts, _ = _output_target(args)
    feed = changes(uri, args.table, args.since, opts)
    columns = [c for c in feed.column_names if args.full or c not in ("markdown", "spans")]
    for row in feed.select(columns).to_pylist() if feed.num_columns else []:
        print(json.dumps(row, default=str, ensure_ascii=False))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """What a run would convert and what it would take, before running it."""
    cfg, _ = _load(args)
    from unitok.connectors.local import SourceNotFound
    from unitok.pipeline.job import plan_job

    try:
        report = plan_job(cfg, args.sample)
    except SourceNotFound as e:
        raise ConfigError(f"source.uri: {e}") from None
    if args.json:
        print(json.dumps(report, default=str))
        return EXIT_OK
    print(format_plan(report))
    return EXIT_OK


def format_plan(r: dict[str, Any]) -> str:
    from unitok.pipeline.stages.plan import REASONS

    p, e = r["plan"], r["estimate"]
    mib = r["bytes"] / 2**20
    lines = [
        f"{PIPELINE_VERSION} plan for {r['source']} -> {r['output']} ({r['mode']})",
        f"listed     {r['listed']['objects']} objects, {r['listed']['bytes'] / 2**20:.1f} MiB",
        f"plan       {p['convert']} to convert, {p['rechunk']} to re-chunk, {p['embed']} to re-embed, "
        f"{p['check_content']} to check by content, {p['carried']} unchanged, {p['deleted']} deleted",
        *[f"           {REASONS.get(why, why)}: {n}" for why, n in p["reasons"].items()],
        *([f"stops      a run stops here, before committing: {p['stops']}; check source.uri and output.uri, "
           "or run with --allow-mass-delete to commit the deletions"] if p.get("stops") else []),
        f"to convert {r['objects']} objects, {mib:.1f} MiB"
        + (f" (probed {r['sampled']['probed']} of {r['sampled']['of']}, the rest extrapolated)"
           if "sampled" in r else ""),
        *[f"           {t}: {v['objects']} ({v['bytes'] / 2**20:.1f} MiB)" for t, v in r["by_type"].items()],
        f"work       {r['pages']} pages ({r['ocr_pages']} likely OCR), {r['slides']} slides, "
        f"{r['images']} images, {r['audio_seconds']:.0f} s audio, {r['video_seconds']:.0f} s video",
    ]  # fmt: skip
    if r["uncounted_decks"]:
        lines.append(
            f"           {r['uncounted_decks']} legacy .ppt deck(s): slides counted only once converted"
        )
    if r["problem_count"]:
        lines.append(
            f"           {r['problem_count']} object(s) would be error rows, e.g. {r['problems'][0]['uri']}"
        )
    lines.append(
        f"estimate   {e['wall_s']:.0f} s wall on {e['workers']} worker(s) ({e['executor']}, engine "
        f"{e['engine']}; rates measured {e['rates']['measured_at']} on {e['rates']['where']})"
    )
    if "tokens" in e:
        gpu = f"{e['gpu_hours']} GPU-hours" if e["gpu_hours"] is not None else e["gpu_hours_why"]
        lines.append(
            f"           Phi-4: at most {e['tokens']['in_at_most']:,} tokens in, "
            f"{e['tokens']['out_at_most']:,} out; {gpu}"
        )
    return "\n".join(lines)


def cmd_errors(args: argparse.Namespace) -> int:
    """The errors table's rows of one run (the latest by default): where, which stage, why."""
    import pyarrow.compute as pc
    from unitok.connectors.output import open_table, read_table

    uri, opts, _ = _output_target(args)
    try:
        run = args.run or open_table(uri, "errors", opts).history(1)[0].get("run_id")
        rows = read_table(uri, "errors", opts)
    except Exception as e:  # noqa: BLE001 - no table there: one line
        from unitok.connectors.output import OutputError

        raise OutputError(f"{redact_uri(uri)}: no errors table to read ({type(e).__name__})") from None
    if not args.all:
        rows = rows.filter(pc.equal(rows["run_id"], run))
    rows = rows.sort_by([("source_uri", "ascending"), ("segment_index", "ascending")]).to_pylist()
    for r in rows:
        if args.json:
            print(json.dumps(r, default=str, ensure_ascii=False))
            continue
        where = r["source_uri"] + (f" (page {r['page_number']})" if r["page_number"] is not None else "")
        first = (r["message"] or "").strip().splitlines()[:1] or [""]
        print(f"{where}: {r['stage']} {r['error_type']}: {first[0]}")
    if not args.json:
        scope = "current" if args.all else f"of run {run}"
        print(f"{len(rows)} error row(s) {scope}", file=sys.stderr)
    return EXIT_OK


def cmd_maintain(args: argparse.Namespace) -> int:
    from unitok.connectors.output import maintain

    uri, opts, retention = _output_target(args)
    hours = args.retention_hours if args.retention_hours is not None else retention
    report = maintain(uri, opts, hours, dry_run=args.dry_run, compact=args.compact)
    verb = "would vacuum" if args.dry_run else "vacuumed"
    for name, r in report.items():
        compacted = f"compacted {r['compacted_files']} file(s), " if args.compact and not args.dry_run else ""
        print(f"{name}: version {r['version']}, {compacted}{verb} {r['vacuumed_files']} file(s) older than "
              f"{hours} h" + ("" if args.dry_run else ", checkpoint written"))  # fmt: skip
    lance = _lancedb_target(args)
    if lance is not None and not args.dry_run:
        from unitok.connectors.lancedb_sink import maintain_lancedb

        r = maintain_lancedb(lance.uri, lance.table, lance.index_min_rows, hours)
        print(f"lancedb {lance.table}: {r['rows']} rows, compacted, vector index {r['index']}")
    return EXIT_OK


def _lancedb_target(args: argparse.Namespace) -> Any:
    """The job's LanceDB table, when the target is a job file that has one."""
    target = args.target
    if target.endswith((".yaml", ".yml")) and os.path.isfile(target):
        cfg, _ = load_config(target)
        if cfg.output.lancedb is not None and cfg.chunking.enabled:
            return cfg.output.lancedb
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unitok", description="Convert documents, images and media to Markdown.")
    p.add_argument("--version", action="version", version=PIPELINE_VERSION)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--debug", action="store_true", help="print the traceback of an unexpected failure")
    sub = p.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("run", "run a job"),
        ("validate", "check a job config, list its source and check its output, without running it"),
        ("plan", "what a run would convert and how long it would take, without running it"),
    ):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("config", help="job YAML file")
        sp.add_argument("--source", help="override source.uri")
        sp.add_argument("--output", help="override output.uri")
        sp.add_argument(
            "--executor", choices=["auto", "local", "ray", "beam"], help="override runtime.executor"
        )
        if name == "plan":
            sp.add_argument("--json", action="store_true", help="print the plan as JSON")
            sp.add_argument(
                "--sample",
                type=int,
                default=50,
                help="S3 sources: objects downloaded to probe (the rest extrapolated)",
            )
        if name == "validate":
            sp.add_argument(
                "--strict", action="store_true", help="exit 2 when an include glob matches nothing"
            )
        if name == "run":
            sp.add_argument(
                "--fail-on-error", action="store_true", help="exit 1 if any object or segment failed"
            )
            sp.add_argument("--json", action="store_true", help="print the run summary as JSON")
            sp.add_argument(
                "--retry-failed",
                action="store_true",
                help="convert again the objects marked crashed (their worker died converting them)",
            )
            sp.add_argument(
                "--allow-mass-delete",
                action="store_true",
                help="commit even if the run lists nothing, or deletes more than runtime.max_delete_fraction "
                "of the objects the last run listed",
            )
    sp = sub.add_parser("changes", help="what changed in an output's table since a version (JSON lines)")
    sp.add_argument("target", help="job YAML file (its output) or an output URI")
    sp.add_argument("--since", type=int, required=True, help="table version last synced (0: everything)")
    sp.add_argument(
        "--table", default="documents", choices=["documents", "segments", "chunks", "errors", "objects"]
    )
    sp.add_argument("--full", action="store_true", help="include markdown and spans")
    sp.add_argument("--endpoint-url", help="S3-compatible server, for an s3:// output URI")
    sp = sub.add_parser("errors", help="the error rows of an output: the latest run's by default")
    sp.add_argument("target", help="job YAML file (its output) or an output URI")
    sp.add_argument("--run", help="this run id's errors (default: the latest run's)")
    sp.add_argument("--all", action="store_true", help="every current error row, whichever run wrote it")
    sp.add_argument("--json", action="store_true", help="one JSON object per line")
    sp.add_argument("--endpoint-url", help="S3-compatible server, for an s3:// output URI")
    sp = sub.add_parser("maintain", help="vacuum old data files and checkpoint an output's tables")
    sp.add_argument("target", help="job YAML file (its output) or an output URI")
    sp.add_argument("--retention-hours", type=int, help="keep files of versions this young (default: config)")
    sp.add_argument("--dry-run", action="store_true", help="say what would be vacuumed, delete nothing")
    sp.add_argument(
        "--compact", action="store_true", help="merge the small per-object files into large ones first"
    )
    sp.add_argument("--endpoint-url", help="S3-compatible server, for an s3:// output URI")
    sp = sub.add_parser(
        "serve", help="convert uploads over HTTP with the job's engines (source/output unused)"
    )
    sp.add_argument("config", help="job YAML file (its engine, pdf, ocr, audio... sections)")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8000)
    sp.add_argument(
        "--replicas", type=int, help="engine replicas, fixed (default: serve.min_replicas to max_replicas)"
    )
    return p


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Failures that say all there is to say in one line: no traceback."""
    from unitok.actors.contract import EngineSetupError
    from unitok.connectors.local import SourceNotFound
    from unitok.connectors.output import ConcurrentRunError, OutputError
    from unitok.connectors.s3 import SourceError
    from unitok.pipeline.drivers.cluster import ClusterLostError
    from unitok.pipeline.stages.plan import MassDeleteError

    return (EngineSetupError, SourceError, SourceNotFound, OutputError, MassDeleteError, ConcurrentRunError,
            ClusterLostError)  # fmt: skip


def _keep_traceback(exc: BaseException) -> str:
    path = os.path.join(
        tempfile.gettempdir(), f"unitok-error-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    )
    with open(path, "w", encoding="utf-8") as f:
        f.write(redact_text("".join(traceback.format_exception(exc))))
    return path


# Commands that only read and print: a reader that stops early (`unitok changes ... | head`) has what it
# asked for, and the command ends quietly with 0.
READ_ONLY_COMMANDS = frozenset({"changes", "errors", "plan", "validate"})


def _closed(fd: int) -> bool:
    """Whether fd is a pipe whose reader has gone (poll says POLLERR on such a write end)."""
    import select

    if not hasattr(select, "poll"):
        return fd == 1  # no poll (Windows): a broken pipe in a printing command is its stdout's
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _reader_gone() -> bool:
    """After a BrokenPipeError: whether it was stdout's or stderr's reader that went. Such a stream is
    pointed at /dev/null so that what is left in its buffer, flushed at exit, does not fail again."""
    gone = [fd for fd in (1, 2) if _closed(fd)]
    for fd in gone:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    return bool(gone)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler stopping the job): the run stops as on Ctrl-C."""


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated("terminated (SIGTERM)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    if not args.verbose:  # botocore says at INFO where it found credentials, on every client it makes
        logging.getLogger("botocore").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if args.command == "run" and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)  # stopped as by Ctrl-C: workers end, commits said
    try:
        commands = {"run": cmd_run, "validate": cmd_validate, "serve": cmd_serve, "changes": cmd_changes,
                    "maintain": cmd_maintain, "errors": cmd_errors, "plan": cmd_plan}  # fmt: skip
        rc = commands[args.command](args)
        if args.command in READ_ONLY_COMMANDS:
            sys.stdout.flush()  # a reader gone before the last buffered lines is answered here, not at exit
        return rc
    except ConfigError as e:
        sep = "\n" if "\n" in str(e) else " "
        where = getattr(args, "config", None) or getattr(args, "target", "")
        print(f"unitok: invalid config {where}:{sep}{redact_text(str(e))}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt as e:
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        print(f"unitok: {how}; nothing was committed by this run", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except Exception as e:  # noqa: BLE001 - every stop is one line and exit 2; 1 is --fail-on-error's
        from unitok.pipeline.stages.commit import PartialCommitError

        if isinstance(
            e, PartialCommitError
        ):  # part of the run is committed: what, and that a rerun completes it
            print(f"unitok: {redact_text(str(e))}", file=sys.stderr)
            return EXIT_PARTIAL
        if isinstance(e, BrokenPipeError) and args.command in READ_ONLY_COMMANDS and _reader_gone():
            return EXIT_OK
        if isinstance(e, _expected_errors()):
            print(f"unitok: {redact_text(str(e))}", file=sys.stderr)
            return EXIT_CONFIG
        if args.debug:
            traceback.print_exc()
            where = "above"
        else:
            where = f"in {_keep_traceback(e)} (or rerun with --debug)"
        first = redact_text((str(e).strip().splitlines() or [""])[0])
        print(f"unitok: the job stopped: {type(e).__name__}: {first}; traceback {where}", file=sys.stderr)
        return EXIT_CONFIG


def entry() -> None:
    """The `unitok` command. Once `main` has returned, everything it wrote is closed and committed. The
    interpreter's exit is done as a forked multiprocessing child does it: threads are waited for and the
    exit handlers run (logging's flush, child processes, temporary folders, Ray's shutdown), and the
    process ends without the teardown that freed every module's objects one by one for nothing (about
    0.03 s a run, and 0.1 s of garbage collections before the heap was frozen)."""
    rc = main()
    threading._shutdown()  # what the interpreter's exit runs first: non-daemon threads, executors
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: what the interpreter's own exit answers
        rc = 120
    os._exit(rc)


if __name__ == "__main__":
    entry()
