r"""Create an anonymization job that reads DICOM files from a network share.

The server reads every file in the source folder, so the folder must contain
DICOM files only (use a file selection otherwise, see ``anon select``). Both
paths are UNC paths that the server can reach, never drive letters or mounts.

Example, in a Windows command prompt (on Linux use ``export`` for ``set``)::

    set ANONAPI_URL=https://anonserver.example.org/p01
    set ANONAPI_USER=z123456
    set ANONAPI_TOKEN=<your token>
    python create_job_from_share.py \\server\share\patient1 \\server\share\output --pseudo-name PATIENT001 --pseudo-id 001
"""

from __future__ import annotations

import argparse
import sys

from connection import add_connection_arguments, client_from_arguments

from anonapi.exceptions import AnonAPIError


def main() -> int:
    parser = argparse.ArgumentParser(description="Create a job that anonymizes a folder on a share.")
    parser.add_argument("source_path", help="UNC path of the folder to anonymize")
    parser.add_argument("destination_path", help="UNC path of the folder the server writes to")
    parser.add_argument("--project", default="Wetenschap-Algemeen", help="anonymization project (default: %(default)s)")
    parser.add_argument("--pseudo-name", required=True, help="pseudonym for PatientName")
    parser.add_argument("--pseudo-id", required=True, help="pseudonym for PatientID")
    parser.add_argument("--description", default="Created by create_job_from_share.py")
    add_connection_arguments(parser)
    arguments = parser.parse_args()
    client = client_from_arguments(parser, arguments)

    try:
        job_info = client.post(
            "create_job",
            source_type="PATH",
            source_path=arguments.source_path,
            destination_type="PATH",
            destination_path=arguments.destination_path,
            project_name=arguments.project,
            anonymizedpatientname=arguments.pseudo_name,
            anonymizedpatientid=arguments.pseudo_id,
            description=arguments.description,
        )
    except AnonAPIError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1

    # create_job returns the extended job info of the new job.
    print(f"Created job {job_info['job_id']} with status {job_info['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
