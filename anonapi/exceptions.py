"""Exceptions raised by anonapi.

Every exception that anonapi raises on purpose derives from AnonAPIError, so a
script can catch that one class. The tree::

    AnonAPIError
    ├── ServerError                     talking to a server failed
    │   ├── ServerNotReachableError     connection refused, name not known, timed out
    │   │   └── NoResponseError         a call was sent, but no whole response came back
    │   ├── CredentialsRejectedError    401: user name or token rejected
    │   ├── APIError                    400: the API ran but rejected the call (.errors)
    │   ├── NotAnAPIError               404 without documentation, or a body that is not JSON
    │   ├── UnknownFunctionError        404 with documentation: the server has no such function
    │   ├── WrongMethodError            405: GET where POST is needed, or the other way round
    │   └── UnexpectedResponseError     any other status (.status_code, .reason, .url)
    ├── ConfigurationError              settings file missing, unreadable or invalid
    │   └── NoActiveServerError         no server is active
    ├── UserInputError                  a value given by the user is invalid (job ids, paths)
    ├── BatchError                      batch file problems
    │   └── NoBatchDefinedError         no batch file in this folder
    ├── MappingError                    mapping file problems
    │   └── InvalidMappingError         rows that cannot become jobs (.problems)
    ├── FileSelectionError              file selection file problems
    ├── InputFileError                  CSV or XLSX input file problems
    ├── JobCreationError                creating jobs stopped before every row had a job
    ├── FileLockedError                 another program holds a file open
    └── SandboxError                    the local sandbox server cannot start or is not running

Lower-level errors (requests, YAML, CSV, openpyxl, pydicom) are translated
to these where they occur and chained with ``from``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence


class AnonAPIError(Exception):
    """Base class of every error that anonapi raises on purpose."""


class ServerError(AnonAPIError):
    """Talking to an anonymization server failed.

    When this stops a change of many jobs (``AnonClientTool.reset_jobs``,
    ``anonapi.bulk.run_bulk``), ``bulk_result`` is the
    ``anonapi.bulk.BulkResult`` of the jobs done before it, else None.
    """

    bulk_result: Any = None

    def __init__(self, message: str, url: Optional[str] = None):
        super().__init__(message)
        self.url = url


class ServerNotReachableError(ServerError):
    """No HTTP response: connection refused, host name not known, or timed out."""


class NoResponseError(ServerNotReachableError):
    """A call reached the server, but no whole response came back: it timed out, or the connection broke."""


class CredentialsRejectedError(ServerError):
    """The server responded with 401: the user name or token is wrong."""


class APIError(ServerError):
    """The server responded with 400: the API ran but rejected the call.

    ``errors`` is the server's map from field or exception name to message.
    """

    def __init__(
        self, message: str, url: Optional[str] = None, errors: Optional[Mapping[str, Any]] = None
    ):
        super().__init__(message, url)
        self.errors = dict(errors or {})


class NotAnAPIError(ServerError):
    """The URL does not lead to an IDIS web API (404 without documentation, or not JSON)."""


class UnknownFunctionError(ServerError):
    """The server is an IDIS API but has no function of the requested name."""

    def __init__(
        self,
        message: str,
        url: Optional[str] = None,
        documentation: Optional[Any] = None,
    ):
        super().__init__(message, url)
        self.documentation = documentation


class WrongMethodError(ServerError):
    """The server responded with 405: the function needs the other HTTP method."""


class UnexpectedResponseError(ServerError):
    """The server responded with a status code that the IDIS web API does not define."""

    def __init__(
        self,
        message: str,
        url: Optional[str] = None,
        status_code: Optional[int] = None,
        reason: Optional[str] = None,
    ):
        super().__init__(message, url)
        self.status_code = status_code
        self.reason = reason


class ConfigurationError(AnonAPIError):
    """The settings file is missing a value, cannot be read, or is invalid."""


class NoActiveServerError(ConfigurationError):
    """No server is active, so there is nowhere to send the request."""


class UserInputError(AnonAPIError):
    """A value the user gave is invalid, such as a job id range or a path."""


class BatchError(AnonAPIError):
    """The batch file cannot be read or written."""


class NoBatchDefinedError(BatchError):
    """The folder has no batch file."""


class MappingError(AnonAPIError):
    """The mapping file cannot be read, written or used."""


class InvalidMappingError(MappingError):
    """Rows of the mapping cannot become jobs.

    ``problems`` lists every problem found, each naming its line, so that
    the user can fix all of them at once.
    """

    def __init__(self, message: str, problems: Optional[Sequence[Any]] = None):
        super().__init__(message)
        self.problems = list(problems or [])


class FileSelectionError(AnonAPIError):
    """The file selection file cannot be read, written or used."""


class InputFileError(AnonAPIError):
    """The CSV or XLSX input file cannot be read or has invalid rows."""


class JobCreationError(AnonAPIError):
    """Creating jobs from a mapping stopped before every row had a job."""


class FileLockedError(AnonAPIError):
    """Another program, typically Excel on Windows, has the file open."""


class SandboxError(AnonAPIError):
    """The local sandbox server cannot start, or is used while it is not running."""
