"""Regression tests for edge cases of the client, settings and commands found by hostile use.

Each test covers one input that once crashed with a traceback, leaked a
secret, did the wrong thing silently, or damaged a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from fakeserver import TOKEN, USER_NAME

from anonapi.bulk import run_bulk
from anonapi.client import AnonClientTool, WebAPIClient, mask_url
from anonapi.exceptions import ConfigurationError, NotAnAPIError, UnexpectedResponseError, UserInputError
from anonapi.jobids import parse_job_ids
from anonapi.objects import RemoteAnonServer
from anonapi.settings import AnonClientSettings, SettingsFile, default_settings_path
from anonapi.testresources import MockAnonClientTool, RemoteAnonServerFactory

SECRET = "tok-Kq2vX9-edge-secret"


def saved(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_settings(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def run_anon_process(arguments, settings_path: Path, input_text: str = "") -> subprocess.CompletedProcess:
    environment = {**os.environ, "ANONAPI_SETTINGS": str(settings_path), "HOME": str(settings_path.parent)}
    return subprocess.run(
        [sys.executable, "-m", "anonapi.cli.main", *arguments],
        input=input_text,
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


# --- client: URLs, credentials and the token header --------------------------------------------


def test_mask_url_invalid_ipv6():
    assert mask_url("http://user:pw@[::1/api") == "http://***@[::1/api"


def test_mask_url_port_out_of_range():
    assert mask_url("http://user:pw@127.0.0.1:99999/api") == "http://***@127.0.0.1:99999/api"


@pytest.mark.parametrize("url", ["http://[::1/api", "http://127.0.0.1:99999/api", "127.0.0.1:1/api", ""])
def test_client_invalid_url_configuration_error(url):
    with pytest.raises(ConfigurationError):
        WebAPIClient(url, USER_NAME, TOKEN).get("get_jobs")


def test_client_invalid_url_message_hides_password():
    with pytest.raises(ConfigurationError) as caught:
        WebAPIClient("http://user:hunter2pw@127.0.0.1:99999/api", USER_NAME, TOKEN).get("get_jobs")
    assert "hunter2pw" not in str(caught.value)


def test_token_header_wins_over_netrc(fake_server, isolated_home, monkeypatch):
    monkeypatch.delenv("NETRC", raising=False)
    netrc = isolated_home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netuser password netpass\n")
    netrc.chmod(0o600)
    WebAPIClient(fake_server.url, USER_NAME, TOKEN).get("get_jobs")
    assert fake_server.requests[-1].headers["Authorization"] == f"Token {TOKEN}"


def test_token_header_wins_over_url_credentials(fake_server):
    url = fake_server.url.replace("http://", "http://someone:pw@")
    WebAPIClient(url, USER_NAME, TOKEN).get("get_jobs")
    assert fake_server.requests[-1].headers["Authorization"] == f"Token {TOKEN}"


@pytest.mark.parametrize("token", [f"{SECRET}\ninjected", f"{SECRET}\u20ac", f"{SECRET}\x00"])
def test_unsendable_token_configuration_error(fake_server, token):
    with pytest.raises(ConfigurationError) as caught:
        WebAPIClient(fake_server.url, USER_NAME, token).get("get_jobs")
    assert SECRET not in str(caught.value)


def test_unsendable_token_sends_nothing(fake_server):
    with pytest.raises(ConfigurationError):
        WebAPIClient(fake_server.url, USER_NAME, f"{SECRET}\n").get("get_jobs")
    assert fake_server.requests == []


@pytest.mark.parametrize("timeout", [(float("nan"), 60.0), (5.0, float("inf")), (0, 60.0), (5.0,)])
def test_client_invalid_timeout_rejected(timeout):
    with pytest.raises(ValueError):
        WebAPIClient("http://127.0.0.1:9/api", USER_NAME, TOKEN, timeout=timeout)


def test_verification_off_despite_ca_bundle_variable(tmp_path, monkeypatch):
    """requests ignores session.verify=False when REQUESTS_CA_BUNDLE is set, unless verify is given per request."""
    from anonapi.sandbox import Sandbox

    with Sandbox(data_dir=tmp_path / "tls-data", tls=True) as sandbox:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "tls-data" / "no-such-bundle.pem"))
        monkeypatch.setenv("CURL_CA_BUNDLE", str(tmp_path / "tls-data" / "no-such-bundle.pem"))
        client = WebAPIClient(sandbox.url, sandbox.user_name, sandbox.token, validate_https=False)
        assert client.get_documentation()


# --- client: retries and responses that are not job info ----------------------------------------


def test_retry_after_too_long_not_retried(fake_server):
    fake_server.add_fault(count=4, status=503, body=b"busy", content_type="text/plain", headers={"Retry-After": "3600"})
    with pytest.raises(UnexpectedResponseError):
        WebAPIClient(fake_server.url, USER_NAME, TOKEN).get("get_jobs")
    assert len(fake_server.calls_to("get_jobs")) == 1


@pytest.mark.parametrize("retry_after", ["inf", "1e30"])
def test_retry_after_infinite_not_retried(fake_server, retry_after):
    headers = {"Retry-After": retry_after}
    fake_server.add_fault(count=4, status=503, body=b"busy", content_type="text/plain", headers=headers)
    with pytest.raises(UnexpectedResponseError):
        WebAPIClient(fake_server.url, USER_NAME, TOKEN).get("get_jobs")
    assert len(fake_server.calls_to("get_jobs")) == 1


def test_retry_delay_ignores_nan_and_dates():
    client = WebAPIClient("http://127.0.0.1:9/api", USER_NAME, TOKEN)
    assert client._retry_delay(1, "nan") == client.backoff_factor
    assert client._retry_delay(1, "Wed, 21 Oct 2015 07:28:00 GMT") == client.backoff_factor


def test_retry_delay_takes_short_retry_after():
    client = WebAPIClient("http://127.0.0.1:9/api", USER_NAME, TOKEN)
    assert client._retry_delay(1, "2") == 2.0


@pytest.mark.parametrize(
    "body",
    [b'{"documentation": 42}', b'{"1": "not a map"}', b'{"1": null}', b'{"abc": {"status": "DONE"}}'],
)
def test_get_jobs_malformed_map_not_an_api(fake_server, body):
    fake_server.add_fault(status=200, body=body)
    tool = AnonClientTool(USER_NAME, TOKEN)
    with pytest.raises(NotAnAPIError) as caught:
        tool.get_jobs(RemoteAnonServer("fake", fake_server.url))
    assert "get_jobs" in str(caught.value)


def test_cancel_malformed_job_id_not_an_api(fake_server):
    fake_server.add_fault(status=200, body=b'{"job_id": "abc", "status": "INACTIVE"}')
    tool = AnonClientTool(USER_NAME, TOKEN)
    with pytest.raises(NotAnAPIError):
        tool.cancel_job(RemoteAnonServer("fake", fake_server.url), 1)


def test_job_info_list_single_string_id(fake_server):
    tool = AnonClientTool(USER_NAME, TOKEN)
    infos = tool.get_job_info_list(RemoteAnonServer("fake", fake_server.url), "12")
    assert fake_server.calls_to("get_jobs_list")[0].form["job_ids"] == ["12"]
    assert len(infos) == 0


# --- bulk operations and Ctrl+C ------------------------------------------------------------------


def test_run_bulk_interrupt_skips_pending():
    ids = [str(number) for number in range(1, 51)]
    started = []
    releases = {job_id: threading.Event() for job_id in ids}

    def operation(job_id):
        started.append(job_id)
        if job_id != "1":
            # Bounded, so that a regression fails instead of hanging.
            releases[job_id].wait(timeout=10)
        return job_id

    def on_done(job_id, error):
        # Ctrl+C arrives in the main thread, which runs on_done.
        releases["2"].set()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bulk(operation, ids, max_workers=1, on_done=on_done)
    assert len(started) <= 3


# --- job ids -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["\u00b2", "1-\u00b2", "\uff11\uff12"])
def test_job_id_non_ascii_digits_rejected(value):
    with pytest.raises(UserInputError):
        parse_job_ids([value])


# --- settings file -------------------------------------------------------------------------------


def test_save_keeps_symlink(tmp_path):
    target = tmp_path / "dotfiles" / "settings.yml"
    target.parent.mkdir()
    target.write_text("user_name: before\n")
    link = tmp_path / "link.yml"
    link.symlink_to(target)
    settings_file = SettingsFile(link)
    settings = settings_file.load()
    settings.user_name = "after"
    settings_file.save(settings)
    assert link.is_symlink()
    assert saved(target)["user_name"] == "after"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX only")
def test_save_refuses_pipe(tmp_path):
    pipe = tmp_path / "settings.yml"
    os.mkfifo(pipe)
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(pipe).save(AnonClientSettings())
    assert "not a regular file" in str(caught.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX only")
def test_load_refuses_pipe(tmp_path):
    # Never /dev/null here: a version without the check would chmod or replace it.
    pipe = tmp_path / "settings.yml"
    os.mkfifo(pipe)

    def write_settings_into_pipe():
        # Blocks until a reader opens the pipe, so a loader that reads it gets a file and returns.
        with open(pipe, "w") as writer:
            writer.write("user_name: from-pipe\n")

    writer_thread = threading.Thread(target=write_settings_into_pipe, daemon=True)
    writer_thread.start()
    try:
        with pytest.raises(ConfigurationError) as caught:
            SettingsFile(pipe).load()
        assert "not a regular file" in str(caught.value)
    finally:
        # Release the writer if the loader never opened the pipe.
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        writer_thread.join()
        os.close(reader)


def test_home_not_found_configuration_error(monkeypatch):
    monkeypatch.delenv("ANONAPI_SETTINGS")

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    with pytest.raises(ConfigurationError) as caught:
        default_settings_path()
    assert "ANONAPI_SETTINGS" in str(caught.value)


@pytest.mark.parametrize("url", [None, [1, 2], {"a": "b"}, ""])
def test_server_without_url_rejected(tmp_path, url):
    path = write_settings(tmp_path / "s.yml", servers={"p01": url})
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(path).load()
    assert "p01" in str(caught.value)


def test_servers_list_duplicate_names_rejected(tmp_path):
    servers = [{"name": "p01", "url": "https://a.example.org"}, {"name": "p01", "url": "https://b.example.org"}]
    path = write_settings(tmp_path / "s.yml", servers=servers)
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(path).load()
    assert "p01" in str(caught.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300, 0, -1])
def test_read_timeout_out_of_range_rejected(tmp_path, value):
    path = write_settings(tmp_path / "s.yml", read_timeout=value)
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(path).load()
    assert "read_timeout" in str(caught.value)


def test_max_concurrent_requests_above_pool_rejected(tmp_path):
    path = write_settings(tmp_path / "s.yml", max_concurrent_requests=100000)
    with pytest.raises(ConfigurationError) as caught:
        SettingsFile(path).load()
    assert "max_concurrent_requests" in str(caught.value)


def test_max_concurrent_requests_32_accepted(tmp_path):
    path = write_settings(tmp_path / "s.yml", max_concurrent_requests=32)
    assert SettingsFile(path).load().max_concurrent_requests == 32


def test_unc_path_null_rejected(tmp_path):
    path = write_settings(tmp_path / "s.yml", unc_paths={"/mnt/share": None})
    with pytest.raises(ConfigurationError):
        SettingsFile(path).load()


def test_pre_1_4_map_null_values_take_defaults(tmp_path):
    path = write_settings(tmp_path / "s.yml", create_job_defaults={"project_name": None, "destination_path": None})
    defaults = SettingsFile(path).load().job_defaults
    assert defaults.project_name == "NOT_SET"
    assert defaults.destination_path == "."


def test_pre_1_4_map_other_keys_kept(tmp_path):
    path = write_settings(tmp_path / "s.yml", job_default_parameters={"project_name": "P", "priority": 5})
    settings_file = SettingsFile(path)
    settings_file.save(settings_file.load())
    assert "priority,5" in saved(path)["job_default_parameters"]


def test_pre_1_4_map_list_value_rejected(tmp_path):
    path = write_settings(tmp_path / "s.yml", create_job_defaults={"project_name": ["P"]})
    with pytest.raises(ConfigurationError):
        SettingsFile(path).load()


# --- anon server add ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/api",
        "http://127.0.0.1:99999/api",
        "http://127.0.0.1:abc/api",
        "http://127.0.0.1:0/api",
        " http://127.0.0.1:1/api",
        "http://127.0.0.1:1/a b",
        "http://127.0.0.1:1/api\n",
        "http://127.0.0.1:1/api?x=1",
        "http://127.0.0.1:1/api#part",
    ],
)
def test_add_invalid_url_rejected(run_anon, settings_path, url):
    result = run_anon("server", "add", "p01", url)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Invalid server URL")
    assert result.stderr.count("\n") == 1


def test_add_url_with_credentials_rejected(run_anon):
    result = run_anon("server", "add", "p01", "https://someone:hunter2pw@anon.example.org/p01")
    assert result.exit_code == 1
    assert "hunter2pw" not in result.stderr


@pytest.mark.parametrize("name", ["", "  ", " p01", "p01\nx", "p\x1b01"])
def test_add_invalid_name_rejected(run_anon, name):
    result = run_anon("server", "add", name, "https://anon.example.org/p01")
    assert result.exit_code == 1
    assert "server name" in result.stderr


def test_add_unicode_name_accepted(run_anon, settings_path):
    result = run_anon("server", "add", "p\u00fc\u263a", "https://anon.example.org/p01")
    assert result.exit_code == 0
    assert saved(settings_path)["servers"] == {"p\u00fc\u263a": "https://anon.example.org/p01"}


# --- anon job -----------------------------------------------------------------------------------


@pytest.mark.parametrize("arguments", [["info", ""], ["list", ","], ["cancel", "-y", " "], ["reset", "-y", ",,"]])
def test_job_no_ids_rejected(run_anon, fake_settings, fake_server, arguments):
    result = run_anon("job", *arguments)
    assert result.exit_code == 1
    assert "No job ids" in result.stderr
    assert fake_server.requests == []


def test_job_superscript_id_one_line_error(run_anon, fake_settings):
    result = run_anon("job", "info", "\u00b2")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Invalid job id")


def test_job_many_missing_ids_summarised(run_anon, fake_settings):
    result = run_anon("job", "list", "100-199")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "100 jobs not found on fake: 100, 101" in result.stderr


def test_set_opt_out_ignore_one_argument_explains(run_anon, fake_settings):
    result = run_anon("job", "set-opt-out-ignore", "-y", "12")
    assert result.exit_code == 2
    assert "Give the job ids and then the reason" in result.stderr


# --- anon settings ------------------------------------------------------------------------------


def test_set_validate_ssl_empty_rejected(run_anon, settings_path):
    run_anon("settings", "set-validate-ssl", "true")
    result = run_anon("settings", "set-validate-ssl", "")
    assert result.exit_code == 2
    assert saved(settings_path)["validate_ssl"] is True


@pytest.mark.parametrize("word, expected", [("off", False), ("NO", False), ("yes", True), ("1", True)])
def test_set_validate_ssl_words(run_anon, settings_path, word, expected):
    run_anon("settings", "set-validate-ssl", word)
    assert saved(settings_path)["validate_ssl"] is expected


def test_set_username_control_characters_rejected(run_anon, settings_path):
    result = run_anon("settings", "user", "set-username", "a\nb")
    assert result.exit_code == 1
    assert not settings_path.exists() or saved(settings_path)["user_name"] != "a\nb"


@pytest.mark.parametrize("token", [f"{SECRET} tail", f"{SECRET}\u00e9", f"{SECRET}\x07"])
def test_set_token_invalid_characters_rejected(run_anon, settings_path, token):
    result = run_anon("settings", "user", "set-token", "--stdin", input=f"{token}\n")
    assert result.exit_code == 1
    assert SECRET not in result.stdout + result.stderr
    assert not settings_path.exists() or SECRET not in settings_path.read_text(encoding="utf-8")


def test_get_token_empty_password_rejected(run_anon, fake_settings, fake_server):
    fake_server.has_get_token = True
    result = run_anon("settings", "user", "get-token", "--stdin", input="\n")
    assert result.exit_code == 1
    assert "password is empty" in result.stderr
    assert fake_server.calls_to("get_token") == []


def test_edit_missing_editor_explains(run_anon, settings_path, monkeypatch, tmp_path):
    monkeypatch.setenv("VISUAL", str(tmp_path / "no-such-editor"))
    result = run_anon("settings", "edit")
    assert result.exit_code == 1
    assert "EDITOR" in result.stderr


@pytest.mark.parametrize("verbosity", [[], ["-vv"]])
def test_token_with_newline_never_shown(fake_server, settings_path, verbosity):
    write_settings(
        settings_path,
        servers={"fake": fake_server.url},
        active_server_name="fake",
        user_name=USER_NAME,
        user_token=f"{SECRET}\nX-Injected: 1",
    )
    completed = run_anon_process([*verbosity, "server", "jobs"], settings_path)
    assert completed.returncode == 1
    assert SECRET not in completed.stdout + completed.stderr


def test_server_jobs_malformed_response_one_line(run_anon, fake_settings, fake_server):
    fake_server.add_fault(status=200, body=b'{"documentation": 42}')
    result = run_anon("server", "jobs")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1


# --- testresources ------------------------------------------------------------------------------


def test_mock_create_path_job_sets_given_values():
    tool = MockAnonClientTool()
    info = tool.create_path_job(
        RemoteAnonServerFactory(), "P", r"\\host\share\in", r"\\host\share\out", anon_name="NAME", anon_id="ID"
    )
    assert info.source_anonymizedpatientname == "NAME"
    assert info.source_anonymizedpatientid == "ID"


def test_mock_create_rejects_unknown_argument():
    with pytest.raises(TypeError):
        MockAnonClientTool().create_path_job(RemoteAnonServerFactory(), "P", "in", "out", anonname="NAME")


def test_mock_get_jobs_newest_first():
    job_ids = [info.job_id for info in MockAnonClientTool().get_jobs(RemoteAnonServerFactory())]
    assert job_ids == sorted(job_ids, reverse=True)


def test_job_info_json_with_missing_ids(run_anon, fake_settings):
    result = run_anon("job", "info", "1", "99", "-o", "json")
    assert [job["job_id"] for job in json.loads(result.stdout)] == [1]
