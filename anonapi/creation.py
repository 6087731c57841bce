"""Turn the rows of a mapping into ``create_job`` requests, checking every row first.

``plan_creation`` checks the whole mapping and reports all problems at once
(InvalidMappingError) before any job exists:

- every row needs a project, a destination path that is a UNC path, and a
  pseudonym (or a PIMS key, with which the server chooses pseudonyms);
- ``folder:`` and ``fileselection:`` rows need a ``root_source_path`` that is
  a UNC path, and where that share is mounted on this computer, the folder
  or file selection must exist and hold DICOM files only;
- no pseudonym may be used for two different sources, and no row may repeat
  another.

Values in a row win over the mapping's options, which win over the user's
defaults (``anon create set-defaults``). The requests are sent by
``anonapi.jobcreator.JobCreator``, which records every job so that an
interrupted run can be resumed without duplicates.
"""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from anonapi.exceptions import AnonAPIError, InvalidMappingError, UserInputError
from anonapi.jobcreator import Attempt, CreationRecord, RecordState, RowKey
from anonapi.objects import RemoteAnonServer

# Project name that new settings and mappings hold until the user sets one.
PROJECT_NOT_SET = "NOT_SET"

# The PACS that WADO jobs fetch from, as the hospital's server names it.
PACS_SOURCE_NAME = "IDC_WADO"

# Sources are checked in one thread while a block of SOURCES_PER_TIMING rows takes
# less than SLOW_SOURCE_SECONDS per row, as on a local disk, where threads only add
# overhead. A file selection with one DICOM file there takes about 0.1 ms to check.
SOURCES_PER_TIMING = 16
SLOW_SOURCE_SECONDS = 0.001


# --- Requests: what is sent for one mapping row --------------------------------


class JobRequest:
    """One ``create_job`` request for one mapping row.

    ``source_type`` is ``PATH`` (a share: ``source_path`` is set) or ``WADO``
    (PACS: ``source_instance_id`` is set).
    """

    def __init__(
        self,
        line_number: Optional[int],
        key: RowKey,
        source_type: str,
        project_name: str,
        destination_path: str,
        source_path: Optional[str] = None,
        source_instance_id: Optional[str] = None,
        anon_id: Optional[str] = None,
        anon_name: Optional[str] = None,
        pims_keyfile_id: Optional[str] = None,
        description: Optional[str] = None,
    ):
        self.line_number = line_number
        self.key = key
        self.source_type = source_type
        self.project_name = project_name
        self.destination_path = destination_path
        self.source_path = source_path
        self.source_instance_id = source_instance_id
        self.anon_id = anon_id
        self.anon_name = anon_name
        self.pims_keyfile_id = pims_keyfile_id
        self.description = description

    @property
    def source(self) -> str:
        """The source identifier as written in the mapping."""
        return self.key[0]

    @property
    def label(self) -> str:
        """Line number and pseudonym, for messages: ``line 9 (PatientA)``."""
        where = f"line {self.line_number}" if self.line_number else "row"
        pseudonym = self.anon_name or self.anon_id
        return f"{where} ({pseudonym})" if pseudonym else where

    def description_with_marker(self, token: Optional[str]) -> Optional[str]:
        """Return the description to send: the row's, followed by the creation marker ``[anonapi:<token>]``."""
        if token is None:
            return self.description
        marker = f"[anonapi:{token}]"
        return f"{self.description} {marker}" if self.description else marker

    def create_job_arguments(self, token: Optional[str] = None) -> Dict[str, str]:
        """Return the form fields of the ``create_job`` request, without ``user_name``."""
        if self.source_type == "PATH":
            arguments = {"source_type": "PATH", "source_path": self.source_path}
        else:
            arguments = {
                "source_type": "WADO",
                "source_name": PACS_SOURCE_NAME,
                "source_instance_id": self.source_instance_id,
            }
        arguments.update(
            destination_type="PATH",
            destination_path=self.destination_path,
            project_name=self.project_name,
            anonymizedpatientname=self.anon_name,
            anonymizedpatientid=self.anon_id,
            pims_keyfile_id=self.pims_keyfile_id,
            description=self.description_with_marker(token),
        )
        return {name: value for name, value in arguments.items() if value is not None}

    def send(self, tool, server: RemoteAnonServer, token: Optional[str] = None):
        """Create the job on ``server`` with ``tool`` (an AnonClientTool) and return its JobInfo."""
        description = self.description_with_marker(token)
        if self.source_type == "PATH":
            return tool.create_path_job(
                server,
                project_name=self.project_name,
                source_path=self.source_path,
                destination_path=self.destination_path,
                anon_name=self.anon_name,
                anon_id=self.anon_id,
                pims_keyfile_id=self.pims_keyfile_id,
                description=description,
            )
        return tool.create_pacs_job(
            server,
            project_name=self.project_name,
            source_instance_id=self.source_instance_id,
            destination_path=self.destination_path,
            anon_name=self.anon_name,
            anon_id=self.anon_id,
            source_name=PACS_SOURCE_NAME,
            pims_keyfile_id=self.pims_keyfile_id,
            description=description,
        )

    def __repr__(self) -> str:
        return f"JobRequest(line_number={self.line_number!r}, source={self.source!r})"


def row_key(row) -> RowKey:
    """Return the key of a mapping row: its source and pseudonyms as written, empty text for none."""
    return (row.source.to_string(), _text(row.pseudo_id), _text(row.pseudo_name))


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


# --- The plan ----------------------------------------------------------------------


class MappingProblem:
    """Something in the mapping that must be fixed before jobs can be created.

    ``line_number`` is None for a problem in the Options section or the defaults.
    """

    def __init__(self, line_number: Optional[int], message: str):
        self.line_number = line_number
        self.message = message

    def __str__(self) -> str:
        where = f"line {self.line_number}" if self.line_number else "Options"
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"MappingProblem({self.line_number!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MappingProblem) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class CreationPlan:
    """The jobs that a creation run will make, and the rows it leaves out.

    :param requests: one request per row still to create, in mapping order
    :param already_created: ``(request, job_id)`` for rows that the creation
        record shows a job for; these are skipped
    :param earlier_attempts: requests of interrupted earlier runs whose
        outcome is unknown, per row key; a real run looks for their jobs first
    :param notices: what could not be checked, for the user to know
    """

    def __init__(
        self,
        mapping_path: Optional[Path],
        requests: List[JobRequest],
        already_created: List[Tuple[JobRequest, str]],
        earlier_attempts: Dict[RowKey, List[Attempt]],
        notices: List[str],
    ):
        self.mapping_path = mapping_path
        self.requests = requests
        self.already_created = already_created
        self.earlier_attempts = earlier_attempts
        self.notices = notices

    @property
    def projects(self) -> List[str]:
        return sorted({request.project_name for request in self.requests})

    @property
    def destinations(self) -> List[str]:
        return sorted({request.destination_path for request in self.requests})

    @property
    def rows_with_earlier_attempt(self) -> List[JobRequest]:
        return [request for request in self.requests if request.key in self.earlier_attempts]


class JobSettings:
    """Values every job gets unless the mapping sets them: the ``anon create set-defaults`` values."""

    def __init__(self, project_name: Optional[str] = None, destination_path: Optional[str] = None):
        self.project_name = project_name
        self.destination_path = destination_path


def plan_creation(
    mapping,
    mapping_path: Optional[Path] = None,
    folder: Optional[Path] = None,
    server: Optional[RemoteAnonServer] = None,
    defaults: Optional[JobSettings] = None,
    unc_map: Optional[Mapping[str, str]] = None,
    pseudonym_filter: Sequence[str] = (),
    check_dicom: bool = True,
    max_workers: int = 8,
    mounts=None,
) -> CreationPlan:
    """Check the mapping and return the jobs to create.

    Rows of ``mapping`` (an ``anonapi.mapper.Mapping``) that the creation
    record in ``folder`` shows a job on ``server`` for are skipped. With
    ``pseudonym_filter`` only rows whose pseudo_id or pseudo_name is in it
    are used. Share sources are looked for on this computer with
    ``anonapi.unc.to_local``, through ``unc_map`` (local prefix to UNC
    prefix) and ``mounts`` (the shares the system reports when None). With
    ``check_dicom`` the header of every file is read; without it, file names
    decide. ``max_workers`` threads check sources at once.

    :raises InvalidMappingError: listing every problem found
    :raises UserInputError: if a pseudonym in ``pseudonym_filter`` is in no row
    """
    rows = _filter_rows(mapping.rows, pseudonym_filter, mapping_path)
    state = RecordState()
    if folder is not None and server is not None:
        state = CreationRecord(folder).read(server)

    problems: List[MappingProblem] = []
    problems.extend(_find_repeated_rows(mapping.rows))
    problems.extend(_find_shared_pseudonyms(mapping.rows))

    builder = _RequestBuilder(mapping.options, defaults or JobSettings(), unc_map, mounts)
    requests: List[JobRequest] = []
    already_created: List[Tuple[JobRequest, str]] = []
    share_rows: List[Tuple[Any, str, str]] = []
    for row in rows:
        request, row_problems, unc_path = builder.build(row)
        key = row_key(row)
        if key in state.job_ids:
            if request is not None:
                already_created.append((request, state.job_ids[key]))
            continue
        problems.extend(row_problems)
        if request is not None:
            requests.append(request)
            if unc_path is not None:
                share_rows.append((row, unc_path, builder.root_of(row)))

    checker = _SourceChecker(unc_map, mounts, check_dicom, max_workers)
    problems.extend(checker.check(share_rows))

    unique_problems = list(dict.fromkeys(problems))
    if unique_problems:
        unique_problems.sort(key=lambda problem: (problem.line_number or 0, problem.message))
        raise InvalidMappingError(_describe_problems(unique_problems, mapping_path), problems=unique_problems)

    keys = {request.key for request in requests}
    attempts = {key: attempts for key, attempts in state.pending.items() if key in keys}
    return CreationPlan(mapping_path, requests, already_created, attempts, builder.notices + checker.notices)


def _describe_problems(problems: List[MappingProblem], mapping_path: Optional[Path]) -> str:
    where = f" in mapping '{mapping_path}'" if mapping_path is not None else ""
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    lines = [f"Found {count}{where}, so no job was created. Fix them and run the command again:"]
    lines.extend(f"  {problem}" for problem in problems)
    return "\n".join(lines)


def _filter_rows(rows: Sequence[Any], pseudonym_filter: Sequence[str], mapping_path: Optional[Path]) -> List[Any]:
    pseudonyms = [value.strip() for value in pseudonym_filter if value.strip()]
    if not pseudonyms:
        return list(rows)
    selected = [row for row in rows if _text(row.pseudo_id) in pseudonyms or _text(row.pseudo_name) in pseudonyms]
    found = {_text(row.pseudo_id) for row in selected} | {_text(row.pseudo_name) for row in selected}
    missing = [value for value in pseudonyms if value not in found]
    if missing:
        where = f"mapping '{mapping_path}'" if mapping_path is not None else "the mapping"
        names = ", ".join(f"'{value}'" for value in missing)
        raise UserInputError(
            f"No row in {where} has the pseudonym {names}. Check the spelling against the pseudo_id "
            "and pseudo_name columns (anon map status); case counts."
        )
    return selected


def _find_repeated_rows(rows: Sequence[Any]) -> List[MappingProblem]:
    first_line: Dict[RowKey, int] = {}
    problems = []
    for row in rows:
        key = row_key(row)
        if key in first_line:
            problems.append(
                MappingProblem(
                    row.line_number,
                    f"'{key[0]}' repeats line {first_line[key]} with the same pseudonyms, which would create "
                    "the same job twice. Delete one of the two rows.",
                )
            )
        else:
            first_line[key] = row.line_number
    return problems


def _find_shared_pseudonyms(rows: Sequence[Any]) -> List[MappingProblem]:
    """Report each pseudonym that is used for more than one source.

    A row with only one of pseudo_id and pseudo_name sends that value as
    both, so the columns are compared as the server will receive them.
    """
    problems = []
    for column, other in (("pseudo_id", "pseudo_name"), ("pseudo_name", "pseudo_id")):
        first_use: Dict[str, Tuple[str, int]] = {}
        for row in rows:
            pseudonym = _text(getattr(row, column)) or _text(getattr(row, other))
            if not pseudonym:
                continue
            source = row.source.to_string()
            if pseudonym not in first_use:
                first_use[pseudonym] = (source, row.line_number)
                continue
            first_source, first_line = first_use[pseudonym]
            if first_source != source:
                problems.append(
                    MappingProblem(
                        row.line_number,
                        f"pseudonym '{pseudonym}' is also used for '{first_source}' on line {first_line}. "
                        "Give each source its own pseudonym.",
                    )
                )
    return problems


# --- Building the request of one row ----------------------------------------------


class _RequestBuilder:
    """Builds the request of each row from its values, the options and the defaults, and checks them."""

    def __init__(self, options, defaults: JobSettings, unc_map=None, mounts=None):
        self.options = options
        self.defaults = defaults
        self.unc_map = dict(unc_map or {})
        self.mounts = mounts
        self.notices: List[str] = []
        self._unc_forms: Dict[str, Optional[str]] = {}

    def _as_unc(self, name: str, value: str) -> str:
        """Return ``value`` as a UNC path where it is a local path on a known share, else unchanged.

        A mapping made before the share was known keeps a local root_source_path
        or destination_path; the mount table or unc_paths in the settings may
        know its UNC form by now.
        """
        from pathlib import PurePosixPath, PureWindowsPath

        from anonapi.unc import find_share_mounts, is_unc_path, to_unc

        # Relative values such as the old default destination '.' stay as they are,
        # so that no job writes to wherever the command happened to run.
        is_absolute = PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute()
        if not value or is_unc_path(value) or not is_absolute:
            return value
        if value not in self._unc_forms:
            if self.mounts is None:
                self.mounts = find_share_mounts()
            converted = to_unc(value, self.unc_map, mounts=self.mounts)
            self._unc_forms[value] = converted
            if converted is not None:
                self.notices.append(f"{name} '{value}' is sent as the UNC path '{converted}'.")
        return self._unc_forms[value] or value

    def _value(self, row, name: str, default: Optional[str] = None) -> Tuple[str, bool]:
        """Return the value for ``name`` and whether the row itself set it."""
        own = _text(getattr(row, name, None))
        if own:
            return own, True
        return _text(getattr(self.options, name, None)) or _text(default), False

    def root_of(self, row) -> str:
        return self._as_unc("root_source_path", self._value(row, "root_source_path")[0])

    def build(self, row) -> Tuple[Optional[JobRequest], List[MappingProblem], Optional[str]]:
        """Return the row's request (None if it cannot be built), its problems, and its UNC source path."""
        from anonapi.unc import is_unc_path

        problems: List[MappingProblem] = []
        project, own_project = self._value(row, "project", self.defaults.project_name)
        destination, own_destination = self._value(row, "destination_path", self.defaults.destination_path)
        destination = self._as_unc("destination_path", destination)
        pims_key = self._value(row, "pims_key")[0] or None
        description = _text(row.description) or _text(getattr(self.options, "description", None)) or None

        if not project or project == PROJECT_NOT_SET:
            project_text = f"'{project}'" if project else "missing"
            problems.append(_value_problem(
                row, own_project, f"project is {project_text}. Set it in the Options section, for example "
                "'project,Wetenschap-Algemeen', or set a default with anon create set-defaults."))
        if not destination:
            problems.append(_value_problem(
                row, own_destination, "destination_path is missing. Set it in the Options section as a UNC path, "
                "for example 'destination_path,\\\\server\\share\\output'."))
        elif not is_unc_path(destination):
            problems.append(_value_problem(
                row, own_destination, f"destination_path '{destination}' is not a UNC path. The server writes to "
                "shares only: use the form \\\\server\\share\\folder, not a drive letter or a mount."))

        pseudo_id = _text(row.pseudo_id) or None
        pseudo_name = _text(row.pseudo_name) or None
        if pseudo_id is None and pseudo_name is None and pims_key is None:
            problems.append(MappingProblem(
                row.line_number, f"'{row.source.to_string()}' has no pseudonym. Fill in pseudo_name or pseudo_id, "
                "or set pims_key in the Options section to let the server choose pseudonyms."))

        arguments = dict(
            project_name=project,
            destination_path=destination,
            anon_id=pseudo_id or pseudo_name,
            anon_name=pseudo_name or pseudo_id,
            pims_keyfile_id=pims_key,
            description=description,
        )
        source = row.source
        if source.is_pacs:
            # A StudyInstanceUID goes bare; an accession number keeps its prefix.
            instance_id = source.value if source.key == "study_instance_uid" else source.to_string()
            return JobRequest(row.line_number, row_key(row), "WADO", source_instance_id=instance_id, **arguments), \
                problems, None

        unc_path, path_problem = self._source_unc_path(row)
        if path_problem is not None:
            problems.append(path_problem)
        if unc_path is None:
            return None, problems, None
        source_path = f"{source.key}:{unc_path}"
        return JobRequest(row.line_number, row_key(row), "PATH", source_path=source_path, **arguments), \
            problems, unc_path

    def _source_unc_path(self, row) -> Tuple[Optional[str], Optional[MappingProblem]]:
        from anonapi.unc import is_unc_path

        root, own_root = self._value(row, "root_source_path")
        root = self._as_unc("root_source_path", root)
        if not root:
            return None, _value_problem(
                row, own_root, "root_source_path is missing, but folder: and fileselection: sources are relative "
                "to it. Set it in the Options section as a UNC path, for example "
                "'root_source_path,\\\\server\\share\\data'.")
        if not is_unc_path(root):
            return None, _value_problem(
                row, own_root, f"root_source_path '{root}' is not a UNC path. The server reads from shares only: "
                "use the form \\\\server\\share\\folder, not a drive letter or a mount.")
        unc_path = _join_inside_share(root, row.source.value)
        if unc_path is None:
            return None, MappingProblem(
                row.line_number, f"'{row.source.to_string()}' leaves the share of root_source_path '{root}' "
                "through '..'. Give a path inside the share.")
        return unc_path, None


def _value_problem(row, own_value: bool, message: str) -> MappingProblem:
    """Return a problem on the row's line if the row set the value, else one for the Options section."""
    return MappingProblem(row.line_number if own_value else None, message)


def _join_inside_share(root: str, relative: str) -> Optional[str]:
    """Join a UNC root and a relative path, applying ``.`` and ``..``; None if the result leaves the share."""
    from anonapi.unc import normalize_unc

    # parts[0] is the server and parts[1] the share, which '..' may not remove.
    parts = normalize_unc(root)[2:].split("\\")
    for part in re.split(r"[\\/]+", relative):
        if part in ("", "."):
            continue
        if part == "..":
            if len(parts) <= 2:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "\\\\" + "\\".join(parts)


# --- Checking sources on this computer ---------------------------------------------


class _SourceChecker:
    """Checks share sources where this computer can reach the share; notes where it cannot."""

    def __init__(self, unc_map, mounts, check_dicom: bool, max_workers: int):
        self.unc_map = dict(unc_map or {})
        self.mounts = mounts
        self.check_dicom = check_dicom
        self.max_workers = max(1, max_workers)
        self.notices: List[str] = []

    def check(self, share_rows: List[Tuple[Any, str, str]]) -> List[MappingProblem]:
        """Check ``(row, unc_path, root)`` triples and return the problems found."""
        from anonapi.unc import find_share_mounts, to_local

        if not share_rows:
            return []
        if self.mounts is None:
            self.mounts = find_share_mounts()

        problems: List[MappingProblem] = []
        checks: List[Tuple[Any, Path]] = []
        unreachable: Dict[str, int] = {}
        missing_roots = set()
        # Local folder of each root_source_path, or None where the share is not mounted.
        local_roots: Dict[str, Optional[Path]] = {}
        for row, unc_path, root in share_rows:
            if root not in local_roots:
                local_roots[root] = to_local(root, self.unc_map, mounts=self.mounts)
                if local_roots[root] is not None and not local_roots[root].is_dir():
                    missing_roots.add((root, local_roots[root]))
            local_path = to_local(unc_path, self.unc_map, mounts=self.mounts)
            if local_roots[root] is None or local_path is None:
                unreachable[root] = unreachable.get(root, 0) + 1
            elif (root, local_roots[root]) not in missing_roots:
                checks.append((row, local_path))

        for root, count in unreachable.items():
            self.notices.append(
                f"The sources of {count} rows were not checked: root_source_path '{root}' is not on a share "
                "that is mounted on this computer. Mount the share, or add its local folder to unc_paths "
                "in the settings file, to have them checked."
            )
        for root, local_root in sorted(missing_roots):
            problems.append(MappingProblem(
                None, f"root_source_path '{root}' is the local folder '{local_root}', which does not exist. "
                "Correct root_source_path."))

        problems.extend(self._check_all(checks))
        return problems

    def _check_all(self, checks: List[Tuple[Any, Path]]) -> List[MappingProblem]:
        """Check the sources in this thread while they are fast to read, the rest with ``max_workers`` threads.

        Problems are returned in the order of ``checks``.
        """
        problems: List[MappingProblem] = []
        blocks = [checks[start:start + SOURCES_PER_TIMING] for start in range(0, len(checks), SOURCES_PER_TIMING)]
        for index, block in enumerate(blocks):
            start = time.perf_counter()
            for row, local_path in block:
                problems.extend(self._check_one(row, local_path, self.max_workers))
            if self.max_workers > 1 and time.perf_counter() - start > SLOW_SOURCE_SECONDS * len(block):
                remaining = [check for later in blocks[index + 1:] for check in later]
                break
        else:
            return problems

        inner_workers = max(1, self.max_workers // max(1, len(remaining)))
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="source-check") as executor:
            for row_problems in executor.map(lambda check: self._check_one(*check, inner_workers), remaining):
                problems.extend(row_problems)
        return problems

    def _check_one(self, row, local_path: Path, max_workers: int) -> List[MappingProblem]:
        if row.source.key == "folder":
            return _check_folder(row, local_path, self.check_dicom, max_workers)
        return _check_file_selection(row, local_path, self.check_dicom, max_workers)


def _check_folder(row, folder: Path, check_dicom: bool, max_workers: int) -> List[MappingProblem]:
    from anonapi.dicom import find_files, select_dicom_files

    source = row.source.to_string()
    if not folder.is_dir():
        return [MappingProblem(
            row.line_number, f"'{source}' is not found: '{folder}' is not a folder. Correct the path, "
            "or root_source_path if it is wrong for every row.")]
    files = find_files(folder, recurse=True)
    if not files:
        return [MappingProblem(row.line_number, f"'{source}' contains no files (folder '{folder}'). Remove the row.")]
    dicom_files = set(select_dicom_files(files, check_dicom=check_dicom, max_workers=max_workers))
    other_files = [path for path in files if path not in dicom_files]
    if not other_files:
        return []
    first = other_files[0].relative_to(folder).as_posix()
    return [MappingProblem(
        row.line_number, f"'{source}' contains files that are not DICOM ('{first}'{_and_more(other_files)}), "
        "and the server fails a folder: job on those. Select the DICOM files with anon map add-study-folders, "
        "which adds a fileselection: row instead.")]


def _check_file_selection(row, selection_path: Path, check_dicom: bool, max_workers: int) -> List[MappingProblem]:
    from anonapi.dicom import select_dicom_files
    from anonapi.selection import FileSelectionFile

    source = row.source.to_string()
    if not selection_path.is_file():
        return [MappingProblem(
            row.line_number, f"'{source}' is not found: '{selection_path}' does not exist. Correct the path, "
            "or make the selection with anon select add.")]
    try:
        selected = FileSelectionFile(selection_path).load().absolute_paths()
    except AnonAPIError as error:
        return [MappingProblem(row.line_number, f"'{source}': {error}")]
    if not selected:
        return [MappingProblem(
            row.line_number, f"'{source}' lists no files. Add files with anon select add, or remove the row.")]
    missing = [path for path in selected if not path.is_file()]
    if missing:
        return [MappingProblem(
            row.line_number, f"'{source}' lists files that do not exist ('{missing[0]}'{_and_more(missing)}). "
            "Make the selection again with anon select add.")]
    if not check_dicom:
        return []
    dicom_files = set(select_dicom_files(selected, check_dicom=True, max_workers=max_workers))
    other_files = [path for path in selected if path not in dicom_files]
    if not other_files:
        return []
    return [MappingProblem(
        row.line_number, f"'{source}' lists files that are not DICOM ('{other_files[0]}'{_and_more(other_files)}). "
        "Make the selection again with anon select add --check-dicom.")]


def _and_more(paths: Sequence[Any]) -> str:
    return f" and {len(paths) - 1} more" if len(paths) > 1 else ""


# --- Defaults for new jobs ------------------------------------------------------------


def validate_project(text: str) -> str:
    """Return the project name without surrounding spaces.

    :raises UserInputError: if it is empty
    """
    value = text.strip()
    if not value:
        raise UserInputError(
            "Invalid project: it is empty. Give the name of an anonymization project, for example Wetenschap-Algemeen."
        )
    return value


def validate_destination_path(text: str) -> str:
    """Return the destination path as a UNC path with backslashes.

    :raises UserInputError: if it is not a UNC path
    """
    from anonapi.unc import is_unc_path, normalize_unc

    value = text.strip()
    if not is_unc_path(value):
        hint = ""
        if value.startswith("\\") and os.sep == "/":
            # A shell on Linux or macOS turns an unquoted \\server\share into \servershare.
            hint = " On Linux and macOS, put the path in single quotes so that the shell keeps its backslashes."
        raise UserInputError(
            f"Invalid destination path '{value}': it is not a UNC path. The server writes to shares only, "
            "so give a path such as \\\\server\\share\\output, not a drive letter or a mount." + hint
        )
    return normalize_unc(value)
