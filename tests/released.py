"""Start Python scripts in processes that wait for a signal, then release them all at once.

Tests of file locks use this, so that the processes' reads and writes overlap.
"""

from __future__ import annotations

import subprocess
import sys
from typing import List, Sequence


def run_released(scripts: Sequence[List[str]], timeout: float = 120) -> None:
    """Run ``python -c SCRIPT ARGS...`` for each entry, released together; require exit code 0 of each.

    Each script prints "ready" when it is set up and then waits for a line on standard input.
    """
    processes = [
        subprocess.Popen([sys.executable, "-c", *script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for script in scripts
    ]
    for process in processes:
        assert process.stdout.readline().strip() == "ready"
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in processes:
        assert process.wait(timeout=timeout) == 0
