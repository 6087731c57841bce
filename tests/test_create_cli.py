"""The ``anon create`` commands, run in-process against the sandbox, and the researcher's whole route.

The route tests run what the tutorials describe: ``map init``,
``map add-study-folders`` (or ``add-accession-numbers``), ``create
from-mapping --yes`` and ``batch status``, on folders of real DICOM files
mixed with other files, and check that every job ends DONE with
de-identified output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List

import pytest
import yaml
from click.testing import CliRunner, Result

from anonapi.batch import BatchFolder
from anonapi.cli.main import cli
from anonapi.jobcreator import CREATION_RECORD_FILE_NAME
from anonapi.sandbox.testdata import find_leaked_values, write_study
from anonapi.settings import SettingsFile, default_settings_path

SHARE_UNC = "\\\\sandbox\\share"
OUTPUT_UNC = "\\\\sandbox\\output"
PROJECT = "Wetenschap-Algemeen"


def run_anon(*arguments: str, input: str = None) -> Result:  # noqa: A002 - CliRunner's name
    return CliRunner().invoke(cli, list(arguments), input=input, catch_exceptions=False)


def update_settings(**values) -> None:
    settings_file = SettingsFile(default_settings_path())
    settings = settings_file.load()
    for name, value in values.items():
        setattr(settings, name, value)
    settings_file.save(settings)


def write_mapping(folder: Path, rows: List[str], destination: str = OUTPUT_UNC) -> Path:
    lines = [
        "## Description ##", "", "## Options ##", f"root_source_path,{SHARE_UNC}", f"project,{PROJECT}",
        f"destination_path,{destination}", "", "## Mapping ##", "source,pseudo_id,pseudo_name,description",
    ]
    path = folder / "anon_mapping.csv"
    path.write_text("\n".join(lines + rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def share(tmp_path) -> Path:
    return tmp_path / "share"


@pytest.fixture
def project(tmp_path, anon_settings, share, monkeypatch) -> Path:
    """The current folder, with the sandbox's share reachable through unc_paths."""
    folder = tmp_path / "project"
    folder.mkdir()
    update_settings(unc_paths={str(share): SHARE_UNC})
    monkeypatch.chdir(folder)
    return folder


def all_jobs(sandbox):
    return sandbox.store.get_latest_jobs(100_000)


# --- from-mapping ---------------------------------------------------------------------


def test_from_mapping_creates_and_saves_batch(sandbox, project):
    write_mapping(project, ["accession_number:1,001,A,", "accession_number:2,002,B,"])

    result = run_anon("create", "from-mapping", "--yes")

    assert result.exit_code == 0, result.output
    assert "Created 2 jobs: 1-2" in result.stdout
    assert sorted(BatchFolder(project).load().job_ids) == ["1", "2"]


def test_from_mapping_lists_each_job(sandbox, project):
    write_mapping(project, ["accession_number:1,001,A,"])

    result = run_anon("create", "from-mapping", "--yes")

    assert "Created job 1 for line 10 (A)" in result.stdout


def test_confirmation_names_server_and_destination(sandbox, project):
    write_mapping(project, ["accession_number:1,001,A,", "accession_number:2,002,B,"])

    result = run_anon("create", "from-mapping", input="n\n")

    assert f"This will create 2 jobs on sandbox ({sandbox.url}), for project '{PROJECT}'" in result.stdout
    assert f"writing data to '{OUTPUT_UNC}'" in result.stdout


def test_declined_confirmation_creates_nothing(sandbox, project):
    write_mapping(project, ["accession_number:1,001,A,"])

    result = run_anon("create", "from-mapping", input="n\n")

    assert result.exit_code == 0
    assert "Cancelled. No job was created." in result.stdout
    assert all_jobs(sandbox) == []


def test_dry_run_sends_nothing(sandbox, project):
    write_mapping(project, ["accession_number:1,001,A,desc"])

    result = run_anon("create", "from-mapping", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "source_instance_id     accession_number:1" in result.stdout
    assert all_jobs(sandbox) == []
    assert not (project / ".anonbatch").exists()
    assert not (project / CREATION_RECORD_FILE_NAME).exists()


def test_dry_run_shows_path_arguments(sandbox, project, share):
    write_study(share / "patient1", patient_id="P1")
    write_mapping(project, ["folder:patient1,001,A,"])

    result = run_anon("create", "from-mapping", "--dry-run")

    assert "source_path            folder:\\\\sandbox\\share\\patient1" in result.stdout
    assert "anonymizedpatientid    001" in result.stdout


def test_problems_listed_before_anything_is_sent(sandbox, project):
    write_mapping(project, ["folder:missing,001,A,", "accession_number:2,,,"], destination="/mnt/out")

    result = run_anon("create", "from-mapping", "--yes")

    assert result.exit_code == 1
    assert "Found 3 problems in mapping" in result.stderr
    assert "line 10: 'folder:missing' is not found" in result.stderr
    assert "line 11: 'accession_number:2' has no pseudonym" in result.stderr
    assert "Options: destination_path '/mnt/out' is not a UNC path" in result.stderr
    assert all_jobs(sandbox) == []


def test_filter_creates_matching_rows(sandbox, project):
    write_mapping(project, ["accession_number:1,001,A,", "accession_number:2,002,B,"])

    result = run_anon("create", "from-mapping", "--yes", "--filter", "B")

    assert result.exit_code == 0, result.output
    assert [job["source_anonymizedpatientname"] for job in all_jobs(sandbox)] == ["B"]


def test_rerun_skips_created_rows(sandbox, project):
    write_mapping(project, ["accession_number:1,001,A,"])
    run_anon("create", "from-mapping", "--yes")

    result = run_anon("create", "from-mapping", "--yes")

    assert "Skipping 1 rows that already have a job (jobs 1)." in result.stdout
    assert "Nothing to create" in result.stdout
    assert len(all_jobs(sandbox)) == 1


def test_active_mapping_used_from_other_folder(sandbox, project, tmp_path, monkeypatch):
    mapping_path = write_mapping(project, ["accession_number:1,001,A,"])
    update_settings(active_mapping_file=mapping_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    result = run_anon("create", "from-mapping", "--yes")

    assert result.exit_code == 0, result.output
    assert BatchFolder(elsewhere).load().job_ids == ["1"]


def test_no_mapping_explained(sandbox, project):
    result = run_anon("create", "from-mapping", "--yes")

    assert result.exit_code == 1
    assert "anon map init" in result.stderr


def test_rejected_job_ends_with_error(sandbox, project):
    token = sandbox.add_user("outsider", "secret", projects=[])
    update_settings(user_name="outsider", user_token=token, max_concurrent_requests=1)
    write_mapping(project, ["accession_number:1,001,A,", "accession_number:2,002,B,"])

    result = run_anon("create", "from-mapping", "--yes")

    assert result.exit_code == 1
    assert "Created 0 of 2 jobs, then stopped: the server rejected the job for line 10 (A)" in result.stderr
    assert "1 rows were not sent." in result.stderr


def test_record_written_next_to_batch(sandbox, project):
    write_mapping(project, ["accession_number:1,001,A,"])

    run_anon("create", "from-mapping", "--yes")

    lines = [json.loads(line) for line in (project / CREATION_RECORD_FILE_NAME).read_text().splitlines()]
    assert [line["record"] for line in lines] == ["intent", "job", "batched"]


# --- defaults -------------------------------------------------------------------------------


def test_show_defaults(anon_settings, sandbox):
    result = run_anon("create", "show-defaults")

    assert result.exit_code == 0
    assert f"project           {PROJECT}" in result.stdout
    assert f"destination_path  {OUTPUT_UNC}" in result.stdout


def test_set_defaults_options(anon_settings, sandbox):
    result = run_anon("create", "set-defaults", "--project", "Other", "--destination-path", "\\\\srv\\out")

    assert result.exit_code == 0, result.output
    defaults = SettingsFile(default_settings_path()).load().job_defaults
    assert (defaults.project_name, defaults.destination_path) == ("Other", "\\\\srv\\out")


def test_set_defaults_one_option_keeps_other(anon_settings, sandbox):
    run_anon("create", "set-defaults", "--project", "Other")

    defaults = SettingsFile(default_settings_path()).load().job_defaults
    assert (defaults.project_name, defaults.destination_path) == ("Other", OUTPUT_UNC)


def test_set_defaults_prompts(anon_settings, sandbox):
    result = run_anon("create", "set-defaults", input="Other\n\\\\srv\\out\n")

    assert result.exit_code == 0, result.output
    defaults = SettingsFile(default_settings_path()).load().job_defaults
    assert (defaults.project_name, defaults.destination_path) == ("Other", "\\\\srv\\out")


def test_set_defaults_prompt_repeats_after_invalid(anon_settings, sandbox):
    result = run_anon("create", "set-defaults", input="\n/mnt/out\n\\\\srv\\out\n")

    assert "is not a UNC path" in result.output
    assert SettingsFile(default_settings_path()).load().job_defaults.destination_path == "\\\\srv\\out"


def test_set_defaults_rejects_local_path(anon_settings, sandbox):
    result = run_anon("create", "set-defaults", "--destination-path", "C:\\out")

    assert result.exit_code == 1
    assert "Invalid destination path 'C:\\out': it is not a UNC path" in result.stderr


@pytest.mark.skipif(os.sep != "/", reason="the quoting hint is for POSIX shells")
def test_set_defaults_unquoted_unc_hints_quotes(anon_settings, sandbox):
    # What bash passes on for an unquoted \\fileserver01\research\out.
    result = run_anon("create", "set-defaults", "--destination-path", "\\fileserver01researchout")

    assert result.exit_code == 1
    assert "put the path in single quotes" in result.stderr


def test_settings_file_keeps_upstream_format(anon_settings, sandbox):
    run_anon("create", "set-defaults", "--project", "Other")

    stored = yaml.safe_load(Path(default_settings_path()).read_text())
    assert stored["job_default_parameters"] == ["project,Other", f"destination_path,{OUTPUT_UNC}"]


def test_every_create_command_has_help():
    for command in ("from-mapping", "set-defaults", "show-defaults"):
        result = run_anon("create", command, "--help")
        assert result.exit_code == 0
        assert result.stdout.startswith("Usage: ")


# --- the researcher's route ----------------------------------------------------------------


def test_route_from_share_folders(sandbox, project, share, monkeypatch):
    studies = [write_study(share / f"patient{number}" / "study", patient_id=f"ORIG{number}") for number in (1, 2, 3)]
    (share / "patient1" / "study" / "notes.txt").write_text("not DICOM")
    (share / "patient2" / "study" / "report.pdf").write_bytes(b"%PDF-1.4 not DICOM")
    (share / "patient3" / "study" / "DICOMDIR").write_bytes(b"\0" * 200)

    assert run_anon("map", "init", "--yes").exit_code == 0
    monkeypatch.chdir(share)
    added = run_anon("map", "add-study-folders", "patient*/study")
    assert added.exit_code == 0, added.output
    monkeypatch.chdir(project)
    created = run_anon("create", "from-mapping", "--yes")
    assert created.exit_code == 0, created.output + created.stderr

    job_ids = BatchFolder(project).load().job_ids
    statuses = sandbox.wait_for_jobs(job_ids, timeout=120)
    status = run_anon("batch", "status")

    assert len(job_ids) == 3
    assert set(statuses.values()) == {"DONE"}
    assert status.exit_code == 0, status.output
    assert status.stdout.count("DONE") >= 3
    output_files = [path for path in (project.parent / "output").rglob("*") if path.is_file()]
    assert len(output_files) == 6
    leaked = find_leaked_values(output_files, [value for study in studies for value in study.values])
    assert leaked == {}


def test_route_from_pacs(sandbox, project, tmp_path):
    studies = [
        write_study(tmp_path / "pacs" / f"study{number}", patient_id=f"PACS{number}", accession_number=f"ACC00{number}")
        for number in (1, 2)
    ]

    assert run_anon("map", "init", "--yes").exit_code == 0
    added = run_anon("map", "add-accession-numbers", "ACC001", "ACC002")
    assert added.exit_code == 0, added.output
    created = run_anon("create", "from-mapping", "--yes")
    assert created.exit_code == 0, created.output + created.stderr

    job_ids = BatchFolder(project).load().job_ids
    statuses = sandbox.wait_for_jobs(job_ids, timeout=120)
    status = run_anon("batch", "status")

    assert set(statuses.values()) == {"DONE"}
    assert status.exit_code == 0, status.output
    output_files = [path for path in (tmp_path / "output").rglob("*") if path.is_file()]
    assert len(output_files) == 4
    assert find_leaked_values(output_files, [value for study in studies for value in study.values]) == {}
