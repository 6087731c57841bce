"""Install anonapi with its test and docs extras into ``.venv`` and run the test suite.

Usage::

    python3 scripts/run_tests.py [pytest arguments]     (Linux, macOS)
    py scripts\\run_tests.py [pytest arguments]          (Windows)

The script creates the virtual environment ``.venv`` in the checkout if it is
missing, installs the package in editable mode with the ``test`` and ``docs``
extras, and runs ``python -m pytest`` in it. Arguments are passed on to
pytest, for example ``-x`` or ``tests/test_docs.py``. CI runs this script
without arguments.
"""

from __future__ import annotations

import sys

import devenv


def main(arguments: list) -> int:
    try:
        devenv.prepare(extras=["test", "docs"])
    except devenv.SetupError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return devenv.run_in_venv("python", ["-m", "pytest"] + arguments)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
