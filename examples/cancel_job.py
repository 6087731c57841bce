"""Cancel a job: the server sets its status to INACTIVE and does not process it.

Example (set ANONAPI_URL, ANONAPI_USER and ANONAPI_TOKEN first)::

    python cancel_job.py 1001

A cancelled job can be started again with ``anon job reset``.
"""

from __future__ import annotations

import argparse
import sys

from connection import add_connection_arguments, client_from_arguments

from anonapi.exceptions import AnonAPIError


def main() -> int:
    parser = argparse.ArgumentParser(description="Cancel a job.")
    parser.add_argument("job_id", help="id of the job to cancel")
    add_connection_arguments(parser)
    arguments = parser.parse_args()
    client = client_from_arguments(parser, arguments)

    try:
        job_info = client.post("cancel_job", job_id=arguments.job_id)
    except AnonAPIError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1

    print(f"Job {arguments.job_id} now has status {job_info['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
