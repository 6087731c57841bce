"""Helpers that the benchmarks share for running anonapi 2.1.2 beside this anonapi."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

UPSTREAM_VERSION = "2.1.2"


def ensure_upstream(venv: Path) -> Path:
    """Return the ``anon`` program of anonapi 2.1.2, installing it into ``venv`` first if it is missing.

    Installing needs PyPI. anonapi 2.1.2 only runs as a separate program: its
    source is never imported or read.
    """
    scripts = venv / ("Scripts" if os.name == "nt" else "bin")
    program = scripts / "anon"
    if program.exists():
        return program
    print(f"Creating {venv} with anonapi=={UPSTREAM_VERSION}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(scripts / "pip"), "install", "--quiet", f"anonapi=={UPSTREAM_VERSION}"], check=True)
    return program


def compile_bytecode() -> None:
    """Write the bytecode caches of this anonapi, as pip does when it installs a package.

    Without them (PYTHONDONTWRITEBYTECODE set, or sources changed since the
    last run) every timed process first compiles the changed modules, which
    took up to 0.3 s of CPU time per run on the machine of docs/benchmarks.md.
    anonapi 2.1.2 has its caches from pip.
    """
    import compileall

    import anonapi

    compileall.compile_dir(str(Path(anonapi.__file__).parent), quiet=1)
