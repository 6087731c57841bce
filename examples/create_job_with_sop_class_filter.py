r"""Create a PACS job that keeps only the DICOM objects of the given SOP classes.

The SOP class (SOPClassUID) identifies the kind of object in a file: CT image,
MR image, structured report and so on. With a filter the server fetches the
whole study but passes on only objects of the listed classes, for example
the images without the reports.

Example (set ANONAPI_URL, ANONAPI_USER and ANONAPI_TOKEN first)::

    python create_job_with_sop_class_filter.py 1.2.3.4.5 \\server\share\output --pseudo-name PATIENT003 --pseudo-id 003 --sop-class 1.2.840.10008.5.1.4.1.1.2 --sop-class 1.2.840.10008.5.1.4.1.1.4

1.2.840.10008.5.1.4.1.1.2 is CT Image Storage and 1.2.840.10008.5.1.4.1.1.4
MR Image Storage; DICOM PS3.4 annex B lists all storage SOP classes.
"""

from __future__ import annotations

import argparse
import sys

from connection import add_connection_arguments, client_from_arguments

from anonapi.exceptions import AnonAPIError


def main() -> int:
    parser = argparse.ArgumentParser(description="Create a PACS job that keeps only some SOP classes.")
    parser.add_argument("study_instance_uid", help="StudyInstanceUID, or accession_number:<number>")
    parser.add_argument("destination_path", help="UNC path of the folder the server writes to")
    parser.add_argument(
        "--sop-class", action="append", required=True, dest="sop_classes",
        help="SOPClassUID to keep; repeat the option for more classes",
    )
    parser.add_argument("--project", default="Wetenschap-Algemeen", help="anonymization project (default: %(default)s)")
    parser.add_argument("--source-name", default="IDC_WADO", help="PACS to fetch from (default: %(default)s)")
    parser.add_argument("--pseudo-name", required=True, help="pseudonym for PatientName")
    parser.add_argument("--pseudo-id", required=True, help="pseudonym for PatientID")
    add_connection_arguments(parser)
    arguments = parser.parse_args()
    client = client_from_arguments(parser, arguments)

    try:
        job_info = client.post(
            "create_job",
            source_type="WADO",
            source_name=arguments.source_name,
            source_instance_id=arguments.study_instance_uid,
            # The API takes the classes as one comma-separated string.
            source_sop_class_filter_list=",".join(arguments.sop_classes),
            destination_type="PATH",
            destination_path=arguments.destination_path,
            project_name=arguments.project,
            anonymizedpatientname=arguments.pseudo_name,
            anonymizedpatientid=arguments.pseudo_id,
            description="Created by create_job_with_sop_class_filter.py",
        )
    except AnonAPIError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1

    print(f"Created job {job_info['job_id']} keeping SOP classes {', '.join(arguments.sop_classes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
