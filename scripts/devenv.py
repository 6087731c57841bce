"""Create the checkout's virtual environment ``.venv`` and install anonapi into it.

Used by ``quickstart.py`` and ``run_tests.py``. Only the standard library is
used, so that the scripts run on a machine that has nothing but Python 3.

The package is installed in editable mode, so that the code in the checkout
is what runs, ``anon`` included. A stamp file in ``.venv`` records a hash of
the packaging files and the extras installed, so that a second run skips
pip when nothing it depends on changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import List, Sequence

MINIMUM_PYTHON = (3, 9)
CHECKOUT = Path(__file__).resolve().parent.parent
VENV_DIR = CHECKOUT / ".venv"
STAMP_FILE_NAME = "anonapi-install.json"
# Files whose change means the package must be installed again.
PACKAGING_FILES = ("setup.cfg", "setup.py", "pyproject.toml")
# Extras that setup.cfg includes in other extras: test requires anonapi[sandbox].
IMPLIED_EXTRAS = {"test": ("sandbox",)}


class SetupError(Exception):
    """The virtual environment could not be made or the install failed."""


def check_python_version() -> None:
    """Raise SetupError when this Python is older than anonapi supports."""
    if sys.version_info < MINIMUM_PYTHON:
        found = ".".join(str(part) for part in sys.version_info[:3])
        required = ".".join(str(part) for part in MINIMUM_PYTHON)
        raise SetupError(f"anonapi needs Python {required} or newer, but this is Python {found}.")


def venv_executable(name: str) -> Path:
    """Return the path of a program inside ``.venv``: Scripts\\NAME.exe on Windows, bin/NAME elsewhere."""
    if os.name == "nt":
        return VENV_DIR / "Scripts" / f"{name}.exe"
    return VENV_DIR / "bin" / name


def create_venv() -> None:
    """Create ``.venv`` with pip unless it already has a Python."""
    if venv_executable("python").exists():
        return
    print(f"Creating a virtual environment in {VENV_DIR}", flush=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=VENV_DIR.exists()).create(str(VENV_DIR))
    except (OSError, subprocess.CalledProcessError) as error:
        raise SetupError(
            f"Could not create a virtual environment in {VENV_DIR}: {error}. "
            "On Debian and Ubuntu install the venv module first (sudo apt install python3-venv), "
            f"then delete {VENV_DIR} and run this script again."
        ) from error


def packaging_hash() -> str:
    """Return a hash of the packaging files, which decide what pip installs."""
    digest = hashlib.sha256()
    for name in PACKAGING_FILES:
        path = CHECKOUT / name
        if path.exists():
            digest.update(name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _read_stamp() -> dict:
    try:
        return json.loads((VENV_DIR / STAMP_FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def install_package(extras: Sequence[str]) -> None:
    """Install the checkout in editable mode with ``extras``, unless the stamp shows it is done."""
    stamp = _read_stamp()
    current_hash = packaging_hash()
    installed_extras = set(stamp.get("extras", [])) if stamp.get("hash") == current_hash else set()
    for extra in list(installed_extras):
        installed_extras.update(IMPLIED_EXTRAS.get(extra, ()))
    if set(extras) <= installed_extras:
        return

    requested_extras = sorted(installed_extras | set(extras))
    requirement = f".[{','.join(requested_extras)}]"
    print(f"Installing anonapi{requirement[1:]} into {VENV_DIR} (takes a minute the first time)", flush=True)
    command = [
        str(venv_executable("python")), "-m", "pip", "install",
        "--disable-pip-version-check", "--quiet", "--editable", requirement,
    ]
    if subprocess.run(command, cwd=str(CHECKOUT)).returncode != 0:
        raise SetupError(f"pip could not install {requirement}; its messages are above.")
    (VENV_DIR / STAMP_FILE_NAME).write_text(
        json.dumps({"hash": current_hash, "extras": requested_extras}), encoding="utf-8"
    )


def prepare(extras: Sequence[str]) -> None:
    """Make sure ``.venv`` exists and has anonapi with ``extras`` installed."""
    check_python_version()
    create_venv()
    install_package(extras)


def run_in_venv(program: str, arguments: List[str]) -> int:
    """Run a program from ``.venv`` in the checkout and return its exit code."""
    command = [str(venv_executable(program))] + arguments
    return subprocess.run(command, cwd=str(CHECKOUT)).returncode
