r"""Create an anonymization job that fetches one study from the PACS by its StudyInstanceUID.

The server fetches the study from the PACS named by ``--source-name``
(``IDC_WADO`` is the hospital PACS) and writes the anonymized files to the
destination, a UNC path that the server can reach.

Example (set ANONAPI_URL, ANONAPI_USER and ANONAPI_TOKEN first, see
create_job_from_share.py)::

    python create_job_from_pacs.py 1.2.840.113619.2.1.1.322987881.621.736170080.681 \\server\share\output --pseudo-name PATIENT002 --pseudo-id 002

To fetch by accession number, pass ``accession_number:<number>`` in place of
the UID: the server takes both forms in the same argument.
"""

from __future__ import annotations

import argparse
import sys

from connection import add_connection_arguments, client_from_arguments

from anonapi.exceptions import AnonAPIError


def main() -> int:
    parser = argparse.ArgumentParser(description="Create a job that anonymizes one study from the PACS.")
    parser.add_argument("study_instance_uid", help="StudyInstanceUID, or accession_number:<number>")
    parser.add_argument("destination_path", help="UNC path of the folder the server writes to")
    parser.add_argument("--project", default="Wetenschap-Algemeen", help="anonymization project (default: %(default)s)")
    parser.add_argument("--source-name", default="IDC_WADO", help="PACS to fetch from (default: %(default)s)")
    parser.add_argument("--pseudo-name", required=True, help="pseudonym for PatientName")
    parser.add_argument("--pseudo-id", required=True, help="pseudonym for PatientID")
    parser.add_argument("--description", default="Created by create_job_from_pacs.py")
    add_connection_arguments(parser)
    arguments = parser.parse_args()
    client = client_from_arguments(parser, arguments)

    try:
        job_info = client.post(
            "create_job",
            source_type="WADO",
            source_name=arguments.source_name,
            source_instance_id=arguments.study_instance_uid,
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

    print(f"Created job {job_info['job_id']} with status {job_info['status']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
