"""Measure how many API calls per second the sandbox serves, and the CPU time each costs.

Starts a sandbox over HTTPS in a child process, with 1,000 held jobs, and
sends ``modify_job`` calls as ``anon batch reset`` does, from this process:

- ``bare http.client``: the least a Python client can do per call, one
  kept-alive ``http.client.HTTPSConnection`` per thread.
- ``anonapi``: ``AnonClientTool.reset_jobs``, as ``anon batch reset`` sends
  them, without the start-up of a process. It sends them all from one
  thread, ``--threads`` at a time.
- ``requests``: a requests session with a pool of kept-alive connections, to
  compare with the transport anonapi used before.

For each it prints the calls per second and the CPU time per call of the
client (this process) and of the sandbox (the child process), both from
``os.times()``. The sandbox's rate with the bare client is the ceiling that no
client on this machine can beat.

    python benchmarks/sandbox_calls.py [--calls 1000] [--threads 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import ssl
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List
from urllib.parse import urlencode, urlsplit

from batch_bench import machine_description

RESET_FIELDS = {"status": "ACTIVE", "files_downloaded": 0, "files_processed": 0, "error": " "}


def serve(connection, job_count: int) -> None:
    """Run a sandbox in the child process until the parent sends "stop"; "cpu" returns its CPU time."""
    from anonapi.responses import JobStatus
    from anonapi.sandbox import Sandbox

    with Sandbox(tls=True) as sandbox:
        sandbox.faults.hold_jobs(JobStatus.ACTIVE)
        fields = {
            "project_name": sandbox.project_name,
            "source_type": "PATH",
            "source_path": "\\\\sandbox\\share\\study",
            "destination_type": "PATH",
            "destination_path": "\\\\sandbox\\output",
        }
        job_ids = [sandbox.store.create_job(sandbox.user_name, dict(fields))["job_id"] for _ in range(job_count)]
        connection.send({
            "url": sandbox.url,
            "user_name": sandbox.user_name,
            "token": sandbox.token,
            "ca_bundle": str(sandbox.ca_bundle),
            "job_ids": job_ids,
        })
        while True:
            message = connection.recv()
            if message == "stop":
                return
            times = os.times()
            connection.send(times.user + times.system)


def bare_client(sandbox: Dict) -> Callable[[int], None]:
    """Return a call that sends modify_job with one kept-alive http.client connection per thread."""
    parts = urlsplit(sandbox["url"])
    context = ssl.create_default_context(cafile=sandbox["ca_bundle"])
    local = threading.local()
    headers = {
        "Authorization": f"Token {sandbox['token']}",
        "Content-Type": "application/x-www-form-urlencoded",
    }

    def call(job_id: int) -> None:
        connection = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPSConnection(parts.hostname, parts.port, context=context)
        body = urlencode(dict(RESET_FIELDS, job_id=job_id, user_name=sandbox["user_name"]))
        connection.request("POST", f"{parts.path}/modify_job", body=body, headers=headers)
        response = connection.getresponse()
        json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"modify_job of job {job_id} failed with status {response.status}")

    return call


def requests_client(sandbox: Dict) -> Callable[[int], None]:
    """Return a call that sends modify_job through one requests session, as anonapi did before."""
    import requests

    session = requests.Session()
    session.mount("https://", requests.adapters.HTTPAdapter(pool_maxsize=32))
    session.headers["Authorization"] = f"Token {sandbox['token']}"
    session.verify = sandbox["ca_bundle"]
    url = f"{sandbox['url']}/modify_job"

    def call(job_id: int) -> None:
        response = session.post(url, data=dict(RESET_FIELDS, job_id=job_id, user_name=sandbox["user_name"]))
        response.raise_for_status()
        response.json()

    return call


def in_threads(call: Callable[[int], None], threads: int) -> Callable[[List[int]], None]:
    """Return a function that makes ``call`` for every job id, ``threads`` at a time."""

    def send_all(job_ids: List[int]) -> None:
        with ThreadPoolExecutor(max_workers=threads) as executor:
            list(executor.map(call, job_ids))

    return send_all


def anonapi_client(sandbox: Dict, threads: int) -> Callable[[List[int]], None]:
    """Return a function that resets the jobs with anonapi, as ``anon batch reset`` does after start-up."""
    from anonapi.client import AnonClientTool
    from anonapi.objects import RemoteAnonServer

    tool = AnonClientTool(sandbox["user_name"], sandbox["token"], max_concurrent_requests=threads)
    server = RemoteAnonServer("sandbox", sandbox["url"])

    def send_all(job_ids: List[int]) -> None:
        result = tool.reset_jobs(server, job_ids, threads)
        if not result.all_succeeded:
            raise RuntimeError(f"reset failed: {result.summary()}")

    return send_all


def measure(send_all: Callable[[List[int]], None], job_ids: List[int], server) -> Dict[str, float]:
    """Send one call per job id and return the rate and the CPU time per call of client and sandbox."""
    send_all(job_ids[:8])  # opens the connections and imports what the calls need
    server.send("cpu")
    server_started = server.recv()
    client_started = sum(os.times()[:2])
    started = time.perf_counter()
    send_all(job_ids)
    elapsed = time.perf_counter() - started
    client_cpu = sum(os.times()[:2]) - client_started
    server.send("cpu")
    server_cpu = server.recv() - server_started
    return {
        "calls_per_second": len(job_ids) / elapsed,
        "client_ms": client_cpu / len(job_ids) * 1000,
        "server_ms": server_cpu / len(job_ids) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="Calls per measurement, one per job.")
    parser.add_argument("--threads", type=int, default=8, help="Calls in flight at once.")
    parser.add_argument("--repeat", type=int, default=5, help="Measurements per client (median reported).")
    arguments = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    child = context.Process(target=serve, args=(child_end, arguments.calls), daemon=True)
    child.start()
    sandbox = parent_end.recv()
    os.environ["REQUESTS_CA_BUNDLE"] = sandbox["ca_bundle"]

    clients = {
        "bare http.client": in_threads(bare_client(sandbox), arguments.threads),
        "anonapi (AnonClientTool.reset_jobs)": anonapi_client(sandbox, arguments.threads),
        "requests": in_threads(requests_client(sandbox), arguments.threads),
    }
    results: Dict[str, List[Dict[str, float]]] = {name: [] for name in clients}
    try:
        for _ in range(arguments.repeat):
            for name, send_all in clients.items():
                results[name].append(measure(send_all, sandbox["job_ids"], parent_end))
    finally:
        parent_end.send("stop")
        child.join(30)

    print(f"Machine: {machine_description()}")
    print(f"{arguments.calls} modify_job calls over HTTPS, {arguments.threads} at a time, "
          f"median of {arguments.repeat} measurements")
    print()
    print("| client | calls/s | client CPU per call (ms) | sandbox CPU per call (ms) |")
    print("| --- | --- | --- | --- |")
    for name, runs in results.items():
        rate = statistics.median(run["calls_per_second"] for run in runs)
        client_ms = statistics.median(run["client_ms"] for run in runs)
        server_ms = statistics.median(run["server_ms"] for run in runs)
        print(f"| {name} | {rate:.0f} | {client_ms:.2f} | {server_ms:.2f} |")


if __name__ == "__main__":
    main()
