"""The fuzz smoke: a few seeded mutations of every format through the stage functions in a worker
process (the long run is `make fuzz`). Each case must end as a document or as error rows."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import REPO, sh
from fuzzing import MUTATIONS, default_seeds, make_cases, mutate, run_cases

if not shutil.which("ffmpeg"):
    pytest.skip("ffmpeg is needed", allow_module_level=True)


def test_mutations_are_reproducible_and_change_the_file():
    import random

    data, other = bytes(range(256)) * 64, b"\x89PNG" + bytes(20000)
    for m in MUTATIONS:
        a = mutate(data, other, m, random.Random(f"7:{m}"))
        assert a == mutate(data, other, m, random.Random(f"7:{m}")) and a != data, m


def test_mutated_files_of_every_format_end_as_documents_or_error_rows(tmp_path):
    per_format = int(os.environ.get("UNITOK_FUZZ_CASES", "5"))
    seeds = default_seeds()
    if "wav" not in seeds:  # no corpus here: a recording of the sample talk's audio instead
        seeds["wav"] = tmp_path / "talk.wav"
        sh("ffmpeg", "-y", "-i", str(REPO / "sample" / "talk.mp4"), "-vn", "-t", "3", str(seeds["wav"]))
    assert {"pdf", "scan", "png", "mp4", "wav"} <= set(seeds)
    cases = make_cases(seeds, per_format, seed=1, folder=tmp_path)
    cfg = {"source": {"uri": str(tmp_path)}, "output": {"uri": str(tmp_path / "out")}}
    findings, counts = run_cases(cases, cfg)
    assert findings == [], findings
    assert sum(sum(t.values()) for t in counts.values()) == len(cases)
    # The smoke reaches the engines, not only the error paths: some mutants still convert.
    assert sum(t["document"] for t in counts.values()) >= len(seeds)
