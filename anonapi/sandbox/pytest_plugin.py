"""pytest fixtures that start a sandbox server; loaded through the pytest11 entry point.

Nothing heavy is imported at module level, so that installing anonapi without
the sandbox extra does not break other projects' test runs.

Fixtures:

``sandbox``
    A running Sandbox with the shares ``share`` (``tmp_path/"share"``, for
    input) and ``output`` (``tmp_path/"output"``, for results), and the PACS
    folder ``tmp_path/"pacs"``. UNC paths: ``\\\\sandbox\\share\\...``.
``anon_settings``
    A settings file in ``tmp_path`` whose active server is the sandbox, with
    the demo user and its token. The environment variable ANONAPI_SETTINGS
    points at it and HOME is ``tmp_path/"home"``. Returns the file's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

if TYPE_CHECKING:
    from anonapi.sandbox.context import Sandbox

SANDBOX_SERVER_NAME = "sandbox"
OUTPUT_UNC_PATH = "\\\\sandbox\\output"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator["Sandbox"]:
    """Start a sandbox server on a free port of 127.0.0.1 and stop it after the test."""
    try:
        from anonapi.sandbox.context import Sandbox
    except ImportError as error:
        raise RuntimeError(
            f"The sandbox fixture needs the sandbox extra: pip install '.[sandbox]' in a checkout of anonapi ({error})"
        ) from error

    folders = {name: tmp_path / name for name in ("share", "output", "pacs")}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    with Sandbox(
        data_dir=tmp_path / "sandbox-data",
        shares={"share": folders["share"], "output": folders["output"]},
        pacs_dir=folders["pacs"],
        poll_interval=0.05,
    ) as running_sandbox:
        yield running_sandbox


@pytest.fixture
def anon_settings(sandbox: "Sandbox", tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write a settings file that makes ``anon`` use the sandbox as the demo user, and return its path."""
    import yaml

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    settings_path = tmp_path / "AnonWebAPIClientSettings.yml"
    settings = {
        "active_mapping_file": None,
        "active_server_name": SANDBOX_SERVER_NAME,
        "job_default_parameters": [
            f"project,{sandbox.project_name}",
            f"destination_path,{OUTPUT_UNC_PATH}",
        ],
        "servers": {SANDBOX_SERVER_NAME: sandbox.url},
        "user_name": sandbox.user_name,
        "user_token": sandbox.token,
        "validate_ssl": True,
    }
    settings_path.write_text(yaml.safe_dump(settings, sort_keys=True), encoding="utf-8")
    settings_path.chmod(0o600)
    monkeypatch.setenv("ANONAPI_SETTINGS", str(settings_path))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return settings_path
