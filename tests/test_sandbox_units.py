"""Parts of the sandbox on their own: shares, store, PACS index, pseudonyms, opt-out list, fixtures."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from anonapi.sandbox.api import ApiError, parse_job_ids
from anonapi.sandbox.db import SandboxStore, check_password, hash_password
from anonapi.sandbox.deidentify import pims_pseudonym
from anonapi.sandbox.pacs import PacsIndex, StudyNotFoundError
from anonapi.sandbox.shares import Share, ShareError, ShareMap, parse_share_option, split_unc_path
from anonapi.sandbox.testdata import write_study
from anonapi.sandbox.worker import JobFailed, read_opt_out_file

# UNC paths and shares


@pytest.mark.parametrize(
    "unc_path, expected",
    [
        (r"\\host\share\a\b", ("host", "share", ["a", "b"])),
        ("//host/share/a/b", ("host", "share", ["a", "b"])),
        (r"\\host\share", ("host", "share", [])),
        (r"\\host\share\a\\b\.\c", ("host", "share", ["a", "b", "c"])),
        (r"\\host\share\a/b", ("host", "share", ["a", "b"])),
    ],
)
def test_split_unc_path(unc_path, expected):
    assert split_unc_path(unc_path) == expected


@pytest.mark.parametrize("text", ["C:\\data", "/srv/data", r"\\host", "share\\a"])
def test_split_unc_path_invalid(text):
    with pytest.raises(ShareError):
        split_unc_path(text)


def test_parse_share_option(tmp_path):
    share = parse_share_option(f"data={tmp_path}")
    assert share.name == "data"
    assert share.folder == tmp_path


@pytest.mark.parametrize("text", ["data", "=folder", "data="])
def test_parse_share_option_invalid(text):
    with pytest.raises(ValueError):
        parse_share_option(text)


def test_share_name_with_slash_invalid(tmp_path):
    with pytest.raises(ValueError):
        Share("a/b", tmp_path)


def test_resolve_inside_share(tmp_path):
    shares = ShareMap([Share("data", tmp_path)])
    share, path = shares.resolve(r"\\any\data\sub\folder")
    assert share.name == "data"
    assert path == tmp_path.resolve() / "sub" / "folder"


def test_resolve_dotdot_out_of_share(tmp_path):
    (tmp_path / "inner").mkdir()
    shares = ShareMap([Share("data", tmp_path / "inner")])
    with pytest.raises(ShareError):
        shares.resolve(r"\\any\data\..\outside")


def test_resolve_link_out_of_share(tmp_path):
    (tmp_path / "inner").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "inner" / "link").symlink_to(tmp_path / "outside")
    shares = ShareMap([Share("data", tmp_path / "inner")])
    with pytest.raises(ShareError):
        shares.resolve(r"\\any\data\link")


def test_resolve_share_that_is_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    shares = ShareMap([Share("data", tmp_path / "alias")])
    _, path = shares.resolve(r"\\any\data\x")
    assert path == (tmp_path / "real" / "x").resolve()


def test_resolve_unknown_share_lists_known(tmp_path):
    shares = ShareMap([Share("data", tmp_path)])
    with pytest.raises(ShareError, match="shares: data"):
        shares.resolve(r"\\any\other\x")


# Store: passwords and tokens


def test_password_hash_checks():
    stored = hash_password("correct horse")
    assert check_password("correct horse", stored)
    assert not check_password("wrong", stored)


def test_password_hash_salted():
    assert hash_password("same") != hash_password("same")


def test_tokens_stored_hashed(tmp_path):
    store = SandboxStore(tmp_path)
    store.add_user("alice", "pw", ["P"])
    token = store.create_token("alice")
    store.close()
    raw = sqlite3.connect(str(tmp_path / "sandbox.sqlite3"))
    stored = [row[0] for row in raw.execute("SELECT token_hash FROM tokens")]
    passwords = [row[0] for row in raw.execute("SELECT password_hash FROM users")]
    raw.close()
    assert token not in stored
    assert "pw" not in passwords


def test_token_identifies_user(tmp_path):
    store = SandboxStore(tmp_path)
    store.add_user("alice", "pw")
    token = store.create_token("alice")
    assert store.user_for_token(token) == "alice"
    assert store.user_for_token("not a token") is None
    store.close()


def test_add_user_again_changes_password(tmp_path):
    store = SandboxStore(tmp_path)
    store.add_user("alice", "old")
    store.add_user("alice", "new", ["P2"])
    assert store.check_password("alice", "new")
    assert not store.check_password("alice", "old")
    assert store.is_connected("alice", "P2")
    store.close()


def test_get_jobs_keeps_requested_order(tmp_path):
    store = SandboxStore(tmp_path)
    fields = {"project_name": "P", "source_type": "PATH", "destination_path": "x"}
    ids = [store.create_job("u", fields)["job_id"] for _ in range(3)]
    assert [row["job_id"] for row in store.get_jobs([ids[2], ids[0], 999])] == [ids[2], ids[0]]
    store.close()


def test_get_jobs_more_ids_than_one_query_takes(tmp_path):
    store = SandboxStore(tmp_path)
    fields = {"project_name": "P", "source_type": "PATH", "destination_path": "x"}
    for _ in range(2000):
        store.create_job("u", fields)
    assert len(store.get_jobs(list(range(1, 2001)))) == 2000
    store.close()


# API argument parsing


def test_parse_job_ids_mixed():
    assert parse_job_ids({"job_ids": ["1", "2,3", " 4 "]}) == [1, 2, 3, 4]


def test_parse_job_ids_empty_value():
    assert parse_job_ids({"job_ids": [""]}) == []


def test_parse_job_ids_invalid():
    with pytest.raises(ApiError):
        parse_job_ids({"job_ids": ["1-3"]})


# PACS index


def test_pacs_index_finds_study_and_accession(tmp_path):
    study = write_study(tmp_path / "a", "PID-1", accession_number="ACC-1")
    index = PacsIndex(tmp_path)
    index.refresh()
    by_uid = index.find_study(study.study_instance_uid)
    by_accession = index.find_study("accession_number:ACC-1")
    assert len(by_uid[1]) == 2
    assert by_accession[0] == study.study_instance_uid


def test_pacs_index_skips_non_dicom(tmp_path):
    (tmp_path / "readme.txt").write_text("hello", encoding="utf-8")
    study = write_study(tmp_path / "a", "PID-1")
    index = PacsIndex(tmp_path)
    index.refresh()
    assert len(index.find_study(study.study_instance_uid)[1]) == 2


def test_pacs_index_unknown_study(tmp_path):
    with pytest.raises(StudyNotFoundError) as caught:
        PacsIndex(tmp_path).find_study("1.2.3")
    assert "studyInstanceUID=1.2.3" in caught.value.query


def test_pacs_index_without_folder():
    with pytest.raises(StudyNotFoundError):
        PacsIndex(None).find_study("1.2.3")


# Pseudonyms and opt-out list


def test_pims_pseudonym_stable():
    assert pims_pseudonym("secret", "12", "PID-1") == pims_pseudonym("secret", "12", "PID-1")


def test_pims_pseudonym_differs_per_patient():
    assert pims_pseudonym("secret", "12", "PID-1") != pims_pseudonym("secret", "12", "PID-2")


def test_pims_pseudonym_hides_patient_id():
    assert "PID-1" not in pims_pseudonym("secret", "12", "PID-1")


def test_opt_out_file_comments_and_blanks(tmp_path):
    path = tmp_path / "opt_out.txt"
    path.write_text("# header\n\n123  # phoned in\n 456 \n", encoding="utf-8")
    assert read_opt_out_file(path) == {"123", "456"}


def test_opt_out_file_missing_fails_job(tmp_path):
    with pytest.raises(JobFailed):
        read_opt_out_file(tmp_path / "missing.txt")


def test_no_opt_out_file():
    assert read_opt_out_file(None) == set()


# The pytest fixtures


def test_sandbox_fixture_folders(sandbox, tmp_path):
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_dir()) == [
        "output", "pacs", "sandbox-data", "share",
    ]


def test_anon_settings_fixture(anon_settings, sandbox):
    from anonapi.settings import SettingsFile

    settings = SettingsFile(anon_settings).load()
    assert settings.active_server.url == sandbox.url
    assert settings.user_name == "demo"
    assert settings.user_token == sandbox.token


def test_anon_settings_sets_environment(anon_settings):
    import os

    assert Path(os.environ["ANONAPI_SETTINGS"]) == anon_settings
