r"""Change fields of existing jobs, for example the source path or the priority.

Example (set ANONAPI_URL, ANONAPI_USER and ANONAPI_TOKEN first)::

    python modify_jobs.py 1001 1002 --set priority=50
    python modify_jobs.py 1001 --set source_path=\\server\share\patient1_fixed

Every field of the extended job info can be given; print_api_documentation.py
shows what the server accepts. A change to a job that already ran has no
effect until the job is reset (``anon job reset``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Dict, List

from connection import add_connection_arguments, client_from_arguments

from anonapi.exceptions import AnonAPIError


def parse_changes(parser: argparse.ArgumentParser, pairs: List[str]) -> Dict[str, str]:
    """Turn ``FIELD=VALUE`` strings into a dict; a pair without ``=`` is a usage error."""
    changes = {}
    for pair in pairs:
        field, separator, value = pair.partition("=")
        if not separator or not field:
            parser.error(f"invalid --set value '{pair}': write it as FIELD=VALUE, for example priority=50")
        changes[field] = value
    return changes


def main() -> int:
    parser = argparse.ArgumentParser(description="Change fields of existing jobs.")
    parser.add_argument("job_ids", nargs="+", help="job ids")
    parser.add_argument(
        "--set", action="append", required=True, dest="changes", metavar="FIELD=VALUE",
        help="job field to change; repeat the option for more fields",
    )
    add_connection_arguments(parser)
    arguments = parser.parse_args()
    changes = parse_changes(parser, arguments.changes)
    client = client_from_arguments(parser, arguments)

    failures = 0
    for job_id in arguments.job_ids:
        try:
            client.post("modify_job", job_id=job_id, **changes)
        except AnonAPIError as error:
            # Go on with the other jobs; the exit code reports the failure.
            print(f"Job {job_id}: {error}", file=sys.stderr)
            failures += 1
        else:
            print(f"Job {job_id}: changed {', '.join(sorted(changes))}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
