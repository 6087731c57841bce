"""Time `anon create from-mapping` of 1,000 rows against anonapi 2.1.2.

Starts a sandbox server over HTTPS on 127.0.0.1 and times, as whole
processes (start-up, reading the mapping, checks, requests, saving the
batch), the creation of one job per mapping row, with this anonapi and with
anonapi 2.1.2 from PyPI. anonapi 2.1.2 runs as a black box from its own
virtual environment, with HOME set to a folder that contains its own
settings file. Both trust the sandbox's certificate through REQUESTS_CA_BUNDLE.

Two kinds of mapping are timed:

``pacs``
    rows ``accession_number:<number>``: WADO jobs, nothing to check locally.
``selection``
    rows ``fileselection:<folder>/fileselection.txt`` on the sandbox's share,
    one DICOM file per selection. This anonapi also reads each selection and
    the header of each selected file before it creates anything, because the
    share is reachable through ``unc_paths``. anonapi 2.1.2 checks nothing.

Each run uses a new folder and a new batch. The worker of the sandbox is
held, so no job is processed while the clients run. anonapi 2.1.2 has no
``--yes``, so its confirmation question is answered on stdin.

``--server-delay-ms`` makes the sandbox wait that long before it answers
each call (without blocking other calls), to show how the tools compare
when the server or the network is slower than a sandbox on 127.0.0.1.

Usage::

    python benchmarks/create_bench.py [--rows 1000] [--repeat 3] [--upstream-repeat 1]
        [--kind pacs --kind selection] [--server-delay-ms 0]
        [--upstream-venv /tmp/upstream] [--skip-upstream]

If the upstream virtual environment does not exist, it is created with
``python -m venv`` and ``pip install anonapi==2.1.2``, which needs PyPI.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from anonapi.batch import BatchFolder

from upstream import UPSTREAM_VERSION, compile_bytecode, ensure_upstream

SERVER_NAME = "sandbox"
SHARE_UNC = "\\\\sandbox\\share"
OUTPUT_UNC = "\\\\sandbox\\output"
KINDS = ("pacs", "selection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="Mapping rows, so jobs created, per run.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per kind for this anonapi (median reported).")
    parser.add_argument("--upstream-repeat", type=int, default=1, help="Runs per kind for anonapi 2.1.2.")
    parser.add_argument("--kind", action="append", choices=KINDS, help="Kind of mapping rows; repeat for both.")
    parser.add_argument(
        "--server-delay-ms",
        type=float,
        default=0.0,
        help="Milliseconds the sandbox waits before it responds to each call, to emulate a slower server.",
    )
    parser.add_argument(
        "--upstream-venv",
        type=Path,
        default=Path("/tmp/upstream"),
        help="Virtual environment with anonapi 2.1.2; created if missing.",
    )
    parser.add_argument("--skip-upstream", action="store_true", help="Time this anonapi only.")
    arguments = parser.parse_args()

    compile_bytecode()
    ours = str(Path(sys.executable).parent / "anon")
    upstream = None if arguments.skip_upstream else str(ensure_upstream(arguments.upstream_venv))
    kinds = arguments.kind or list(KINDS)

    with tempfile.TemporaryDirectory(prefix="anonapi-create-bench-") as temporary:
        results = run_benchmarks(Path(temporary), ours, upstream, kinds, arguments)
    print_report(results, arguments)


def run_benchmarks(root: Path, ours: str, upstream: Optional[str], kinds: List[str], arguments) -> Dict:
    from anonapi.sandbox import Sandbox

    share = root / "share"
    output = root / "output"
    share.mkdir()
    output.mkdir()
    results: Dict = {}
    with Sandbox(data_dir=root / "sandbox", shares={"share": share, "output": output}, tls=True) as sandbox:
        sandbox.faults.hold_jobs("ACTIVE")
        if arguments.server_delay_ms > 0:
            sandbox.faults.delay_next(10**9, seconds=arguments.server_delay_ms / 1000)
        if "selection" in kinds:
            write_selections(share, arguments.rows)
        clients = [("this anonapi", ours, arguments.repeat)]
        if upstream is not None:
            clients.append((f"anonapi {UPSTREAM_VERSION}", upstream, arguments.upstream_repeat))
        run_number = 0
        for kind in kinds:
            for name, executable, repeat in clients:
                times = []
                for _ in range(repeat):
                    run_number += 1
                    folder = root / f"run{run_number}"
                    times.append(time_one_run(folder, sandbox, executable, kind, arguments.rows, share))
                results[(kind, name)] = times
                print(f"{kind:<9} {name:<15} " + " ".join(f"{seconds:.2f}" for seconds in times), file=sys.stderr)
    return results


def write_selections(share: Path, rows: int) -> None:
    """Write one folder per row with one DICOM file (a copy of pydicom's CT_small.dcm) and its file selection."""
    import shutil

    from pydicom.data import get_testdata_file

    from anonapi.selection import FileSelectionFile

    source = get_testdata_file("CT_small.dcm")
    for number in range(rows):
        folder = share / f"study{number:05d}"
        folder.mkdir()
        shutil.copyfile(source, folder / "IM0001.dcm")
        FileSelectionFile(folder / "fileselection.txt", description="benchmark", selected_paths=["IM0001.dcm"]).save()


def write_mapping(path: Path, kind: str, rows: int, run_folder: Path) -> None:
    """Write a mapping in the comma-separated form that both tools read."""
    if kind == "pacs":
        # Sources differ per run, so that no two runs create the same job.
        sources = [f"accession_number:{run_folder.name}.{number}" for number in range(rows)]
    else:
        sources = [f"fileselection:study{number:05d}/fileselection.txt" for number in range(rows)]
    lines = [
        "## Description ##",
        "Benchmark mapping",
        "",
        "## Options ##",
        f"root_source_path,{SHARE_UNC}",
        "project,Wetenschap-Algemeen",
        f"destination_path,{OUTPUT_UNC}",
        "",
        "## Mapping ##",
        "source,pseudo_name,description",
    ]
    lines += [f"{source},P{run_folder.name}x{number},benchmark row {number}" for number, source in enumerate(sources)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def time_one_run(folder: Path, sandbox, executable: str, kind: str, rows: int, share: Path) -> float:
    """Create the jobs of a new mapping in ``folder`` and return the wall-clock seconds of the process."""
    home = folder / "home"
    home.mkdir(parents=True)
    mapping_path = folder / "anon_mapping.csv"
    write_mapping(mapping_path, kind, rows, folder)
    settings_path = home / "AnonWebAPIClientSettings.yml"
    settings = {
        "active_mapping_file": str(mapping_path),
        "active_server_name": SERVER_NAME,
        "job_default_parameters": ["project,Wetenschap-Algemeen", f"destination_path,{OUTPUT_UNC}"],
        "servers": {SERVER_NAME: sandbox.url},
        "user_name": sandbox.user_name,
        "user_token": sandbox.token,
        "validate_ssl": True,
    }
    settings_path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    environment = dict(
        os.environ,
        HOME=str(home),
        REQUESTS_CA_BUNDLE=str(sandbox.ca_bundle),
    )
    # anonapi 2.1.2 reads only the settings in HOME and ignores unc_paths.
    ours = Path(executable).parent == Path(sys.executable).parent
    if ours:
        settings["unc_paths"] = {str(share): SHARE_UNC}
        settings_path.write_text(yaml.safe_dump(settings), encoding="utf-8")
        environment["ANONAPI_SETTINGS"] = str(settings_path)
        command = [executable, "create", "from-mapping", "--yes"]
    else:
        environment.pop("ANONAPI_SETTINGS", None)
        command = [executable, "create", "from-mapping"]

    jobs_before = len(sandbox.store.get_latest_jobs(10**9))
    started = time.perf_counter()
    finished = subprocess.run(
        command, cwd=folder, env=environment, input="y\n", capture_output=True, text=True, timeout=3600
    )
    seconds = time.perf_counter() - started

    created = len(sandbox.store.get_latest_jobs(10**9)) - jobs_before
    batch_size = len(BatchFolder(folder).load().job_ids) if BatchFolder(folder).has_batch() else 0
    if finished.returncode != 0 or created != rows or batch_size != rows:
        raise RuntimeError(
            f"{executable} created {created} of {rows} jobs, the batch contains {batch_size}, "
            f"exit code {finished.returncode}: {finished.stderr[-2000:]}"
        )
    return seconds


def print_report(results: Dict, arguments) -> None:
    print(f"Machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"{platform.system()} {platform.release()}, Python {platform.python_version()}")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    print(f"Load average (1, 5, 15 minutes) after the runs: {load}")
    print(f"Rows per run: {arguments.rows}; sandbox delay per call: {arguments.server_delay_ms:g} ms")
    print()
    print("| mapping | tool | runs | median (s) | jobs per second |")
    print("| --- | --- | --- | --- | --- |")
    medians = {}
    for (kind, name), times in results.items():
        median = statistics.median(times)
        medians[(kind, name)] = median
        print(f"| {kind} | {name} | {len(times)} | {median:.2f} | {arguments.rows / median:.0f} |")
    for kind in KINDS:
        ours = medians.get((kind, "this anonapi"))
        theirs = medians.get((kind, f"anonapi {UPSTREAM_VERSION}"))
        if ours and theirs:
            print(f"\nSpeed-up for {kind}: {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
