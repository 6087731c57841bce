"""Small DICOM studies with distinctive identifiers, and a check for leaked identifiers.

Tests use these to fill a sandbox share or PACS folder from the DICOM files
that pydicom ships (CT_small.dcm, MR_small.dcm, rtplan.dcm, ...), which
pydicom finds without a network connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Sequence

# Attributes whose original values must not be found in de-identified output.
IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate")


class StudyFiles(NamedTuple):
    """The files written for one study and the original identifying values in them."""

    folder: Path
    paths: List[Path]
    study_instance_uid: str
    accession_number: str
    patient_id: str
    values: List[str]


def write_study(
    folder: Path,
    patient_id: str,
    patient_name: str = "Original^Patient",
    birth_date: str = "19610203",
    accession_number: str = "",
    source_files: Sequence[str] = ("CT_small.dcm", "MR_small.dcm"),
) -> StudyFiles:
    """Write one study: a copy of each pydicom test file with new identifiers.

    Every file gets the given patient, a new StudyInstanceUID shared by the
    study, and new Series and SOP Instance UIDs. ``values`` contains every
    identifying value of the written files, including every UID anywhere in
    them (sequences and file meta as well) that is not a standard DICOM UID.
    """
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid()
    accession_number = accession_number or f"ACC{patient_id}"
    paths = []
    values = {patient_id, patient_name, birth_date, accession_number, study_uid}
    for number, source_name in enumerate(source_files, start=1):
        dataset = pydicom.dcmread(get_testdata_file(source_name))
        dataset.PatientName = patient_name
        dataset.PatientID = patient_id
        dataset.PatientBirthDate = birth_date
        dataset.AccessionNumber = accession_number
        dataset.StudyInstanceUID = study_uid
        dataset.SeriesInstanceUID = generate_uid()
        dataset.SOPInstanceUID = generate_uid()
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        values.update(instance_uids(dataset))
        path = folder / f"IM{number:04d}.dcm"
        dataset.save_as(str(path))
        paths.append(path)
    return StudyFiles(folder, paths, study_uid, accession_number, patient_id, sorted(values))


def instance_uids(dataset) -> List[str]:
    """Return every UID value in a data set and its file meta that is not a standard DICOM UID.

    Standard UIDs (SOP classes, transfer syntaxes) start with 1.2.840.10008
    and identify no patient, so de-identification keeps them.
    """
    uids: List[str] = []

    def collect(_, element) -> None:
        if element.VR != "UI" or not element.value:
            return
        for value in element.value if element.VM > 1 else [element.value]:
            if not str(value).startswith("1.2.840.10008."):
                uids.append(str(value))

    dataset.walk(collect)
    file_meta = getattr(dataset, "file_meta", None)
    if file_meta is not None:
        file_meta.walk(collect)
    return uids


def find_leaked_values(paths: Iterable[Path], values: Iterable[str]) -> Dict[str, List[str]]:
    """Return, per file, the original values found in any element of the file.

    Every element is read, inside sequences and in the file meta as well, and
    a value counts as found when it occurs in the element's text.
    """
    import pydicom

    wanted = [value for value in values if value]
    leaks: Dict[str, List[str]] = {}
    for path in paths:
        dataset = pydicom.dcmread(str(path))
        texts: List[str] = []

        def collect(_, element) -> None:
            if element.VR not in ("SQ", "OB", "OW", "OF", "OD", "OL", "UN"):
                texts.append(str(element.value))

        dataset.walk(collect)
        dataset.file_meta.walk(collect)
        found = sorted({value for value in wanted for text in texts if value in text})
        if found:
            leaks[str(path)] = found
    return leaks
