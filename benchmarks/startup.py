"""Time the start-up of ``anon``: ``anon --help`` and ``anon status`` as whole processes.

For comparison it also times ``python -c "import click"``, the floor for
any click program, and ``python -c "pass"``. After one warm-up run of
each, the commands run in turn for ``--runs`` rounds, and the median
wall-clock time of each is reported.
``anon status`` reads a settings file with two servers in a temporary
folder and contacts no server.

Usage::

    python benchmarks/startup.py [--runs 21] [--upstream /tmp/upstream/bin/anon] [--write]

``--write`` replaces the "## Start-up" section of docs/benchmarks.md with
the results, creating the file if needed. With ``--upstream``, anonapi
2.1.2's ``anon --help`` is timed as well.
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
from typing import Dict, List

DOCS_FILE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION_TITLE = "## Start-up"

SETTINGS_TEXT = """\
active_mapping_file: null
active_server_name: p01
job_default_parameters:
- project,NOT_SET
- destination_path,.
servers:
  p01: https://anonserver.example.org/p01
  p02: https://anonserver.example.org/p02
user_name: z123
user_token: not-a-real-token
validate_ssl: true
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="Timed runs per command. The median is reported.")
    parser.add_argument("--upstream", type=Path, default=None, help="Path of anonapi 2.1.2's anon, to time it too.")
    parser.add_argument("--write", action="store_true", help=f"Write the results to {DOCS_FILE}.")
    arguments = parser.parse_args()

    anon = find_anon()
    with tempfile.TemporaryDirectory() as home:
        settings_path = Path(home) / "AnonWebAPIClientSettings.yml"
        settings_path.write_text(SETTINGS_TEXT, encoding="utf-8")
        environment = {**os.environ, "HOME": home, "ANONAPI_SETTINGS": str(settings_path)}

        commands: Dict[str, List[str]] = {
            'python -c "pass"': [sys.executable, "-c", "pass"],
            'python -c "import click"': [sys.executable, "-c", "import click"],
            "anon --help": [anon, "--help"],
            "anon status": [anon, "status"],
        }
        if arguments.upstream is not None:
            commands["anon --help (anonapi 2.1.2)"] = [str(arguments.upstream), "--help"]

        medians = median_seconds(commands, environment, arguments.runs)

    command_line = " ".join(["python", "benchmarks/startup.py", *sys.argv[1:]])
    section = format_section(medians, arguments.runs, anon, command_line)
    print(section)
    if arguments.write:
        write_section(DOCS_FILE, section)
        print(f"Wrote the results to {DOCS_FILE}")


def find_anon() -> str:
    """Return the ``anon`` console script installed next to this Python."""
    found = shutil.which("anon", path=str(Path(sys.executable).parent))
    if found is None:
        sys.exit(f"No 'anon' command next to {sys.executable}. Install anonapi into this environment first.")
    return found


def median_seconds(commands: Dict[str, List[str]], environment: Dict[str, str], runs: int) -> Dict[str, float]:
    """Run every command once to warm the file cache, then ``runs`` rounds, and return each median in seconds.

    Each round runs every command once, so that a slow spell on a shared
    machine affects all commands alike rather than one of them.
    """
    durations: Dict[str, List[float]] = {name: [] for name in commands}
    for command in commands.values():
        subprocess.run(command, env=environment, check=True, stdout=subprocess.DEVNULL)
    for _ in range(runs):
        for name, command in commands.items():
            started = time.perf_counter()
            subprocess.run(command, env=environment, check=True, stdout=subprocess.DEVNULL)
            durations[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in durations.items()}


def describe_machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def format_section(medians: Dict[str, float], runs: int, anon: str, command_line: str) -> str:
    rows = "\n".join(f"| `{name}` | {seconds:.3f} |" for name, seconds in medians.items())
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return (
        f"{SECTION_TITLE}\n\n"
        f"Median wall-clock time of {runs} runs per command, each as a new process, measured with "
        f"`{command_line}` on {time.strftime('%Y-%m-%d')}.\n\n"
        f"- Machine: {describe_machine()}.\n"
        f"- Load average (1, 5, 15 minutes) after the runs: {load}.\n"
        f"- `anon`: {anon}{editable_note()}.\n"
        "- `anon status` reads a settings file with two servers and contacts no server.\n\n"
        "| command | median (s) |\n"
        "| --- | --- |\n"
        f"{rows}\n\n"
        "The target is a median of at most 0.08 s for `anon --help` on a machine where "
        '`python -c "import click"` takes 0.04 s, that is at most twice the time of importing click.\n'
    )


def editable_note() -> str:
    """Return a remark if anonapi is an editable install, whose import hook adds to every start-up."""
    import anonapi

    if "site-packages" in Path(anonapi.__file__).parts:
        return ""
    return f", with anonapi installed in editable mode from {Path(anonapi.__file__).parent.parent}"


def write_section(path: Path, section: str) -> None:
    """Replace the Start-up section of ``path``, or append one. Other sections are kept as they are."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = text.find(SECTION_TITLE + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(SECTION_TITLE))
        end = len(text) if following == -1 else following + 1
        text = text[:start] + section + ("\n" + text[end:] if following != -1 else "")
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
