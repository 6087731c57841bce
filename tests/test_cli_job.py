"""Tests of ``anon job``: info, list, reset, cancel and set-opt-out-ignore against a local fake server."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(autouse=True)
def settings(fake_settings):
    return fake_settings


# --- info and list --------------------------------------------------------------------------


def test_info_shows_all_fields(run_anon):
    result = run_anon("job", "info", "2")
    assert result.exit_code == 0
    assert result.stdout.startswith("job 2 on fake:")
    assert "source_anonymizedpatientname" in result.stdout
    assert "WadoWrapperException" in result.stdout


def test_info_several_ids(run_anon):
    result = run_anon("job", "info", "1,3")
    assert "job 1 on fake:" in result.stdout
    assert "job 3 on fake:" in result.stdout


def test_info_json(run_anon):
    result = run_anon("job", "info", "1-2", "--output", "json")
    jobs = json.loads(result.stdout)
    assert [job["job_id"] for job in jobs] == [1, 2]
    assert jobs[0]["source_path"] == "\\\\server\\share\\input"


def test_info_missing_id_exit_code(run_anon):
    result = run_anon("job", "info", "1", "99")
    assert result.exit_code == 1
    assert "job 1 on fake:" in result.stdout
    assert "Error: job 99 not found on fake" in result.stderr


def test_info_needs_ids(run_anon):
    result = run_anon("job", "info")
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr


def test_info_invalid_id(run_anon):
    result = run_anon("job", "info", "1,x")
    assert result.exit_code == 1
    assert "Invalid job id 'x'" in result.stderr


def test_list_table(run_anon):
    result = run_anon("job", "list", "1", "2", "3")
    lines = result.stdout.splitlines()
    assert result.exit_code == 0
    assert lines[0].startswith("Info for 3 jobs on fake")
    assert [line.split()[0] for line in lines[3:]] == ["1", "2", "3"]


def test_list_json(run_anon):
    result = run_anon("job", "list", "3", "1", "-o", "json")
    assert [job["job_id"] for job in json.loads(result.stdout)] == [3, 1]


def test_list_missing_id(run_anon):
    result = run_anon("job", "list", "1", "42")
    assert result.exit_code == 1
    assert "job 42 not found" in result.stderr


# --- reset, cancel, set-opt-out-ignore ------------------------------------------------------------


def test_reset_asks_confirmation(run_anon, fake_server):
    result = run_anon("job", "reset", "2", input="y\n")
    assert result.exit_code == 0
    assert "This will reset 1 jobs on fake: 2." in result.stdout
    assert fake_server.jobs[2]["status"] == "ACTIVE"


def test_reset_declined_changes_nothing(run_anon, fake_server):
    result = run_anon("job", "reset", "2", input="n\n")
    assert result.exit_code == 1
    assert fake_server.jobs[2]["status"] == "ERROR"
    assert fake_server.calls_to("modify_job") == []


def test_reset_yes_skips_prompt(run_anon, fake_server):
    result = run_anon("job", "reset", "--yes", "2")
    assert result.exit_code == 0
    assert "Continue?" not in result.stdout
    assert result.stdout == "Reset job 2.\n"
    assert fake_server.jobs[2]["error"] == " "


def test_reset_range_and_list(run_anon, fake_server):
    for job_id in range(4, 10):
        fake_server.add_job(job_id, status="ERROR")
    result = run_anon("job", "reset", "-y", "1,4-5", "8", "9")
    assert result.exit_code == 0
    changed = sorted(int(request.form["job_id"][0]) for request in fake_server.calls_to("modify_job"))
    assert changed == [1, 4, 5, 8, 9]
    assert result.stdout.endswith("5 succeeded, 0 failed\n")


def test_reset_failure_does_not_stop_others(run_anon, fake_server):
    result = run_anon("job", "reset", "-y", "1", "77", "3")
    assert result.exit_code == 1
    assert "Reset job 1." in result.stdout
    assert "Reset job 3." in result.stdout
    assert "Error: job 77 not found on fake." in result.stderr
    assert "2 succeeded, 1 failed" in result.stdout


def test_reset_server_down_each_job_reported(run_anon, fake_server):
    fake_server.add_fault(count=2, status=500)
    result = run_anon("job", "reset", "-y", "1", "2")
    assert result.exit_code == 1
    assert result.stderr.count("Error: job") == 2


def test_cancel(run_anon, fake_server):
    result = run_anon("job", "cancel", "3", "--yes")
    assert result.exit_code == 0
    assert result.stdout == "Cancelled job 3.\n"
    assert fake_server.jobs[3]["status"] == "INACTIVE"


def test_cancel_confirmation_names_ids(run_anon):
    result = run_anon("job", "cancel", "1-3", input="n\n")
    assert "This will cancel 3 jobs on fake: 1, 2, 3." in result.stdout


def test_cancel_confirmation_shortens_long_list(run_anon):
    result = run_anon("job", "cancel", "1-100", input="n\n")
    assert "This will cancel 100 jobs on fake: 1, 2," in result.stdout
    assert "19, 20 and 80 more. Continue?" in result.stdout


def test_cancel_unknown_job(run_anon):
    result = run_anon("job", "cancel", "-y", "55")
    assert result.exit_code == 1
    assert result.stderr == "Error: job 55 not found on fake. Check the id and the active server.\n"


def test_set_opt_out_ignore(run_anon, fake_server):
    result = run_anon("job", "set-opt-out-ignore", "-y", "1", "2", "consent form 12 signed")
    assert result.exit_code == 0
    assert fake_server.jobs[1]["source_ignore_opt_out_reason"] == "Reason: consent form 12 signed"
    assert fake_server.jobs[2]["source_ignore_opt_out"] == "True"


def test_set_opt_out_ignore_empty_reason(run_anon, fake_server):
    result = run_anon("job", "set-opt-out-ignore", "-y", "1", " ")
    assert result.exit_code == 1
    assert "reason is empty" in result.stderr
    assert fake_server.calls_to("modify_job") == []


def test_set_opt_out_ignore_needs_reason(run_anon):
    result = run_anon("job", "set-opt-out-ignore", "-y", "1")
    assert result.exit_code == 2


def test_job_without_active_server(run_anon):
    run_anon("server", "remove", "fake")
    result = run_anon("job", "info", "1")
    assert result.exit_code == 1
    assert "No active server. Known servers: other." in result.stderr
