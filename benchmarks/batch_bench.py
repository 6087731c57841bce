"""Time `anon batch reset`, `cancel` and `status` on large batches, against anonapi 2.1.2.

Starts a sandbox server over HTTPS on 127.0.0.1, creates 10,000 jobs in it
and times, as whole processes (start-up, settings, requests and output):

- ``anon batch reset`` of 1,000 jobs
- ``anon batch cancel`` of 1,000 jobs
- ``anon batch status`` of 10,000 jobs

once with this anonapi and once with anonapi 2.1.2 from PyPI, which runs as
a black box from its own virtual environment against the same sandbox. Next
to the wall-clock times it prints the CPU time of the command's process and
of the sandbox, which depend less on other programs running at the same time.

On 127.0.0.1 a call costs the sandbox about 0.25 ms of CPU time (measured
with benchmarks/sandbox_calls.py), far less than a hospital server over a
network. ``--server-delay-ms`` makes the sandbox wait that long before it
responds to each call (without blocking other calls), to show how the
commands compare when the server or the network is slower.
The worker of the sandbox is held, so job statuses change only through the
commands being timed. Jobs are put back into their starting status directly
in the sandbox's database between runs.

Usage::

    python benchmarks/batch_bench.py [--repeat 3] [--upstream-repeat 1]
        [--server-delay-ms 0] [--upstream-venv /tmp/upstream] [--skip-upstream]

If the upstream virtual environment does not exist, it is created with
``python -m venv`` and ``pip install anonapi==2.1.2``, which needs PyPI.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import yaml

from anonapi.batch import BatchFolder, JobBatch
from anonapi.objects import RemoteAnonServer
from anonapi.responses import JobStatus

from upstream import UPSTREAM_VERSION, compile_bytecode, ensure_upstream

BULK_JOB_COUNT = 1_000
STATUS_JOB_COUNT = 10_000
SERVER_NAME = "sandbox"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs per command for this anonapi (median reported).")
    parser.add_argument("--upstream-repeat", type=int, default=1, help="Runs per command for anonapi 2.1.2.")
    parser.add_argument(
        "--upstream-venv",
        type=Path,
        default=Path("/tmp/upstream"),
        help="Virtual environment with anonapi 2.1.2; created if missing.",
    )
    parser.add_argument("--skip-upstream", action="store_true", help="Time this anonapi only.")
    parser.add_argument(
        "--server-delay-ms",
        type=float,
        default=0.0,
        help="Milliseconds the sandbox waits before it responds to each call, to emulate a slower server.",
    )
    arguments = parser.parse_args()

    ours = [str(Path(sys.executable).parent / "anon")]
    compile_bytecode()
    upstream = None if arguments.skip_upstream else [str(ensure_upstream(arguments.upstream_venv))]

    with tempfile.TemporaryDirectory(prefix="anonapi-batch-bench-") as temporary:
        results = run_benchmarks(
            Path(temporary), ours, upstream, arguments.repeat, arguments.upstream_repeat, arguments.server_delay_ms
        )

    print_report(results, arguments.server_delay_ms)


class Setup:
    """One client's home folder and batch folders for the running sandbox."""

    def __init__(self, root: Path, sandbox, name: str):
        self.home = root / name / "home"
        self.bulk_folder = root / name / "bulk"
        self.status_folder = root / name / "status"
        for folder in (self.home, self.bulk_folder, self.status_folder):
            folder.mkdir(parents=True)
        self.settings_path = self.home / "AnonWebAPIClientSettings.yml"
        settings = {
            "active_mapping_file": None,
            "active_server_name": SERVER_NAME,
            "job_default_parameters": ["project,NOT_SET", "destination_path,."],
            "servers": {SERVER_NAME: sandbox.url},
            "user_name": sandbox.user_name,
            "user_token": sandbox.token,
            "validate_ssl": True,
        }
        self.settings_path.write_text(yaml.safe_dump(settings), encoding="utf-8")
        self.environment = dict(
            os.environ,
            HOME=str(self.home),
            ANONAPI_SETTINGS=str(self.settings_path),
            REQUESTS_CA_BUNDLE=str(sandbox.ca_bundle),
        )


def run_benchmarks(root: Path, ours: List[str], upstream: Optional[List[str]], repeat: int,
                   upstream_repeat: int, server_delay_ms: float) -> Dict[str, Dict[str, List[Timing]]]:
    from anonapi.sandbox import Sandbox

    with Sandbox(data_dir=root / "sandbox", tls=True) as sandbox:
        sandbox.faults.hold_jobs(JobStatus.ACTIVE)
        if server_delay_ms > 0:
            # Far more calls than the benchmark makes, so that every call waits.
            sandbox.faults.delay_next(count=10**9, seconds=server_delay_ms / 1000)
        job_ids = create_jobs(sandbox, STATUS_JOB_COUNT)
        server = RemoteAnonServer(SERVER_NAME, sandbox.url)
        bulk_ids = job_ids[:BULK_JOB_COUNT]

        clients = {"this anonapi": (ours, repeat)}
        if upstream is not None:
            clients[f"anonapi {UPSTREAM_VERSION}"] = (upstream, upstream_repeat)

        results: Dict[str, Dict[str, List[Timing]]] = {}
        for client_name, (command, runs) in clients.items():
            setup = Setup(root, sandbox, client_name.replace(" ", "-"))
            BatchFolder(setup.bulk_folder).save(JobBatch(bulk_ids, server))
            BatchFolder(setup.status_folder).save(JobBatch(job_ids, server))

            def prepare_reset() -> None:
                set_status(sandbox, bulk_ids, JobStatus.DONE)

            def check_reset() -> None:
                expect_status(sandbox, bulk_ids, JobStatus.ACTIVE)

            def prepare_cancel() -> None:
                set_status(sandbox, bulk_ids, JobStatus.ACTIVE)

            def check_cancel() -> None:
                expect_status(sandbox, bulk_ids, JobStatus.INACTIVE)

            results[client_name] = {
                f"reset {BULK_JOB_COUNT} jobs": time_command(
                    command + ["batch", "reset"], setup.bulk_folder, setup, runs, prepare_reset, check_reset
                ),
                f"cancel {BULK_JOB_COUNT} jobs": time_command(
                    command + ["batch", "cancel"], setup.bulk_folder, setup, runs, prepare_cancel, check_cancel
                ),
                f"status of {STATUS_JOB_COUNT} jobs": time_command(
                    command + ["batch", "status"], setup.status_folder, setup, runs, lambda: None, None,
                ),
            }
        return results


def create_jobs(sandbox, count: int) -> List[str]:
    """Create jobs straight in the sandbox's database; creation is not what is timed."""
    fields = {
        "project_name": sandbox.project_name,
        "source_type": "PATH",
        "source_path": "\\\\sandbox\\share\\study",
        "destination_type": "PATH",
        "destination_path": "\\\\sandbox\\output",
    }
    return [str(sandbox.store.create_job(sandbox.user_name, dict(fields))["job_id"]) for _ in range(count)]


def set_status(sandbox, job_ids: List[str], status: str) -> None:
    """Set the status of many jobs in one database transaction, bypassing the API."""
    store = sandbox.store
    with store.lock, store.connection:
        store.connection.executemany(
            "UPDATE jobs SET status = ? WHERE job_id = ?", [(status, int(job_id)) for job_id in job_ids]
        )


def expect_status(sandbox, job_ids: List[str], status: str) -> None:
    found = sandbox.store.job_statuses([int(job_id) for job_id in job_ids])
    wrong = [job_id for job_id, job_status in found.items() if job_status != status]
    if wrong:
        raise RuntimeError(f"{len(wrong)} jobs are not {status} after the command, for example job {wrong[0]}")


class Timing:
    """One run of a command: wall-clock seconds, and CPU seconds (user plus system) of the command and the sandbox.

    The sandbox's CPU time is that of this process, whose other threads are idle while the command runs.
    """

    def __init__(self, wall: float, command_cpu: float, sandbox_cpu: float):
        self.wall = wall
        self.command_cpu = command_cpu
        self.sandbox_cpu = sandbox_cpu


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def time_command(command: List[str], folder: Path, setup: Setup, runs: int,
                 prepare: Callable[[], None], check: Optional[Callable[[], None]]) -> List[Timing]:
    """Run ``command`` ``runs`` times in ``folder``, answering 'y' to its question, and return the timings."""
    times = []
    for _ in range(runs):
        prepare()
        command_cpu_before = children_cpu_seconds()
        sandbox_cpu_before = own_cpu_seconds()
        started = time.perf_counter()
        completed = subprocess.run(
            command, cwd=folder, env=setup.environment, input="y\n", capture_output=True, text=True
        )
        times.append(Timing(
            time.perf_counter() - started,
            children_cpu_seconds() - command_cpu_before,
            own_cpu_seconds() - sandbox_cpu_before,
        ))
        if completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} exited with {completed.returncode}: {completed.stderr[-2000:]}"
            )
        if check is not None:
            check()
    return times


def machine_description() -> str:
    model = platform.processor() or "unknown processor"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, load average {load} at the end"
    )


def print_report(results: Dict[str, Dict[str, List[Timing]]], server_delay_ms: float) -> None:
    clients = list(results)
    operations = list(results[clients[0]])
    print(f"Machine: {machine_description()}")
    print(f"Sandbox delay per call: {server_delay_ms:g} ms")
    print()
    header = "| operation | " + " | ".join(f"{client} (s)" for client in clients)
    if len(clients) == 2:
        header += " | speed-up"
    print(header + " |")
    print("|" + " --- |" * (len(clients) + 1 + (len(clients) == 2)))
    for operation in operations:
        medians = [statistics.median(timing.wall for timing in results[client][operation]) for client in clients]
        row = f"| {operation} | " + " | ".join(f"{median:.2f}" for median in medians)
        if len(clients) == 2:
            row += f" | {medians[1] / medians[0]:.1f}x"
        print(row + " |")
    print()
    print("Median CPU time (user plus system) per run, in seconds: the command's process, then the sandbox's.")
    print("CPU time depends less than wall-clock time on what else runs on the machine.")
    print()
    print("| operation | " + " | ".join(f"{client}: command, sandbox" for client in clients) + " |")
    print("|" + " --- |" * (len(clients) + 1))
    for operation in operations:
        cells = []
        for client in clients:
            timings = results[client][operation]
            command_cpu = statistics.median(timing.command_cpu for timing in timings)
            sandbox_cpu = statistics.median(timing.sandbox_cpu for timing in timings)
            cells.append(f"{command_cpu:.2f}, {sandbox_cpu:.2f}")
        print(f"| {operation} | " + " | ".join(cells) + " |")
    print()
    for client in clients:
        for operation in operations:
            runs = ", ".join(f"{timing.wall:.2f}" for timing in results[client][operation])
            print(f"{client}, {operation}: runs {runs} s")


if __name__ == "__main__":
    main()
