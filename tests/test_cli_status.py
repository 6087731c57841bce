"""Tests of ``anon status``."""

from __future__ import annotations

from pathlib import Path

import yaml


def test_status_first_run_creates_settings(run_anon, settings_path):
    result = run_anon("status")
    assert result.exit_code == 0
    assert settings_path.exists()
    assert f"Created settings file '{settings_path}'" in result.stderr


def test_status_lists_servers_active_marked(run_anon, fake_settings, fake_server):
    result = run_anon("status")
    assert result.exit_code == 0
    assert f"* fake {fake_server.url}" in result.stdout
    assert "  other http://127.0.0.1:9/api" in result.stdout


def test_status_shows_user_and_path(run_anon, fake_settings):
    result = run_anon("status")
    assert "User name: z123sandbox" in result.stdout
    assert f"Settings file: {fake_settings}" in result.stdout


def test_status_hides_token(run_anon, fake_settings):
    token = yaml.safe_load(Path(fake_settings).read_text())["user_token"]
    result = run_anon("status")
    assert "Token: set" in result.stdout
    assert token not in result.stdout + result.stderr


def test_status_without_servers(run_anon):
    result = run_anon("status")
    assert "anon server add NAME URL" in result.stdout


def test_status_broken_settings_one_line(run_anon, settings_path):
    settings_path.write_text("servers:\n  a: https://a\n b: [\n")
    result = run_anon("status")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: Invalid YAML in settings file '{settings_path}', line 3")
