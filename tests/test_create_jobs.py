"""Tests of creating jobs on the sandbox: the record, the batch, resuming, and a real kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from anonapi.batch import BatchFolder, JobBatch
from anonapi.client import AnonClientTool
from anonapi.creation import plan_creation
from anonapi.exceptions import BatchError, CredentialsRejectedError
from anonapi.jobcreator import CREATION_RECORD_FILE_NAME, CreationRecord, JobCreator, find_jobs_by_token
from anonapi.mapper import MappingFile
from anonapi.objects import RemoteAnonServer

OUTPUT_UNC = "\\\\sandbox\\output"


@pytest.fixture
def server(sandbox) -> RemoteAnonServer:
    return RemoteAnonServer("sandbox", sandbox.url)


@pytest.fixture
def tool(sandbox) -> AnonClientTool:
    return AnonClientTool(sandbox.user_name, sandbox.token)


@pytest.fixture
def work(tmp_path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def write_pacs_mapping(folder: Path, count: int, project: str = "Wetenschap-Algemeen") -> Path:
    """Write a mapping of ``count`` accession number rows with pseudonyms P0, P1, ..."""
    lines = [
        "## Description ##", "", "## Options ##", f"project,{project}", f"destination_path,{OUTPUT_UNC}", "",
        "## Mapping ##", "source,pseudo_id,pseudo_name,description",
    ]
    lines += [f"accession_number:1000.{number},{number},P{number},row {number}" for number in range(count)]
    path = folder / "anon_mapping.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_plan(work: Path, server: RemoteAnonServer):
    mapping_path = work / "anon_mapping.csv"
    return plan_creation(MappingFile(mapping_path).load(), mapping_path=mapping_path, folder=work, server=server)


def create_all(tool, server, work, max_workers: int = 4):
    plan = make_plan(work, server)
    with JobCreator(tool, server, work, max_workers=max_workers) as creator:
        creator.look_up_earlier_attempts(plan)
        return creator.create(plan)


def all_jobs(sandbox) -> List[Dict]:
    return sandbox.store.get_latest_jobs(100_000)


def record_lines(work: Path, kind: str) -> List[Dict]:
    entries = []
    for line in (work / CREATION_RECORD_FILE_NAME).read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [entry for entry in entries if entry["record"] == kind]


# --- creating ------------------------------------------------------------------------


def test_create_saves_ids_in_batch(sandbox, tool, server, work):
    write_pacs_mapping(work, 20)

    result = create_all(tool, server, work)

    assert result.complete
    assert sorted(BatchFolder(work).load().job_ids, key=int) == sorted(result.job_ids, key=int)
    assert len(all_jobs(sandbox)) == 20


def test_create_sends_mapping_values(sandbox, tool, server, work):
    write_pacs_mapping(work, 1)

    job_id = create_all(tool, server, work).job_ids[0]

    job = tool.get_job_info(server, job_id)
    assert job.source_type == "WADO"
    assert job.source_name == "IDC_WADO"
    assert job.source_instance_id == "accession_number:1000.0"
    assert job.source_anonymizedpatientid == "0"
    assert job.source_anonymizedpatientname == "P0"
    assert job.destination_path == OUTPUT_UNC
    assert job.project_name == "Wetenschap-Algemeen"
    assert job.description.startswith("row 0 [anonapi:")


def test_record_maps_rows_to_jobs(tool, server, work):
    write_pacs_mapping(work, 3)

    result = create_all(tool, server, work)

    recorded = {entry["source"]: entry["job_id"] for entry in record_lines(work, "job")}
    assert recorded == {request.source: job_id for request, job_id in result.created}


def test_rerun_creates_nothing(sandbox, tool, server, work):
    write_pacs_mapping(work, 5)
    create_all(tool, server, work)

    plan = make_plan(work, server)

    assert plan.requests == []
    assert len(plan.already_created) == 5


def test_rerun_creates_new_rows_only(sandbox, tool, server, work):
    write_pacs_mapping(work, 3)
    first = create_all(tool, server, work)
    write_pacs_mapping(work, 5)

    second = create_all(tool, server, work)

    assert len(second.created) == 2
    assert len(all_jobs(sandbox)) == 5
    assert len(BatchFolder(work).load().job_ids) == len(first.job_ids) + 2


def test_batch_of_other_server_rejected(sandbox, tool, server, work):
    write_pacs_mapping(work, 2)
    BatchFolder(work).save(JobBatch(["1"], RemoteAnonServer("other", "https://other/api")))

    with pytest.raises(BatchError, match="belongs to other"):
        create_all(tool, server, work)
    assert all_jobs(sandbox) == []


def test_second_creator_locked_out(tool, server, work):
    with JobCreator(tool, server, work):
        with pytest.raises(BatchError, match="Another 'anon create'"):
            with JobCreator(tool, server, work):
                pass


def test_lock_released_after_exit(tool, server, work):
    with JobCreator(tool, server, work):
        pass

    with JobCreator(tool, server, work) as creator:
        assert creator.record.path.exists()


# --- failures --------------------------------------------------------------------------


def test_rejected_job_recorded_and_retried(sandbox, server, work):
    token = sandbox.add_user("outsider", "secret", projects=[])
    write_pacs_mapping(work, 3)

    failed = create_all(AnonClientTool("outsider", token), server, work, max_workers=1)

    assert len(failed.failed) == 1
    assert len(failed.not_sent) == 2
    assert len(record_lines(work, "rejected")) == 1
    retried = create_all(AnonClientTool(sandbox.user_name, sandbox.token), server, work)
    assert len(retried.created) == 3


def test_credentials_rejected_stops(sandbox, server, work):
    write_pacs_mapping(work, 3)

    with pytest.raises(CredentialsRejectedError):
        create_all(AnonClientTool(sandbox.user_name, "wrong-token"), server, work)
    assert all_jobs(sandbox) == []


def test_server_error_stops_creation(sandbox, tool, server, work):
    write_pacs_mapping(work, 4)
    plan = make_plan(work, server)

    with JobCreator(tool, server, work, max_workers=1) as creator:
        creator.look_up_earlier_attempts(plan)
        sandbox.faults.fail_next(1, status=500)
        result = creator.create(plan)

    assert len(result.unknown) == 1
    assert len(result.not_sent) == 3
    assert all_jobs(sandbox) == []


def test_rerun_after_server_error_completes(sandbox, tool, server, work):
    write_pacs_mapping(work, 4)
    plan = make_plan(work, server)
    with JobCreator(tool, server, work, max_workers=1) as creator:
        creator.look_up_earlier_attempts(plan)
        sandbox.faults.fail_next(1, status=500)
        creator.create(plan)

    result = create_all(tool, server, work)

    assert len(result.created) == 4
    assert len(record_lines(work, "not_found")) == 1
    assert len(all_jobs(sandbox)) == 4


def test_time_out_then_rerun_creates_once(sandbox, server, work):
    write_pacs_mapping(work, 2)
    impatient = AnonClientTool(sandbox.user_name, sandbox.token, timeout=(5.0, 0.3))
    plan = make_plan(work, server)
    with JobCreator(impatient, server, work, max_workers=1) as creator:
        creator.look_up_earlier_attempts(plan)
        sandbox.faults.delay_next(1, seconds=1.0)
        first = creator.create(plan)
    assert len(first.unknown) == 1

    second = create_all(AnonClientTool(sandbox.user_name, sandbox.token), server, work)

    assert len(second.created) == 2
    assert len(all_jobs(sandbox)) == 2
    assert len(BatchFolder(work).load().job_ids) == 2


# --- resuming after a crash ------------------------------------------------------------


def crash_after_sending(tool, server, work, count: int) -> List[str]:
    """Do what a run killed right after the server created ``count`` jobs leaves behind.

    Intent lines are written and the requests sent, but no job line. Returns the job ids.
    """
    plan = make_plan(work, server)
    record = CreationRecord(work)
    record.open_locked()
    job_ids = []
    for number, request in enumerate(plan.requests[:count], start=1):
        token = f"deadbeef-{number}"
        record.append([{"record": "intent", "server": server.url, "token": token, "source": request.key[0],
                        "pseudo_id": request.key[1], "pseudo_name": request.key[2], "line": request.line_number,
                        "floor": 0}])
        job_ids.append(str(request.send(tool, server, token).job_id))
    record.close()
    return job_ids


def test_unrecorded_job_found_on_rerun(sandbox, tool, server, work):
    write_pacs_mapping(work, 5)
    lost_ids = crash_after_sending(tool, server, work, 2)

    result = create_all(tool, server, work)

    assert sorted(job_id for _, job_id in make_plan(work, server).already_created) == sorted(
        lost_ids + [job_id for _, job_id in result.created]
    )
    assert len(result.created) == 3
    assert len(all_jobs(sandbox)) == 5
    assert set(lost_ids) <= set(BatchFolder(work).load().job_ids)


def test_intent_without_job_created_again(sandbox, tool, server, work):
    write_pacs_mapping(work, 1)
    record = CreationRecord(work)
    record.open_locked()
    record.append([{"record": "intent", "server": server.url, "token": "deadbeef-1", "source": "accession_number:1000.0",
                    "pseudo_id": "0", "pseudo_name": "P0", "line": 9, "floor": 0}])
    record.close()

    result = create_all(tool, server, work)

    assert len(result.created) == 1
    assert record_lines(work, "not_found")[0]["tokens"] == ["deadbeef-1"]


def test_unbatched_ids_added_on_next_run(tool, server, work):
    write_pacs_mapping(work, 3)
    create_all(tool, server, work)
    job_ids = BatchFolder(work).load().job_ids
    BatchFolder(work).batch_file_path.unlink()
    lines = (work / CREATION_RECORD_FILE_NAME).read_text().splitlines()
    lines_without_batched = [line for line in lines if json.loads(line)["record"] != "batched"]
    (work / CREATION_RECORD_FILE_NAME).write_text("\n".join(lines_without_batched) + "\n")

    with JobCreator(tool, server, work):
        pass

    assert sorted(BatchFolder(work).load().job_ids) == sorted(job_ids)


def test_cut_off_last_line_ignored(tool, server, work):
    write_pacs_mapping(work, 2)
    create_all(tool, server, work)
    with open(work / CREATION_RECORD_FILE_NAME, "a") as handle:
        handle.write('{"record": "job", "server": "')

    assert make_plan(work, server).requests == []


def test_cut_off_line_ended_before_append(tool, server, work):
    write_pacs_mapping(work, 2)
    (work / CREATION_RECORD_FILE_NAME).write_text('{"record": "job", "server": "')

    create_all(tool, server, work)

    assert len(record_lines(work, "job")) == 2


def test_invalid_line_skipped(server, work):
    (work / CREATION_RECORD_FILE_NAME).write_text(
        '{"record": \n'
        f'{{"record": "job", "server": "{server.url}", "source": "accession_number:1", "job_id": "nine"}}\n'
        f'{{"record": "job", "server": "{server.url}", "source": "accession_number:2", "job_id": "7"}}\n'
    )

    job_ids = CreationRecord(work).read(server).job_ids

    assert job_ids == {("accession_number:2", "", ""): "7"}


def test_other_server_lines_ignored(tool, server, work):
    write_pacs_mapping(work, 2)
    create_all(tool, server, work)

    other = RemoteAnonServer("other", "https://other/api")

    assert CreationRecord(work).read(other).job_ids == {}


def test_lookup_reads_beyond_latest_jobs(sandbox, tool, server, work):
    write_pacs_mapping(work, 60)
    result = create_all(tool, server, work)
    tokens = {entry["token"]: entry["job_id"] for entry in record_lines(work, "job")}

    found = find_jobs_by_token(tool, server, set(tokens), floor=0, latest_job_id=1)

    assert found == tokens
    assert len(result.created) == 60


# --- a real kill -------------------------------------------------------------------------


def anon_command() -> List[str]:
    return [sys.executable, "-m", "anonapi.cli.main"]


def test_kill_and_rerun_loses_nothing(sandbox, anon_settings, work):
    """Kill `anon create from-mapping --yes` three times while it creates jobs, then let it finish."""
    rows = 150
    write_pacs_mapping(work, rows)
    settings = yaml.safe_load(anon_settings.read_text())
    settings["max_concurrent_requests"] = 4
    anon_settings.write_text(yaml.safe_dump(settings))
    sandbox.faults.hold_jobs("ACTIVE")
    # Slow every call down a little, so the kills land while requests are in flight.
    sandbox.faults.delay_next(100_000, seconds=0.01)
    environment = dict(os.environ, ANONAPI_SETTINGS=str(anon_settings))
    command = anon_command() + ["create", "from-mapping", "--yes"]

    for kill_after_jobs in (10, 50, 90):
        process = subprocess.Popen(command, cwd=work, env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(all_jobs(sandbox)) < kill_after_jobs and process.poll() is None:
            assert time.monotonic() < deadline, "creation did not progress"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL, "creation ended before it was killed"

    finished = subprocess.run(command, cwd=work, env=environment, capture_output=True, text=True, timeout=120)

    assert finished.returncode == 0, finished.stderr
    jobs = all_jobs(sandbox)
    sources = [job["source_instance_id"] for job in jobs]
    assert len(jobs) == rows
    assert len(set(sources)) == rows
    assert sorted(BatchFolder(work).load().job_ids, key=int) == sorted((str(job["job_id"]) for job in jobs), key=int)
