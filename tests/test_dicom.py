"""DICOM detection on pydicom's real test files mixed with other files."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

import anonapi.dicom

from anonapi.dicom import (
    HeaderVerdict,
    find_data_set_start,
    find_files,
    inspect_header,
    is_dicom_file,
    looks_like_dicom_name,
    select_dicom_files,
)

DICOM_TEST_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "no_meta.dcm",
    "rtplan.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "ExplVR_BigEndNoMeta.dcm",
    "ExplVR_LitEndNoMeta.dcm",
    "no_meta_group_length.dcm",
    "rtstruct.dcm",
    "image_dfl.dcm",
    "SC_rgb_jpeg.dcm",
]

DICOMDIR_TEST_FILES = ["DICOMDIR", "DICOMDIR-implicit", "DICOMDIR-bigEnd", "DICOMDIR-empty.dcm"]

NON_DICOM_TEST_FILES = ["README.txt", "rtplan.dump", "test1.json", "zipMR.gz"]


def copy_test_file(name: str, target: Path) -> Path:
    """Copy one of pydicom's test files to ``target`` (a file path) and return it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(get_testdata_file(name), target)
    return target


@pytest.mark.filterwarnings("ignore:Expected explicit VR:UserWarning")
@pytest.mark.parametrize("name", DICOM_TEST_FILES)
def test_is_dicom_file_real_dicom(name):
    assert is_dicom_file(get_testdata_file(name))


@pytest.mark.parametrize("name", DICOMDIR_TEST_FILES)
def test_is_dicom_file_dicomdir_left_out(name, tmp_path):
    # Copied under another name, so only the content can give it away.
    path = copy_test_file(name, tmp_path / "IM0001")
    assert not is_dicom_file(path)


def test_is_dicom_file_dicomdir_by_name(tmp_path):
    path = copy_test_file("CT_small.dcm", tmp_path / "DICOMDIR")
    assert not is_dicom_file(path)


@pytest.mark.parametrize("name", NON_DICOM_TEST_FILES)
def test_is_dicom_file_other_files(name):
    assert not is_dicom_file(get_testdata_file(name))


@pytest.mark.parametrize("name", ["nested_priv_SQ.dcm", "meta_missing_tsyntax.dcm"])
def test_is_dicom_file_without_sop_class(name):
    # Made for pydicom's own tests: a valid file format, but no object that a job could anonymize.
    assert not is_dicom_file(get_testdata_file(name))


@pytest.mark.parametrize(
    "content",
    [b"", b"x", b"hello world\n" * 40, b"\x00" * 200, b"\x08\x00" * 300, b"\x89PNG\r\n\x1a\n" + b"\x00" * 300],
)
def test_is_dicom_file_made_up_content(content, tmp_path):
    path = tmp_path / "file"
    path.write_bytes(content)
    assert not is_dicom_file(path)


def test_is_dicom_file_preamble_and_text(tmp_path):
    path = tmp_path / "fake.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"not a meta group at all" * 10)
    assert not is_dicom_file(path)


def test_is_dicom_file_truncated_dicom(tmp_path):
    path = tmp_path / "cut.dcm"
    path.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:140])
    assert not is_dicom_file(path)


def test_is_dicom_file_missing_file(tmp_path):
    assert not is_dicom_file(tmp_path / "absent.dcm")


def test_inspect_header_decides_ct_alone():
    head = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    assert inspect_header(head[:4096], len(head)) is HeaderVerdict.DICOM


def test_inspect_header_dicomdir():
    head = Path(get_testdata_file("DICOMDIR")).read_bytes()
    assert inspect_header(head[:4096], len(head)) is HeaderVerdict.DICOMDIR


def test_inspect_header_no_preamble_undecided():
    head = Path(get_testdata_file("no_meta.dcm")).read_bytes()
    assert inspect_header(head[:4096], len(head)) is HeaderVerdict.UNDECIDED


def test_find_data_set_start_after_stray_byte():
    # pydicom's no_meta.dcm starts with one byte left over from a cut-off meta group.
    head = Path(get_testdata_file("no_meta.dcm")).read_bytes()
    start = find_data_set_start(head[:4096], len(head))
    assert start is not None
    assert start.offset == 1
    assert start.explicit_vr


def test_find_data_set_start_text():
    assert find_data_set_start(b"just some text, nothing else" * 10) is None


@pytest.mark.parametrize(
    "name, expected",
    [
        ("IM000001", True),
        ("1.2.840.113619.2.5", True),
        ("file.dcm", True),
        ("FILE.DCM", True),
        ("scan.dicom", True),
        ("notes.txt", False),
        ("bigfile.raw", False),
        ("shot1.jpg", False),
        ("DICOMDIR", False),
        (".DS_Store", False),
    ],
)
def test_looks_like_dicom_name(name, expected):
    assert looks_like_dicom_name(name) is expected


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """A study folder with DICOM files at two depths, a DICOMDIR and other files."""
    folder = tmp_path / "study"
    copy_test_file("CT_small.dcm", folder / "ct" / "1.dcm")
    copy_test_file("MR_small.dcm", folder / "mr" / "IM0001")
    copy_test_file("no_meta.dcm", folder / "mr" / "raw.bin")
    copy_test_file("DICOMDIR", folder / "DICOMDIR")
    (folder / "notes.txt").write_text("taken on Monday")
    (folder / "ct" / "report.pdf").write_bytes(b"%PDF-1.4\n" + b"\x00" * 500)
    return folder


def test_find_files_recursive(mixed_folder):
    names = [path.relative_to(mixed_folder).as_posix() for path in find_files(mixed_folder)]
    assert names == ["DICOMDIR", "ct/1.dcm", "ct/report.pdf", "mr/IM0001", "mr/raw.bin", "notes.txt"]


def test_find_files_not_recursive(mixed_folder):
    names = [path.name for path in find_files(mixed_folder, recurse=False)]
    assert names == ["DICOMDIR", "notes.txt"]


def test_find_files_skips_link_loop(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_text("x")
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    assert find_files(tmp_path) == [tmp_path / "a" / "f"]


def test_select_dicom_files_check(mixed_folder):
    selected = select_dicom_files(find_files(mixed_folder), check_dicom=True)
    assert [path.relative_to(mixed_folder).as_posix() for path in selected] == ["ct/1.dcm", "mr/IM0001", "mr/raw.bin"]


def test_select_dicom_files_by_name(mixed_folder):
    selected = select_dicom_files(find_files(mixed_folder), check_dicom=False)
    assert [path.relative_to(mixed_folder).as_posix() for path in selected] == ["ct/1.dcm", "mr/IM0001"]


def test_select_dicom_files_threads_keep_order(tmp_path, monkeypatch):
    # Every file counts as slow, as on a network share, so threads take over after the first batch.
    monkeypatch.setattr(anonapi.dicom, "SLOW_FILE_SECONDS", 0.0)
    used_threads = []
    original_check = anonapi.dicom._check_chunk
    monkeypatch.setattr(
        anonapi.dicom, "_check_chunk", lambda chunk: used_threads.append(threading.current_thread().name) or original_check(chunk)
    )
    paths = []
    for index in range(300):
        name = "CT_small.dcm" if index % 3 else "README.txt"
        paths.append(copy_test_file(name, tmp_path / f"{index:04d}"))
    expected = [path for index, path in enumerate(paths) if index % 3]
    assert select_dicom_files(paths, check_dicom=True, max_workers=4) == expected
    assert any(name.startswith("dicom-check") for name in used_threads)


def test_select_dicom_files_fast_files_one_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(anonapi.dicom, "SLOW_FILE_SECONDS", 3600.0)
    used_threads = []
    original_check = anonapi.dicom._check_chunk
    monkeypatch.setattr(
        anonapi.dicom, "_check_chunk", lambda chunk: used_threads.append(threading.current_thread().name) or original_check(chunk)
    )
    paths = [copy_test_file("CT_small.dcm", tmp_path / f"{index}.dcm") for index in range(200)]
    assert len(select_dicom_files(paths, check_dicom=True, max_workers=4)) == 200
    assert set(used_threads) == {threading.current_thread().name}


def test_select_dicom_files_reports_progress(tmp_path):
    paths = [copy_test_file("CT_small.dcm", tmp_path / f"{index}.dcm") for index in range(150)]
    counts = []
    select_dicom_files(paths, check_dicom=True, on_progress=counts.append)
    assert sum(counts) == 150


# --- damaged and unreadable files ---


@pytest.mark.parametrize("length", [141, 142, 143])
def test_file_cut_in_meta_group_not_dicom(tmp_path, length):
    # A copy that stopped inside the file meta group length: pydicom raises BytesLengthException.
    path = tmp_path / "IM1"
    path.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:length])
    assert is_dicom_file(path) is False


def test_cut_file_does_not_stop_selection(tmp_path):
    cut = tmp_path / "cut"
    cut.write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:142])
    whole = copy_test_file("CT_small.dcm", tmp_path / "whole")
    assert select_dicom_files([cut, whole]) == [whole]


def test_unreadable_file_logged_as_warning(tmp_path, monkeypatch, caplog):
    path = copy_test_file("CT_small.dcm", tmp_path / "locked.dcm")
    original_open = anonapi.dicom.os.open

    def open_denied(file, flags, *args):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return original_open(file, flags, *args)

    monkeypatch.setattr(anonapi.dicom.os, "open", open_denied)
    assert is_dicom_file(path) is False
    assert f"Cannot open '{path}'" in caplog.text
    assert caplog.records[-1].levelname == "WARNING"
