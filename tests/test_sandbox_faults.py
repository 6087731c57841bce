"""Fault injection of the sandbox: through the Python API and the admin function."""

from __future__ import annotations

import pytest
import requests

from anonapi.responses import JobStatus
from anonapi.sandbox.app import ADMIN_SECRET_HEADER
from anonapi.sandbox.faults import Faults
from anonapi.sandbox.testdata import write_study


def get_jobs(sandbox, timeout=30) -> requests.Response:
    return requests.get(
        f"{sandbox.url}/get_jobs",
        data={"user_name": sandbox.user_name},
        headers={"Authorization": f"Token {sandbox.token}"},
        timeout=timeout,
    )


def post_admin(sandbox, secret=None, **fields) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/_sandbox/faults",
        data=fields,
        headers={ADMIN_SECRET_HEADER: sandbox.admin_secret if secret is None else secret},
        timeout=30,
    )


# Request faults through the Python API


def test_fail_next_answers_status(sandbox):
    sandbox.faults.fail_next(1, status=503)
    assert get_jobs(sandbox).status_code == 503


def test_fail_next_counts_calls(sandbox):
    sandbox.faults.fail_next(2, status=502)
    statuses = [get_jobs(sandbox).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]


def test_fail_next_default_status_500(sandbox):
    sandbox.faults.fail_next()
    assert get_jobs(sandbox).status_code == 500


def test_fail_next_applies_to_base_url(sandbox):
    sandbox.faults.fail_next(1, status=500)
    assert requests.get(sandbox.url, timeout=30).status_code == 500


def test_drop_next_closes_connection(sandbox):
    sandbox.faults.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        get_jobs(sandbox)


def test_drop_next_then_normal(sandbox):
    sandbox.faults.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        get_jobs(sandbox)
    assert get_jobs(sandbox).status_code == 200


def test_delay_next_exceeds_client_timeout(sandbox):
    sandbox.faults.delay_next(1, seconds=1.0)
    with pytest.raises(requests.Timeout):
        get_jobs(sandbox, timeout=(5, 0.2))


def test_delay_next_then_answers(sandbox):
    sandbox.faults.delay_next(1, seconds=0.1)
    assert get_jobs(sandbox).status_code == 200


def test_clear_switches_faults_off(sandbox):
    sandbox.faults.fail_next(5)
    sandbox.faults.clear()
    assert get_jobs(sandbox).status_code == 200


# Fault switches as values


def test_faults_combined_delay_and_status():
    faults = Faults()
    faults.delay_next(1, seconds=2.5)
    faults.fail_next(1, status=504)
    fault = faults.take_request_fault()
    assert fault.delay == 2.5
    assert fault.status == 504


def test_faults_drop_before_fail():
    faults = Faults()
    faults.fail_next(1)
    faults.drop_next(1)
    first, second = faults.take_request_fault(), faults.take_request_fault()
    assert first.drop
    assert second.status == 500


def test_faults_none_when_off():
    assert Faults().take_request_fault() is None


@pytest.mark.parametrize("status", [99, 600])
def test_fail_next_invalid_status(status):
    with pytest.raises(ValueError):
        Faults().fail_next(1, status=status)


@pytest.mark.parametrize("status", [JobStatus.DONE, JobStatus.ERROR, "PAUSED"])
def test_hold_jobs_invalid_status(status):
    with pytest.raises(ValueError):
        Faults().hold_jobs(status)


# The admin function


def test_admin_without_secret_returns_401(sandbox):
    response = requests.post(f"{sandbox.url}/_sandbox/faults", data={"action": "clear"}, timeout=30)
    assert response.status_code == 401


def test_admin_wrong_secret_returns_401(sandbox):
    assert post_admin(sandbox, secret="wrong", action="clear").status_code == 401


def test_admin_non_ascii_secret_returns_401(sandbox):
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults",
        data={"action": "clear"},
        headers={ADMIN_SECRET_HEADER: "g\u00e9heim".encode("latin-1")},
        timeout=30,
    )
    assert response.status_code == 401


def test_admin_user_token_is_not_enough(sandbox):
    response = requests.post(
        f"{sandbox.url}/_sandbox/faults",
        data={"action": "clear"},
        headers={"Authorization": f"Token {sandbox.token}"},
        timeout=30,
    )
    assert response.status_code == 401


def test_admin_fail_next(sandbox):
    response = post_admin(sandbox, action="fail_next", count="1", status="503")
    assert response.status_code == 200
    assert response.json()["fail_next"] == {"count": 1, "status": 503}
    assert get_jobs(sandbox).status_code == 503


def test_admin_calls_not_counted(sandbox):
    post_admin(sandbox, action="fail_next", count="1", status="503")
    state = requests.get(
        f"{sandbox.url}/_sandbox/faults", headers={ADMIN_SECRET_HEADER: sandbox.admin_secret}, timeout=30
    ).json()
    assert state["fail_next"]["count"] == 1


def test_admin_drop_next(sandbox):
    post_admin(sandbox, action="drop_next", count="1")
    with pytest.raises(requests.ConnectionError):
        get_jobs(sandbox)


def test_admin_hold_and_release(sandbox):
    post_admin(sandbox, action="hold_jobs", status="uploaded")
    held = sandbox.faults.held_status
    post_admin(sandbox, action="release_jobs")
    assert held == JobStatus.UPLOADED
    assert sandbox.faults.held_status is None


def test_admin_fill_destination(sandbox):
    post_admin(sandbox, action="fill_destination")
    assert sandbox.faults.destination_full


def test_admin_fill_destination_off(sandbox):
    post_admin(sandbox, action="fill_destination")
    post_admin(sandbox, action="fill_destination", full="false")
    assert not sandbox.faults.destination_full


def test_admin_unknown_action_returns_400(sandbox):
    response = post_admin(sandbox, action="explode")
    assert response.status_code == 400
    assert "explode" in response.json()["errors"]["action"]


def test_admin_invalid_count_returns_400(sandbox):
    assert post_admin(sandbox, action="fail_next", count="many").status_code == 400


def test_admin_invalid_hold_status_returns_400(sandbox):
    assert post_admin(sandbox, action="hold_jobs", status="DONE").status_code == 400


def test_admin_wrong_method_returns_405(sandbox):
    response = requests.delete(
        f"{sandbox.url}/_sandbox/faults", headers={ADMIN_SECRET_HEADER: sandbox.admin_secret}, timeout=30
    )
    assert response.status_code == 405


# Archive faults


@pytest.mark.parametrize("status, reason", [(404, "Not Found"), (400, "Bad Request")])
def test_fail_archive_next(sandbox, tmp_path, status, reason):
    study = write_study(tmp_path / "pacs" / "a", "PID-3001", source_files=("CT_small.dcm",))
    sandbox.faults.fail_archive_next(1, status=status)
    response = requests.post(
        f"{sandbox.url}/create_job",
        data={
            "user_name": sandbox.user_name, "source_type": "WADO", "source_name": "IDC_WADO",
            "source_instance_id": study.study_instance_uid, "destination_type": "PATH",
            "destination_path": r"\\server\output", "project_name": sandbox.project_name,
            "anonymizedpatientname": "X", "anonymizedpatientid": "X",
        },
        headers={"Authorization": f"Token {sandbox.token}"},
        timeout=30,
    )
    job_id = response.json()["job_id"]
    sandbox.wait_for_jobs([job_id])
    assert sandbox.get_job(job_id)["error"].endswith(f"Original error:'HTTP Error {status}: {reason}'")
