"""Fixtures shared by all tests.

Every test runs with HOME and ANONAPI_SETTINGS pointing into a fresh
temporary folder, so no test reads or writes the real user's settings. The
sandbox fixtures (``sandbox``, ``anon_settings``) come from the anonapi
pytest plugin.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from click.testing import CliRunner, Result

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import TOKEN, USER_NAME, FakeIDISServer  # noqa: E402

from anonapi.cli.main import cli  # noqa: E402
from anonapi.client import WebAPIClient  # noqa: E402


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
