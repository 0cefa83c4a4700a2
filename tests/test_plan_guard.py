"""`unitok plan` says when a run would stop at the mass-deletion guard, in the words the run then stops
with: another source into an output that holds one (as `make demo` on the corpus into the Quickstart's
out/demo once did), and a source that lists nothing; an ordinary day's deletions plan no stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from unitok.connectors.output import read_table

UNITOK = [sys.executable, "-m", "unitok.pipeline.cli"]
STOPS = "stops      a run stops here, before committing: "


def unitok(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([*UNITOK, *args], capture_output=True, text=True, timeout=300, env=env)


def notes(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for name in names:
        (folder / f"{name}.md").write_text(f"# {name}\n\nThe {name} gauge reads high at dawn.\n")
    return folder


def test_plan_says_a_run_of_another_source_into_the_output_stops_at_the_guard(tmp_path):
    corpus = notes(tmp_path / "corpus", ["north", "south", "east"])
    sample = notes(tmp_path / "sample", ["pier", "dock"])
    out = tmp_path / "out"
    job = tmp_path / "job.yaml"
    job.write_text(f"source:\n  uri: {sample}\noutput:\n  uri: {out}\n")  # the Quickstart's next command
    r = unitok("run", str(job), "--source", str(corpus))  # what make demo once did with the corpus
    assert r.returncode == 0, r.stderr[-2000:]

    plan = unitok("plan", str(job))
    assert plan.returncode == 0, plan.stderr[-2000:]
    stops = [ln for ln in plan.stdout.splitlines() if ln.startswith("stops")]
    assert stops == [
        STOPS + "this run would delete 3 of the 3 objects the last run listed (100%, above "
        f"runtime.max_delete_fraction 0.5); not one of them is listed under {sample} (is output.uri another "
        "job's output?); check source.uri and output.uri, or run with --allow-mass-delete to commit the "
        "deletions"
    ], plan.stdout
    assert "2 to convert" in plan.stdout and "3 deleted" in plan.stdout
    as_json = json.loads(unitok("plan", str(job), "--json").stdout)
    assert as_json["plan"]["deleted"] == 3 and as_json["plan"]["stops"] in stops[0]

    run = unitok("run", str(job))  # stops as the plan said, with the same reason
    assert run.returncode == 2
    assert as_json["plan"]["stops"] in run.stderr and "nothing was committed" in run.stderr
    assert sorted(d["source_uri"].rsplit("/", 1)[-1] for d in read_table(out, "documents").to_pylist()) == [
        "east.md", "north.md", "south.md",
    ]  # fmt: skip

    # The same source in its own output, one object of three gone: an ordinary day, no stop planned.
    assert unitok("run", str(job), "--source", str(corpus), "--output", str(tmp_path / "own")).returncode == 0
    (corpus / "east.md").unlink()
    plan = unitok("plan", str(job), "--source", str(corpus), "--output", str(tmp_path / "own"))
    assert plan.returncode == 0 and "1 deleted" in plan.stdout
    assert "stops" not in plan.stdout, plan.stdout

    # A source that lists nothing where the last run listed objects (an unmounted volume).
    for f in corpus.iterdir():
        f.unlink()
    plan = unitok("plan", str(job), "--source", str(corpus), "--output", str(tmp_path / "own"))
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert STOPS + f"source {corpus} lists 0 objects where the last run listed 3; check" in plan.stdout
