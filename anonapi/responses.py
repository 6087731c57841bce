"""Job status values and job info objects parsed from server responses."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence


class JobStatus:
    """Status values of a job, as the server sends them."""

    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    UPLOADED = "UPLOADED"
    DONE = "DONE"
    ERROR = "ERROR"

    ALL = (ACTIVE, INACTIVE, UPLOADED, DONE, ERROR)


# Fields of the short job info, in the order the server lists them.
SHORT_FIELDS = (
    "job_id",
    "date",
    "user_name",
    "status",
    "error",
    "description",
    "project_name",
    "priority",
    "files_downloaded",
    "files_processed",
)

# Fields that extended job info adds to the short ones.
EXTENDED_FIELDS = (
    "destination_id",
    "destination_name",
    "destination_path",
    "destination_network",
    "destination_status",
    "destination_type",
    "source_id",
    "source_instance_id",
    "source_status",
    "source_type",
    "source_anonymizedpatientid",
    "source_anonymizedpatientname",
    "source_pims_keyfile_id",
    "source_name",
    "source_path",
    "source_protocol",
    "source_subject",
)

ALL_FIELDS = SHORT_FIELDS + EXTENDED_FIELDS


class JobInfo:
    """Information about one job, short or extended.

    Every known field is an attribute, None when the server left it out.
    Fields the server sent that this version does not know are kept in
    ``extra_fields`` and still returned by ``to_dict``.
    """

    def __init__(self, **fields: Any):
        for name in ALL_FIELDS:
            setattr(self, name, fields.pop(name, None))
        if self.job_id is not None:
            self.job_id = int(self.job_id)
        self.extra_fields: Dict[str, Any] = fields

    @classmethod
    def from_json(cls, json_dict: Dict[str, Any]) -> "JobInfo":
        """Parse one job's info as the server returns it."""
        return cls(**dict(json_dict))

    def to_dict(self) -> Dict[str, Any]:
        """Return all fields, known ones first in the server's order."""
        result = {name: getattr(self, name) for name in ALL_FIELDS}
        result.update(self.extra_fields)
        return result

    @property
    def has_error(self) -> bool:
        """Whether the error field contains a real message (the server writes " " for none)."""
        return bool(self.error and str(self.error).strip())

    def __repr__(self) -> str:
        return f"JobInfo(job_id={self.job_id!r}, status={self.status!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobInfo) and self.to_dict() == other.to_dict()


class TableColumn:
    """A column of a job table: header text and the JobInfo attribute it shows."""

    def __init__(self, header: str, attribute: str):
        self.header = header
        self.attribute = attribute


class JobInfoColumns:
    """Columns of the job tables, as printed by ``anon server jobs`` and ``anon batch status``."""

    JOB_ID = TableColumn("id", "job_id")
    DATE = TableColumn("date", "date")
    STATUS = TableColumn("status", "status")
    FILES_DOWNLOADED = TableColumn("down", "files_downloaded")
    FILES_PROCESSED = TableColumn("proc", "files_processed")
    USER = TableColumn("user", "user_name")
    PSEUDO_NAME = TableColumn("anon_name", "source_anonymizedpatientname")
    DESCRIPTION = TableColumn("description", "description")
    ERROR = TableColumn("error", "error")

    DEFAULT = (JOB_ID, DATE, STATUS, FILES_DOWNLOADED, FILES_PROCESSED, USER)


class JobsInfoList:
    """A list of JobInfo objects that renders as a table."""

    def __init__(self, job_infos: Iterable[JobInfo]):
        self.job_infos: List[JobInfo] = list(job_infos)

    def __len__(self) -> int:
        return len(self.job_infos)

    def __iter__(self):
        return iter(self.job_infos)

    def __getitem__(self, index: int) -> JobInfo:
        return self.job_infos[index]

    def sorted(self) -> "JobsInfoList":
        """Return a copy sorted by job id."""
        return JobsInfoList(sorted(self.job_infos, key=lambda info: info.job_id or 0))

    def as_table_string(self, columns: Sequence[TableColumn] = JobInfoColumns.DEFAULT) -> str:
        """Render the jobs as a plain-text table, one row per job."""
        # tabulate is imported here so that importing anonapi stays fast.
        from tabulate import tabulate

        rows = [
            ["" if getattr(info, column.attribute) is None else getattr(info, column.attribute)
             for column in columns]
            for info in self.job_infos
        ]
        return tabulate(rows, headers=[column.header for column in columns], disable_numparse=True)

    def to_dicts(self) -> List[Dict[str, Any]]:
        """Return every job's fields, for JSON output."""
        return [info.to_dict() for info in self.job_infos]


def parse_job_info_map(response: Dict[str, Any]) -> JobsInfoList:
    """Parse a server map from job id to job info, as get_jobs and get_jobs_list return."""
    infos = []
    for job_id, fields in response.items():
        fields = dict(fields)
        fields.setdefault("job_id", job_id)
        infos.append(JobInfo.from_json(fields))
    return JobsInfoList(infos)


def format_job_info(info: JobInfo, server_name: Optional[str] = None) -> str:
    """Render all fields of one job as ``name: value`` lines for ``anon job info``."""
    header = f"job {info.job_id}" + (f" on {server_name}:" if server_name else ":")
    lines = [header, ""]
    for name, value in info.to_dict().items():
        lines.append(f"{name:<30} {'' if value is None else value}")
    return "\n".join(lines)
