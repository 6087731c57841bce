"""Reading and writing DICOM files for the sandbox worker and its PACS folder."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian


class NotDicomError(Exception):
    """A file is not a DICOM file."""


def read_dicom(path: Path, stop_before_pixels: bool = False) -> pydicom.Dataset:
    """Read a DICOM file.

    A file counts as DICOM when it has the ``DICM`` prefix, or when it has no
    header but its data set has a SOPClassUID and a SOPInstanceUID.

    :raises NotDicomError: for any other file
    """
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    except Exception as error:  # pydicom raises many kinds of errors for broken files
        raise NotDicomError(f"{path.name} is not a valid DICOM file ({error})") from error

    try:
        with warnings.catch_warnings():
            # Reading a file that is not DICOM with force=True warns about
            # whatever pydicom guessed; the check below decides instead.
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels, force=True)
            has_identity = "SOPClassUID" in dataset and "SOPInstanceUID" in dataset
    except Exception as error:
        raise NotDicomError(f"{path.name} is not a DICOM file ({error})") from error
    if not has_identity:
        raise NotDicomError(f"{path.name} is not a DICOM file")
    return dataset


def write_dicom(dataset: pydicom.Dataset, path: Path) -> None:
    """Write a data set as a DICOM file with a new file meta header.

    The header is built from scratch, so that nothing of the original
    header, such as the sending station's AE title or the original
    implementation's UID, reaches the output.
    """
    original_meta = getattr(dataset, "file_meta", None)
    transfer_syntax = None
    if original_meta is not None and "TransferSyntaxUID" in original_meta:
        transfer_syntax = original_meta.TransferSyntaxUID
    file_meta = FileMetaDataset()
    file_meta.TransferSyntaxUID = transfer_syntax or _original_transfer_syntax(dataset)
    file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    file_meta.ImplementationVersionName = "ANONAPI_SANDBOX"
    dataset.file_meta = file_meta
    try:
        dataset.save_as(str(path), enforce_file_format=True)
    except TypeError:
        # pydicom before 3.0 names the option differently.
        dataset.save_as(str(path), write_like_original=False)


def _original_transfer_syntax(dataset: pydicom.Dataset) -> str:
    """Return the transfer syntax that a data set without file meta was read with."""
    encoding: Optional[tuple] = getattr(dataset, "original_encoding", None)
    if encoding is None:
        encoding = (getattr(dataset, "is_implicit_VR", True), getattr(dataset, "is_little_endian", True))
    is_implicit_vr, _ = encoding
    return ImplicitVRLittleEndian if is_implicit_vr else ExplicitVRLittleEndian
