"""The API functions of the sandbox, independent of the web framework.

Each function takes the request's form fields (a map from name to the list of
values sent) and returns the JSON result, or raises ApiError (400) or
AuthenticationError (401). The web layer in ``anonapi.sandbox.app`` turns
these into HTTP responses.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from anonapi.responses import JobStatus
from anonapi.sandbox.db import (
    MODIFIABLE_FIELDS,
    SandboxStore,
    extended_job_info,
    short_job_info,
)
from anonapi.sandbox.pacs import PACS_NAME

logger = logging.getLogger(__name__)

# How many jobs get_jobs returns, newest first.
LATEST_JOBS_COUNT = 50

Params = Dict[str, List[str]]


class ApiError(Exception):
    """The call is invalid: the response is 400 with ``{"errors": errors}``."""

    def __init__(self, errors: Dict[str, str]):
        super().__init__(errors)
        self.errors = errors


class AuthenticationError(Exception):
    """The user name, token or password is wrong: the response is 401."""


class Function(NamedTuple):
    """One API function: its HTTP method, arguments for the documentation, and handler.

    ``slow`` marks a handler that takes long enough (scrypt for get_token) to
    be run in a worker thread. The web layer runs the others, which make only
    short SQLite calls, on its event loop.
    """

    method: str
    arguments: str
    description: str
    handler: Callable[["SandboxApi", Params, str], Any]
    needs_token: bool = True
    slow: bool = False


def first_value(params: Params, name: str) -> Optional[str]:
    values = params.get(name)
    return values[0] if values else None


def required_value(params: Params, name: str) -> str:
    value = first_value(params, name)
    if value is None:
        raise ApiError({name: f"Required parameter {name} not supplied"})
    return value


# SQLite stores integers of at most 64 bits, so larger ids cannot name a job.
MAX_JOB_ID = 2**63 - 1


def parse_job_id(params: Params, name: str = "job_id") -> int:
    value = required_value(params, name)
    try:
        job_id = int(value.strip())
    except ValueError:
        raise ApiError({name: f"Invalid {name} {value!r}: expected a whole number"}) from None
    if not 0 <= job_id <= MAX_JOB_ID:
        raise ApiError({name: f"Job with id {job_id} does not exist"})
    return job_id


def parse_job_ids(params: Params) -> List[int]:
    """Return the ids of ``job_ids``, sent as repeated fields, comma-separated, or both."""
    if "job_ids" not in params:
        raise ApiError({"job_ids": "Required parameter job_ids not supplied"})
    job_ids = []
    for value in params["job_ids"]:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                job_id = int(part)
            except ValueError:
                raise ApiError({"job_ids": f"Invalid job id {part!r}: expected a whole number"}) from None
            # Ids that cannot exist are left out, as unknown ids are.
            if 0 <= job_id <= MAX_JOB_ID:
                job_ids.append(job_id)
    return job_ids


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ApiError({name: f"Invalid {name} {value!r}: expected True or False"})


class SandboxApi:
    """The contract's functions on top of the store; ``on_jobs_changed`` wakes the worker."""

    def __init__(self, store: SandboxStore, on_jobs_changed: Callable[[], None] = lambda: None):
        self.store = store
        self.on_jobs_changed = on_jobs_changed

    def authenticate(self, token: Optional[str], user_name: Optional[str]) -> str:
        """Return the user that a token belongs to.

        :raises AuthenticationError: if the token is unknown, or belongs to
            another user than ``user_name``
        """
        if not token:
            raise AuthenticationError("Authentication credentials were not provided.")
        token_user = self.store.user_for_token(token)
        if token_user is None:
            raise AuthenticationError("Invalid token.")
        if user_name is not None and user_name != token_user:
            raise AuthenticationError(f"The token does not belong to user_name {user_name!r}.")
        return token_user

    def get_token(self, params: Params, user_name: str) -> Dict[str, str]:
        errors = {}
        for name in ("user_name", "password"):
            if not first_value(params, name):
                errors[name] = f"Required parameter {name} not supplied"
        if errors:
            raise ApiError(errors)
        user_name = first_value(params, "user_name") or ""
        if not self.store.check_password(user_name, first_value(params, "password") or ""):
            logger.warning("Rejected get_token for user %s: wrong user name or password", user_name)
            raise AuthenticationError("Invalid user_name or password.")
        token = self.store.create_token(user_name)
        logger.info("Issued a new token to user %s", user_name)
        return {"token": token}

    def get_jobs(self, params: Params, user_name: str) -> Dict[str, Any]:
        rows = self.store.get_latest_jobs(LATEST_JOBS_COUNT)
        return {str(row["job_id"]): short_job_info(row) for row in rows}

    def get_job(self, params: Params, user_name: str) -> Dict[str, Any]:
        return extended_job_info(self._existing_job(parse_job_id(params)))

    def get_jobs_list(self, params: Params, user_name: str) -> Dict[str, Any]:
        rows = self.store.get_jobs(parse_job_ids(params))
        return {str(row["job_id"]): short_job_info(row) for row in rows}

    def get_jobs_list_extended(self, params: Params, user_name: str) -> Dict[str, Any]:
        rows = self.store.get_jobs(parse_job_ids(params))
        return {str(row["job_id"]): extended_job_info(row) for row in rows}

    def create_job(self, params: Params, user_name: str) -> Dict[str, Any]:
        fields = self._validate_new_job(params, user_name)
        row = self.store.create_job(user_name, fields)
        logger.info("Job %s created by user %s", row["job_id"], user_name)
        self.on_jobs_changed()
        return extended_job_info(row)

    def cancel_job(self, params: Params, user_name: str) -> Dict[str, Any]:
        job_id = parse_job_id(params)
        row = self.store.modify_job(job_id, {"status": JobStatus.INACTIVE})
        if row is None:
            raise ApiError({"job_id": f"Job with id {job_id} does not exist"})
        logger.info("Job %s cancelled by user %s", job_id, user_name)
        return extended_job_info(row)

    def modify_job(self, params: Params, user_name: str) -> Dict[str, Any]:
        job_id = parse_job_id(params)
        changes = self._validate_changes(params)
        row = self.store.modify_job(job_id, changes)
        if row is None:
            raise ApiError({"job_id": f"Job with id {job_id} does not exist"})
        logger.info("Job %s modified by user %s: %s", job_id, user_name, ", ".join(sorted(changes)))
        self.on_jobs_changed()
        return extended_job_info(row)

    def _existing_job(self, job_id: int) -> Dict[str, Any]:
        row = self.store.get_job(job_id)
        if row is None:
            raise ApiError({"job_id": f"Job with id {job_id} does not exist"})
        return row

    def _validate_new_job(self, params: Params, user_name: str) -> Dict[str, Any]:
        """Check create_job's arguments and return the job fields to store."""
        errors: Dict[str, str] = {}

        def value(name: str) -> Optional[str]:
            text = first_value(params, name)
            return text.strip() if text is not None and text.strip() else None

        def require(name: str) -> Optional[str]:
            text = value(name)
            if text is None:
                errors[name] = f"Required parameter {name} not supplied"
            return text

        source_type = require("source_type")
        destination_type = require("destination_type")
        fields: Dict[str, Any] = {
            "project_name": require("project_name"),
            "destination_path": require("destination_path"),
            "destination_type": destination_type,
            "source_type": source_type,
            "description": first_value(params, "description"),
            "source_anonymizedpatientname": value("anonymizedpatientname"),
            "source_anonymizedpatientid": value("anonymizedpatientid"),
            "source_pims_keyfile_id": value("pims_keyfile_id"),
        }
        if source_type == "PATH":
            fields["source_path"] = require("source_path")
        elif source_type == "WADO":
            fields["source_instance_id"] = require("source_instance_id")
            fields["source_name"] = value("source_name") or PACS_NAME
            if fields["source_name"] != PACS_NAME:
                errors["source_name"] = (
                    f"Unknown source_name {fields['source_name']!r}; this server's PACS is {PACS_NAME}"
                )
            fields["source_sop_class_filter_list"] = value("source_sop_class_filter_list")
        elif source_type is not None:
            errors["source_type"] = f"Invalid source_type {source_type!r}: expected PATH or WADO"
        if destination_type is not None and destination_type != "PATH":
            errors["destination_type"] = f"Invalid destination_type {destination_type!r}: expected PATH"
        if fields["source_pims_keyfile_id"] is None:
            for name in ("anonymizedpatientname", "anonymizedpatientid"):
                if value(name) is None:
                    errors[name] = f"Required parameter {name} not supplied (or give pims_keyfile_id)"
        priority = value("priority")
        if priority is not None:
            try:
                fields["priority"] = int(priority)
            except ValueError:
                errors["priority"] = f"Invalid priority {priority!r}: expected a whole number"
        if errors:
            raise ApiError(errors)

        project_name = fields["project_name"]
        if not self.store.is_connected(user_name, project_name):
            raise ApiError({
                "AnonymizeInputException":
                    f"given user_name `{user_name}` is not connected to given project_name {project_name}"
            })
        return fields

    def _validate_changes(self, params: Params) -> Dict[str, Any]:
        """Check modify_job's fields and return them converted to their stored types."""
        changes: Dict[str, Any] = {}
        errors: Dict[str, str] = {}
        for name, values in params.items():
            if name in ("job_id", "user_name"):
                continue
            field_type = MODIFIABLE_FIELDS.get(name)
            if field_type is None:
                errors[name] = (
                    f"Unknown or read-only job field {name}; fields that can be changed: "
                    f"{', '.join(sorted(MODIFIABLE_FIELDS))}"
                )
                continue
            text = values[-1]
            if text == "":
                errors[name] = "This field may not be blank."
            elif field_type is int:
                try:
                    number = int(text)
                except ValueError:
                    errors[name] = f"Invalid {name} {text!r}: expected a whole number"
                    continue
                if abs(number) > MAX_JOB_ID:
                    # SQLite stores integers of at most 64 bits.
                    errors[name] = f"Invalid {name} {text!r}: out of range"
                    continue
                changes[name] = number
            elif field_type is bool:
                try:
                    changes[name] = parse_bool(name, text)
                except ApiError as error:
                    errors.update(error.errors)
            else:
                changes[name] = text
        status = changes.get("status")
        if status is not None and status not in JobStatus.ALL:
            errors["status"] = f"Invalid status {status!r}: expected one of {', '.join(JobStatus.ALL)}"
        if not changes and not errors:
            errors["job_id"] = "No job fields to change given"
        if errors:
            raise ApiError(errors)
        return changes


FUNCTIONS: Dict[str, Function] = {
    "get_token": Function(
        "POST", "user_name, password", "Create a new token for the user.",
        SandboxApi.get_token, needs_token=False, slow=True,
    ),
    "get_jobs": Function(
        "GET", "", f"The {LATEST_JOBS_COUNT} most recent jobs, short info by job id.",
        SandboxApi.get_jobs,
    ),
    "get_job": Function("GET", "job_id", "Extended info of one job.", SandboxApi.get_job),
    "get_jobs_list": Function(
        "GET", "job_ids (repeated)", "Short info of the given jobs by job id; unknown ids are left out.",
        SandboxApi.get_jobs_list,
    ),
    "get_jobs_list_extended": Function(
        "GET", "job_ids (repeated)", "Extended info of the given jobs by job id; unknown ids are left out.",
        SandboxApi.get_jobs_list_extended,
    ),
    "create_job": Function(
        "POST",
        "source_type, source_path | source_name + source_instance_id [+ source_sop_class_filter_list], "
        "anonymizedpatientname, anonymizedpatientid, destination_type, destination_path, project_name, "
        "[description, pims_keyfile_id, priority]",
        "Create a job; returns its extended info.",
        SandboxApi.create_job,
    ),
    "cancel_job": Function("POST", "job_id", "Set a job's status to INACTIVE.", SandboxApi.cancel_job),
    "modify_job": Function(
        "POST", "job_id, then any of: " + ", ".join(sorted(MODIFIABLE_FIELDS)),
        "Change fields of a job; status=ACTIVE makes it run again.",
        SandboxApi.modify_job,
    ),
}


def documentation_text() -> str:
    """Return the text of the ``documentation`` key of 404 responses."""
    lines = [
        "IDIS-compatible anonymization web API (anonapi sandbox).",
        "Call <base URL>/<function> with header 'Authorization: Token <token>' and form-encoded "
        "arguments in the body, user_name included.",
        "Functions:",
    ]
    for name, function in FUNCTIONS.items():
        arguments = f" ({function.arguments})" if function.arguments else ""
        lines.append(f"  {function.method} {name}{arguments}: {function.description}")
    return "\n".join(lines)
