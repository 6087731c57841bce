"""Processing of sandbox jobs: sources, de-identification, destinations and every failure case."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List

import pydicom
import pytest
import requests
import yaml

from anonapi.responses import JobStatus
from anonapi.sandbox import Sandbox
from anonapi.sandbox.db import SandboxStore
from anonapi.sandbox.testdata import find_leaked_values, write_study

PROJECT = "Wetenschap-Algemeen"
OPTED_OUT_PATIENT = "OPTOUT-77"


class Environment:
    """A running sandbox with input, output and read-only shares, a PACS folder and an opt-out list."""

    def __init__(self, sandbox: Sandbox, root: Path):
        self.sandbox = sandbox
        self.share = root / "share"
        self.output = root / "output"
        self.pacs = root / "pacs"
        self.session = requests.Session()

    def create_job(self, **fields: Any) -> int:
        arguments = {
            "user_name": self.sandbox.user_name,
            "destination_type": "PATH",
            "destination_path": r"\\server\output",
            "project_name": PROJECT,
            "anonymizedpatientname": "PSEUDO^NAME",
            "anonymizedpatientid": "PSEUDO-001",
        }
        arguments.update(fields)
        response = self.session.post(
            f"{self.sandbox.url}/create_job",
            data=arguments,
            headers={"Authorization": f"Token {self.sandbox.token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()["job_id"]

    def create_path_job(self, source_path: str, **fields: Any) -> int:
        return self.create_job(source_type="PATH", source_path=source_path, **fields)

    def create_wado_job(self, instance_id: str, **fields: Any) -> int:
        return self.create_job(source_type="WADO", source_name="IDC_WADO", source_instance_id=instance_id, **fields)

    def post(self, function: str, **fields: Any) -> Dict[str, Any]:
        fields.setdefault("user_name", self.sandbox.user_name)
        response = self.session.post(
            f"{self.sandbox.url}/{function}",
            data=fields,
            headers={"Authorization": f"Token {self.sandbox.token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def run(self, job_id: int) -> Dict[str, Any]:
        """Wait for the job to finish and return its stored fields."""
        self.sandbox.wait_for_jobs([job_id], timeout=60)
        return self.sandbox.get_job(job_id)

    def output_files(self, job_id: int) -> List[Path]:
        return sorted((self.output / str(job_id)).glob("*.dcm"))


@pytest.fixture
def env(tmp_path: Path):
    for name in ("share", "output", "pacs", "readonly"):
        (tmp_path / name).mkdir()
    opt_out_file = tmp_path / "opt_out.txt"
    opt_out_file.write_text(f"# patients who opted out\n{OPTED_OUT_PATIENT}\n", encoding="utf-8")
    with Sandbox(
        data_dir=tmp_path / "data",
        shares={"share": tmp_path / "share", "output": tmp_path / "output"},
        read_only_shares={"readonly": tmp_path / "readonly"},
        pacs_dir=tmp_path / "pacs",
        opt_out_file=opt_out_file,
        poll_interval=0.05,
    ) as sandbox:
        yield Environment(sandbox, tmp_path)


# PATH jobs


def test_folder_job_done(env):
    study = write_study(env.share / "study1", "PID-1001", "Jansen^Anna")
    job = env.run(env.create_path_job(r"\\server\share\study1"))
    assert job["status"] == JobStatus.DONE
    assert job["error"] is None


def test_folder_job_counts_files(env):
    write_study(env.share / "study1", "PID-1001")
    job = env.run(env.create_path_job(r"\\server\share\study1"))
    assert job["files_downloaded"] == 2
    assert job["files_processed"] == 2


def test_folder_job_writes_one_file_per_input(env):
    write_study(env.share / "study1", "PID-1001")
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    assert len(env.output_files(job_id)) == 2


def test_folder_prefix_and_forward_slashes(env):
    write_study(env.share / "study1", "PID-1001")
    job = env.run(env.create_path_job("folder://server/share/study1"))
    assert job["status"] == JobStatus.DONE


def test_folder_job_reads_subfolders(env):
    write_study(env.share / "study1" / "series1", "PID-1001", source_files=("CT_small.dcm",))
    write_study(env.share / "study1" / "series2", "PID-1001", source_files=("MR_small.dcm",))
    job = env.run(env.create_path_job(r"\\server\share\study1"))
    assert job["files_processed"] == 2


def test_share_name_is_case_insensitive(env):
    write_study(env.share / "study1", "PID-1001")
    job = env.run(env.create_path_job(r"\\server\SHARE\study1"))
    assert job["status"] == JobStatus.DONE


def test_file_selection_job_done(env):
    study = write_study(env.share / "study1", "PID-1001")
    (env.share / "study1" / "notes.txt").write_text("not DICOM", encoding="utf-8")
    selection = {"description": "test", "id": "1", "selected_paths": [study.paths[0].name]}
    (env.share / "study1" / "fileselection.txt").write_text(yaml.safe_dump(selection), encoding="utf-8")
    job = env.run(env.create_path_job(r"fileselection:\\server\share\study1\fileselection.txt"))
    assert job["status"] == JobStatus.DONE
    assert job["files_processed"] == 1


def test_file_selection_of_upstream_format(env):
    write_study(env.share / "study1", "PID-1001", source_files=("CT_small.dcm",))
    os.rename(env.share / "study1" / "IM0001.dcm", env.share / "study1" / "CT_small.dcm")
    upstream_file = Path(__file__).parent / "data" / "upstream-2.1.2" / "fileselection.txt"
    (env.share / "study1" / "fileselection.txt").write_bytes(upstream_file.read_bytes())
    job = env.run(env.create_path_job(r"fileselection:\\server\share\study1\fileselection.txt"))
    assert job["status"] == JobStatus.DONE


# De-identification


def test_output_has_pseudonyms(env):
    write_study(env.share / "study1", "PID-1001", "Jansen^Anna")
    job_id = env.create_path_job(r"\\server\share\study1", anonymizedpatientname="Study^P01",
                                 anonymizedpatientid="P01")
    env.run(job_id)
    dataset = pydicom.dcmread(str(env.output_files(job_id)[0]))
    assert str(dataset.PatientName) == "Study^P01"
    assert dataset.PatientID == "P01"


def test_output_keeps_study_together(env):
    write_study(env.share / "study1", "PID-1001")
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    study_uids = {pydicom.dcmread(str(path)).StudyInstanceUID for path in env.output_files(job_id)}
    assert len(study_uids) == 1


@pytest.mark.parametrize(
    "source_files",
    [
        ("CT_small.dcm", "MR_small.dcm"),
        ("rtplan.dcm", "rtdose.dcm"),
        ("JPEG2000.dcm", "CT_small.dcm"),
    ],
)
def test_output_contains_no_original_identifiers(env, source_files):
    study = write_study(
        env.share / "study1", "PID-98765", "Vermeulen^Geertruida", birth_date="19390417",
        accession_number="ACC-55501", source_files=source_files,
    )
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    outputs = env.output_files(job_id)
    assert len(outputs) == len(source_files)
    assert find_leaked_values(outputs, study.values) == {}


def test_output_has_no_private_elements(env):
    write_study(env.share / "study1", "PID-1001", source_files=("CT_small.dcm",))
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    dataset = pydicom.dcmread(str(env.output_files(job_id)[0]))
    assert not [element for element in dataset.iterall() if element.tag.is_private]


def test_output_birth_date_empty(env):
    write_study(env.share / "study1", "PID-1001", source_files=("CT_small.dcm",))
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    dataset = pydicom.dcmread(str(env.output_files(job_id)[0]))
    assert dataset.PatientBirthDate == ""


def test_output_free_text_removed(env):
    study = write_study(env.share / "study1", "PID-1001", source_files=("CT_small.dcm",))
    dataset = pydicom.dcmread(str(study.paths[0]))
    dataset.StudyDescription = "Follow-up for Mrs Jansen"
    dataset.ImageComments = "called patient at home"
    dataset.save_as(str(study.paths[0]))
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    output = pydicom.dcmread(str(env.output_files(job_id)[0]))
    assert "StudyDescription" not in output
    assert "ImageComments" not in output


def test_source_files_unchanged(env):
    study = write_study(env.share / "study1", "PID-1001")
    before = [path.read_bytes() for path in study.paths]
    env.run(env.create_path_job(r"\\server\share\study1"))
    assert [path.read_bytes() for path in study.paths] == before


def test_pims_job_gets_stable_pseudonym(env):
    write_study(env.share / "study1", "PID-1001")
    write_study(env.share / "study2", "PID-1001")
    first = env.create_path_job(r"\\server\share\study1", pims_keyfile_id="12",
                                anonymizedpatientname="", anonymizedpatientid="")
    second = env.create_path_job(r"\\server\share\study2", pims_keyfile_id="12",
                                 anonymizedpatientname="", anonymizedpatientid="")
    first_job, second_job = env.run(first), env.run(second)
    assert first_job["source_anonymizedpatientid"].startswith("PIMS12-")
    assert first_job["source_anonymizedpatientid"] == second_job["source_anonymizedpatientid"]


def test_rerun_overwrites_output(env):
    write_study(env.share / "study1", "PID-1001")
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    env.post("modify_job", job_id=job_id, status="ACTIVE", files_downloaded=0, files_processed=0, error=" ")
    env.run(job_id)
    assert len(env.output_files(job_id)) == 2


# WADO jobs


def test_wado_job_by_study_uid(env):
    study = write_study(env.pacs / "a", "PID-2001")
    job = env.run(env.create_wado_job(study.study_instance_uid))
    assert job["status"] == JobStatus.DONE
    assert job["files_processed"] == 2


def test_wado_job_by_accession_number(env):
    study = write_study(env.pacs / "a", "PID-2001", accession_number="1234567.12345678")
    job = env.run(env.create_wado_job("accession_number:1234567.12345678"))
    assert job["status"] == JobStatus.DONE


def test_wado_job_finds_files_added_after_start(env):
    study = write_study(env.pacs / "later", "PID-2002")
    job_id = env.create_wado_job(study.study_instance_uid)
    assert env.run(job_id)["status"] == JobStatus.DONE


def test_wado_job_output_de_identified(env):
    study = write_study(env.pacs / "a", "PID-2001", "Bakker^Cor", source_files=("rtplan.dcm", "rtdose.dcm"))
    job_id = env.create_wado_job(study.study_instance_uid)
    env.run(job_id)
    assert find_leaked_values(env.output_files(job_id), study.values) == {}


def test_wado_job_sop_class_filter(env):
    study = write_study(env.pacs / "a", "PID-2001", source_files=("CT_small.dcm", "MR_small.dcm"))
    ct_image_storage = "1.2.840.10008.5.1.4.1.1.2"
    job_id = env.create_wado_job(study.study_instance_uid, source_sop_class_filter_list=ct_image_storage)
    env.run(job_id)
    outputs = env.output_files(job_id)
    assert [pydicom.dcmread(str(path)).SOPClassUID for path in outputs] == [ct_image_storage]


def test_wado_job_filter_matching_nothing_fails(env):
    study = write_study(env.pacs / "a", "PID-2001", source_files=("CT_small.dcm",))
    job = env.run(env.create_wado_job(study.study_instance_uid, source_sop_class_filter_list="1.2.3.4"))
    assert job["status"] == JobStatus.ERROR
    assert "no objects of SOP classes 1.2.3.4" in job["error"]


def test_wado_job_unknown_study_fails_like_archive_404(env):
    job_id = env.create_wado_job("1.2.3.4.5.6")
    job = env.run(job_id)
    assert job["status"] == JobStatus.ERROR
    assert job["error"].startswith(f"Error while pre-processing job {job_id}: WadoWrapperException")
    assert "studyInstanceUID=1.2.3.4.5.6" in job["error"]
    assert job["error"].endswith("Original error:'HTTP Error 404: Not Found'")


def test_wado_job_unknown_accession_number_fails(env):
    job = env.run(env.create_wado_job("accession_number:999"))
    assert "accessionNumber=999" in job["error"]


# Failure cases of PATH jobs


def test_missing_source_folder_fails(env):
    job = env.run(env.create_path_job(r"\\server\share\nothing_here"))
    assert job["status"] == JobStatus.ERROR
    assert "does not exist" in job["error"]


def test_empty_source_folder_fails(env):
    (env.share / "empty").mkdir()
    job = env.run(env.create_path_job(r"\\server\share\empty"))
    assert "contains no files" in job["error"]


def test_non_dicom_file_in_folder_fails(env):
    write_study(env.share / "study1", "PID-1001")
    (env.share / "study1" / "report.txt").write_text("not DICOM", encoding="utf-8")
    job_id = env.create_path_job(r"\\server\share\study1")
    job = env.run(job_id)
    assert job["status"] == JobStatus.ERROR
    assert "report.txt is not a DICOM file" in job["error"]


def test_non_dicom_failure_writes_nothing(env):
    write_study(env.share / "study1", "PID-1001")
    (env.share / "study1" / "report.txt").write_text("not DICOM", encoding="utf-8")
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    assert not (env.output / str(job_id)).exists()


def test_unknown_share_fails(env):
    job = env.run(env.create_path_job(r"\\server\elsewhere\study1"))
    assert job["status"] == JobStatus.ERROR
    assert "Share 'elsewhere'" in job["error"]


def test_path_that_is_not_unc_fails(env):
    job = env.run(env.create_path_job("/etc"))
    assert job["status"] == JobStatus.ERROR
    assert "is not a UNC path" in job["error"]


def test_file_selection_missing_file_fails(env):
    (env.share / "sel").mkdir()
    selection = {"selected_paths": ["missing.dcm"]}
    (env.share / "sel" / "fileselection.txt").write_text(yaml.safe_dump(selection), encoding="utf-8")
    job = env.run(env.create_path_job(r"fileselection:\\server\share\sel\fileselection.txt"))
    assert job["status"] == JobStatus.ERROR
    assert "do not exist" in job["error"]


def test_file_selection_invalid_yaml_fails(env):
    (env.share / "sel").mkdir()
    (env.share / "sel" / "fileselection.txt").write_text("selected_paths: [unclosed", encoding="utf-8")
    job = env.run(env.create_path_job(r"fileselection:\\server\share\sel\fileselection.txt"))
    assert "Could not read file selection" in job["error"]


# Paths that leave a share


def test_dotdot_source_refused(env, tmp_path):
    write_study(tmp_path / "secret", "PID-SECRET")
    job = env.run(env.create_path_job(r"\\server\share\..\secret"))
    assert job["status"] == JobStatus.ERROR
    assert "leaves share 'share'" in job["error"]


def test_dotdot_source_touches_no_file(env, tmp_path):
    write_study(tmp_path / "secret", "PID-SECRET")
    job_id = env.create_path_job(r"\\server\share\..\secret")
    env.run(job_id)
    assert list(env.output.iterdir()) == []


def test_dotdot_inside_share_allowed(env):
    write_study(env.share / "study1", "PID-1001")
    (env.share / "other").mkdir()
    job = env.run(env.create_path_job(r"\\server\share\other\..\study1"))
    assert job["status"] == JobStatus.DONE


def test_symlinked_file_out_of_share_refused(env, tmp_path):
    secret = write_study(tmp_path / "secret", "PID-SECRET", source_files=("CT_small.dcm",))
    write_study(env.share / "study1", "PID-1001")
    (env.share / "study1" / "link.dcm").symlink_to(secret.paths[0])
    job_id = env.create_path_job(r"\\server\share\study1")
    job = env.run(job_id)
    assert job["status"] == JobStatus.ERROR
    assert "leaves share" in job["error"]
    assert job["files_downloaded"] == 0


def test_symlinked_folder_out_of_share_refused(env, tmp_path):
    write_study(tmp_path / "secret", "PID-SECRET")
    write_study(env.share / "study1", "PID-1001")
    (env.share / "study1" / "linked").symlink_to(tmp_path / "secret")
    job = env.run(env.create_path_job(r"\\server\share\study1"))
    assert job["status"] == JobStatus.ERROR
    assert "leaves share" in job["error"]


def test_symlinked_source_folder_refused(env, tmp_path):
    write_study(tmp_path / "secret", "PID-SECRET")
    (env.share / "linked").symlink_to(tmp_path / "secret")
    job = env.run(env.create_path_job(r"\\server\share\linked"))
    assert "leaves share" in job["error"]


def test_file_selection_entry_out_of_share_refused(env, tmp_path):
    secret = write_study(tmp_path / "secret", "PID-SECRET", source_files=("CT_small.dcm",))
    (env.share / "sel").mkdir()
    selection = {"selected_paths": ["../../secret/" + secret.paths[0].name]}
    (env.share / "sel" / "fileselection.txt").write_text(yaml.safe_dump(selection), encoding="utf-8")
    job_id = env.create_path_job(r"fileselection:\\server\share\sel\fileselection.txt")
    job = env.run(job_id)
    assert job["status"] == JobStatus.ERROR
    assert "leaves share" in job["error"]
    assert not (env.output / str(job_id)).exists()


def test_file_selection_file_out_of_share_refused(env, tmp_path):
    (tmp_path / "fileselection.txt").write_text("selected_paths: [a.dcm]", encoding="utf-8")
    job = env.run(env.create_path_job(r"fileselection:\\server\share\..\fileselection.txt"))
    assert "leaves share" in job["error"]


def test_destination_out_of_share_refused(env, tmp_path):
    write_study(env.share / "study1", "PID-1001")
    (tmp_path / "outside").mkdir()
    job_id = env.create_path_job(r"\\server\share\study1", destination_path=r"\\server\output\..\outside")
    job = env.run(job_id)
    assert job["status"] == JobStatus.ERROR
    assert "leaves share" in job["error"]
    assert list((tmp_path / "outside").iterdir()) == []


# Destinations that cannot be written


def test_missing_destination_fails(env):
    write_study(env.share / "study1", "PID-1001")
    job = env.run(env.create_path_job(r"\\server\share\study1", destination_path=r"\\server\output\missing"))
    assert job["status"] == JobStatus.ERROR
    assert r"Destination folder \\server\output\missing does not exist" in job["error"]


def test_read_only_destination_fails(env):
    write_study(env.share / "study1", "PID-1001")
    job = env.run(env.create_path_job(r"\\server\share\study1", destination_path=r"\\server\readonly"))
    assert job["status"] == JobStatus.ERROR
    assert "read-only" in job["error"]


def test_full_destination_fails_with_errno_28(env):
    write_study(env.share / "study1", "PID-1001")
    env.sandbox.faults.fill_destination()
    job_id = env.create_path_job(r"\\server\share\study1")
    job = env.run(job_id)
    assert job["status"] == JobStatus.ERROR
    assert job["error"].startswith(f"Could not move file IM0001.dcm to \\\\server\\output\\{job_id}\\, ")
    assert job["error"].endswith("original error:[Errno 28] No space left on device")


def test_full_destination_leaves_no_partial_file(env):
    write_study(env.share / "study1", "PID-1001")
    env.sandbox.faults.fill_destination()
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    assert not list((env.output).rglob("*.part"))


def test_full_destination_job_runs_after_reset(env):
    write_study(env.share / "study1", "PID-1001")
    env.sandbox.faults.fill_destination()
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    env.sandbox.faults.fill_destination(False)
    env.post("modify_job", job_id=job_id, status="ACTIVE", files_downloaded=0, files_processed=0, error=" ")
    assert env.run(job_id)["status"] == JobStatus.DONE


# Opt-out


def test_opted_out_patient_fails(env):
    write_study(env.share / "study1", OPTED_OUT_PATIENT)
    job_id = env.create_path_job(r"\\server\share\study1")
    job = env.run(job_id)
    assert job["status"] == JobStatus.ERROR
    assert job["error"] == (
        f'Error while pre-processing job {job_id}: Patient "{OPTED_OUT_PATIENT}" does not want '
        f"his or her data to be used for research"
    )


def test_opted_out_patient_with_ignore_done(env):
    write_study(env.share / "study1", OPTED_OUT_PATIENT)
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    env.post("modify_job", job_id=job_id, source_ignore_opt_out="True",
             source_ignore_opt_out_reason="Reason: signed consent for this study")
    env.post("modify_job", job_id=job_id, status="ACTIVE", files_downloaded=0, files_processed=0, error=" ")
    assert env.run(job_id)["status"] == JobStatus.DONE


def test_opted_out_wado_study_fails(env):
    study = write_study(env.pacs / "a", OPTED_OUT_PATIENT)
    job = env.run(env.create_wado_job(study.study_instance_uid))
    assert "does not want" in job["error"]


# Worker order, cancel, reset, hold


def test_priority_then_age_order(env, caplog):
    write_study(env.share / "study1", "PID-1001", source_files=("CT_small.dcm",))
    env.sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    low = env.create_path_job(r"\\server\share\study1", priority="10")
    high_old = env.create_path_job(r"\\server\share\study1", priority="50")
    high_new = env.create_path_job(r"\\server\share\study1", priority="50")
    with caplog.at_level(logging.INFO, logger="anonapi.sandbox.worker"):
        env.sandbox.faults.release_jobs()
        env.sandbox.wait_for_jobs([low, high_old, high_new])
    started = [record.args[0] for record in caplog.records if record.msg.startswith("Job %s started")]
    assert started == [high_old, high_new, low]


def test_held_active_job_stays_active(env):
    write_study(env.share / "study1", "PID-1001")
    env.sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job_id = env.create_path_job(r"\\server\share\study1")
    with pytest.raises(TimeoutError):
        env.sandbox.wait_for_jobs([job_id], timeout=0.3)
    assert env.sandbox.get_job(job_id)["status"] == JobStatus.ACTIVE


def test_cancelled_job_not_processed(env):
    write_study(env.share / "study1", "PID-1001")
    env.sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job_id = env.create_path_job(r"\\server\share\study1")
    env.post("cancel_job", job_id=job_id)
    env.sandbox.faults.release_jobs()
    second = env.create_path_job(r"\\server\share\study1")
    env.run(second)
    assert env.sandbox.get_job(job_id)["status"] == JobStatus.INACTIVE
    assert not (env.output / str(job_id)).exists()


def test_job_held_uploaded_then_done(env):
    write_study(env.share / "study1", "PID-1001")
    env.sandbox.faults.hold_jobs(JobStatus.UPLOADED)
    job_id = env.create_path_job(r"\\server\share\study1")
    held = env.sandbox.wait_for_status(job_id, JobStatus.UPLOADED)
    env.sandbox.faults.release_jobs()
    assert held["status"] == JobStatus.UPLOADED
    assert held["files_downloaded"] == 2
    assert held["files_processed"] == 0
    assert env.run(job_id)["status"] == JobStatus.DONE


def test_cancel_while_uploaded_stops_job(env):
    write_study(env.share / "study1", "PID-1001")
    env.sandbox.faults.hold_jobs(JobStatus.UPLOADED)
    job_id = env.create_path_job(r"\\server\share\study1")
    env.sandbox.wait_for_status(job_id, JobStatus.UPLOADED)
    env.post("cancel_job", job_id=job_id)
    env.sandbox.faults.release_jobs()
    env.run(env.create_path_job(r"\\server\share\study1"))
    assert env.sandbox.get_job(job_id)["status"] == JobStatus.INACTIVE


def test_reset_error_job_runs_again(env):
    job_id = env.create_path_job(r"\\server\share\study1")
    assert env.run(job_id)["status"] == JobStatus.ERROR
    write_study(env.share / "study1", "PID-1001")
    env.post("modify_job", job_id=job_id, status="ACTIVE", files_downloaded=0, files_processed=0, error=" ")
    job = env.run(job_id)
    assert job["status"] == JobStatus.DONE
    assert job["error"] is None


def test_wait_for_jobs_unknown_id(env):
    with pytest.raises(KeyError):
        env.sandbox.wait_for_jobs([424242])


def test_wait_for_jobs_keys_as_given(env):
    write_study(env.share / "study1", "PID-1001")
    job_id = env.create_path_job(r"\\server\share\study1")
    assert env.sandbox.wait_for_jobs([str(job_id)]) == {str(job_id): JobStatus.DONE}


# Restarts


def test_jobs_survive_restart(env):
    write_study(env.share / "study1", "PID-1001")
    job_id = env.create_path_job(r"\\server\share\study1")
    env.run(job_id)
    env.sandbox.restart()
    assert env.sandbox.get_job(job_id)["status"] == JobStatus.DONE


def test_uploaded_job_picked_up_after_restart(env):
    write_study(env.share / "study1", "PID-1001")
    env.sandbox.faults.hold_jobs(JobStatus.UPLOADED)
    job_id = env.create_path_job(r"\\server\share\study1")
    env.sandbox.wait_for_status(job_id, JobStatus.UPLOADED)
    env.sandbox.stop()
    stopped_store = SandboxStore(env.sandbox.data_dir)
    status_while_stopped = stopped_store.get_job(job_id)["status"]
    stopped_store.close()
    env.sandbox.faults.release_jobs()
    env.sandbox.start()
    assert status_while_stopped == JobStatus.UPLOADED
    assert env.run(job_id)["status"] == JobStatus.DONE


def test_restart_keeps_url_and_token(env):
    url = env.sandbox.url
    old_token = env.sandbox.token
    env.sandbox.restart()
    response = requests.get(
        f"{url}/get_jobs", data={"user_name": "demo"}, headers={"Authorization": f"Token {old_token}"}, timeout=30
    )
    assert response.status_code == 200
