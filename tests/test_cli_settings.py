"""Tests of ``anon settings`` and ``anon settings user``, and that the token never reaches any output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fakeserver import TOKEN

DISTINCTIVE_TOKEN = "tok-Zq8xW3vN-distinctive"


def saved(settings_path: Path) -> dict:
    return yaml.safe_load(settings_path.read_text())


# --- show, edit, set-validate-ssl -------------------------------------------------------------


def test_show_masks_token(run_anon, fake_settings):
    result = run_anon("settings", "show")
    assert result.exit_code == 0
    assert "user_token: '***'" in result.stdout
    assert TOKEN not in result.stdout


def test_show_lists_values(run_anon, fake_settings):
    result = run_anon("settings", "show")
    assert f"Settings file: {fake_settings}" in result.stdout
    assert "active_server_name: fake" in result.stdout
    assert "- project,NOT_SET" in result.stdout


def test_edit_opens_file_in_editor(run_anon, settings_path, tmp_path, monkeypatch):
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys\n"
        "with open(sys.argv[1], 'a') as handle:\n"
        "    handle.write('user_name: edited\\n')\n"
    )
    monkeypatch.setenv("EDITOR", f'"{sys.executable}" "{editor}"')
    monkeypatch.delenv("VISUAL", raising=False)
    settings_path.write_text("validate_ssl: true\n")
    result = run_anon("settings", "edit")
    assert result.exit_code == 0
    assert saved(settings_path)["user_name"] == "edited"
    assert "is valid" in result.stdout


def test_edit_reports_broken_result(run_anon, settings_path, tmp_path, monkeypatch):
    editor = tmp_path / "editor.py"
    editor.write_text("import sys\nopen(sys.argv[1], 'a').write('servers: [\\n')\n")
    monkeypatch.setenv("EDITOR", f'"{sys.executable}" "{editor}"')
    monkeypatch.delenv("VISUAL", raising=False)
    settings_path.write_text("validate_ssl: true\n")
    result = run_anon("settings", "edit")
    assert result.exit_code == 1
    assert "Invalid YAML" in result.stderr


def test_set_validate_ssl_false_warns(run_anon, settings_path):
    result = run_anon("settings", "set-validate-ssl", "false")
    assert result.exit_code == 0
    assert saved(settings_path)["validate_ssl"] is False
    assert "Warning: anon now accepts any certificate" in result.stderr


def test_set_validate_ssl_true_no_warning(run_anon, settings_path):
    result = run_anon("settings", "set-validate-ssl", "true")
    assert saved(settings_path)["validate_ssl"] is True
    assert "Warning" not in result.stderr


def test_set_validate_ssl_invalid_value(run_anon):
    assert run_anon("settings", "set-validate-ssl", "perhaps").exit_code == 2


def test_writing_command_keeps_broken_file(run_anon, settings_path):
    broken = "servers:\n  a: https://a\n b: [\n"
    settings_path.write_text(broken)
    result = run_anon("server", "add", "p01", "https://a.example.org")
    assert result.exit_code == 1
    assert settings_path.read_text() == broken


# --- user ---------------------------------------------------------------------------------------


def test_user_info(run_anon, fake_settings):
    result = run_anon("settings", "user", "info")
    assert result.stdout == "User name: z123sandbox\nToken: set\n"


def test_user_info_without_token(run_anon):
    result = run_anon("settings", "user", "info")
    assert "Token: not set" in result.stdout


def test_set_username(run_anon, settings_path):
    result = run_anon("settings", "user", "set-username", "z987")
    assert result.exit_code == 0
    assert saved(settings_path)["user_name"] == "z987"


def test_set_token_from_stdin(run_anon, settings_path):
    result = run_anon("settings", "user", "set-token", input=f"{DISTINCTIVE_TOKEN}\n")
    assert result.exit_code == 0
    assert saved(settings_path)["user_token"] == DISTINCTIVE_TOKEN
    assert DISTINCTIVE_TOKEN not in result.stdout + result.stderr


def test_set_token_stdin_flag(run_anon, settings_path):
    run_anon("settings", "user", "set-token", "--stdin", input=f"  {DISTINCTIVE_TOKEN}  \n")
    assert saved(settings_path)["user_token"] == DISTINCTIVE_TOKEN


def test_set_token_empty_rejected(run_anon, settings_path):
    result = run_anon("settings", "user", "set-token", input="\n")
    assert result.exit_code == 1
    assert "token is empty" in result.stderr


def test_set_token_takes_no_argument(run_anon):
    assert run_anon("settings", "user", "set-token", DISTINCTIVE_TOKEN).exit_code == 2


def test_get_token_stores_token(run_anon, fake_settings, fake_server):
    fake_server.has_get_token = True
    fake_server.token = DISTINCTIVE_TOKEN
    result = run_anon("settings", "user", "get-token", input=f"{fake_server.password}\n")
    assert result.exit_code == 0
    assert saved(fake_settings)["user_token"] == DISTINCTIVE_TOKEN
    assert DISTINCTIVE_TOKEN not in result.stdout + result.stderr


def test_get_token_wrong_password(run_anon, fake_settings, fake_server):
    fake_server.has_get_token = True
    result = run_anon("settings", "user", "get-token", input="wrong\n")
    assert result.exit_code == 1
    assert "rejected the password or user name 'z123sandbox'" in result.stderr
    assert saved(fake_settings)["user_token"] == TOKEN


def test_get_token_without_function(run_anon, fake_settings):
    result = run_anon("settings", "user", "get-token", input="secret\n")
    assert result.exit_code == 1
    assert "has no get_token function" in result.stderr
    assert "anon settings user set-token" in result.stderr


def test_get_token_needs_user_name(run_anon, fake_settings):
    run_anon("settings", "user", "set-username", "x")
    settings = saved(fake_settings)
    settings["user_name"] = ""
    fake_settings.write_text(yaml.safe_dump(settings))
    result = run_anon("settings", "user", "get-token", input="secret\n")
    assert "anon settings user set-username" in result.stderr


# --- the token never reaches output ---------------------------------------------------------------


def run_anon_process(arguments, settings_path: Path, input_text: str = "") -> subprocess.CompletedProcess:
    environment = {**os.environ, "ANONAPI_SETTINGS": str(settings_path), "HOME": str(settings_path.parent)}
    return subprocess.run(
        [sys.executable, "-m", "anonapi.cli.main", *arguments],
        input=input_text,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


@pytest.mark.parametrize(
    "arguments",
    [
        ["status"],
        ["settings", "show"],
        ["settings", "user", "info"],
        ["server", "status"],
        ["server", "jobs"],
        ["server", "jobs", "-o", "json"],
        ["job", "info", "1", "2"],
        ["job", "list", "1-3"],
        ["job", "reset", "-y", "1", "99"],
        ["job", "cancel", "-y", "3"],
        ["settings", "set-validate-ssl", "true"],
        ["settings", "user", "set-username", "z123sandbox"],
    ],
)
@pytest.mark.parametrize("verbosity", [[], ["-vv"]])
def test_token_absent_from_output(fake_settings, fake_server, arguments, verbosity):
    settings = saved(fake_settings)
    settings["user_token"] = DISTINCTIVE_TOKEN
    fake_settings.write_text(yaml.safe_dump(settings))
    fake_server.token = DISTINCTIVE_TOKEN
    completed = run_anon_process([*verbosity, *arguments], fake_settings)
    assert DISTINCTIVE_TOKEN not in completed.stdout + completed.stderr


@pytest.mark.parametrize("verbosity", [[], ["-vv"]])
def test_token_absent_when_rejected(fake_settings, fake_server, verbosity):
    settings = saved(fake_settings)
    settings["user_token"] = DISTINCTIVE_TOKEN
    fake_settings.write_text(yaml.safe_dump(settings))
    completed = run_anon_process([*verbosity, "server", "jobs"], fake_settings)
    assert completed.returncode == 1
    assert DISTINCTIVE_TOKEN not in completed.stdout + completed.stderr


def test_traceback_only_with_vv(fake_settings, fake_server):
    fake_server.token = "other"
    quiet = run_anon_process(["server", "jobs"], fake_settings)
    verbose = run_anon_process(["-vv", "server", "jobs"], fake_settings)
    assert "Traceback" not in quiet.stderr
    assert quiet.stderr.count("\n") == 1
    assert "Traceback" in verbose.stderr


@pytest.mark.parametrize("verbosity", [[], ["-vv"]])
def test_get_token_output_hides_token_and_password(fake_settings, fake_server, verbosity):
    fake_server.has_get_token = True
    fake_server.token = DISTINCTIVE_TOKEN
    completed = run_anon_process([*verbosity, "settings", "user", "get-token"], fake_settings, f"{fake_server.password}\n")
    assert completed.returncode == 0
    assert DISTINCTIVE_TOKEN not in completed.stdout + completed.stderr
    assert fake_server.password not in completed.stdout + completed.stderr
