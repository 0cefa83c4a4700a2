"""Enrichments (the `enrich` section): what each asks for, the one-line refusal of what a job's engine
cannot make, and where their outputs go."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO
from unitok.actors.contract import EngineSetupError
from unitok.pipeline.core.config import ConfigError, parse_config
from unitok.pipeline.job import check_engines


def _cfg(**sections):
    return parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}, **sections})


def test_enrichments_are_off_by_default_and_checked_by_field():
    cfg = _cfg()
    assert not cfg.enrich.any and cfg.enrich.gpu_only() == []
    assert _cfg(enrich={"audio": {"translate_to": "en"}}).enrich.any
    with pytest.raises(ConfigError, match="enrich.audio.translate_to: .*must be one of en, de"):
        _cfg(enrich={"audio": {"translate_to": "English"}})
    with pytest.raises(ConfigError, match="enrich.images.colour: unknown key"):
        _cfg(enrich={"images": {"colour": True}})


@pytest.mark.parametrize(
    ("enrich", "audio", "says"),
    [
        ({"audio": {"summary": True}}, {}, "enrich.audio.summary needs a Phi-4 engine on GPUs"),
        ({"images": {"describe": True}}, {}, "enrich.images.describe needs a Phi-4 engine on GPUs"),
        ({"audio": {"translate_to": "de"}}, {"asr_model": "base"}, "into English (en) only"),
        ({"audio": {"translate_to": "en"}}, {}, "needs the multilingual Whisper (audio.asr_model: base)"),
    ],
)
def test_a_cpu_job_asking_for_what_only_phi4_makes_is_refused_in_one_line(enrich, audio, says):
    with pytest.raises(EngineSetupError, match=r"^[^\n]*" + says.replace("(", r"\(").replace(")", r"\)")):
        check_engines(_cfg(enrich=enrich, audio=audio))


def test_validate_says_so_in_one_line_and_exits_2(tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(
        f"source:\n  uri: {REPO / 'sample'}\noutput:\n  uri: {tmp_path / 'out'}\n"
        "enrich:\n  audio:\n    summary: true\n  images:\n    describe: true\n"
    )
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    r = subprocess.run([sys.executable, "-m", "unitok.pipeline.cli", "validate", str(job)], cwd=REPO,
                       capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "enrich.audio.summary and enrich.images.describe need a Phi-4 engine" in r.stderr
