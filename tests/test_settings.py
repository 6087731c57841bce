"""Tests of the settings file: location, formats of earlier releases, errors, permissions and safe writes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from released import run_released

from anonapi.exceptions import ConfigurationError
from anonapi.objects import RemoteAnonServer
from anonapi.settings import (
    SETTINGS_FILE_NAME,
    AnonClientSettings,
    JobDefaults,
    SettingsFile,
    default_settings_path,
)

UPSTREAM_SETTINGS = Path(__file__).parent / "data" / "upstream-2.1.2" / SETTINGS_FILE_NAME
UPSTREAM_ANON = Path("/tmp/upstream/bin/anon")

posix_only = pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")


def load_text(path: Path, text: str) -> AnonClientSettings:
    path.write_text(text, encoding="utf-8")
    return SettingsFile(path).load()


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- location ---------------------------------------------------------------------------


def test_default_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ANONAPI_SETTINGS", str(tmp_path / "mine.yml"))
    assert default_settings_path() == tmp_path / "mine.yml"


def test_default_path_in_home(isolated_home, monkeypatch):
    monkeypatch.delenv("ANONAPI_SETTINGS")
    assert default_settings_path() == Path.home() / SETTINGS_FILE_NAME


def test_default_path_expands_user(isolated_home, monkeypatch):
    monkeypatch.setenv("ANONAPI_SETTINGS", "~/other.yml")
    assert default_settings_path() == Path.home() / "other.yml"


# --- first use ----------------------------------------------------------------------------


def test_missing_file_created_with_defaults(tmp_path):
    settings_file = SettingsFile(tmp_path / SETTINGS_FILE_NAME)
    settings = settings_file.load()
    assert settings_file.created
    assert settings_file.path.exists()
    assert settings.servers == []
    assert settings.active_server is None
    assert settings.validate_ssl is True
    assert settings.max_concurrent_requests == 8


def test_existing_file_not_marked_created(tmp_path):
    SettingsFile(tmp_path / "s.yml").load()
    settings_file = SettingsFile(tmp_path / "s.yml")
    settings_file.load()
    assert not settings_file.created


@posix_only
def test_created_file_owner_only(tmp_path):
    settings_file = SettingsFile(tmp_path / "s.yml")
    settings_file.load()
    assert file_mode(settings_file.path) == 0o600


def test_missing_folder_is_error(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(tmp_path / "no_such_folder" / "s.yml").load()
    assert "no_such_folder" in str(caught.value)


# --- formats of earlier releases ------------------------------------------------------------


def test_upstream_file_read(tmp_path):
    settings = load_text(tmp_path / "s.yml", UPSTREAM_SETTINGS.read_text())
    assert settings.servers == [RemoteAnonServer("testserver", "https://hostname_of_api")]
    assert settings.active_server == RemoteAnonServer("testserver", "https://hostname_of_api")
    assert settings.user_name == "username"
    assert settings.user_token == "token"
    assert settings.validate_ssl is True
    assert settings.active_mapping_file == Path("/tmp/uphome/w/anon_mapping.csv")
    assert settings.job_defaults == JobDefaults("NOT_SET", ".")


def test_upstream_file_round_trip(tmp_path):
    path = tmp_path / "s.yml"
    settings = load_text(path, UPSTREAM_SETTINGS.read_text())
    SettingsFile(path).save(settings)
    original = yaml.safe_load(UPSTREAM_SETTINGS.read_text())
    written = yaml.safe_load(path.read_text())
    assert {key: written[key] for key in original} == original


def test_key_value_job_defaults(tmp_path):
    settings = load_text(tmp_path / "s.yml", "job_default_parameters:\n- project,Wetenschap-Algemeen\n"
                                              "- destination_path,\\\\server\\share\\out\n")
    assert settings.job_defaults.project_name == "Wetenschap-Algemeen"
    assert settings.job_defaults.destination_path == "\\\\server\\share\\out"


def test_key_value_value_with_comma(tmp_path):
    settings = load_text(tmp_path / "s.yml", "job_default_parameters:\n- destination_path,\\\\s\\a,b\n")
    assert settings.job_defaults.destination_path == "\\\\s\\a,b"


def test_unknown_job_default_kept(tmp_path):
    path = tmp_path / "s.yml"
    settings = load_text(path, "job_default_parameters:\n- project,P\n- pims_key,1234\n")
    SettingsFile(path).save(settings)
    assert "pims_key,1234" in yaml.safe_load(path.read_text())["job_default_parameters"]


def test_job_default_without_comma_is_error(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_text(tmp_path / "s.yml", "user_name: x\njob_default_parameters:\n- just_a_word\n")
    assert "line 2" in str(caught.value)


def test_pre_1_4_map_under_job_default_parameters(tmp_path):
    settings = load_text(
        tmp_path / "s.yml", "job_default_parameters:\n  project_name: Proj\n  destination_path: /out\n"
    )
    assert settings.job_defaults == JobDefaults("Proj", "/out")


def test_pre_1_4_map_under_create_job_defaults(tmp_path):
    settings = load_text(tmp_path / "s.yml", "create_job_defaults:\n  project_name: Proj\n  destination_path: /out\n")
    assert settings.job_defaults == JobDefaults("Proj", "/out")


def test_pre_1_4_map_written_as_strings(tmp_path):
    path = tmp_path / "s.yml"
    settings = load_text(path, "create_job_defaults:\n  project_name: Proj\n  destination_path: /out\n")
    SettingsFile(path).save(settings)
    written = yaml.safe_load(path.read_text())
    assert written["job_default_parameters"] == ["project,Proj", "destination_path,/out"]
    assert "create_job_defaults" not in written


def test_missing_keys_take_defaults(tmp_path):
    settings = load_text(tmp_path / "s.yml", "servers:\n  a: https://a\n")
    assert settings.active_server is None
    assert settings.user_name == ""
    assert not settings.has_token
    assert settings.validate_ssl is True
    assert settings.job_defaults == JobDefaults()
    assert settings.unc_paths == {}


def test_empty_file_takes_defaults(tmp_path):
    settings = load_text(tmp_path / "s.yml", "")
    assert settings.servers == []


def test_servers_as_list_of_maps(tmp_path):
    settings = load_text(tmp_path / "s.yml", "servers:\n- name: a\n  url: https://a\n")
    assert settings.servers == [RemoteAnonServer("a", "https://a")]


def test_validate_ssl_as_text(tmp_path):
    settings = load_text(tmp_path / "s.yml", "validate_ssl: 'False'\n")
    assert settings.validate_ssl is False


def test_new_keys_round_trip(tmp_path):
    path = tmp_path / "s.yml"
    settings = AnonClientSettings(
        max_concurrent_requests=3, unc_paths={"/mnt/share": "\\\\server\\share"}, connect_timeout=2, read_timeout=30
    )
    SettingsFile(path).save(settings)
    loaded = SettingsFile(path).load()
    assert loaded.max_concurrent_requests == 3
    assert loaded.unc_paths == {"/mnt/share": "\\\\server\\share"}
    assert loaded.timeout == (2.0, 30.0)


def test_unknown_top_level_keys_kept(tmp_path):
    path = tmp_path / "s.yml"
    settings = load_text(path, "some_future_key: [1, 2]\nuser_name: me\n")
    SettingsFile(path).save(settings)
    assert yaml.safe_load(path.read_text())["some_future_key"] == [1, 2]


@pytest.mark.skipif(not UPSTREAM_ANON.exists(), reason="anonapi 2.1.2 is not installed in /tmp/upstream")
def test_written_file_read_by_upstream(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    settings = AnonClientSettings(
        servers=[RemoteAnonServer("p01", "https://p01.example.org/api")], user_name="z123", user_token="t"
    )
    settings.active_server = settings.servers[0]
    SettingsFile(home / SETTINGS_FILE_NAME).save(settings)
    environment = {**os.environ, "HOME": str(home)}
    environment.pop("ANONAPI_SETTINGS", None)
    output = subprocess.run(
        [str(UPSTREAM_ANON), "status"], capture_output=True, text=True, env=environment, timeout=60
    ).stdout
    assert "https://p01.example.org/api" in output
    assert "Using username: 'z123'" in output


# --- errors -----------------------------------------------------------------------------------


def test_active_server_not_in_list(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_text(tmp_path / "s.yml", "servers:\n  a: https://a\nactive_server_name: b\n")
    message = str(caught.value)
    assert str(tmp_path / "s.yml") in message
    assert "line 3" in message
    assert "'b'" in message


def test_broken_yaml_names_file_and_line(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_text(tmp_path / "s.yml", "servers:\n  a: https://a\n b: [\n")
    message = str(caught.value)
    assert str(tmp_path / "s.yml") in message
    assert "line 3" in message


def test_broken_yaml_not_overwritten(tmp_path):
    path = tmp_path / "s.yml"
    broken = "servers:\n  a: https://a\n b: [\n"
    with pytest.raises(ConfigurationError):
        load_text(path, broken)
    assert path.read_text() == broken


def test_tab_indentation_is_error(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_text(tmp_path / "s.yml", "servers:\n\ta: https://a\n")
    assert "line 2" in str(caught.value)


def test_not_a_map_is_error(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_text(tmp_path / "s.yml", "- a\n- b\n")
    assert "line 1" in str(caught.value)


@pytest.mark.parametrize(
    "text, key",
    [
        ("validate_ssl: maybe\n", "validate_ssl"),
        ("max_concurrent_requests: 0\n", "max_concurrent_requests"),
        ("read_timeout: -1\n", "read_timeout"),
        ("servers: https://a\n", "servers"),
        ("unc_paths: [a]\n", "unc_paths"),
        ("user_name: [a, b]\n", "user_name"),
    ],
)
def test_invalid_value_names_key(tmp_path, text, key):
    with pytest.raises(ConfigurationError) as caught:
        load_text(tmp_path / "s.yml", "user_token: x\n" + text)
    assert key in str(caught.value)
    assert "line 2" in str(caught.value)


def test_not_utf8_is_error(tmp_path):
    path = tmp_path / "s.yml"
    path.write_bytes(b"user_name: \xff\xfe\n")
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(path).load()
    assert "UTF-8" in str(caught.value)


def test_folder_instead_of_file_is_error(tmp_path):
    (tmp_path / "s.yml").mkdir()
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(tmp_path / "s.yml").load()
    assert str(tmp_path / "s.yml") in str(caught.value)


def test_error_message_hides_token(tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        load_text(tmp_path / "s.yml", "user_token: distinctive-secret-4711\nvalidate_ssl: maybe\n")
    assert "distinctive-secret-4711" not in str(caught.value)


def test_repr_hides_token():
    settings = AnonClientSettings(user_token="distinctive-secret-4711")
    assert "distinctive-secret-4711" not in repr(settings)


# --- permissions and safe writes -----------------------------------------------------------------


@posix_only
def test_save_owner_only(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text("user_name: me\n")
    os.chmod(path, 0o644)
    SettingsFile(path).save(AnonClientSettings(user_token="t"))
    assert file_mode(path) == 0o600


@posix_only
def test_load_restricts_readable_file(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text(UPSTREAM_SETTINGS.read_text())
    os.chmod(path, 0o644)
    SettingsFile(path).load()
    assert file_mode(path) == 0o600


def test_save_leaves_no_temporary_files(tmp_path):
    SettingsFile(tmp_path / "s.yml").save(AnonClientSettings())
    assert [item.name for item in tmp_path.iterdir()] == ["s.yml"]


def test_crash_during_save_keeps_old_file(tmp_path):
    path = tmp_path / "s.yml"
    path.write_text(UPSTREAM_SETTINGS.read_text())
    # The child process dies after writing the new content to the temporary
    # file and before renaming it, as a crash or power cut would.
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from anonapi.settings import SettingsFile\n"
        "settings_file = SettingsFile(Path(sys.argv[1]))\n"
        "settings = settings_file.load()\n"
        "settings.user_name = 'changed'\n"
        "os.fsync = lambda descriptor: os._exit(3)\n"
        "settings_file.save(settings)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script, str(path)], timeout=60)
    assert completed.returncode == 3
    assert path.read_text() == UPSTREAM_SETTINGS.read_text()


def test_failed_replace_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.yml"
    path.write_text("user_name: me\n")

    def fail_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail_replace)
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(path).save(AnonClientSettings(user_name="other"))
    assert "No space left on device" in str(caught.value)
    assert path.read_text() == "user_name: me\n"
    assert [item.name for item in tmp_path.iterdir()] == ["s.yml"]


# --- two processes changing settings at once -------------------------------------------------


@pytest.fixture
def two_loads(tmp_path):
    """Two SettingsFile objects that read the same file, as two anon processes would."""
    path = tmp_path / SETTINGS_FILE_NAME
    start = AnonClientSettings(servers=[RemoteAnonServer("p01", "https://p01.example.org")], user_name="ann")
    start.active_server = start.servers[0]
    SettingsFile(path).save(start)
    first, second = SettingsFile(path), SettingsFile(path)
    return path, (first, first.load()), (second, second.load())


def test_concurrent_changes_to_different_keys_kept(two_loads):
    path, (first, mine), (second, theirs) = two_loads
    mine.user_token = "token-from-first"
    first.save(mine)
    theirs.validate_ssl = False
    second.save(theirs)

    result = SettingsFile(path).load()
    assert result.user_token == "token-from-first"
    assert result.validate_ssl is False


def test_concurrent_server_additions_kept(two_loads):
    path, (first, mine), (second, theirs) = two_loads
    mine.servers.append(RemoteAnonServer("p02", "https://p02.example.org"))
    first.save(mine)
    theirs.servers.append(RemoteAnonServer("p03", "https://p03.example.org"))
    second.save(theirs)

    assert [server.name for server in SettingsFile(path).load().servers] == ["p01", "p02", "p03"]


def test_same_key_last_save_wins(two_loads):
    path, (first, mine), (second, theirs) = two_loads
    mine.user_name = "bob"
    first.save(mine)
    theirs.user_name = "carol"
    second.save(theirs)

    assert SettingsFile(path).load().user_name == "carol"


def test_removed_server_stays_removed(two_loads):
    path, (first, mine), (second, theirs) = two_loads
    mine.servers = []
    mine.active_server = None
    first.save(mine)
    theirs.user_name = "dave"
    second.save(theirs)

    result = SettingsFile(path).load()
    assert result.servers == []
    assert result.active_server is None
    assert result.user_name == "dave"


def test_merge_that_breaks_file_keeps_last_save(two_loads):
    path, (first, mine), (second, theirs) = two_loads
    mine.servers = []
    mine.active_server = None
    first.save(mine)
    added = RemoteAnonServer("p04", "https://p04.example.org")
    theirs.servers = [added]
    theirs.active_server = added
    second.save(theirs)

    result = SettingsFile(path).load()
    assert [server.name for server in result.servers] == ["p04"]
    assert result.active_server.name == "p04"


ADD_SERVER_SCRIPT = """
import sys
from pathlib import Path
from anonapi.objects import RemoteAnonServer
from anonapi.settings import SettingsFile

settings_file = SettingsFile(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()
for number in range(10):
    settings = settings_file.load()
    name = f"{sys.argv[2]}-{number}"
    settings.servers.append(RemoteAnonServer(name, f"https://{name}.example.org"))
    settings_file.save(settings)
"""


def test_concurrent_processes_lose_no_server(tmp_path):
    path = tmp_path / SETTINGS_FILE_NAME
    SettingsFile(path).save(AnonClientSettings())
    run_released([[ADD_SERVER_SCRIPT, str(path), f"s{number}"] for number in range(4)])

    names = {server.name for server in SettingsFile(path).load().servers}
    assert names == {f"s{process}-{number}" for process in range(4) for number in range(10)}
