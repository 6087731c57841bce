"""Time the DICOM scan of 20,000 files by ``anon select add``, against anonapi 2.1.2.

Builds a folder tree of 200 study folders with 100 files each: 80 DICOM
files (copies of pydicom's CT_small.dcm and MR_small.dcm, under names with
and without extension) and 20 other files (text, XML, JPEG headers). Then
times, as whole processes (start-up, listing, header checks, writing
fileselection.txt)::

    anon select add '*'            # --check-dicom is the default in both

once with this anonapi and once with anonapi 2.1.2, which runs as a black
box from its own virtual environment. fileselection.txt is removed before
each run. The files stay in the page cache between runs, so the figures
are for a warm cache on a local disk. On a network share both tools wait
longer for each file.

Usage::

    python benchmarks/scan_dicom.py [--repeat 3] [--upstream-repeat 1]
        [--upstream-venv /tmp/upstream] [--skip-upstream] [--folder PATH]

If the upstream virtual environment does not exist, it is created with
``python -m venv`` and ``pip install anonapi==2.1.2``, which needs PyPI.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

from pydicom.data import get_testdata_file

from upstream import UPSTREAM_VERSION, ensure_upstream

STUDY_FOLDERS = 200
DICOM_FILES_PER_STUDY = 80
OTHER_FILES_PER_STUDY = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs for this anonapi (median reported).")
    parser.add_argument("--upstream-repeat", type=int, default=1, help="Runs for anonapi 2.1.2 (median reported).")
    parser.add_argument(
        "--upstream-venv", type=Path, default=Path("/tmp/upstream"), help="Virtual environment with anonapi 2.1.2; created if missing."
    )
    parser.add_argument("--skip-upstream", action="store_true", help="Time this anonapi only.")
    parser.add_argument("--folder", type=Path, help="Build the files here instead of in a temporary folder (kept afterwards).")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="anonapi-scan-") as temporary:
        root = arguments.folder or Path(temporary) / "data"
        home = Path(temporary) / "home"
        home.mkdir()
        file_count = build_tree(root)
        print(f"Scan of {file_count} files in {root}")
        print(f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores")
        print(f"Load average before: {', '.join(f'{load:.2f}' for load in os.getloadavg())}")

        ours = Path(sys.executable).parent / "anon"
        our_times = time_command([str(ours), "select", "add", "*"], root, home, arguments.repeat)
        our_count = count_selected(root)
        report("this anonapi", our_times, our_count)

        if arguments.skip_upstream:
            return
        upstream = ensure_upstream(arguments.upstream_venv)
        upstream_times = time_command([str(upstream), "select", "add", "*"], root, home, arguments.upstream_repeat)
        upstream_count = count_selected(root)
        report(f"anonapi {UPSTREAM_VERSION}", upstream_times, upstream_count)
        for index, kind in ((0, "wall-clock"), (1, "CPU")):
            ours_median = statistics.median(times[index] for times in our_times)
            upstream_median = statistics.median(times[index] for times in upstream_times)
            print(f"Speed-up ({kind}): {upstream_median / ours_median:.1f}x")


def build_tree(root: Path) -> int:
    """Write the study folders below ``root`` unless they are there already; return the file count."""
    sources = [Path(get_testdata_file("CT_small.dcm")), Path(get_testdata_file("MR_small.dcm"))]
    others = {
        "notes.txt": b"Scanned on Monday, see report.\n" * 20,
        "info.xml": b"<?xml version='1.0'?><study><series n='1'/></study>\n" * 10,
        "shot.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(2000),
    }
    count = 0
    for study in range(STUDY_FOLDERS):
        folder = root / f"patient{study:03d}" / "study"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(DICOM_FILES_PER_STUDY):
            name = f"IM{index:05d}" if index % 2 else f"1.2.840.{study}.{index}.dcm"
            target = folder / name
            if not target.exists():
                shutil.copyfile(sources[index % len(sources)], target)
            count += 1
        for index in range(OTHER_FILES_PER_STUDY):
            name, content = list(others.items())[index % len(others)]
            target = folder / f"{index:02d}_{name}"
            if not target.exists():
                target.write_bytes(content)
            count += 1
    return count


def time_command(command: List[str], folder: Path, home: Path, repeat: int) -> List[Tuple[float, float]]:
    """Run ``command`` in ``folder`` ``repeat`` times; return the wall-clock and CPU seconds of each run.

    CPU seconds (user plus system) depend less than wall-clock seconds on
    other programs that run on the machine at the same time.
    """
    environment = {key: value for key, value in os.environ.items() if not key.startswith("ANONAPI")}
    environment.update(HOME=str(home), ANONAPI_SETTINGS=str(home / "AnonWebAPIClientSettings.yml"))
    times = []
    for _ in range(repeat):
        (folder / "fileselection.txt").unlink(missing_ok=True)
        cpu_before = _children_cpu_seconds()
        start = time.perf_counter()
        result = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, check=False)
        times.append((time.perf_counter() - start, _children_cpu_seconds() - cpu_before))
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return times


def _children_cpu_seconds() -> float:
    """Return the CPU seconds of all finished child processes, or NaN where the resource module is missing (Windows)."""
    try:
        import resource
    except ImportError:
        return float("nan")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def count_selected(folder: Path) -> int:
    text = (folder / "fileselection.txt").read_text(encoding="utf-8")
    return sum(1 for line in text.splitlines() if line.startswith("- "))


def report(name: str, times: List[Tuple[float, float]], selected: int) -> None:
    wall = [seconds for seconds, _ in times]
    cpu = [seconds for _, seconds in times]
    runs = ", ".join(f"{seconds:.2f}" for seconds in wall)
    print(
        f"{name}: median {statistics.median(wall):.2f} s wall-clock ({runs}), "
        f"{statistics.median(cpu):.2f} s CPU, over {len(times)} runs; selected {selected} files"
    )


if __name__ == "__main__":
    main()
