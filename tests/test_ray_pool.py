"""unitok.ray.Converter never waits forever for CPUs: on a 2-CPU local Ray, a fixed pool of 2 actors fed by
read_binary_files (whose read tasks would get no CPU) fails at once with one line saying what it asked and
what the cluster has; the docstring's growing pool and a pool that leaves a CPU convert the file.

The cases run in one child process with its own Ray (own temp dir), so a hang is a timeout here, and the
Ray it started is stopped with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap

from conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import ray
    import unitok.ray
    from unitok.pipeline.core.workerenv import worker_env_vars

    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=sys.argv[1],
             runtime_env={"env_vars": worker_env_vars()})
    for label, concurrency in (("fixed-2", 2), ("grows-1-2", (1, 2)), ("fixed-1", 1)):
        ds = ray.data.read_binary_files([sys.argv[2]], include_paths=True)
        start = time.monotonic()
        try:
            rows = ds.map_batches(unitok.ray.Converter, batch_format="pyarrow", batch_size=1,
                                  concurrency=concurrency).take_all()
            out = {"rows": [{k: r[k] for k in ("status", "markdown", "source_uri")} for r in rows]}
        except Exception as e:
            out = {"error": type(e).__name__, "message": str(e)}
        print("CASE " + json.dumps({"case": label, "s": time.monotonic() - start, **out}), flush=True)
    ray.shutdown()
    """
)


def test_a_pool_that_leaves_the_reads_no_cpu_fails_fast_and_one_that_fits_converts():
    pdf = REPO / "sample" / "field-report.pdf"
    temp = tempfile.mkdtemp(prefix="unitok-raypool-", dir="/tmp")  # short: Ray's socket paths live in it
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_ADDRESS": ""}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, temp, str(pdf)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and the Ray processes it started
        out, err = proc.communicate()
        raise AssertionError(f"a Converter pool waited forever; finished cases: {out}") from None
    assert proc.returncode == 0, err[-3000:]
    found = [json.loads(ln[5:]) for ln in out.splitlines() if ln.startswith("CASE ")]  # Ray logs there too
    cases = {c["case"]: c for c in found}

    refused = cases["fixed-2"]
    assert refused.get("error") == "ActorDiedError", refused  # Ray Data's wrapper of the actor's error
    line = next(ln for ln in refused["message"].splitlines() if ln.startswith("unitok.ray.PoolTooLarge"))
    assert (
        "the pool asks for 2 actor(s) x 1 CPU = 2 CPU and the Ray cluster has 2 CPU, none left for the reads"
        in line
    )
    assert "Use concurrency=1, or a pool that grows: concurrency=(1, 2)" in line
    assert refused["s"] < 120, refused["s"]

    for label in ("grows-1-2", "fixed-1"):
        rows = cases[label].get("rows")
        assert rows, cases[label]
        assert {r["status"] for r in rows} == {"ok"} and {r["source_uri"] for r in rows} == {pdf.as_uri()}
        assert "# Quarterly Field Report" in "\n".join(r["markdown"] for r in rows), rows
