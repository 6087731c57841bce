"""Print the documentation that a server gives about its API functions.

An IDIS server returns a description of its functions and their arguments
in its response to a request for its base URL or an unknown function.
``WebAPIClient.get_documentation`` sends that request and returns the text.
Use it to see which job fields ``modify_job`` accepts.

Example (set ANONAPI_URL, ANONAPI_USER and ANONAPI_TOKEN first)::

    python print_api_documentation.py
"""

from __future__ import annotations

import argparse
import sys

from connection import add_connection_arguments, client_from_arguments

from anonapi.exceptions import AnonAPIError


def main() -> int:
    parser = argparse.ArgumentParser(description="Print a server's API documentation.")
    add_connection_arguments(parser)
    arguments = parser.parse_args()
    client = client_from_arguments(parser, arguments)

    try:
        documentation = client.get_documentation()
    except AnonAPIError as error:
        print(f"Error: {error}", file=sys.stderr)
        return 1

    print(documentation)
    return 0


if __name__ == "__main__":
    sys.exit(main())
