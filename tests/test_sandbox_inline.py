"""Tests of the sandbox's short paths: calls on the event loop, the token cache and the held worker."""

from __future__ import annotations

from anonapi.client import AnonClientTool, WebAPIClient
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobStatus
from anonapi.sandbox.app import MAX_INLINE_JOB_IDS
from anonapi.sandbox.db import hash_token, now_iso

PATH_JOB = {
    "source_type": "PATH",
    "source_path": "\\\\sandbox\\share\\study",
    "destination_type": "PATH",
    "destination_path": "\\\\sandbox\\share\\out",
}


def create_jobs(sandbox, count: int):
    fields = dict(PATH_JOB, project_name=sandbox.project_name)
    return [sandbox.store.create_job(sandbox.user_name, dict(fields))["job_id"] for _ in range(count)]


def test_large_job_list_in_worker_thread(sandbox):
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job_ids = create_jobs(sandbox, MAX_INLINE_JOB_IDS + 1)
    client = WebAPIClient(sandbox.url, sandbox.user_name, sandbox.token)
    response = client.get("get_jobs_list", job_ids=job_ids)
    assert sorted(int(job_id) for job_id in response) == job_ids


def test_comma_separated_ids_counted(sandbox):
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job_ids = create_jobs(sandbox, MAX_INLINE_JOB_IDS + 1)
    client = WebAPIClient(sandbox.url, sandbox.user_name, sandbox.token)
    response = client.get("get_jobs_list", job_ids=",".join(str(job_id) for job_id in job_ids))
    assert len(response) == len(job_ids)


def test_token_cache_keeps_user(sandbox):
    store = sandbox.store
    assert store.user_for_token(sandbox.token) == sandbox.user_name
    assert store.user_for_token(sandbox.token) == sandbox.user_name


def test_unknown_token_not_cached(sandbox):
    store = sandbox.store
    assert store.user_for_token("token-stored-later") is None
    with store.lock, store.connection:
        user_id = store.connection.execute("SELECT id FROM users WHERE name = ?", (sandbox.user_name,)).fetchone()[0]
        store.connection.execute(
            "INSERT INTO tokens (user_id, token_hash, created) VALUES (?, ?, ?)",
            (user_id, hash_token("token-stored-later"), now_iso()),
        )
    assert store.user_for_token("token-stored-later") == sandbox.user_name


def test_held_job_runs_after_release(sandbox):
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    job_id = create_jobs(sandbox, 1)[0]
    tool = AnonClientTool(sandbox.user_name, sandbox.token)
    server = RemoteAnonServer("sandbox", sandbox.url)
    tool.cancel_job(server, job_id)
    tool.reset_job(server, job_id)
    assert sandbox.get_job(job_id)["status"] == JobStatus.ACTIVE
    sandbox.faults.release_jobs()
    assert sandbox.wait_for_jobs([job_id])[job_id] != JobStatus.ACTIVE
