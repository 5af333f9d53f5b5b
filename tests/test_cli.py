"""The `curator` command as a whole: its subcommands, exit codes, and the README's promises."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO
from curator.cli import LAZY_COMMANDS


def curator(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "curator", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_help_lists_every_subcommand_and_the_readme_documents_each():
    out = curator("--help").stdout
    readme = (REPO / "README.md").read_text()
    for name in LAZY_COMMANDS:
        assert f"  {name}" in out, f"{name} missing from curator --help"
        assert f"curator {name}" in readme, f"README does not document curator {name}"


@pytest.mark.slow
def test_a_failed_training_run_fails_the_command(tmp_path):
    result = curator("--db", str(tmp_path / "c.db"), "train", "sft", "--data", str(tmp_path / "missing.jsonl"),
                     "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    quickstart = readme[readme.index("## Quickstart"):readme.index("<!-- manual -->")]
    install, tests = re.findall(r"```sh\n(.*?)\n```", quickstart, flags=re.S)
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert tests.endswith("pytest -q") and tests in ci  # the README's second command is a line of .ci/run
