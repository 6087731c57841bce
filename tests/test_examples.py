"""The scripts in examples/, run as a user would run them, against a sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pydicom
import pytest

from anonapi.client import AnonClientTool
from anonapi.objects import RemoteAnonServer
from anonapi.sandbox.demo import DemoStudy, build_demo_share

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHARE_STUDY = DemoStudy(
    folder="patient01",
    patient_name="Example^Share",
    patient_id="EX-SHARE-01",
    birth_date="19700101",
    accession_number="EXSHARE0001",
    source_files=("CT_small.dcm", "CT_small.dcm"),
)
PACS_STUDY = DemoStudy(
    folder="study_ct_mr",
    patient_name="Example^Pacs",
    patient_id="EX-PACS-01",
    birth_date="19800202",
    accession_number="EXPACS0001",
    source_files=("CT_small.dcm", "MR_small.dcm"),
)
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def run_example(name: str, arguments: List[str], environment: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)] + arguments,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


@pytest.fixture
def environment(sandbox) -> Dict[str, str]:
    """The process environment with the sandbox's URL, user and token, as the examples read them."""
    values = dict(os.environ)
    values.update(ANONAPI_URL=sandbox.url, ANONAPI_USER=sandbox.user_name, ANONAPI_TOKEN=sandbox.token)
    return values


@pytest.fixture
def share_study(tmp_path):
    (original,) = build_demo_share(tmp_path / "share", [SHARE_STUDY])
    return original


@pytest.fixture
def pacs_study(tmp_path):
    (original,) = build_demo_share(tmp_path / "pacs", [PACS_STUDY])
    return original


def created_job_id(result: subprocess.CompletedProcess) -> int:
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[2])


def output_datasets(output_folder: Path) -> List[pydicom.Dataset]:
    return [pydicom.dcmread(str(path)) for path in sorted(output_folder.rglob("*.dcm"))]


def test_create_job_from_share(sandbox, environment, share_study, tmp_path):
    result = run_example(
        "create_job_from_share.py",
        [r"\\sandbox\share\patient01", r"\\sandbox\output", "--pseudo-name", "EXAMPLE-1", "--pseudo-id", "E1"],
        environment,
    )
    job_id = created_job_id(result)

    assert sandbox.wait_for_jobs([job_id]) == {job_id: "DONE"}
    datasets = output_datasets(tmp_path / "output")
    assert len(datasets) == 2
    assert {str(dataset.PatientName) for dataset in datasets} == {"EXAMPLE-1"}
    assert {dataset.PatientID for dataset in datasets} == {"E1"}


def test_create_job_from_pacs(sandbox, environment, pacs_study, tmp_path):
    study_uid = pacs_study.values["StudyInstanceUID"][0]
    result = run_example(
        "create_job_from_pacs.py",
        [study_uid, r"\\sandbox\output", "--pseudo-name", "EXAMPLE-2", "--pseudo-id", "E2"],
        environment,
    )
    job_id = created_job_id(result)

    assert sandbox.wait_for_jobs([job_id]) == {job_id: "DONE"}
    datasets = output_datasets(tmp_path / "output")
    assert len(datasets) == 2
    assert {dataset.PatientID for dataset in datasets} == {"E2"}
    assert study_uid not in {dataset.StudyInstanceUID for dataset in datasets}


def test_create_job_from_pacs_by_accession_number(sandbox, environment, pacs_study, tmp_path):
    result = run_example(
        "create_job_from_pacs.py",
        ["accession_number:EXPACS0001", r"\\sandbox\output", "--pseudo-name", "EXAMPLE-3", "--pseudo-id", "E3"],
        environment,
    )
    job_id = created_job_id(result)

    assert sandbox.wait_for_jobs([job_id]) == {job_id: "DONE"}
    assert len(output_datasets(tmp_path / "output")) == 2


def test_create_job_with_sop_class_filter(sandbox, environment, pacs_study, tmp_path):
    study_uid = pacs_study.values["StudyInstanceUID"][0]
    result = run_example(
        "create_job_with_sop_class_filter.py",
        [study_uid, r"\\sandbox\output", "--pseudo-name", "EXAMPLE-4", "--pseudo-id", "E4",
         "--sop-class", CT_IMAGE_STORAGE],
        environment,
    )
    job_id = created_job_id(result)

    assert sandbox.wait_for_jobs([job_id]) == {job_id: "DONE"}
    datasets = output_datasets(tmp_path / "output")
    assert [dataset.SOPClassUID for dataset in datasets] == [CT_IMAGE_STORAGE]


@pytest.fixture
def finished_job_id(sandbox, share_study) -> int:
    tool = AnonClientTool(username=sandbox.user_name, token=sandbox.token)
    job = tool.create_path_job(
        RemoteAnonServer("sandbox", sandbox.url),
        project_name=sandbox.project_name,
        source_path=r"\\sandbox\share\patient01",
        destination_path=r"\\sandbox\output",
        anon_name="EXAMPLE-5",
        anon_id="E5",
    )
    sandbox.wait_for_jobs([job.job_id])
    return job.job_id


def test_get_job_status(environment, finished_job_id):
    result = run_example("get_job_status.py", [str(finished_job_id)], environment)

    assert result.returncode == 0, result.stderr
    assert "DONE" in result.stdout
    assert "EXAMPLE-5" in result.stdout


def test_get_job_status_unknown_id(environment, finished_job_id):
    result = run_example("get_job_status.py", [str(finished_job_id), "999999"], environment)

    assert result.returncode == 1
    assert "Not found on the server: 999999" in result.stdout


def test_modify_jobs(sandbox, environment, finished_job_id):
    result = run_example("modify_jobs.py", [str(finished_job_id), "--set", "priority=77"], environment)

    assert result.returncode == 0, result.stderr
    assert int(sandbox.get_job(finished_job_id)["priority"]) == 77


def test_modify_jobs_invalid_pair(environment, finished_job_id):
    result = run_example("modify_jobs.py", [str(finished_job_id), "--set", "priority"], environment)

    assert result.returncode == 2
    assert "FIELD=VALUE" in result.stderr


def test_modify_jobs_unknown_job(environment, finished_job_id):
    result = run_example("modify_jobs.py", [str(finished_job_id), "999999", "--set", "priority=10"], environment)

    assert result.returncode == 1
    assert "Job 999999" in result.stderr
    assert f"Job {finished_job_id}: changed priority" in result.stdout


def test_cancel_job(sandbox, environment, finished_job_id):
    result = run_example("cancel_job.py", [str(finished_job_id)], environment)

    assert result.returncode == 0, result.stderr
    assert "INACTIVE" in result.stdout
    assert sandbox.get_job(finished_job_id)["status"] == "INACTIVE"


def test_print_api_documentation(environment):
    result = run_example("print_api_documentation.py", [], environment)

    assert result.returncode == 0, result.stderr
    assert "create_job" in result.stdout


def test_connection_from_arguments(sandbox):
    result = run_example(
        "print_api_documentation.py",
        ["--url", sandbox.url, "--user", sandbox.user_name, "--token", sandbox.token],
        {key: value for key, value in os.environ.items() if not key.startswith("ANONAPI_")},
    )

    assert result.returncode == 0, result.stderr


def test_connection_missing_token(sandbox):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ANONAPI_")}
    result = run_example("print_api_documentation.py", ["--url", sandbox.url, "--user", "someone"], environment)

    assert result.returncode == 2
    assert "--token (or ANONAPI_TOKEN)" in result.stderr


def test_wrong_token_is_reported(sandbox, environment):
    environment["ANONAPI_TOKEN"] = "not-a-valid-token"
    result = run_example("cancel_job.py", ["1"], environment)

    assert result.returncode == 1
    assert "401" in result.stderr
    assert "not-a-valid-token" not in result.stderr
