"""A folder of DICOM files that the sandbox serves as its PACS, the source of WADO jobs."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

from anonapi.sandbox.dicomfiles import NotDicomError, read_dicom

logger = logging.getLogger(__name__)

# Name of the sandbox's PACS, the value of source_name in WADO jobs.
PACS_NAME = "IDC_WADO"

ACCESSION_NUMBER_PREFIX = "accession_number:"


class PacsObject(NamedTuple):
    """One DICOM file in the PACS folder."""

    path: Path
    sop_class_uid: str


class StudyNotFoundError(Exception):
    """The PACS has no study with the requested StudyInstanceUID or AccessionNumber.

    ``query`` is the part of a WADO URL that selects the study, for the error message.
    """

    def __init__(self, query: str):
        super().__init__(query)
        self.query = query


class PacsIndex:
    """Index of the DICOM files in a folder by StudyInstanceUID and AccessionNumber.

    The index is built at start and refreshed when a study is not found, so
    files copied into the folder while the sandbox runs are found as well.
    Files that are not DICOM are skipped.
    """

    def __init__(self, folder: Optional[Path]):
        self.folder = Path(folder) if folder is not None else None
        self.lock = threading.Lock()
        self.studies: Dict[str, List[PacsObject]] = {}
        self.accession_numbers: Dict[str, Set[str]] = {}
        self.indexed_files: Dict[Path, float] = {}

    def refresh(self) -> None:
        """Index the files that are new or changed since the last refresh."""
        if self.folder is None or not self.folder.is_dir():
            return
        with self.lock:
            for directory, _, file_names in os.walk(self.folder):
                for file_name in sorted(file_names):
                    self._index_file(Path(directory) / file_name)

    def _index_file(self, path: Path) -> None:
        try:
            modified = path.stat().st_mtime
        except OSError:
            return
        if self.indexed_files.get(path) == modified:
            return
        self.indexed_files[path] = modified
        try:
            dataset = read_dicom(path, stop_before_pixels=True)
        except NotDicomError:
            logger.debug("Skipping %s in the PACS folder: not DICOM", path)
            return
        study_uid = str(dataset.get("StudyInstanceUID", "") or "")
        if not study_uid:
            logger.debug("Skipping %s in the PACS folder: no StudyInstanceUID", path)
            return
        objects = self.studies.setdefault(study_uid, [])
        objects[:] = [item for item in objects if item.path != path]
        objects.append(PacsObject(path, str(dataset.get("SOPClassUID", ""))))
        accession_number = str(dataset.get("AccessionNumber", "") or "")
        if accession_number:
            self.accession_numbers.setdefault(accession_number, set()).add(study_uid)

    def find_study(self, source_instance_id: str) -> Tuple[str, List[PacsObject]]:
        """Return the StudyInstanceUID and files of a study.

        :param source_instance_id: a bare StudyInstanceUID, or an accession
            number prefixed with ``accession_number:``
        :raises StudyNotFoundError: if no study matches, even after a refresh
        """
        result = self._lookup(source_instance_id)
        if result is None:
            self.refresh()
            result = self._lookup(source_instance_id)
        if result is None:
            raise StudyNotFoundError(wado_query(source_instance_id))
        return result

    def _lookup(self, source_instance_id: str) -> Optional[Tuple[str, List[PacsObject]]]:
        with self.lock:
            if source_instance_id.startswith(ACCESSION_NUMBER_PREFIX):
                accession_number = source_instance_id[len(ACCESSION_NUMBER_PREFIX):].strip()
                study_uids = sorted(self.accession_numbers.get(accession_number, ()))
            else:
                study_uids = [source_instance_id.strip()]
            for study_uid in study_uids:
                objects = [item for item in self.studies.get(study_uid, []) if item.path.exists()]
                if objects:
                    return study_uid, sorted(objects)
        return None


def wado_query(source_instance_id: str) -> str:
    """Return the WADO query string that a real IDIS server would send for a study."""
    if source_instance_id.startswith(ACCESSION_NUMBER_PREFIX):
        key, value = "accessionNumber", source_instance_id[len(ACCESSION_NUMBER_PREFIX):]
    else:
        key, value = "studyInstanceUID", source_instance_id
    return (
        f"?{key}={value}&contentType=application/dicom&requestType=WADO"
        f"&transferSyntax=1.2.840.10008.1.2.1"
    )
