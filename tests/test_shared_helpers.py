"""Tests of the small shared modules: job id parsing, safe file writes and bulk operations."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from anonapi.bulk import run_bulk
from anonapi.exceptions import APIError, FileLockedError, UserInputError
from anonapi.fileio import atomic_write_text, file_lock
from anonapi.jobids import parse_job_ids


@pytest.mark.parametrize(
    "values, expected",
    [
        (["1", "2", "3"], ["1", "2", "3"]),
        (["5-8"], ["5", "6", "7", "8"]),
        (["1,4,7-9"], ["1", "4", "7", "8", "9"]),
        (["3", "1-3"], ["3", "1", "2"]),
        (["007"], ["7"]),
        (["1, 2"], ["1", "2"]),
        ([], []),
    ],
)
def test_parse_job_ids_expands(values, expected):
    assert parse_job_ids(values) == expected


@pytest.mark.parametrize("value", ["a", "-3", "5-2", "1-2-3", "²", "1.5", "0x10"])
def test_parse_job_ids_rejects(value):
    with pytest.raises(UserInputError) as raised:
        parse_job_ids([value])
    message = str(raised.value)
    assert value in message
    assert "\n" not in message


def test_parse_job_ids_rejects_huge_range():
    with pytest.raises(UserInputError, match="more than"):
        parse_job_ids(["1-10000000"])


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_atomic_write_sets_mode(tmp_path):
    target = tmp_path / "secret.yml"
    atomic_write_text(target, "token: x", mode=0o600)
    assert target.stat().st_mode & 0o777 == 0o600


def test_atomic_write_keeps_existing_mode(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.stat().st_mode & 0o777 == 0o640


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "file.txt"
    target.write_text("old")

    def failing_replace(source, destination):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file.txt"]


def test_atomic_write_locked_target_names_fix(tmp_path, monkeypatch):
    target = tmp_path / "anon_mapping.csv"

    def locked_replace(source, destination):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", locked_replace)
    with pytest.raises(FileLockedError, match="Close it in the other program"):
        atomic_write_text(target, "new")


def test_file_lock_removes_lock_file(tmp_path):
    target = tmp_path / "batch"
    with file_lock(target):
        assert (tmp_path / "batch.lock").exists()
    assert not (tmp_path / "batch.lock").exists()


def test_file_lock_waits_for_other_holder(tmp_path):
    target = tmp_path / "batch"
    order = []

    def hold_lock():
        with file_lock(target):
            order.append("first in")
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=hold_lock)
    thread.start()
    while not order:
        time.sleep(0.01)
    with file_lock(target):
        order.append("second in")
    thread.join()
    assert order == ["first in", "first out", "second in"]


def test_file_lock_times_out_on_live_owner(tmp_path):
    target = tmp_path / "batch"
    (tmp_path / "batch.lock").write_text(f"{os.getpid()} {socket.gethostname()}")
    with pytest.raises(FileLockedError, match="batch.lock"):
        with file_lock(target, timeout=0.2):
            pass


@pytest.mark.skipif(sys.platform == "win32", reason="process liveness is checked on POSIX only")
def test_file_lock_takes_over_dead_owner(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    target = tmp_path / "batch"
    (tmp_path / "batch.lock").write_text(f"{dead_pid} {socket.gethostname()}")
    with file_lock(target, timeout=30):
        acquired = True
    assert acquired


def test_file_lock_keeps_other_hosts_lock(tmp_path):
    target = tmp_path / "batch"
    (tmp_path / "batch.lock").write_text("1 some-other-workstation")
    with pytest.raises(FileLockedError):
        with file_lock(target, timeout=0.2):
            pass


def test_run_bulk_continues_after_failure():
    def operation(job_id):
        if job_id == "2":
            raise APIError("job 2 does not exist")
        return int(job_id) * 10

    result = run_bulk(operation, ["1", "2", "3"], max_workers=2)
    assert result.succeeded == {"1": 10, "3": 30}
    assert list(result.failed) == ["2"]
    assert result.summary() == "2 succeeded, 1 failed"


def test_run_bulk_reports_each_job():
    done = []
    run_bulk(lambda job_id: job_id, ["1", "2", "3"], on_done=lambda job_id, error: done.append(job_id))
    assert sorted(done) == ["1", "2", "3"]


def test_run_bulk_limits_concurrency():
    running = 0
    highest = 0
    lock = threading.Lock()

    def operation(job_id):
        nonlocal running, highest
        with lock:
            running += 1
            highest = max(highest, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    run_bulk(operation, [str(number) for number in range(20)], max_workers=3)
    assert highest <= 3


def test_run_bulk_propagates_bugs():
    def operation(job_id):
        raise KeyError(job_id)

    with pytest.raises(KeyError):
        run_bulk(operation, ["1"])
