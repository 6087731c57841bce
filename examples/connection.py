"""Connection options shared by the example scripts in this folder.

Every example takes the server URL, user name and token from ``--url``,
``--user`` and ``--token``, or from the environment variables
``ANONAPI_URL``, ``ANONAPI_USER`` and ``ANONAPI_TOKEN``. Prefer the
environment for the token, because other users of the computer can see
command line arguments in the process list.
"""

from __future__ import annotations

import argparse
import os

from anonapi.client import WebAPIClient


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--url``, ``--user`` and ``--token`` with defaults from the environment."""
    parser.add_argument("--url", default=os.environ.get("ANONAPI_URL"), help="server URL [env ANONAPI_URL]")
    parser.add_argument("--user", default=os.environ.get("ANONAPI_USER"), help="user name [env ANONAPI_USER]")
    parser.add_argument("--token", default=os.environ.get("ANONAPI_TOKEN"), help="API token [env ANONAPI_TOKEN]")


def client_from_arguments(parser: argparse.ArgumentParser, arguments: argparse.Namespace) -> WebAPIClient:
    """Return a client for the server in ``arguments``; exit with a usage error if a value is missing."""
    missing = [name for name in ("url", "user", "token") if not getattr(arguments, name)]
    if missing:
        names = ", ".join(f"--{name} (or ANONAPI_{name.upper()})" for name in missing)
        parser.error(f"missing {names}")
    return WebAPIClient(hostname=arguments.url, username=arguments.user, token=arguments.token)
