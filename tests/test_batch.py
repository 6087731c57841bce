"""Tests of the batch file: format, compatibility with anonapi 2.1.2, locking and crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from released import run_released

from anonapi.batch import (
    ARCHIVE_BAD_REQUEST,
    ARCHIVE_NOT_FOUND,
    BATCH_FILE_NAME,
    DESTINATION_FULL,
    NOT_FOUND,
    OPTED_OUT,
    OTHER_ERROR,
    STUCK_UPLOADED,
    BatchFolder,
    BatchStatus,
    JobBatch,
    classify_error,
    group_errors,
)
from anonapi.exceptions import BatchError, NoBatchDefinedError
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobInfo

UPSTREAM_BATCH_FILE = Path(__file__).parent / "data" / "upstream-2.1.2" / "anonbatch.yml"

SERVER = RemoteAnonServer("testserver", "https://hostname_of_api")
OTHER_SERVER = RemoteAnonServer("other", "https://other_host/api")


@pytest.fixture
def folder(tmp_path) -> BatchFolder:
    return BatchFolder(tmp_path)


def write_batch_file(folder: BatchFolder, text: str) -> None:
    folder.batch_file_path.write_text(text, encoding="utf-8")


# --- format and compatibility -------------------------------------------------------


def test_upstream_file_loads(folder):
    write_batch_file(folder, UPSTREAM_BATCH_FILE.read_text())

    batch = folder.load()

    assert batch.job_ids == ["1", "2", "5", "6", "7"]
    assert batch.server == SERVER


def test_save_writes_upstream_format(folder):
    folder.save(JobBatch(["1", "2", "5", "6", "7"], SERVER))

    assert folder.batch_file_path.read_text() == UPSTREAM_BATCH_FILE.read_text()


def test_file_name_is_anonbatch(folder):
    assert folder.batch_file_path.name == ".anonbatch" == BATCH_FILE_NAME


def test_numeric_ids_become_strings(folder):
    write_batch_file(folder, "job_ids: [3, 4]\nserver: {name: s, url: 'http://h'}\n")

    assert folder.load().job_ids == ["3", "4"]


def test_empty_job_ids_load(folder):
    write_batch_file(folder, "job_ids: []\nserver: {name: s, url: 'http://h'}\n")

    assert folder.load().job_ids == []


def test_dict_round_trip():
    batch = JobBatch(["10", "11"], SERVER)

    assert JobBatch.from_dict(batch.to_dict()) == batch


@pytest.mark.parametrize(
    "text, expected",
    [
        ("job_ids: [1\nserver: x\n", "not valid YAML at line"),
        ("job_ids: [1]\n", "'server' with a 'name' and a 'url' is missing"),
        ("job_ids: [1]\nserver: {name: s}\n", "needs a 'name' and a 'url'"),
        ("job_ids: 5\nserver: {name: s, url: u}\n", "'job_ids' must be a list"),
        ("job_ids: [1, abc]\nserver: {name: s, url: u}\n", "job ids must be whole numbers, got 'abc'"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_invalid_file_raises(folder, text, expected):
    write_batch_file(folder, text)

    with pytest.raises(BatchError) as raised:
        folder.load()

    assert expected in str(raised.value)
    assert str(folder.batch_file_path) in str(raised.value)


def test_missing_batch_names_init(folder):
    with pytest.raises(NoBatchDefinedError) as raised:
        folder.load()

    assert "anon batch init" in str(raised.value)


# --- changing the batch ---------------------------------------------------------------


def test_add_creates_batch(folder):
    batch = folder.add_job_ids(["1", "2"], SERVER)

    assert batch.job_ids == ["1", "2"]
    assert folder.load() == batch


def test_add_skips_duplicates(folder):
    folder.add_job_ids(["1", "2"], SERVER)

    change = folder.change_job_ids(add=["2", "3", "3"], server=SERVER)

    assert change.added == ["3"]
    assert folder.load().job_ids == ["1", "2", "3"]


def test_add_other_server_raises(folder):
    folder.add_job_ids(["1"], SERVER)

    with pytest.raises(BatchError) as raised:
        folder.add_job_ids(["2"], OTHER_SERVER)

    assert "belongs to testserver" in str(raised.value)
    assert folder.load().job_ids == ["1"]


def test_add_same_url_other_spelling(folder):
    folder.add_job_ids(["1"], SERVER)

    batch = folder.add_job_ids(["2"], RemoteAnonServer("renamed", "https://HOSTNAME_OF_API/"))

    assert batch.job_ids == ["1", "2"]


def test_add_without_create_needs_batch(folder):
    with pytest.raises(NoBatchDefinedError):
        folder.change_job_ids(add=["1"])


def test_remove_reports_missing_ids(folder):
    folder.add_job_ids(["1", "2", "3"], SERVER)

    change = folder.change_job_ids(remove=["2", "9"])

    assert change.removed == ["2"]
    assert change.not_in_batch == ["9"]
    assert folder.load().job_ids == ["1", "3"]


def test_remove_without_batch_raises(folder):
    with pytest.raises(NoBatchDefinedError):
        folder.remove_job_ids(["1"])


def test_create_batch_refuses_existing(folder):
    folder.create_batch(SERVER)

    with pytest.raises(BatchError) as raised:
        folder.create_batch(OTHER_SERVER)

    assert "already exists" in str(raised.value)
    assert folder.load().server == SERVER


def test_delete_batch_removes_file(folder):
    folder.create_batch(SERVER)

    folder.delete_batch()

    assert not folder.has_batch()


def test_delete_missing_batch_raises(folder):
    with pytest.raises(NoBatchDefinedError):
        folder.delete_batch()


def test_lock_file_removed_after_change(folder):
    folder.add_job_ids(["1"], SERVER)

    assert sorted(path.name for path in folder.path.iterdir()) == [BATCH_FILE_NAME]


# --- several processes and crashes -----------------------------------------------------

ADD_IDS_SCRIPT = """
import sys
from pathlib import Path
from anonapi.batch import BatchFolder
from anonapi.objects import RemoteAnonServer

folder = BatchFolder(Path(sys.argv[1]))
server = RemoteAnonServer("testserver", "https://hostname_of_api")
first, count = int(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()
for job_id in range(first, first + count):
    folder.add_job_ids([str(job_id)], server)
"""


def test_concurrent_processes_lose_no_ids(folder):
    run_released([[ADD_IDS_SCRIPT, str(folder.path), str(1000 * number), "40"] for number in range(1, 5)])

    expected = {str(1000 * number + offset) for number in range(1, 5) for offset in range(40)}
    job_ids = folder.load().job_ids
    assert set(job_ids) == expected
    assert len(job_ids) == len(expected)


SAVE_LOOP_SCRIPT = """
import sys
from pathlib import Path
from anonapi.batch import BatchFolder, JobBatch
from anonapi.objects import RemoteAnonServer

folder = BatchFolder(Path(sys.argv[1]))
server = RemoteAnonServer("testserver", "https://hostname_of_api")
small = JobBatch([str(i) for i in range(1000)], server)
large = JobBatch([str(i) for i in range(20000)], server)
folder.save(small)
print("ready", flush=True)
while True:
    folder.save(large)
    folder.save(small)
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_killed_writer_leaves_whole_file(folder, delay):
    process = subprocess.Popen(
        [sys.executable, "-c", SAVE_LOOP_SCRIPT, str(folder.path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "ready"
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    count = len(folder.load().job_ids)

    assert count in (1000, 20000)


SAVE_COUNT_SCRIPT = """
import sys
from pathlib import Path
from anonapi.batch import BatchFolder, JobBatch
from anonapi.objects import RemoteAnonServer

folder = BatchFolder(Path(sys.argv[1]))
server = RemoteAnonServer("testserver", "https://hostname_of_api")
small = JobBatch([str(i) for i in range(1000)], server)
large = JobBatch([str(i) for i in range(20000)], server)
for _ in range(int(sys.argv[2])):
    folder.save(large)
    folder.save(small)
"""


def test_reader_never_sees_half_file(folder):
    folder.save(JobBatch(["1"], SERVER))
    process = subprocess.Popen([sys.executable, "-c", SAVE_COUNT_SCRIPT, str(folder.path), "20"])

    counts = set()
    while process.poll() is None:
        counts.add(len(folder.load().job_ids))

    assert process.returncode == 0
    assert counts <= {1, 1000, 20000}


def test_failed_write_keeps_old_file(folder, monkeypatch):
    folder.save(JobBatch(["1"], SERVER))

    def fail_fsync(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail_fsync)
    with pytest.raises(BatchError) as raised:
        folder.add_job_ids(["2"], SERVER)

    assert "No space left on device" in str(raised.value)
    assert folder.load().job_ids == ["1"]
    assert sorted(path.name for path in folder.path.iterdir()) == [BATCH_FILE_NAME]


# --- status and errors -------------------------------------------------------------------


def make_status(job_ids, infos) -> BatchStatus:
    return BatchStatus(JobBatch(job_ids, SERVER), {str(info.job_id): info for info in infos})


def test_status_marks_unknown_ids():
    status = make_status(["2", "1", "3"], [JobInfo(job_id=1, status="DONE"), JobInfo(job_id=2, status="ERROR")])

    assert [(info.job_id, info.status) for info in status.rows()] == [(1, "DONE"), (2, "ERROR"), (3, NOT_FOUND)]
    assert status.not_found == ["3"]


def test_status_summary_counts_and_percentages():
    infos = [JobInfo(job_id=i, status="DONE") for i in range(1, 4)] + [JobInfo(job_id=4, status="ACTIVE")]
    status = make_status([str(i) for i in range(1, 6)], infos)

    assert status.summary() == [("ACTIVE", 1, 20.0), ("DONE", 3, 60.0), (NOT_FOUND, 1, 20.0)]


def test_status_finished_and_all_done():
    status = make_status(["1", "2"], [JobInfo(job_id=1, status="DONE"), JobInfo(job_id=2, status="INACTIVE")])

    assert status.is_finished
    assert not status.all_done


@pytest.mark.parametrize(
    "error, kind",
    [
        (
            "Error while pre-processing job 52019: WadoWrapperException: Got HTTP error response from server "
            "when requesting 'http://pacs/wado/?studyInstanceUID=1234' Original error:'HTTP Error 404: Not Found'",
            ARCHIVE_NOT_FOUND,
        ),
        ("Original error:'HTTP Error 400: Bad Request'", ARCHIVE_BAD_REQUEST),
        ("Could not move file D:\\x to \\\\srv\\share, original error:[Errno 28] No space left on device", DESTINATION_FULL),
        ('Error while pre-processing job 51815: Patient "123456" does not want his or her data to be used for '
         "research", OPTED_OUT),
        ("Patient opted out of research", OPTED_OUT),
        ("Something unexpected", OTHER_ERROR),
        (None, OTHER_ERROR),
    ],
)
def test_classify_error(error, kind):
    assert classify_error(error) is kind


def test_group_errors_orders_kinds():
    infos = [
        JobInfo(job_id=1, status="ERROR", error="weird"),
        JobInfo(job_id=2, status="ERROR", error="HTTP Error 404: Not Found"),
        JobInfo(job_id=3, status="UPLOADED", date="2024-01-01T10:00:00"),
        JobInfo(job_id=4, status="UPLOADED", date="2024-01-01T11:50:00"),
        JobInfo(job_id=5, status="DONE"),
        JobInfo(job_id=6, status="ERROR", error="HTTP Error 404: Not Found"),
    ]
    status = make_status([str(i) for i in range(1, 7)], infos)

    groups = group_errors(status, now=datetime(2024, 1, 1, 12, 0, 0))

    assert [group.kind for group in groups] == [ARCHIVE_NOT_FOUND, STUCK_UPLOADED, OTHER_ERROR]
    assert [group.job_ids for group in groups] == [["2", "6"], ["3"], ["1"]]
