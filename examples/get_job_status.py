"""Print the status of one or more jobs as a table.

Example (set ANONAPI_URL, ANONAPI_USER and ANONAPI_TOKEN first)::

    python get_job_status.py 1001 1002 1003

Ids that the server does not know are listed at the end. The script exits
with 1 if any job is missing or has status ERROR, so other scripts can check.
"""

from __future__ import annotations

import argparse
import sys

from connection import add_connection_arguments, client_from_arguments

from anonapi.exceptions import AnonAPIError
from anonapi.responses import JobInfoColumns, JobStatus, parse_job_info_map


def main() -> int:
    parser = argparse.ArgumentParser(description="Print the status of jobs.")
    parser.add_argument("job_ids", nargs="+", help="job ids")
    add_connection_arguments(parser)
    arguments = parser.parse_args()
    client = client_from_arguments(parser, arguments)

    try:
        # The server returns a map from job id to extended job info and
        # leaves out ids it does not know.
        response = client.get("get_jobs_list_extended", job_ids=arguments.job_ids)
    except AnonAPIError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1

    jobs = parse_job_info_map(response).sorted()
    columns = JobInfoColumns.DEFAULT + (JobInfoColumns.PSEUDO_NAME,)
    print(jobs.as_table_string(columns))

    found = {str(job.job_id) for job in jobs}
    missing = [job_id for job_id in arguments.job_ids if job_id not in found]
    if missing:
        print(f"Not found on the server: {', '.join(missing)}")
    failed = [job for job in jobs if job.status == JobStatus.ERROR]
    return 1 if missing or failed else 0


if __name__ == "__main__":
    sys.exit(main())
