"""Every code snippet in the README runs, offline, as a user would run it from a checkout: the shell
lines (`make` targets checked with a dry run), the Python blocks in order (the quickstart's run makes
out/demo for the readers after it), and the YAML blocks validated as job configs. Also: the configuration
reference is what the models generate, and the README names no internal issue numbers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import yaml
from conftest import REPO
from unitok.pipeline.core.config import parse_config
from unitok.pipeline.core.config_reference import reference

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, re.S)
CLI = f"{sys.executable} -m unitok.pipeline.cli"


def shell_line(line: str) -> str:
    if line.startswith("make "):
        return f"make -n -C {REPO} {line.split('#')[0].split()[1]}"  # the target exists and expands
    return line.replace(".venv/bin/unitok", CLI)


def test_every_readme_snippet_runs(tmp_path):
    assert {lang for lang, _ in BLOCKS} <= {"bash", "python", "yaml"}, "a snippet kind the test cannot run"
    work = tmp_path / "checkout"
    work.mkdir()
    for folder in ("configs", "sample"):
        shutil.copytree(REPO / folder, work / folder)
    # As a user runs them: without the tests' torchvision shim on the path.
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and not p.endswith("shims")]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join(path)}
    for n, (lang, code) in enumerate(BLOCKS):
        where = f"README block {n} ({lang}):\n{code}"
        if lang == "yaml":
            parse_config(yaml.safe_load(code))
            continue
        if lang == "bash":
            script = "set -e\n" + "\n".join(shell_line(x) for x in code.strip().splitlines())
            command = ["bash", "-c", script]
        else:
            command = [sys.executable, "-c", code]
        r = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{where}\nstdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-3000:]}"
        assert r.stdout.strip(), f"{where}\nprinted nothing"


def test_the_configuration_reference_is_what_the_models_generate():
    current = (REPO / "docs" / "configuration.md").read_text()
    assert current == reference(), (
        "stale: python -m unitok.pipeline.core.config_reference > docs/configuration.md"
    )


def test_the_readme_is_a_users_guide():
    assert not re.search(r"(?i)\bissue \d+", README)
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert len(quickstart.strip().splitlines()) <= 60
