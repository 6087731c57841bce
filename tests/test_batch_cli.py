"""Tests of `anon batch` against a real sandbox server over HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import List

import pytest
import yaml
from click.testing import CliRunner, Result

from anonapi.batch import BATCH_FILE_NAME, BatchFolder, JobBatch
from anonapi.cli.main import cli
from anonapi.client import AnonClientTool
from anonapi.exceptions import NoResponseError
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobStatus

UPSTREAM_BATCH_FILE = Path(__file__).parent / "data" / "upstream-2.1.2" / "anonbatch.yml"

NOT_FOUND_ERROR = (
    "Error while pre-processing job {job_id}: WadoWrapperException: Got HTTP error response from server when "
    "requesting 'http://pacs/wado/?studyInstanceUID=1.2.3'\nOriginal error:'HTTP Error 404: Not Found'"
)
BAD_REQUEST_ERROR = "Error while pre-processing job {job_id}: Original error:'HTTP Error 400: Bad Request'"
DISK_FULL_ERROR = (
    "Could not move file a.dcm to \\\\sandbox\\output\\{job_id}\\, original error:[Errno 28] No space left on device"
)
OPT_OUT_ERROR = 'Error while pre-processing job {job_id}: Patient "123" does not want his or her data to be used for research'


@pytest.fixture
def work_dir(anon_settings, tmp_path, monkeypatch) -> Path:
    """An empty working folder, with settings that point at the sandbox."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def held(sandbox):
    """The sandbox with its worker held, so that job statuses stay as the test sets them."""
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    return sandbox


@pytest.fixture
def server(sandbox) -> RemoteAnonServer:
    return RemoteAnonServer("sandbox", sandbox.url)


def run(*args: str, input: str = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def create_jobs(sandbox, count: int, **changes) -> List[str]:
    """Create ``count`` jobs directly in the sandbox's store, optionally with changed fields."""
    job_ids = []
    for number in range(count):
        row = sandbox.store.create_job(
            sandbox.user_name,
            {
                "project_name": sandbox.project_name,
                "source_type": "PATH",
                "source_path": f"\\\\sandbox\\share\\study{number}",
                "destination_type": "PATH",
                "destination_path": "\\\\sandbox\\output",
            },
        )
        if changes:
            sandbox.store.modify_job(row["job_id"], dict(changes))
        job_ids.append(str(row["job_id"]))
    return job_ids


def set_error(sandbox, job_id: str, template: str) -> None:
    sandbox.store.modify_job(int(job_id), {"status": JobStatus.ERROR, "error": template.format(job_id=job_id)})


def make_batch(work_dir: Path, server: RemoteAnonServer, job_ids: List[str]) -> None:
    BatchFolder(work_dir).save(JobBatch(job_ids, server))


def statuses(sandbox, job_ids: List[str]) -> List[str]:
    return [sandbox.get_job(job_id)["status"] for job_id in job_ids]


# --- no batch, init, info, add, remove, delete ---------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["info"],
        ["status"],
        ["add", "1"],
        ["remove", "1"],
        ["delete", "--yes"],
        ["reset", "--yes"],
        ["reset-error", "--yes"],
        ["cancel", "--yes"],
        ["cancel-active", "--yes"],
        ["show-error"],
        ["watch", "--timeout", "1"],
    ],
)
def test_no_batch_names_init(work_dir, args):
    result = run("batch", *args)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: No batch defined in '{work_dir}'.")
    assert "`anon batch init`" in result.stderr


def test_init_uses_active_server(work_dir, sandbox):
    result = run("batch", "init")

    assert result.exit_code == 0
    assert result.stdout == f"Created an empty batch for sandbox: {sandbox.url} in {work_dir}\n"
    assert BatchFolder(work_dir).load() == JobBatch([], RemoteAnonServer("sandbox", sandbox.url))


def test_init_refuses_existing(work_dir):
    run("batch", "init")

    result = run("batch", "init")

    assert result.exit_code == 1
    assert "A batch already exists" in result.stderr
    assert "`anon batch delete`" in result.stderr


def test_add_ranges_and_lists(work_dir, sandbox):
    run("batch", "init")

    result = run("batch", "add", "1", "5-7", "9,3")

    assert result.exit_code == 0
    assert result.stdout == f"Added 6 jobs to the batch on sandbox: {sandbox.url}. It now has 6 jobs.\n"
    assert BatchFolder(work_dir).load().job_ids == ["1", "5", "6", "7", "9", "3"]


def test_add_reports_skipped(work_dir, sandbox):
    run("batch", "init")
    run("batch", "add", "1-3")

    result = run("batch", "add", "3-4")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"Added 1 job to the batch on sandbox: {sandbox.url}. It now has 4 jobs.",
        "Already in the batch, so skipped: 3",
    ]


def test_add_invalid_id(work_dir):
    run("batch", "init")

    result = run("batch", "add", "1", "x7")

    assert result.exit_code == 1
    assert "Invalid job id 'x7'" in result.stderr
    assert BatchFolder(work_dir).load().job_ids == []


def test_remove_range(work_dir):
    run("batch", "init")
    run("batch", "add", "5-12")

    result = run("batch", "remove", "8-11", "40")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "Removed 4 jobs from the batch. It now has 4 jobs.",
        "Not in the batch, so skipped: 40",
    ]
    assert BatchFolder(work_dir).load().job_ids == ["5", "6", "7", "12"]


def test_info_shows_yaml(work_dir, sandbox):
    run("batch", "init")
    run("batch", "add", "1", "2")

    result = run("batch", "info")

    assert result.exit_code == 0
    assert result.stdout == f"job_ids:\n- '1'\n- '2'\nserver:\n  name: sandbox\n  url: {sandbox.url}\n"


def test_info_json(work_dir, sandbox):
    run("batch", "init")
    run("batch", "add", "4")

    result = run("batch", "info", "--output", "json")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"job_ids": ["4"], "server": {"name": "sandbox", "url": sandbox.url}}


def test_info_csv(work_dir, sandbox):
    run("batch", "init")
    run("batch", "add", "4", "5")

    result = run("batch", "info", "-o", "csv")

    assert result.stdout.splitlines() == [
        "job_id,server_name,server_url",
        f"4,sandbox,{sandbox.url}",
        f"5,sandbox,{sandbox.url}",
    ]


def test_info_reads_upstream_file(work_dir):
    shutil.copy(UPSTREAM_BATCH_FILE, work_dir / BATCH_FILE_NAME)

    result = run("batch", "info")

    assert result.exit_code == 0
    assert result.stdout == UPSTREAM_BATCH_FILE.read_text()


def test_add_keeps_upstream_format(work_dir):
    shutil.copy(UPSTREAM_BATCH_FILE, work_dir / BATCH_FILE_NAME)

    result = run("batch", "add", "8")

    assert result.exit_code == 0
    expected = UPSTREAM_BATCH_FILE.read_text().replace("- '7'\n", "- '7'\n- '8'\n")
    assert (work_dir / BATCH_FILE_NAME).read_text() == expected


def test_delete_asks_first(work_dir):
    run("batch", "init")
    run("batch", "add", "1")

    result = run("batch", "delete", input="n\n")

    assert result.exit_code == 1
    assert "Aborted" in result.stderr
    assert BatchFolder(work_dir).has_batch()


def test_delete_with_yes(work_dir):
    run("batch", "init")
    run("batch", "add", "1")

    result = run("batch", "delete", "--yes")

    assert result.exit_code == 0
    assert result.stdout == f"Deleted the batch in {work_dir}\n"
    assert not BatchFolder(work_dir).has_batch()


# --- status ----------------------------------------------------------------------------------


def test_status_table_and_summary(work_dir, held, server):
    job_ids = create_jobs(held, 4)
    set_error(held, job_ids[1], NOT_FOUND_ERROR)
    held.store.modify_job(int(job_ids[2]), {"status": JobStatus.DONE, "files_downloaded": 12, "files_processed": 12})
    make_batch(work_dir, server, job_ids + ["999"])

    result = run("batch", "status")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"Job info for 5 jobs on sandbox: {held.url}:"
    assert lines[1].split() == ["id", "date", "status", "down", "proc", "user"]
    assert [line.split()[2] for line in lines[3:7]] == ["ACTIVE", "ERROR", "DONE", "ACTIVE"]
    assert lines[4].split()[3:] == ["0", "0", "demo"]
    assert lines[5].split()[3:] == ["12", "12", "demo"]
    assert lines[7].split() == ["999", "NOT_FOUND"]
    assert lines[8] == ""
    assert [line.split() for line in lines[9:]] == [
        ["status", "jobs", "percent"],
        ["---------", "------", "---------"],
        ["ACTIVE", "2", "40.0%"],
        ["DONE", "1", "20.0%"],
        ["ERROR", "1", "20.0%"],
        ["NOT_FOUND", "1", "20.0%"],
        ["total", "5", "100.0%"],
    ]


def test_status_empty_batch(work_dir, sandbox):
    run("batch", "init")

    result = run("batch", "status")

    assert result.exit_code == 0
    assert result.stdout == f"Job info for 0 jobs on sandbox: {sandbox.url}:\n"


def test_status_patient_name(work_dir, held, server, anon_settings):
    from anonapi.client import AnonClientTool

    tool = AnonClientTool(held.user_name, held.token)
    info = tool.create_path_job(
        server, held.project_name, "\\\\sandbox\\share\\study", "\\\\sandbox\\output", anon_name="PSEUDO_7", anon_id="7"
    )
    make_batch(work_dir, server, [str(info.job_id)])

    result = run("batch", "status", "--patient-name")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["id", "date", "status", "down", "proc", "user", "anon_name"]
    assert lines[3].split()[-1] == "PSEUDO_7"


def test_status_json(work_dir, held, server):
    job_ids = create_jobs(held, 3)
    set_error(held, job_ids[0], OPT_OUT_ERROR)
    make_batch(work_dir, server, job_ids + ["998"])

    result = run("batch", "status", "--output", "json")

    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["server"] == {"name": "sandbox", "url": held.url}
    assert [(job["job_id"], job["status"]) for job in data["jobs"]] == [
        (int(job_ids[0]), "ERROR"),
        (int(job_ids[1]), "ACTIVE"),
        (int(job_ids[2]), "ACTIVE"),
        (998, "NOT_FOUND"),
    ]
    assert data["summary"] == {
        "ACTIVE": {"jobs": 2, "percent": 50.0},
        "ERROR": {"jobs": 1, "percent": 25.0},
        "NOT_FOUND": {"jobs": 1, "percent": 25.0},
    }


def test_status_csv(work_dir, held, server):
    job_ids = create_jobs(held, 1, files_downloaded=3, files_processed=2)
    make_batch(work_dir, server, job_ids + ["997"])

    result = run("batch", "status", "-o", "csv")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    date = held.get_job(job_ids[0])["date"]
    assert lines == [
        "job_id,date,status,files_downloaded,files_processed,user_name",
        f"{job_ids[0]},{date},ACTIVE,3,2,demo",
        "997,,NOT_FOUND,,,",
    ]


def test_status_many_ids_in_chunks(work_dir, held, server):
    job_ids = create_jobs(held, 3)
    unknown = [str(number) for number in range(10_000, 12_500)]
    make_batch(work_dir, server, job_ids + unknown)

    result = run("batch", "status", "-o", "json")

    assert result.exit_code == 0
    assert json.loads(result.stdout)["summary"] == {
        "ACTIVE": {"jobs": 3, "percent": 0.12},
        "NOT_FOUND": {"jobs": 2500, "percent": 99.88},
    }


def test_status_uses_batch_server(work_dir, held, server, anon_settings):
    job_ids = create_jobs(held, 1)
    make_batch(work_dir, server, job_ids)
    settings = yaml.safe_load(anon_settings.read_text())
    # The active server is now one that nothing listens on.
    settings["servers"]["elsewhere"] = "http://127.0.0.1:9/api"
    settings["active_server_name"] = "elsewhere"
    anon_settings.write_text(yaml.safe_dump(settings))

    result = run("batch", "status")

    assert result.exit_code == 0
    assert result.stdout.startswith(f"Job info for 1 job on sandbox: {held.url}:")


def test_status_server_down(work_dir, anon_settings):
    make_batch(work_dir, RemoteAnonServer("gone", "http://127.0.0.1:9/api"), ["1"])

    result = run("batch", "status")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Could not reach http://127.0.0.1:9/api/get_jobs_list")


# --- reset and cancel ------------------------------------------------------------------------


def test_reset_all(work_dir, held, server):
    job_ids = create_jobs(held, 6, files_downloaded=5, files_processed=5)
    for job_id in job_ids:
        set_error(held, job_id, NOT_FOUND_ERROR)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 0
    assert result.stdout == f"Reset 6 of 6 jobs on sandbox: {held.url}, 0 failed.\n"
    assert statuses(held, job_ids) == [JobStatus.ACTIVE] * 6
    assert [held.get_job(job_id)["files_processed"] for job_id in job_ids] == [0] * 6
    assert [held.get_job(job_id)["error"] for job_id in job_ids] == [" "] * 6


def test_reset_declined(work_dir, held, server):
    job_ids = create_jobs(held, 2)
    set_error(held, job_ids[0], NOT_FOUND_ERROR)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "reset", input="n\n")

    assert result.exit_code == 1
    assert result.stdout == f"Reset 2 jobs on sandbox: {held.url}? [y/N]: n\n"
    assert "Aborted" in result.stderr
    assert statuses(held, job_ids) == [JobStatus.ERROR, JobStatus.ACTIVE]


def test_reset_confirmed(work_dir, held, server):
    job_ids = create_jobs(held, 1)
    set_error(held, job_ids[0], NOT_FOUND_ERROR)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "reset", input="y\n")

    assert result.exit_code == 0
    assert statuses(held, job_ids) == [JobStatus.ACTIVE]


def test_reset_goes_on_after_failure(work_dir, held, server):
    job_ids = create_jobs(held, 5, status=JobStatus.DONE)
    make_batch(work_dir, server, job_ids[:2] + ["996"] + job_ids[2:])

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "Job 996 failed: The server rejected modify_job at "
        f"{held.url}/modify_job: job_id: Job with id 996 does not exist",
        f"Reset 5 of 6 jobs on sandbox: {held.url}, 1 failed.",
    ]
    assert statuses(held, job_ids) == [JobStatus.ACTIVE] * 5


def test_reset_survives_server_error(work_dir, held, server):
    job_ids = create_jobs(held, 4, status=JobStatus.DONE)
    make_batch(work_dir, server, job_ids)
    held.faults.fail_next(1, status=500)

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == f"Reset 3 of 4 jobs on sandbox: {held.url}, 1 failed."
    assert sorted(statuses(held, job_ids)) == [JobStatus.ACTIVE] * 3 + [JobStatus.DONE]


def test_reset_error_only_errors(work_dir, held, server):
    job_ids = create_jobs(held, 3, status=JobStatus.DONE)
    set_error(held, job_ids[1], BAD_REQUEST_ERROR)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "reset-error", "--yes")

    assert result.exit_code == 0
    assert result.stdout == f"Reset 1 of 1 job on sandbox: {held.url}, 0 failed.\n"
    assert statuses(held, job_ids) == [JobStatus.DONE, JobStatus.ACTIVE, JobStatus.DONE]


def test_reset_error_without_errors(work_dir, held, server):
    job_ids = create_jobs(held, 2, status=JobStatus.DONE)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "reset-error")

    assert result.exit_code == 0
    assert result.stdout == f"No jobs with status ERROR in the batch on sandbox: {held.url}, so nothing to reset.\n"


def test_cancel_all(work_dir, held, server):
    job_ids = create_jobs(held, 3)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "cancel", "--yes")

    assert result.exit_code == 0
    assert result.stdout == f"Cancelled 3 of 3 jobs on sandbox: {held.url}, 0 failed.\n"
    assert statuses(held, job_ids) == [JobStatus.INACTIVE] * 3


def test_cancel_active_leaves_others(work_dir, held, server):
    job_ids = create_jobs(held, 4)
    held.store.modify_job(int(job_ids[0]), {"status": JobStatus.DONE})
    set_error(held, job_ids[1], DISK_FULL_ERROR)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "cancel-active", input="y\n")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"Cancel 2 jobs with status ACTIVE on sandbox: {held.url}? [y/N]: y",
        f"Cancelled 2 of 2 jobs on sandbox: {held.url}, 0 failed.",
    ]
    assert statuses(held, job_ids) == [JobStatus.DONE, JobStatus.ERROR, JobStatus.INACTIVE, JobStatus.INACTIVE]


# --- show-error --------------------------------------------------------------------------------


@pytest.fixture
def failed_batch(work_dir, held, server) -> List[str]:
    """A batch with one job of each kind of error, one stuck, one fine and one unknown id."""
    job_ids = create_jobs(held, 8)
    set_error(held, job_ids[0], NOT_FOUND_ERROR)
    set_error(held, job_ids[1], BAD_REQUEST_ERROR)
    set_error(held, job_ids[2], DISK_FULL_ERROR)
    set_error(held, job_ids[3], OPT_OUT_ERROR)
    set_error(held, job_ids[4], "Something else went wrong\nwith a second line")
    held.store.modify_job(int(job_ids[5]), {"status": JobStatus.UPLOADED, "date": "2020-01-01T10:00:00"})
    held.store.modify_job(int(job_ids[6]), {"status": JobStatus.DONE})
    make_batch(work_dir, server, job_ids + ["995"])
    return job_ids


def test_show_error_groups_with_advice(failed_batch, held):
    result = run("batch", "show-error")

    assert result.exit_code == 0
    output = result.stdout
    assert output.startswith(f"6 of 9 jobs in the batch on sandbox: {held.url} failed or are stuck.\n")
    titles = [line.split(":")[0] for line in output.splitlines() if line and not line.startswith((" ", "What"))]
    assert titles[1:] == [
        "The image archive answered HTTP 404 Not Found",
        "The image archive answered HTTP 400 Bad Request",
        "The destination share is full",
        "The patient has opted out",
        "Status UPLOADED for more than 30 minutes",
        "Other errors",
    ]
    assert "Wait at least 30 minutes" in output
    assert "ask the archive's administrators" in output
    assert "no space left on device" in output
    assert "anon job set-opt-out-ignore" in output
    assert "quarantine" in output
    assert "    Something else went wrong\n    with a second line\n" in output
    assert f"  job {failed_batch[0]} (ERROR, source \\\\sandbox\\share\\study0):\n" in output


def test_show_error_json(failed_batch):
    result = run("batch", "show-error", "--output", "json")

    assert result.exit_code == 0
    groups = json.loads(result.stdout)["groups"]
    assert [group["kind"] for group in groups] == [
        "archive_404",
        "archive_400",
        "destination_full",
        "opted_out",
        "stuck_uploaded",
        "other",
    ]
    assert [[job["job_id"] for job in group["jobs"]] for group in groups] == [
        [int(job_id)] for job_id in failed_batch[:4] + [failed_batch[5], failed_batch[4]]
    ]


def test_show_error_csv(failed_batch):
    result = run("batch", "show-error", "-o", "csv")

    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "job_id,status,kind,source,error"
    assert lines[1].startswith(f"{failed_batch[0]},ERROR,archive_404,\\\\sandbox\\share\\study0,")


def test_show_error_nothing_failed(work_dir, held, server):
    job_ids = create_jobs(held, 2, status=JobStatus.DONE)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "show-error")

    assert result.exit_code == 0
    assert result.stdout == f"None of the 2 jobs in the batch on sandbox: {held.url} failed.\n"


def test_show_error_real_failure(work_dir, sandbox, server, tmp_path):
    """A job that really fails in the sandbox, because its destination is full."""
    from pydicom.data import get_testdata_file

    study = tmp_path / "share" / "study"
    study.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), study / "1.dcm")
    sandbox.faults.fill_destination()
    from anonapi.client import AnonClientTool

    tool = AnonClientTool(sandbox.user_name, sandbox.token)
    info = tool.create_path_job(server, sandbox.project_name, "\\\\sandbox\\share\\study", "\\\\sandbox\\output",
                                anon_name="P1", anon_id="1")
    sandbox.wait_for_jobs([info.job_id])
    make_batch(work_dir, server, [str(info.job_id)])

    result = run("batch", "show-error")

    assert result.exit_code == 0
    assert "The destination share is full: 1 job" in result.stdout


# --- watch ---------------------------------------------------------------------------------------


def add_study(tmp_path: Path, name: str) -> str:
    from pydicom.data import get_testdata_file

    study = tmp_path / "share" / name
    study.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), study / "1.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), study / "2.dcm")
    return f"\\\\sandbox\\share\\{name}"


def test_watch_all_done(work_dir, sandbox, server, tmp_path):
    from anonapi.client import AnonClientTool

    tool = AnonClientTool(sandbox.user_name, sandbox.token)
    job_ids = [
        str(tool.create_path_job(server, sandbox.project_name, add_study(tmp_path, f"s{n}"), "\\\\sandbox\\output",
                                 anon_name=f"P{n}", anon_id=str(n)).job_id)
        for n in range(3)
    ]
    make_batch(work_dir, server, job_ids)

    result = run("batch", "watch", "--interval", "0.2", "--timeout", "120")

    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "All 3 jobs are DONE."
    assert statuses(sandbox, job_ids) == [JobStatus.DONE] * 3
    assert result.stderr.startswith(f"Watching 3 jobs on sandbox: {sandbox.url}")


def test_watch_finished_with_error(work_dir, held, server):
    job_ids = create_jobs(held, 2, status=JobStatus.DONE)
    set_error(held, job_ids[1], NOT_FOUND_ERROR)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "watch", "--interval", "0.1")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == (
        f"The batch has finished, but 1 job is not DONE: {job_ids[1]}. See `anon batch show-error`."
    )


def test_watch_cancelled_jobs_need_no_show_error(work_dir, held, server):
    job_ids = create_jobs(held, 2, status=JobStatus.INACTIVE)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "watch", "--interval", "0.1")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == (
        f"The batch has finished, but 2 jobs are not DONE: {job_ids[0]}, {job_ids[1]}."
    )


def test_watch_timeout(work_dir, held, server):
    job_ids = create_jobs(held, 2)
    make_batch(work_dir, server, job_ids)

    result = run("batch", "watch", "--interval", "0.1", "--timeout", "0.3")

    assert result.exit_code == 3
    assert result.stdout.splitlines()[-1] == "Timed out after 0.3 s: 2 jobs still ACTIVE or UPLOADED."


def test_watch_sees_release(work_dir, held, server, tmp_path):
    job_ids = create_jobs(held, 2, status=JobStatus.DONE)
    held.store.modify_job(int(job_ids[0]), {"status": JobStatus.UPLOADED})
    make_batch(work_dir, server, job_ids)
    import threading

    # The job finishes while watch is waiting.
    timer = threading.Timer(0.5, lambda: held.store.modify_job(int(job_ids[0]), {"status": JobStatus.DONE}))
    timer.start()
    try:
        result = run("batch", "watch", "--interval", "0.1", "--timeout", "60")
    finally:
        timer.cancel()

    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "All 2 jobs are DONE."


# --- help ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    ["init", "info", "add", "remove", "delete", "status", "reset", "reset-error", "cancel",
     "cancel-active", "show-error", "watch"],
)
def test_every_command_has_help(command):
    result = run("batch", command, "--help")

    assert result.exit_code == 0
    assert "Usage: " in result.stdout


# --- formatting ------------------------------------------------------------------------------------


def test_job_table_matches_tabulate():
    from anonapi.cli.batch import format_job_table
    from anonapi.responses import JobInfo, JobInfoColumns, JobsInfoList

    infos = [
        JobInfo(job_id=1, date="2024-01-01T10:00:00", status="DONE", files_downloaded=1155, files_processed=1155,
                user_name="z123456", source_anonymizedpatientname="patient34"),
        JobInfo(job_id=12345, status="NOT_FOUND"),
        JobInfo(job_id=7, date="2024-01-02T10:00:00", status="ERROR", files_downloaded=0, files_processed=None,
                user_name="a", source_anonymizedpatientname=""),
    ]
    columns = list(JobInfoColumns.DEFAULT) + [JobInfoColumns.PSEUDO_NAME]

    assert format_job_table(infos, columns) == JobsInfoList(infos).as_table_string(columns)


def test_reset_wrong_token_stops_at_first_job(work_dir, held, server, anon_settings):
    job_ids = create_jobs(held, 30)
    for job_id in job_ids:
        set_error(held, job_id, NOT_FOUND_ERROR)
    make_batch(work_dir, server, job_ids)
    settings = yaml.safe_load(anon_settings.read_text())
    settings["user_token"] = "wrong-token-for-this-server"
    anon_settings.write_text(yaml.safe_dump(settings))

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 1
    assert result.stderr.count("status 401") == 1
    assert "Job " not in result.stderr
    assert statuses(held, job_ids) == [JobStatus.ERROR] * 30


def test_cancel_server_down_stops_at_first_job(work_dir):
    make_batch(work_dir, RemoteAnonServer("gone", "http://127.0.0.1:9/api"), [str(number) for number in range(20)])

    result = run("batch", "cancel", "--yes")

    assert result.exit_code == 1
    assert result.stderr.count("Error:") == 1
    assert "127.0.0.1:9" in result.stderr


def set_read_timeout(anon_settings: Path, seconds: float) -> None:
    settings = yaml.safe_load(anon_settings.read_text())
    settings["read_timeout"] = seconds
    anon_settings.write_text(yaml.safe_dump(settings))


def test_reset_goes_on_after_call_without_response(work_dir, held, server, anon_settings):
    job_ids = create_jobs(held, 10, status=JobStatus.DONE)
    make_batch(work_dir, server, job_ids)
    set_read_timeout(anon_settings, 0.5)
    held.faults.delay_next(1, seconds=2)

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert "reading timed out after 0.5 s" in lines[0]
    assert lines[-1] == f"Reset 9 of 10 jobs on sandbox: {held.url}, 1 failed."


def test_reset_stops_when_server_stops_responding(work_dir, held, server, anon_settings):
    job_ids = create_jobs(held, 40, status=JobStatus.DONE)
    make_batch(work_dir, server, job_ids)
    set_read_timeout(anon_settings, 0.5)
    held.faults.delay_next(100, seconds=2)

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 1
    assert result.stderr.count("Error:") == 1
    assert "No response from" in result.stderr
    # At most 8 calls are under way at once, so the 9th without a response was sent after the 1st failed.
    lines = result.stdout.splitlines()
    assert len(lines) == 10
    assert all(line.startswith("Job ") and "reading timed out" in line for line in lines[:9])
    assert lines[-1] == (
        f"Reset 0 of 40 jobs on sandbox: {held.url} before stopping, 9 failed, 31 not sent or without a "
        "response. Check their status before running the command again."
    )


def test_tool_stop_keeps_jobs_done_before(held, server):
    job_ids = create_jobs(held, 60, status=JobStatus.DONE)
    tool = AnonClientTool(held.user_name, held.token, timeout=(5.0, 0.5))
    done = []

    def on_done(job_id, error):
        done.append(job_id)
        if len(done) == 10:
            held.faults.delay_next(100, seconds=2)

    with pytest.raises(NoResponseError) as caught:
        tool.reset_jobs(server, job_ids, 4, on_done)

    result = caught.value.bulk_result
    assert len(result.succeeded) >= 10
    assert len(result.failed) == 5
    assert all(isinstance(error, NoResponseError) for error in result.failed.values())
    assert len(result.succeeded) + len(result.failed) < 60


def test_job_cancel_reports_stop(work_dir, held, server, anon_settings):
    job_ids = create_jobs(held, 12, status=JobStatus.ACTIVE)
    set_read_timeout(anon_settings, 0.5)
    held.faults.delay_next(100, seconds=2)

    result = run("job", "cancel", "--yes", f"{job_ids[0]}-{job_ids[-1]}")

    assert result.exit_code == 1
    assert result.stderr.count("reading timed out") == 10
    assert result.stdout.splitlines()[-1].startswith("Changed 0 of 12 jobs on sandbox before stopping, 9 failed, ")


def test_batch_file_ids_written_as_server_writes_them(work_dir, held, server):
    job_ids = create_jobs(held, 2, status=JobStatus.DONE)
    (work_dir / BATCH_FILE_NAME).write_text(yaml.safe_dump({
        "job_ids": [job_ids[0], job_ids[0], "00" + job_ids[1]],
        "server": {"name": "sandbox", "url": held.url},
    }))

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"Reset 2 of 2 jobs on sandbox: {held.url}, 0 failed."]


def test_batch_file_with_non_ascii_digit(work_dir, held, server):
    (work_dir / BATCH_FILE_NAME).write_text(
        yaml.safe_dump({"job_ids": ["1", "\u00b2"], "server": {"name": "sandbox", "url": held.url}})
    )

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 1
    assert "job ids must be whole numbers, got '\u00b2'" in result.stderr
    assert "Traceback" not in result.output


def test_reset_few_slow_calls_do_not_stop_run(work_dir, held, server, anon_settings):
    job_ids = create_jobs(held, 60, status=JobStatus.DONE)
    make_batch(work_dir, server, job_ids)
    set_read_timeout(anon_settings, 0.5)
    # Three calls that are under way together time out together.
    held.faults.delay_next(3, seconds=2)

    result = run("batch", "reset", "--yes")

    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1] == f"Reset 57 of 60 jobs on sandbox: {held.url}, 3 failed."
