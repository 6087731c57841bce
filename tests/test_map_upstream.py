"""Compatibility with anonapi 2.1.2: it reads the files we write, and we read the files it writes.

anonapi 2.1.2 runs as a separate program from its own virtual environment,
given by the environment variable ANONAPI_UPSTREAM (default
/tmp/upstream/bin/anon). These tests are skipped where it is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from anonapi.mapper import Mapping, MappingFile, MappingOptions, MappingRow
from anonapi.parameters import AccessionNumberIdentifier, FileSelectionIdentifier, StudyInstanceUIDIdentifier
from anonapi.selection import FileSelectionFile

UPSTREAM = Path(os.environ.get("ANONAPI_UPSTREAM", "/tmp/upstream/bin/anon"))

pytestmark = pytest.mark.skipif(not UPSTREAM.is_file(), reason=f"anonapi 2.1.2 not installed at {UPSTREAM}")


def run_upstream(folder: Path, home: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ANONAPI")}
    environment.update(HOME=str(home), USERPROFILE=str(home))
    return subprocess.run(
        [str(UPSTREAM), *arguments], cwd=folder, env=environment, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def folders(tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    return work, home


def our_mapping() -> Mapping:
    return Mapping(
        description="Mapping created 2024-02-12 by z123456",
        options=MappingOptions(root_source_path="\\\\server\\share\\data", project="Wetenschap-Algemeen", destination_path="\\\\server\\out"),
        rows=[
            MappingRow(source=FileSelectionIdentifier("p1/fileselection.txt"), pseudo_id="ID1", pseudo_name="NAME1", description="a, b"),
            MappingRow(source=StudyInstanceUIDIdentifier("1.2.3"), pseudo_id="ID2", pseudo_name="NAME2"),
            MappingRow(source=AccessionNumberIdentifier("12345678.1234567"), pseudo_name="NAME3"),
        ],
    )


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_upstream_reads_our_mapping(folders, delimiter):
    work, home = folders
    MappingFile(work / "anon_mapping.csv").save(our_mapping(), delimiter=delimiter)
    run_upstream(work, home, "map", "activate")
    result = run_upstream(work, home, "map", "status")
    assert result.returncode == 0, result.stderr
    for expected in ("fileselection:p1/fileselection.txt", "study_instance_uid:1.2.3", "NAME3"):
        assert expected in result.stdout


def test_upstream_appends_to_our_mapping(folders):
    work, home = folders
    MappingFile(work / "anon_mapping.csv").save(our_mapping(), delimiter=";")
    run_upstream(work, home, "map", "activate")
    result = run_upstream(work, home, "map", "add-accession-numbers", "999")
    assert result.returncode == 0, result.stderr
    mapping = MappingFile(work / "anon_mapping.csv").load()
    assert [row.source.to_string() for row in mapping.rows][-1] == "accession_number:999"
    assert mapping.rows[0].pseudo_id == "ID1"


def test_we_read_upstream_init_and_add(folders):
    work, home = folders
    data = work / "s" / "a"
    data.mkdir(parents=True)
    shutil.copyfile(get_testdata_file("CT_small.dcm"), data / "CT_small.dcm")
    (data / "notes.txt").write_text("x")
    for arguments in (("map", "init"), ("map", "add-study-folders", "s/a"), ("map", "add-accession-numbers", "123")):
        result = run_upstream(work, home, *arguments)
        assert result.returncode == 0, result.stderr
    mapping = MappingFile(work / "anon_mapping.csv").load()
    assert [row.source.to_string() for row in mapping.rows][-2:] == ["fileselection:s/a/fileselection.txt", "accession_number:123"]
    assert FileSelectionFile(data / "fileselection.txt").load().selected_paths[0] == "CT_small.dcm"


def test_upstream_reads_our_selection(folders):
    work, home = folders
    shutil.copyfile(get_testdata_file("CT_small.dcm"), work / "1.dcm")
    FileSelectionFile(work / "fileselection.txt", description="ours", selected_paths=["1.dcm"]).save()
    result = run_upstream(work, home, "select", "status")
    assert result.returncode == 0, result.stderr
    assert "Selection containing 1 files" in result.stdout
