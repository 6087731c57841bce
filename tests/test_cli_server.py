"""Tests of ``anon server``: the server list in the settings, server status and latest jobs."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from anonapi.client import WebAPIClient


def saved(settings_path):
    return yaml.safe_load(settings_path.read_text())


# --- add, list, remove, activate -----------------------------------------------------------


def test_add_first_server_activates_it(run_anon, settings_path):
    result = run_anon("server", "add", "p01", "https://anon.example.org/p01")
    assert result.exit_code == 0
    assert saved(settings_path)["servers"] == {"p01": "https://anon.example.org/p01"}
    assert saved(settings_path)["active_server_name"] == "p01"


def test_add_second_server_keeps_active(run_anon, settings_path):
    run_anon("server", "add", "p01", "https://anon.example.org/p01")
    run_anon("server", "add", "p02", "https://anon.example.org/p02")
    assert saved(settings_path)["active_server_name"] == "p01"


def test_add_strips_trailing_slash(run_anon, settings_path):
    run_anon("server", "add", "p01", "https://anon.example.org/p01/")
    assert saved(settings_path)["servers"]["p01"] == "https://anon.example.org/p01"


def test_add_duplicate_name_rejected(run_anon, settings_path):
    run_anon("server", "add", "p01", "https://anon.example.org/p01")
    result = run_anon("server", "add", "p01", "https://anon.example.org/other")
    assert result.exit_code == 1
    assert "already exists" in result.stderr
    assert saved(settings_path)["servers"] == {"p01": "https://anon.example.org/p01"}


@pytest.mark.parametrize("url", ["ftp://anon.example.org", "anon.example.org/p01", "https://", "file:///etc"])
def test_add_non_http_url_rejected(run_anon, url):
    result = run_anon("server", "add", "p01", url)
    assert result.exit_code == 1
    assert f"Invalid server URL '{url}'" in result.stderr


def test_list_marks_active(run_anon):
    run_anon("server", "add", "p01", "https://a.example.org/p01")
    run_anon("server", "add", "p02", "https://a.example.org/p02")
    result = run_anon("server", "list")
    assert result.stdout == "* p01 https://a.example.org/p01\n  p02 https://a.example.org/p02\n"


def test_list_empty(run_anon):
    assert "No servers" in run_anon("server", "list").stdout


def test_activate(run_anon, settings_path):
    run_anon("server", "add", "p01", "https://a.example.org/p01")
    run_anon("server", "add", "p02", "https://a.example.org/p02")
    result = run_anon("server", "activate", "p02")
    assert result.exit_code == 0
    assert saved(settings_path)["active_server_name"] == "p02"


def test_activate_unknown_lists_known(run_anon):
    run_anon("server", "add", "p01", "https://a.example.org/p01")
    result = run_anon("server", "activate", "p09")
    assert result.exit_code == 1
    assert "No server named 'p09'. Known servers: p01." in result.stderr


def test_remove(run_anon, settings_path):
    run_anon("server", "add", "p01", "https://a.example.org/p01")
    run_anon("server", "add", "p02", "https://a.example.org/p02")
    result = run_anon("server", "remove", "p02")
    assert result.exit_code == 0
    assert saved(settings_path)["servers"] == {"p01": "https://a.example.org/p01"}


def test_remove_active_deactivates(run_anon, settings_path):
    run_anon("server", "add", "p01", "https://a.example.org/p01")
    result = run_anon("server", "remove", "p01")
    assert saved(settings_path)["active_server_name"] is None
    assert "anon server activate NAME" in result.stdout


def test_remove_unknown(run_anon):
    result = run_anon("server", "remove", "p09")
    assert result.exit_code == 1
    assert "No server named 'p09'" in result.stderr


# --- status ---------------------------------------------------------------------------------


def test_status_online(run_anon, fake_settings, fake_server):
    result = run_anon("server", "status")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"fake: {fake_server.url}: OK")


def test_status_not_an_api(run_anon, settings_path, fake_server):
    run_anon("server", "add", "wrong", fake_server.url.replace("/api", "/nothing"))
    result = run_anon("server", "status")
    assert result.exit_code == 1
    assert "not OK" in result.stdout
    assert "not an IDIS web API" in result.stdout


def test_status_refused(run_anon, settings_path, monkeypatch):
    monkeypatch.setattr(WebAPIClient, "backoff_factor", 0.0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run_anon("server", "add", "down", f"http://127.0.0.1:{port}/api")
    result = run_anon("server", "status")
    assert result.exit_code == 1
    assert f"Could not reach http://127.0.0.1:{port}/api/: connection refused" in result.stdout


def test_status_without_active_server(run_anon, settings_path):
    run_anon("server", "add", "p01", "https://a.example.org/p01")
    run_anon("server", "add", "p02", "https://a.example.org/p02")
    run_anon("server", "remove", "p01")
    result = run_anon("server", "status")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: No active server. Known servers: p02. Activate one with 'anon server activate NAME'.\n"
    )


def test_status_without_any_server(run_anon):
    result = run_anon("server", "status")
    assert "anon server add NAME URL" in result.stderr


# --- jobs -----------------------------------------------------------------------------------


def test_jobs_table(run_anon, fake_settings):
    result = run_anon("server", "jobs")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Latest 3 jobs on fake")
    assert lines[1].split() == ["id", "date", "status", "down", "proc", "user"]
    assert lines[3].split()[:3] == ["3", "2019-11-26T16:34:07", "ACTIVE"]


def test_jobs_json(run_anon, fake_settings):
    result = run_anon("server", "jobs", "--output", "json")
    jobs = json.loads(result.stdout)
    assert [job["job_id"] for job in jobs] == [3, 2, 1]
    assert jobs[1]["status"] == "ERROR"


def test_jobs_server_error_one_line(run_anon, fake_settings, fake_server):
    fake_server.add_fault(status=500, body=b"boom", content_type="text/plain")
    result = run_anon("server", "jobs")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "status 500 'Internal Server Error'" in result.stderr
    assert f"{fake_server.url}/get_jobs" in result.stderr


def test_jobs_credentials_rejected(run_anon, fake_settings, fake_server):
    fake_server.token = "another-token"
    result = run_anon("server", "jobs")
    assert result.exit_code == 1
    assert "rejected the credentials of user 'z123sandbox'" in result.stderr
    assert "anon settings user set-username" in result.stderr
    assert "anon settings user set-token" in result.stderr
