"""The README's first command: ``scripts/quickstart.py`` and the ``anon sandbox demo`` it runs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest

from anonapi.sandbox.demo import (
    DEMO_STUDIES,
    IDENTIFYING_ATTRIBUTES,
    DemoStudy,
    build_demo_share,
    format_command_line,
    inspect_output,
)

CHECKOUT = Path(__file__).resolve().parent.parent
SCRIPTS = CHECKOUT / "scripts"


def load_devenv():
    spec = importlib.util.spec_from_file_location("devenv", SCRIPTS / "devenv.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def demo_command(folder: Path) -> list:
    """Return the README's first command when this test runs in the checkout's .venv, else ``anon sandbox demo``.

    Inside ``.venv`` (as scripts/run_tests.py and CI run the tests) the
    script finds anonapi installed and goes straight to the demo. Elsewhere
    it would build a new .venv, so the test runs the demo it would start.
    """
    if Path(sys.prefix).resolve() == (CHECKOUT / ".venv").resolve():
        return [sys.executable, str(SCRIPTS / "quickstart.py"), "--folder", str(folder)]
    return [sys.executable, "-m", "anonapi.cli.main", "sandbox", "demo", "--folder", str(folder)]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    user_home = tmp_path_factory.mktemp("user-home")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ANONAPI_")}
    environment.update(HOME=str(user_home), USERPROFILE=str(user_home))
    result = subprocess.run(
        demo_command(folder), capture_output=True, text=True, env=environment, timeout=600, cwd=str(CHECKOUT)
    )
    return folder, result, user_home


def test_demo_succeeds(demo_run):
    _, result, _ = demo_run
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


@pytest.mark.parametrize(
    "command_line",
    [
        "anon map init",
        "anon map add-study-folders",
        "anon create from-mapping --yes",
        "anon batch watch",
        "anon batch status",
    ],
)
def test_demo_echoes_command(demo_run, command_line):
    _, result, _ = demo_run
    assert f"$ {command_line}" in result.stdout


def test_demo_shows_batch_status(demo_run):
    _, result, _ = demo_run
    assert f"Job info for {len(DEMO_STUDIES)} jobs on sandbox" in result.stdout


def test_demo_reports_clean_output(demo_run):
    _, result, _ = demo_run
    assert f"All {len(DEMO_STUDIES)} jobs are DONE. None of the" in result.stdout


def test_demo_leaves_user_settings_alone(demo_run):
    _, _, user_home = demo_run
    assert list(user_home.iterdir()) == []


def test_demo_uses_own_settings_file(demo_run):
    folder, _, _ = demo_run
    settings_text = (folder / "AnonWebAPIClientSettings.yml").read_text(encoding="utf-8")
    assert "active_server_name: sandbox" in settings_text


def test_demo_output_has_new_identifiers(demo_run):
    folder, _, _ = demo_run
    output_files = sorted((folder / "share" / "anonymized").rglob("*.dcm"))
    original_names = {study.patient_name for study in DEMO_STUDIES}
    names = {str(pydicom.dcmread(str(path)).PatientName) for path in output_files}
    assert len(output_files) == sum(len(study.source_files) for study in DEMO_STUDIES)
    assert not names & original_names


def test_demo_keeps_given_folder(demo_run):
    folder, _, _ = demo_run
    assert (folder / "project" / ".anonbatch").is_file()


def test_build_demo_share_makes_unique_uids(tmp_path):
    originals = build_demo_share(tmp_path)
    study_uids = [original.values["StudyInstanceUID"][0] for original in originals]
    sop_uids = [uid for original in originals for uid in original.values["SOPInstanceUID"]]
    assert len(set(study_uids)) == len(DEMO_STUDIES)
    assert len(set(sop_uids)) == sum(len(study.source_files) for study in DEMO_STUDIES)


def test_build_demo_share_writes_identifiers(tmp_path):
    (original,) = build_demo_share(tmp_path, DEMO_STUDIES[:1])
    dataset = pydicom.dcmread(str(sorted(original.folder.glob("*.dcm"))[0]))
    assert str(dataset.PatientName) == DEMO_STUDIES[0].patient_name
    assert dataset.StudyInstanceUID == original.values["StudyInstanceUID"][0]
    assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID


def test_build_demo_share_adds_other_files(tmp_path):
    (original,) = build_demo_share(tmp_path, DEMO_STUDIES[:1])
    assert (original.folder / "notes.txt").is_file()


def test_inspect_output_finds_leaked_value(tmp_path):
    study = DemoStudy("p1", "Leak^Test", "LEAK-1", "19990101", "ACC1", ("CT_small.dcm",))
    (original,) = build_demo_share(tmp_path / "in", [study])
    output = tmp_path / "out"
    output.mkdir()
    # An "anonymized" copy that only changed the PatientID: the name and UIDs leak.
    dataset = pydicom.dcmread(str(next(original.folder.glob("*.dcm"))))
    dataset.PatientID = "PSEUDO-1"
    dataset.save_as(str(output / "1.dcm"))

    (result,) = inspect_output(output, {"PSEUDO-1": original})

    assert result.original is original
    assert "Leak^Test" in result.leaked
    assert original.values["StudyInstanceUID"][0] in result.leaked
    assert "LEAK-1" not in result.leaked


def test_inspect_output_skips_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("not DICOM")
    assert inspect_output(tmp_path, {}) == []


def test_identifying_attributes_cover_uids():
    assert {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"} <= set(IDENTIFYING_ATTRIBUTES)


@pytest.mark.skipif(os.name == "nt", reason="POSIX quoting")
def test_format_command_line_quotes_unc_path():
    assert format_command_line(["anon", r"\\host\share"]) == "anon '\\\\host\\share'"


def test_devenv_venv_executable_by_platform():
    devenv = load_devenv()
    path = devenv.venv_executable("anon")
    expected = ("Scripts", "anon.exe") if os.name == "nt" else ("bin", "anon")
    assert path.parts[-2:] == expected


def test_devenv_skips_install_when_stamp_matches(tmp_path, monkeypatch):
    devenv = load_devenv()
    monkeypatch.setattr(devenv, "VENV_DIR", tmp_path)
    (tmp_path / devenv.STAMP_FILE_NAME).write_text(
        json.dumps({"hash": devenv.packaging_hash(), "extras": ["docs", "test"]}), encoding="utf-8"
    )
    calls = []
    monkeypatch.setattr(devenv.subprocess, "run", lambda *args, **kwargs: calls.append(args))

    devenv.install_package(["sandbox"])

    assert calls == []


def test_devenv_installs_when_packaging_changed(tmp_path, monkeypatch):
    devenv = load_devenv()
    monkeypatch.setattr(devenv, "VENV_DIR", tmp_path)
    (tmp_path / devenv.STAMP_FILE_NAME).write_text(
        json.dumps({"hash": "an older hash", "extras": ["sandbox"]}), encoding="utf-8"
    )
    calls = []

    def record(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(devenv.subprocess, "run", record)

    devenv.install_package(["sandbox"])

    assert calls[0][-3:] == ["--quiet", "--editable", ".[sandbox]"]


def test_devenv_rejects_old_python(monkeypatch):
    devenv = load_devenv()
    monkeypatch.setattr(devenv, "MINIMUM_PYTHON", (99, 0))
    with pytest.raises(devenv.SetupError, match="needs Python 99.0"):
        devenv.check_python_version()


def test_demo_rejects_non_empty_folder(tmp_path):
    from anonapi.sandbox.demo import run_demo

    (tmp_path / "notes.txt").write_text("keep me")
    lines = []

    assert run_demo(tmp_path, keep=False, echo=lines.append) == 1
    assert "is not empty" in lines[0]
    assert (tmp_path / "notes.txt").read_text() == "keep me"
