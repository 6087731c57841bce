"""Install anonapi into ``.venv`` and run the end-to-end demo on a local sandbox server.

Usage, from anywhere::

    python3 scripts/quickstart.py            (Linux, macOS)
    py scripts\\quickstart.py                 (Windows)

The script creates the virtual environment ``.venv`` in the checkout if it is
missing, installs the package with its ``sandbox`` extra, and runs
``anon sandbox demo`` from that environment. Arguments are passed on to the
demo, for example ``--keep`` to keep its folder for a look afterwards.
"""

from __future__ import annotations

import sys

import devenv


def main(arguments: list) -> int:
    try:
        devenv.prepare(extras=["sandbox"])
    except devenv.SetupError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1
    return devenv.run_in_venv("anon", ["sandbox", "demo"] + arguments)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
