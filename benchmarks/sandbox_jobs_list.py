"""Time get_jobs_list and get_jobs_list_extended of the sandbox for 10,000 job ids.

Starts a sandbox in this process, stores the jobs directly in its database,
and sends each call over HTTP on 127.0.0.1 as anonapi's client does: one GET
with the ids as repeated ``job_ids`` form fields in the body. Prints the
median and maximum wall-clock time of each call, from sending the request to
parsing the JSON response.

    python benchmarks/sandbox_jobs_list.py --jobs 10000 --runs 21
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import requests

from anonapi.sandbox import Sandbox


def store_jobs(sandbox: Sandbox, count: int) -> None:
    fields = {
        "project_name": sandbox.project_name,
        "source_type": "PATH",
        "source_path": r"\\server\share\patient",
        "destination_type": "PATH",
        "destination_path": r"\\server\output",
        "source_anonymizedpatientname": "PSEUDO^NAME",
        "source_anonymizedpatientid": "PSEUDO-001",
        "description": "benchmark job",
    }
    for _ in range(count):
        sandbox.store.create_job(sandbox.user_name, fields)


def time_call(session: requests.Session, sandbox: Sandbox, function: str, job_ids: list) -> float:
    start = time.perf_counter()
    response = session.get(
        f"{sandbox.url}/{function}",
        data={"user_name": sandbox.user_name, "job_ids": job_ids},
        headers={"Authorization": f"Token {sandbox.token}"},
        timeout=60,
    )
    result = response.json()
    elapsed = time.perf_counter() - start
    if response.status_code != 200 or len(result) != len(job_ids):
        raise SystemExit(f"{function} failed: status {response.status_code}, {len(result)} jobs")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="number of jobs and ids per call")
    parser.add_argument("--runs", type=int, default=21, help="calls per function")
    arguments = parser.parse_args()

    with Sandbox(poll_interval=1.0) as sandbox:
        # Jobs stay ACTIVE, so the worker does not change them while they are read.
        sandbox.faults.hold_jobs("ACTIVE")
        store_jobs(sandbox, arguments.jobs)
        job_ids = list(range(1, arguments.jobs + 1))
        session = requests.Session()
        time_call(session, sandbox, "get_jobs_list", job_ids)  # warm-up: connection, caches

        print(f"Machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}")
        print(f"Load average before: {', '.join(f'{value:.2f}' for value in os.getloadavg())}")
        print("| function | ids | median (s) | max (s) |")
        print("| --- | --- | --- | --- |")
        for function in ("get_jobs_list", "get_jobs_list_extended"):
            times = [time_call(session, sandbox, function, job_ids) for _ in range(arguments.runs)]
            print(f"| `{function}` | {arguments.jobs} | {statistics.median(times):.3f} | {max(times):.3f} |")


if __name__ == "__main__":
    main()
