"""``anon sandbox`` commands: serve, add-user, users and fault."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from anonapi.cli.main import cli
from anonapi.sandbox import Sandbox
from anonapi.sandbox.db import SandboxStore


def run_anon(*arguments: str, input: str = None):  # noqa: A002 - CliRunner's name
    return CliRunner().invoke(cli, list(arguments), input=input, prog_name="anon")


def wait_for_file(path: Path, process: subprocess.Popen, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if process.poll() is not None:
            raise AssertionError(f"anon sandbox serve exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written within {timeout} seconds")
        time.sleep(0.05)
    return path.read_text(encoding="utf-8").strip()


@pytest.fixture
def served(tmp_path):
    """``anon sandbox serve`` in a separate process; yields (process, data folder, URL)."""
    data_dir = tmp_path / "data"
    share = tmp_path / "share"
    share.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "anonapi.cli.main", "sandbox", "serve", "--port", "0",
         "--data-dir", str(data_dir), "--share", f"share={share}", "--poll-interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = wait_for_file(data_dir / "server_url", process)
        yield process, data_dir, url
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# serve


def test_serve_answers_get_token(served):
    process, data_dir, url = served
    response = requests.post(f"{url}/get_token", data={"user_name": "demo", "password": "demo"}, timeout=30)
    assert response.status_code == 200


def test_serve_stops_cleanly_on_sigterm(served):
    process, data_dir, url = served
    requests.get(url, timeout=30)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0
    assert "Sandbox stopped" in stderr


def test_serve_prints_url(served):
    process, data_dir, url = served
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert f"Sandbox server URL: {url}" in stdout


def test_serve_logs_job_start_and_end_without_token(served, tmp_path):
    process, data_dir, url = served
    token = requests.post(
        f"{url}/get_token", data={"user_name": "demo", "password": "demo"}, timeout=30
    ).json()["token"]
    response = requests.post(
        f"{url}/create_job",
        data={"user_name": "demo", "source_type": "PATH", "source_path": r"\\host\share\missing",
              "destination_type": "PATH", "destination_path": r"\\host\share", "project_name":
              "Wetenschap-Algemeen", "anonymizedpatientname": "A", "anonymizedpatientid": "A"},
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    job_id = response.json()["job_id"]
    store = SandboxStore(data_dir)
    deadline = time.monotonic() + 60
    while store.get_job(job_id)["status"] == "ACTIVE" and time.monotonic() < deadline:
        time.sleep(0.05)
    store.close()
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert f"Job {job_id} started" in stderr
    assert f"Job {job_id} failed" in stderr
    assert token not in stderr + stdout


def test_serve_invalid_share(tmp_path):
    result = run_anon("sandbox", "serve", "--data-dir", str(tmp_path), "--share", "no-equals-sign")
    assert result.exit_code == 1
    assert "expected NAME=FOLDER" in result.output


def test_serve_missing_share_folder(tmp_path):
    result = run_anon("sandbox", "serve", "--data-dir", str(tmp_path), "--share", f"s={tmp_path / 'nope'}")
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_serve_port_in_use(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        result = run_anon("sandbox", "serve", "--data-dir", str(tmp_path), "--port", str(port))
    assert result.exit_code == 1
    assert f"Could not listen on 127.0.0.1:{port}" in result.output


def test_serve_certificate_without_key(tmp_path):
    certificate = tmp_path / "cert.pem"
    certificate.write_text("not used", encoding="utf-8")
    result = run_anon("sandbox", "serve", "--data-dir", str(tmp_path), "--certificate", str(certificate))
    assert result.exit_code == 1
    assert "certificate and its key" in result.output


# add-user and users


def test_add_user_then_get_token(tmp_path):
    result = run_anon("sandbox", "add-user", "alice", "--password", "s3cret", "--project", "P1",
                      "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    with Sandbox(data_dir=tmp_path) as sandbox:
        response = requests.post(
            f"{sandbox.url}/get_token", data={"user_name": "alice", "password": "s3cret"}, timeout=30
        )
        assert sandbox.store.is_connected("alice", "P1")
    assert response.status_code == 200


def test_add_user_prompts_for_password(tmp_path):
    result = run_anon("sandbox", "add-user", "bob", "--data-dir", str(tmp_path), input="pw1\npw1\n")
    store = SandboxStore(tmp_path)
    password_ok = store.check_password("bob", "pw1")
    store.close()
    assert result.exit_code == 0
    assert password_ok


def test_add_user_does_not_print_password(tmp_path):
    result = run_anon("sandbox", "add-user", "carol", "--password", "hidden-value", "--data-dir", str(tmp_path))
    assert "hidden-value" not in result.output


def test_add_user_empty_password(tmp_path):
    result = run_anon("sandbox", "add-user", "dave", "--password", "", "--data-dir", str(tmp_path))
    assert result.exit_code == 1


def test_users_lists_projects(tmp_path):
    run_anon("sandbox", "add-user", "alice", "--password", "x", "--project", "P1", "--project", "P2",
             "--data-dir", str(tmp_path))
    result = run_anon("sandbox", "users", "--data-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "alice: P1, P2" in result.output


def test_users_without_data(tmp_path):
    result = run_anon("sandbox", "users", "--data-dir", str(tmp_path / "none"))
    assert result.exit_code == 1
    assert "No sandbox data" in result.output


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ANONAPI_SANDBOX_DIR", str(tmp_path / "from-env"))
    run_anon("sandbox", "add-user", "erin", "--password", "x")
    assert (tmp_path / "from-env" / "sandbox.sqlite3").is_file()


# fault


def test_fault_fail_next(tmp_path):
    with Sandbox(data_dir=tmp_path) as sandbox:
        result = run_anon("sandbox", "fault", "fail-next", "--count", "1", "--status", "503",
                          "--data-dir", str(tmp_path))
        status = requests.get(f"{sandbox.url}/get_jobs", timeout=30).status_code
    assert result.exit_code == 0
    assert status == 503


def test_fault_hold_jobs(tmp_path):
    with Sandbox(data_dir=tmp_path) as sandbox:
        result = run_anon("sandbox", "fault", "hold-jobs", "--status", "UPLOADED", "--data-dir", str(tmp_path))
        held = sandbox.faults.held_status
    assert result.exit_code == 0
    assert held == "UPLOADED"


def test_fault_rejected_value(tmp_path):
    with Sandbox(data_dir=tmp_path):
        result = run_anon("sandbox", "fault", "hold-jobs", "--status", "DONE", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "rejected" in result.output


def test_fault_without_sandbox_data(tmp_path):
    result = run_anon("sandbox", "fault", "clear", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "start the sandbox with --data-dir" in result.output


def test_fault_sandbox_not_running(tmp_path):
    with Sandbox(data_dir=tmp_path):
        pass
    result = run_anon("sandbox", "fault", "clear", "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "is it running?" in result.output


# demo


def test_demo_succeeds(tmp_path):
    result = run_anon("sandbox", "demo", "--folder", str(tmp_path / "demo"))
    assert result.exit_code == 0, result.output
    assert "None of the" in result.output


# Help and light imports


def test_sandbox_help_lists_commands():
    result = run_anon("sandbox", "--help")
    for command in ("serve", "add-user", "users", "fault", "demo"):
        assert command in result.output


def test_sandbox_help_imports_no_server_modules():
    code = (
        "import sys; from anonapi.cli.main import main\n"
        "try:\n    main(['sandbox', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [name for name in ('starlette', 'uvicorn', 'pydicom', 'requests', 'dicognito') "
        "if name in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in output


def test_pytest_plugin_imports_nothing_heavy():
    code = (
        "import sys; import anonapi.sandbox.pytest_plugin\n"
        "heavy = [name for name in ('starlette', 'uvicorn', 'pydicom', 'requests', 'dicognito', 'yaml') "
        "if name in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "HEAVY []" in output
