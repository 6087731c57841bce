"""Fixtures shared by all tests.

Every test runs with HOME and ANONAPI_SETTINGS pointing into a fresh
temporary folder, so no test reads or writes the real user's settings. The
sandbox fixtures (``sandbox``, ``anon_settings``) come from the anonapi
pytest plugin.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import sys
from pathlib import Path
from typing import Iterator

import click.testing
import pytest
import yaml
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import TOKEN, USER_NAME, FakeIDISServer  # noqa: E402

from anonapi.cli.main import cli  # noqa: E402
from anonapi.client import WebAPIClient  # noqa: E402


class _CopyingBytesIO(io.BytesIO):
    """A stream that passes every write on to two other byte streams."""

    def __init__(self, own_target: io.BytesIO, mixed_target: io.BytesIO) -> None:
        super().__init__()
        self.own_target = own_target
        self.mixed_target = mixed_target

    def write(self, data) -> int:
        self.own_target.write(data)
        self.mixed_target.write(data)
        return len(data)


def _capture_like_click_8_2() -> None:
    """Make the CliRunner of click 8.0 and 8.1 capture output the way click 8.2 and later do.

    From click 8.2 on, ``result.stderr`` is always captured separately and
    ``result.output`` contains stdout and stderr together, in the order they
    were written. click 8.1 (the newest release for Python 3.9) mixes stderr
    into stdout unless the runner gets ``mix_stderr=False``, and then
    ``result.output`` has stdout only. The tests are written for 8.2, so on
    older click this patches ``CliRunner.isolation`` and ``CliRunner.invoke``
    to capture all three streams.
    """
    if "mix_stderr" not in inspect.signature(CliRunner.__init__).parameters:
        return  # click 8.2 or later captures this way already.

    original_isolation = CliRunner.isolation
    original_invoke = CliRunner.invoke
    text_wrapper = click.testing._NamedTextIOWrapper

    @contextlib.contextmanager
    def isolation(self, input=None, env=None, color=False):  # noqa: A002 - click's name
        self.mix_stderr = False
        with original_isolation(self, input=input, env=env, color=color) as (stdout_bytes, stderr_bytes):
            # click's own wrappers close their buffers when garbage collected,
            # so they stay referenced until click has read the captured bytes.
            # write_through keeps the order of writes in the mixed output, and
            # puts stderr text in place before click reads it, which it does without a flush.
            click_stdout, click_stderr = sys.stdout, sys.stderr
            self.mixed_output = io.BytesIO()
            sys.stdout = text_wrapper(
                _CopyingBytesIO(stdout_bytes, self.mixed_output),
                encoding=self.charset, name="<stdout>", mode="w", write_through=True,
            )
            sys.stderr = text_wrapper(
                _CopyingBytesIO(stderr_bytes, self.mixed_output),
                encoding=self.charset, name="<stderr>", mode="w", errors="backslashreplace",
                write_through=True,
            )
            try:
                yield (stdout_bytes, stderr_bytes)
            finally:
                sys.stderr.flush()
                sys.stdout, sys.stderr = click_stdout, click_stderr

    def invoke(self, *arguments, **keywords):
        result = original_invoke(self, *arguments, **keywords)
        result.output_bytes = self.mixed_output.getvalue()
        return result

    def output(self) -> str:
        """Standard output and standard error, interleaved as they were written."""
        return self.output_bytes.decode(self.runner.charset, "replace").replace("\r\n", "\n")

    CliRunner.isolation = isolation
    CliRunner.invoke = invoke
    Result.output = property(output)


_capture_like_click_8_2()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Point HOME and ANONAPI_SETTINGS at an empty temporary folder, outside the test's tmp_path."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    monkeypatch.setenv("ANONAPI_SETTINGS", str(home / "AnonWebAPIClientSettings.yml"))
    return home


@pytest.fixture
def settings_path(isolated_home) -> Path:
    """The settings file that commands in this test use. It does not exist until written."""
    return isolated_home / "AnonWebAPIClientSettings.yml"


@pytest.fixture
def fake_server(monkeypatch) -> Iterator[FakeIDISServer]:
    """A running FakeIDISServer. Retries do not wait, so fault tests stay fast."""
    monkeypatch.setattr(WebAPIClient, "backoff_factor", 0.0)
    with FakeIDISServer() as server:
        yield server


@pytest.fixture
def fake_settings(settings_path, fake_server) -> Path:
    """A settings file with the fake server active and its user name and token."""
    settings_path.write_text(
        yaml.safe_dump(
            {
                "servers": {"fake": fake_server.url, "other": "http://127.0.0.1:9/api"},
                "active_server_name": "fake",
                "user_name": USER_NAME,
                "user_token": TOKEN,
                "validate_ssl": True,
            }
        ),
        encoding="utf-8",
    )
    return settings_path


@pytest.fixture
def run_anon():
    """Run ``anon`` with the given arguments in-process; stdout and stderr are kept apart."""

    def run(*arguments: str, input: str = None) -> Result:  # noqa: A002 - CliRunner's name
        return CliRunner().invoke(cli, list(arguments), input=input, catch_exceptions=False, prog_name="anon")

    return run
