"""The top-level error boundary: every failure is one line and a non-zero exit code."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import types

import click
import pytest
from click.testing import CliRunner

from anonapi.cli import main
from anonapi.exceptions import UserInputError

ERRORS = {
    "anonapi": UserInputError("Invalid job id 'x'. Use whole numbers."),
    "disk-full": OSError(errno.ENOSPC, "No space left on device", "/data/anon_mapping.csv"),
    "bug": KeyError("job_id"),
}


@pytest.fixture
def failing_command(monkeypatch):
    """Register a command ``fail KIND`` that raises the error named KIND."""

    @click.command()
    @click.argument("kind")
    def fail(kind):
        raise ERRORS[kind]

    module = types.ModuleType("anonapi_test_failing_command")
    module.fail = fail
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(main.COMMANDS, "fail", (module.__name__, "fail", "Raise an error."))


@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_error_is_one_line(failing_command, kind):
    result = CliRunner().invoke(main.cli, ["fail", kind])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output


def test_os_error_names_file(failing_command):
    result = CliRunner().invoke(main.cli, ["fail", "disk-full"])
    assert "No space left on device on '/data/anon_mapping.csv'" in result.stderr


def test_bug_asks_for_report(failing_command):
    result = CliRunner().invoke(main.cli, ["fail", "bug"])
    assert "Unexpected KeyError" in result.stderr
    assert "-vv" in result.stderr


def test_bug_traceback_logged_with_vv(failing_command, caplog):
    result = CliRunner().invoke(main.cli, ["-vv", "fail", "bug"])
    assert result.exit_code == 1
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1
    assert logged[0].exc_info[0] is KeyError


def test_bug_traceback_not_logged_by_default(failing_command, caplog):
    CliRunner().invoke(main.cli, ["fail", "bug"])
    assert not [record for record in caplog.records if record.exc_info]


def test_typo_in_group_suggests_name():
    result = CliRunner().invoke(main.cli, ["bacth", "status"])
    assert result.exit_code == 2
    assert "Did you mean 'batch'?" in result.stderr


def test_closed_pipe_is_not_an_error(tmp_path):
    """`anon batch info | head -2`: the reader stops early, anon exits 0 without a message."""
    lines = "".join(f"- '{number}'\n" for number in range(1, 200_001))
    (tmp_path / ".anonbatch").write_text(f"job_ids:\n{lines}server:\n  name: x\n  url: http://127.0.0.1:9/api\n")
    environment = dict(os.environ, ANONAPI_SETTINGS=str(tmp_path / "settings.yml"), HOME=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "anonapi.cli.main", "batch", "info"],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    first_line = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert first_line == b"job_ids:\n"
    assert stderr == ""
