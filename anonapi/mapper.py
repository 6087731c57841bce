"""The mapping: which data to anonymize, under which pseudonyms, and where it goes.

A mapping file (``anon_mapping.csv``) has three sections::

    ## Description ##
    Mapping created 2024-02-12 by z123456

    ## Options ##
    root_source_path,\\\\server\\share\\data
    project,Wetenschap-Algemeen
    destination_path,\\\\server\\share\\output

    ## Mapping ##
    source,pseudo_id,pseudo_name,description
    folder:patient1/study,001,Patient1,first patient
    accession_number:12345678.1234567,002,Patient2,

Options apply to every row. Any option may also be a column, and a value in
a row wins over the option. ``patient_id`` and ``patient_name`` are read as
the old names of ``pseudo_id`` and ``pseudo_name``.

Users edit mappings in Excel, so the reader accepts what Excel saves. The
separator is ``,``, ``;`` or a tab. The encoding is UTF-8 with or without
byte order mark, UTF-16 with byte order mark, or Windows-1252. Empty lines,
trailing separators and spaces around values are ignored. The
writer uses the separator Excel expects in the user's locale (``;`` where the
decimal mark is a comma) and writes atomically.
"""

from __future__ import annotations

import csv
import datetime
import getpass
import io
import locale
import os
import re
import secrets
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from anonapi.exceptions import FileLockedError, MappingError
from anonapi.fileio import atomic_write_text, delete_file
from anonapi.inputfile import read_text_file
from anonapi.parameters import SourceIdentifier, parse_source_identifier

MAPPING_FILE_NAME = "anon_mapping.csv"

OPTION_NAMES = ("root_source_path", "project", "destination_path", "pims_key")
ROW_COLUMN_NAMES = ("source", "pseudo_id", "pseudo_name", "description")
OLD_COLUMN_NAMES = {"patient_id": "pseudo_id", "patient_name": "pseudo_name"}
PARAMETER_NAMES = ROW_COLUMN_NAMES + OPTION_NAMES

# Separators the reader accepts, in order of preference when a file could be either.
MAPPING_DELIMITERS = (",", ";", "\t")

SECTION_DESCRIPTION = "description"
SECTION_OPTIONS = "options"
SECTION_MAPPING = "mapping"
_SECTION_PATTERN = re.compile(r'^\s*"?\s*##\s*(?P<name>[A-Za-z ]+?)\s*##\s*"?\s*[,;\t]*\s*$')

PSEUDONYM_ALPHABET = string.ascii_uppercase + string.digits
PSEUDONYM_LENGTH = 8


@dataclass
class MappingOptions:
    """Values that apply to every row of a mapping unless a row sets its own.

    ``description`` is the job description for rows that have none.
    """

    root_source_path: Optional[str] = None
    project: Optional[str] = None
    destination_path: Optional[str] = None
    pims_key: Optional[str] = None
    description: Optional[str] = None


@dataclass
class MappingRow:
    """One job: its source, pseudonyms and description, plus any options it overrides.

    ``line_number`` is the line in the mapping file the row was read from, 0 for a new row.
    """

    source: SourceIdentifier
    pseudo_id: Optional[str] = None
    pseudo_name: Optional[str] = None
    description: Optional[str] = None
    line_number: int = 0
    root_source_path: Optional[str] = None
    project: Optional[str] = None
    destination_path: Optional[str] = None
    pims_key: Optional[str] = None

    @property
    def pseudonyms(self) -> Set[str]:
        """The pseudonyms the row sets: its pseudo_id and pseudo_name, where given."""
        return {value for value in (self.pseudo_id, self.pseudo_name) if value}


@dataclass
class JobParameters:
    """The parameters of one job: a row with the options filled in where the row has no value."""

    source: SourceIdentifier
    pseudo_id: Optional[str]
    pseudo_name: Optional[str]
    description: Optional[str]
    root_source_path: Optional[str]
    project: Optional[str]
    destination_path: Optional[str]
    pims_key: Optional[str]
    line_number: int


@dataclass
class Mapping:
    """A mapping's description, options and rows."""

    description: str = ""
    options: MappingOptions = field(default_factory=MappingOptions)
    rows: List[MappingRow] = field(default_factory=list)

    def job_parameters(self) -> List[JobParameters]:
        """Return the parameters of each row's job; values in a row win over the options."""
        parameters = []
        for row in self.rows:
            parameters.append(
                JobParameters(
                    source=row.source,
                    pseudo_id=row.pseudo_id,
                    pseudo_name=row.pseudo_name,
                    description=row.description or self.options.description,
                    root_source_path=row.root_source_path or self.options.root_source_path,
                    project=row.project or self.options.project,
                    destination_path=row.destination_path or self.options.destination_path,
                    pims_key=row.pims_key or self.options.pims_key,
                    line_number=row.line_number,
                )
            )
        return parameters

    def used_pseudonyms(self) -> Set[str]:
        """Return every pseudo_id and pseudo_name that a row sets."""
        used: Set[str] = set()
        for row in self.rows:
            used.update(row.pseudonyms)
        return used

    def find_row(self, source: SourceIdentifier) -> Optional[MappingRow]:
        """Return the first row with this source, or None."""
        return next((row for row in self.rows if row.source == source), None)

    def add_row(self, source: SourceIdentifier, pseudonym: Optional[str] = None, description: Optional[str] = None) -> MappingRow:
        """Append a row for ``source`` and return it, or return the row that already has this source.

        The row gets ``pseudonym`` as both pseudo_id and pseudo_name, or a
        generated pseudonym that no other row uses.

        :raises MappingError: if another source already uses ``pseudonym``
        """
        existing = self.find_row(source)
        if existing is not None:
            return existing
        if pseudonym:
            owner = next((row for row in self.rows if pseudonym in row.pseudonyms), None)
            if owner is not None:
                raise MappingError(
                    f"Pseudonym '{pseudonym}' for {source} is already used for {owner.source} in the mapping. "
                    f"Give a different pseudonym."
                )
        else:
            pseudonym = generate_pseudonym(self.used_pseudonyms())
        row = MappingRow(source=source, pseudo_id=pseudonym, pseudo_name=pseudonym, description=description)
        self.rows.append(row)
        return row


def generate_pseudonym(used: Set[str]) -> str:
    """Return a random pseudonym of 8 capital letters and digits that is not in ``used``."""
    used_upper = {value.upper() for value in used}
    while True:
        candidate = "".join(secrets.choice(PSEUDONYM_ALPHABET) for _ in range(PSEUDONYM_LENGTH))
        if candidate not in used_upper:
            return candidate


def generated_description(today: Optional[datetime.date] = None) -> str:
    """Return the job description for rows that anonapi adds: the date they were added."""
    return f"generated {(today or datetime.date.today()).isoformat()}"


def create_default_mapping(
    project: Optional[str] = None,
    destination_path: Optional[str] = None,
    root_source_path: Optional[str] = None,
    user_name: Optional[str] = None,
    today: Optional[datetime.date] = None,
) -> Mapping:
    """Return a new mapping without rows, with the given options and a description naming the date and user."""
    user_name = user_name or _login_name()
    description = f"Mapping created {(today or datetime.date.today()).isoformat()} by {user_name}"
    options = MappingOptions(root_source_path=root_source_path, project=project, destination_path=destination_path)
    return Mapping(description=description, options=options)


class MappingFile:
    """A mapping file on disk (see the module description for the format)."""

    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)

    def exists(self) -> bool:
        """Return True if the file exists."""
        return self.path.is_file()

    def load(self) -> Mapping:
        """Read and parse the file.

        :raises MappingError: if the file is missing or invalid, naming the file, line, value and fix
        :raises FileLockedError: if another program holds the file open
        """
        if not self.path.is_file():
            raise MappingError(f"Mapping '{self.path}' not found. Create one with 'anon map init' in its folder.")
        return parse_mapping(read_text_file(self.path, MappingError), self.path)

    def save(self, mapping: Mapping, delimiter: Optional[str] = None) -> None:
        """Write ``mapping`` atomically, separated by ``delimiter`` (default: local_csv_delimiter).

        The file is UTF-8, with a byte order mark if it contains non-ASCII
        text so that Excel reads it as UTF-8.

        :raises FileLockedError: if another program holds the file open
        """
        text = format_mapping(mapping, delimiter or local_csv_delimiter())
        encoding = "utf-8" if text.isascii() else "utf-8-sig"
        atomic_write_text(self.path, text, encoding=encoding, newline="")

    def delete(self) -> None:
        """Remove the file.

        :raises FileLockedError: if another program holds the file open, or the folder is read-only
        """
        delete_file(self.path)


def local_csv_delimiter() -> str:
    """Return the separator Excel uses in this locale: ``;`` if the decimal mark is a comma, else ``,``."""
    try:
        previous = locale.setlocale(locale.LC_NUMERIC)
        try:
            locale.setlocale(locale.LC_NUMERIC, "")
            decimal_point = locale.localeconv()["decimal_point"]
        finally:
            locale.setlocale(locale.LC_NUMERIC, previous)
    except locale.Error:
        return ","
    return ";" if decimal_point == "," else ","


def format_mapping(mapping: Mapping, delimiter: str = ",") -> str:
    """Return the text of a mapping file, with Windows line ends as Excel writes them."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["## Description ##"])
    for line in mapping.description.splitlines() or [""]:
        writer.writerow([line])
    writer.writerow([])
    writer.writerow(["## Options ##"])
    for name in ("root_source_path", "project", "destination_path"):
        writer.writerow([name, getattr(mapping.options, name) or ""])
    for name in ("pims_key", "description"):
        if getattr(mapping.options, name):
            writer.writerow([name, getattr(mapping.options, name)])
    writer.writerow([])
    writer.writerow(["## Mapping ##"])
    overrides = [name for name in OPTION_NAMES if any(getattr(row, name) for row in mapping.rows)]
    columns = list(ROW_COLUMN_NAMES) + overrides
    writer.writerow(columns)
    for row in mapping.rows:
        values = [row.source.to_string()] + [getattr(row, name) or "" for name in columns[1:]]
        writer.writerow(values)
    return buffer.getvalue()


def parse_mapping(text: str, path: os.PathLike | str = "<mapping>") -> Mapping:
    """Parse the text of a mapping file.

    :raises MappingError: naming the file, line, value and fix of the first
        problem, and the lines of any further problems
    """
    return _MappingParser(text, Path(path)).parse()


class _MappingParser:
    def __init__(self, text: str, path: Path):
        self.path = path
        self.lines = text.splitlines()
        self.sections = self._split_sections()
        self.delimiter = self._detect_delimiter()

    def parse(self) -> Mapping:
        if SECTION_MAPPING not in self.sections:
            raise MappingError(
                f"Invalid mapping '{self.path}': no '## Mapping ##' line found. Add it above the row with "
                f"the column names (source, pseudo_id, pseudo_name, description), or create a new mapping "
                f"with 'anon map init'."
            )
        mapping = Mapping(
            description=self._parse_description(),
            options=self._parse_options(),
        )
        mapping.rows = self._parse_rows()
        return mapping

    def _error(self, line_number: int, problem: str) -> MappingError:
        return MappingError(f"Invalid mapping '{self.path}', line {line_number}: {problem}")

    def _split_sections(self) -> Dict[str, Tuple[int, List[str]]]:
        """Return each section's first line number and its lines, by section name."""
        sections: Dict[str, Tuple[int, List[str]]] = {}
        current: Optional[str] = None
        for number, line in enumerate(self.lines, start=1):
            match = _SECTION_PATTERN.match(line)
            if match:
                name = match.group("name").strip().lower()
                if name not in (SECTION_DESCRIPTION, SECTION_OPTIONS, SECTION_MAPPING):
                    raise self._error(
                        number,
                        f"unknown section '{line.strip()}'. The sections are '## Description ##', "
                        f"'## Options ##' and '## Mapping ##'; correct or remove the line.",
                    )
                if name in sections:
                    raise self._error(number, f"section '{line.strip()}' appears a second time. Merge the two sections.")
                sections[name] = (number + 1, [])
                current = name
            elif current is None:
                if line.strip(" \t,;\ufeff"):
                    raise self._error(
                        number,
                        f"'{line.strip()}' comes before any section. Start the file with '## Description ##', "
                        f"or move the line into a section.",
                    )
            else:
                sections[current][1].append(line)
        return sections

    def _detect_delimiter(self) -> str:
        """Return the separator (``,``, ``;`` or a tab) that splits the row of column names into known names.

        Excel saves ``;`` in locales with a decimal comma, and tabs when a
        sheet is saved as Unicode text.
        """
        header = self._mapping_header_line()
        candidates = []
        for delimiter in MAPPING_DELIMITERS:
            names = self._split_line(header, delimiter) if header else []
            if names and all(_column_name(name) in PARAMETER_NAMES for name in names):
                candidates.append(delimiter)
        if len(candidates) == 1:
            return candidates[0]
        # When the column names do not decide (a single column, or unknown names), the options do.
        _, option_lines = self.sections.get(SECTION_OPTIONS, (0, []))
        scores = {}
        for delimiter in MAPPING_DELIMITERS:
            scores[delimiter] = sum(
                1 for line in option_lines if len(self._split_line(line, delimiter)) >= 2
            ) + (header.count(delimiter) if header else 0)
        # max() keeps the first of equal scores, so ties go to ','.
        return max(MAPPING_DELIMITERS, key=lambda delimiter: scores[delimiter])

    def _mapping_header_line(self) -> Optional[str]:
        _, lines = self.sections.get(SECTION_MAPPING, (0, []))
        return next((line for line in lines if line.strip(" \t,;")), None)

    @staticmethod
    def _split_line(line: str, delimiter: str) -> List[str]:
        """Split one line into stripped cells, without the empty cells at its end."""
        cells = [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])]
        while cells and not cells[-1]:
            cells.pop()
        return cells

    def _parse_description(self) -> str:
        _, lines = self.sections.get(SECTION_DESCRIPTION, (0, []))
        texts = [self.delimiter.join(self._split_line(line, self.delimiter)) for line in lines]
        while texts and not texts[-1]:
            texts.pop()
        while texts and not texts[0]:
            texts.pop(0)
        return "\n".join(texts)

    def _parse_options(self) -> MappingOptions:
        options = MappingOptions()
        first_line, lines = self.sections.get(SECTION_OPTIONS, (0, []))
        seen: Dict[str, int] = {}
        for number, line in enumerate(lines, start=first_line):
            cells = self._split_line(line, self.delimiter)
            if not cells:
                continue
            name = _column_name(cells[0])
            # A value with an unquoted separator in it arrives as several cells.
            value = self.delimiter.join(cells[1:]).strip() or None
            if name in ("source", "pseudo_id", "pseudo_name"):
                raise self._error(
                    number,
                    f"'{cells[0]}' cannot be an option, because every job needs its own. "
                    f"Move it to a column under '## Mapping ##'.",
                )
            if name not in OPTION_NAMES + ("description",):
                raise self._error(
                    number,
                    f"unknown option '{cells[0]}'. Valid options are {', '.join(OPTION_NAMES)} and description; "
                    f"correct or remove the line.",
                )
            if name in seen:
                raise self._error(number, f"option '{name}' is set a second time (first on line {seen[name]}). Remove one of the lines.")
            seen[name] = number
            setattr(options, name, value)
        return options

    def _parse_rows(self) -> List[MappingRow]:
        first_line, lines = self.sections[SECTION_MAPPING]
        records = self._read_records(first_line, lines)
        if not records:
            raise self._error(
                first_line - 1,
                "no column names below '## Mapping ##'. Add the line 'source,pseudo_id,pseudo_name,description'.",
            )
        header_line, header_cells = records[0]
        columns = self._parse_header(header_line, header_cells)
        rows: List[MappingRow] = []
        problems: List[Tuple[int, str]] = []
        for number, cells in records[1:]:
            try:
                rows.append(self._parse_row(number, cells, columns))
            except MappingError as error:
                problems.append((number, str(error)))
        if problems:
            message = problems[0][1]
            if len(problems) > 1:
                others = ", ".join(str(number) for number, _ in problems[1:11])
                if len(problems) == 2:
                    message += f" Line {others} has problems too."
                else:
                    more = " and more" if len(problems) > 11 else ""
                    message += f" Lines {others}{more} have problems too."
            raise MappingError(message)
        return rows

    def _read_records(self, first_line: int, lines: List[str]) -> List[Tuple[int, List[str]]]:
        """Return the non-empty CSV records of the section with the line each starts on.

        A quoted value may span lines, so records are read with the csv module.
        """
        # skipinitialspace: a quoted value after a space ('a; "b;c"') is still one value.
        reader = csv.reader(io.StringIO("\n".join(lines), newline=""), delimiter=self.delimiter, skipinitialspace=True)
        records = []
        previous_line_count = 0
        try:
            for cells in reader:
                start = first_line + previous_line_count
                previous_line_count = reader.line_num
                stripped = [cell.strip() for cell in cells]
                while stripped and not stripped[-1]:
                    stripped.pop()
                if stripped:
                    records.append((start, stripped))
        except csv.Error as error:
            raise self._error(
                first_line + reader.line_num - 1,
                f"cannot split the line into values ({error}). Check the quotes on this line.",
            ) from error
        return records

    def _parse_header(self, line_number: int, cells: List[str]) -> List[str]:
        columns = []
        for cell in cells:
            name = _column_name(cell)
            name = OLD_COLUMN_NAMES.get(name, name)
            if name not in PARAMETER_NAMES:
                raise self._error(
                    line_number,
                    f"unknown column '{cell}'. Valid columns are {', '.join(PARAMETER_NAMES)}; "
                    f"correct or remove the column.",
                )
            if name in columns:
                raise self._error(line_number, f"column '{name}' appears twice. Remove one of them.")
            columns.append(name)
        if "source" not in columns:
            raise self._error(
                line_number,
                f"no 'source' column in '{self.delimiter.join(cells)}'. The first line below '## Mapping ##' "
                f"must name the columns, starting with source.",
            )
        return columns

    def _parse_row(self, line_number: int, cells: List[str], columns: List[str]) -> MappingRow:
        if len(cells) > len(columns):
            raise self._error(
                line_number,
                f"{len(cells)} values for {len(columns)} columns in '{self.delimiter.join(cells)}'. "
                f"Put quotes around values that contain '{self.delimiter}', or add a column name.",
            )
        values = {name: (cells[index] or None) if index < len(cells) else None for index, name in enumerate(columns)}
        source_text = values.pop("source")
        if not source_text:
            raise self._error(
                line_number,
                f"no source in '{self.delimiter.join(cells)}'. Add a source such as 'folder:patient1/study' "
                f"or remove the line.",
            )
        try:
            source = parse_source_identifier(source_text)
        except MappingError as error:
            raise self._error(line_number, str(error)) from None
        return MappingRow(source=source, line_number=line_number, **values)


def _column_name(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().strip("\ufeff")).lower()


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return "unknown user"


def check_new_pseudonyms(mapping: Mapping, sources_and_pseudonyms: Sequence[Tuple[SourceIdentifier, Optional[str]]]) -> None:
    """Check pseudonyms about to be added before any is added.

    :raises MappingError: if a pseudonym is given for two different sources,
        or is already used in the mapping for another source
    """
    owners: Dict[str, SourceIdentifier] = {}
    for row in mapping.rows:
        for pseudonym in row.pseudonyms:
            owners.setdefault(pseudonym, row.source)
    for source, pseudonym in sources_and_pseudonyms:
        if not pseudonym:
            continue
        existing_row = mapping.find_row(source)
        if existing_row is not None:
            continue
        owner = owners.get(pseudonym)
        if owner is not None and owner != source:
            raise MappingError(
                f"Pseudonym '{pseudonym}' for {source} is already used for {owner}. Give each source its own pseudonym."
            )
        owners[pseudonym] = source
