"""Source identifiers: where the data for one anonymization job comes from.

A source identifier is written ``<type>:<value>`` in the ``source`` column of
a mapping, for example ``folder:patient1/study`` or
``accession_number:12345678.1234567``. Paths in ``folder:`` and
``fileselection:`` identifiers are relative to the mapping's
``root_source_path`` and are stored with forward slashes.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import ClassVar, Dict, Type

from anonapi.exceptions import MappingError

# A DICOM UID (value representation UI) is at most 64 characters of digits and dots.
_UID_PATTERN = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UID_MAX_LENGTH = 64


class SourceIdentifier:
    """The source of a job's data: a ``key`` (the type) and a ``value``."""

    key: ClassVar[str] = ""
    example: ClassVar[str] = ""
    is_pacs: ClassVar[bool] = False

    def __init__(self, value: str):
        value = value.strip()
        if not value:
            raise MappingError(f"Invalid source '{self.key}:': the value after '{self.key}:' is empty. Give it, as in '{self.example}'.")
        self.value = value

    def to_string(self) -> str:
        """Return the identifier as written in a mapping, ``<key>:<value>``."""
        return f"{self.key}:{self.value}"

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SourceIdentifier) and self.key == other.key and self.value == other.value

    def __hash__(self) -> int:
        return hash((self.key, self.value))


class PathIdentifier(SourceIdentifier):
    """A source on a network share, given as a path relative to ``root_source_path``."""

    def __init__(self, value: str):
        super().__init__(value.strip().replace("\\", "/"))
        if self.value.startswith("/") or re.match(r"^[A-Za-z]:", self.value):
            raise MappingError(
                f"Invalid source '{self.to_string()}': the path must be relative to root_source_path. "
                f"Remove the start up to root_source_path, as in '{self.example}'."
            )

    @property
    def path(self) -> PurePosixPath:
        """The path relative to ``root_source_path``."""
        return PurePosixPath(self.value)


class FolderIdentifier(PathIdentifier):
    """Every file in a folder. The job fails if the folder contains files that are not DICOM."""

    key = "folder"
    example = "folder:patient1/study"


class FileSelectionIdentifier(PathIdentifier):
    """The files listed in a file selection file (``fileselection.txt``)."""

    key = "fileselection"
    example = "fileselection:patient1/study/fileselection.txt"


class StudyInstanceUIDIdentifier(SourceIdentifier):
    """A study in PACS, found by its StudyInstanceUID."""

    key = "study_instance_uid"
    example = "study_instance_uid:1.2.840.113619.2.1"
    is_pacs = True

    def __init__(self, value: str):
        super().__init__(value)
        if len(self.value) > _UID_MAX_LENGTH or not _UID_PATTERN.match(self.value):
            raise MappingError(
                f"Invalid StudyInstanceUID '{self.value}': a UID contains only digits and dots "
                f"and is at most {_UID_MAX_LENGTH} characters long. Correct it, as in '{self.example}'."
            )


class AccessionNumberIdentifier(SourceIdentifier):
    """A study in PACS, found by its AccessionNumber."""

    key = "accession_number"
    example = "accession_number:12345678.1234567"
    is_pacs = True


SOURCE_IDENTIFIER_TYPES: Dict[str, Type[SourceIdentifier]] = {
    cls.key: cls
    for cls in (FolderIdentifier, FileSelectionIdentifier, StudyInstanceUIDIdentifier, AccessionNumberIdentifier)
}


def parse_source_identifier(text: str) -> SourceIdentifier:
    """Parse ``<type>:<value>`` into the matching SourceIdentifier subclass.

    The type is matched ignoring case and surrounding spaces.

    :raises MappingError: if the type is unknown or the value is invalid
    """
    valid = ", ".join(f"'{key}:'" for key in SOURCE_IDENTIFIER_TYPES)
    key, separator, value = text.strip().partition(":")
    identifier_class = SOURCE_IDENTIFIER_TYPES.get(key.strip().lower())
    if not separator or identifier_class is None:
        raise MappingError(f"Invalid source '{text.strip()}': it must start with one of {valid}.")
    return identifier_class(value)
