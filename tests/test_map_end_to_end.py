"""From folders of real DICOM files, and from PACS, to de-identified output on the sandbox.

The researcher's steps: ``anon map init`` in a project folder, ``anon map
add-study-folders`` in the data folder (or ``add-accession-numbers``), then
``anon create from-mapping --yes`` and ``anon batch status`` in the project
folder. The sandbox share ``share`` is the data folder's parent, known to
anonapi through ``unc_paths`` in the settings.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
import yaml
from click.testing import CliRunner
from pydicom.data import get_testdata_file

from anonapi.cli.main import cli
from anonapi.mapper import MappingFile


def run_anon(*arguments: str):
    result = CliRunner().invoke(cli, list(arguments), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def project(sandbox, anon_settings, tmp_path, monkeypatch) -> Path:
    """A project folder with an active mapping; the sandbox share is \\\\localhost\\share in unc_paths."""
    settings = yaml.safe_load(anon_settings.read_text(encoding="utf-8"))
    settings["unc_paths"] = {str(tmp_path / "share"): "\\\\localhost\\share"}
    anon_settings.write_text(yaml.safe_dump(settings), encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    run_anon("map", "init")
    return project


def job_ids(project: Path) -> list:
    return yaml.safe_load((project / ".anonbatch").read_text(encoding="utf-8"))["job_ids"]


def test_study_folders_end_to_end(project, sandbox, tmp_path, monkeypatch):
    data = tmp_path / "share" / "data"
    for patient, name in (("patient1", "CT_small.dcm"), ("patient2", "MR_small.dcm")):
        study = data / patient / "study"
        study.mkdir(parents=True)
        shutil.copyfile(get_testdata_file(name), study / "IM0001")
        (study / "notes.txt").write_text("not an image")
    monkeypatch.chdir(data)
    run_anon("map", "add-study-folders", "*/study")
    monkeypatch.chdir(project)

    run_anon("create", "from-mapping", "--yes")
    statuses = sandbox.wait_for_jobs(job_ids(project), timeout=60)
    assert sorted(statuses.values()) == ["DONE", "DONE"]
    assert "DONE" in run_anon("batch", "status").stdout

    pseudonyms = {row.pseudo_name for row in MappingFile(project / "anon_mapping.csv").load().rows}
    outputs = [path for path in (tmp_path / "output").rglob("*") if path.is_file()]
    assert len(outputs) == 2
    assert {str(pydicom.dcmread(path).PatientName) for path in outputs} == pseudonyms


def test_accession_numbers_end_to_end(project, sandbox, tmp_path):
    dataset = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    dataset.AccessionNumber = "12345678.1234567"
    dataset.save_as(tmp_path / "pacs" / "study.dcm")
    (project / "accession_numbers.csv").write_text("Studies for the trial\naccession number;pseudonym\n12345678.1234567;trialA\n")
    run_anon("map", "add-accession-numbers", "--input-file", "accession_numbers.csv")

    run_anon("create", "from-mapping", "--yes")
    statuses = sandbox.wait_for_jobs(job_ids(project), timeout=60)
    assert list(statuses.values()) == ["DONE"]

    outputs = [path for path in (tmp_path / "output").rglob("*") if path.is_file()]
    assert [str(pydicom.dcmread(path).PatientName) for path in outputs] == ["trialA"]
