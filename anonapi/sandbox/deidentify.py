"""De-identification of DICOM data sets with dicognito, plus the removals it leaves out.

dicognito (https://github.com/blairconrad/dicognito) replaces every UID,
person name, ID, address and equipment name in a data set, sequences and
file meta included, and shifts dates and times by an offset it derives from
its seed. It does not claim conformance to the DICOM PS3.15 Basic
Application Level Confidentiality Profile, so this module adds actions of
that profile that dicognito does not take:

- private attributes are removed (action X);
- the patient's birth date and time are emptied (action Z), rather than shifted;
- free-text, description and patient characteristic attributes of the
  profile's table that dicognito keeps are removed (REMOVED_KEYWORDS, action X),
  at every sequence level;
- PatientSex is emptied (action Z).

PatientName and PatientID get the job's pseudonyms.

NOTE: REMOVED_KEYWORDS covers the profile's free-text attributes that
commonly occur in images, not every row of the profile's table. Pixel data
is not inspected, so text burned into images stays.
"""

from __future__ import annotations

import hashlib
import hmac

import pydicom

# Attributes that the basic profile removes and dicognito keeps. They hold
# free text typed by staff, which can name the patient, or patient
# characteristics.
REMOVED_KEYWORDS = (
    "AcquisitionComments",
    "AdditionalPatientHistory",
    "AdmittingDiagnosesDescription",
    "Allergies",
    "CountryOfResidence",
    "DerivationDescription",
    "DeviceSerialNumber",
    "DischargeDiagnosisDescription",
    "EthnicGroup",
    "FrameComments",
    "ImageComments",
    "ImagePresentationComments",
    "InterpretationText",
    "LastMenstrualDate",
    "MedicalAlerts",
    "Occupation",
    "PatientAge",
    "PatientComments",
    "PatientSexNeutered",
    "PatientSize",
    "PatientState",
    "PatientWeight",
    "PerformedProcedureStepDescription",
    "PregnancyStatus",
    "ProtocolName",
    "ReasonForTheRequestedProcedure",
    "RegionOfResidence",
    "RequestAttributesSequence",
    "RequestedProcedureDescription",
    "ResultsComments",
    "ScheduledProcedureStepDescription",
    "SeriesDescription",
    "SmokingStatus",
    "SpecialNeeds",
    "StudyComments",
    "StudyDescription",
    "TextComments",
    "TextString",
    "VisitComments",
)

# Attributes that the basic profile empties (action Z).
EMPTIED_KEYWORDS = ("PatientBirthDate", "PatientBirthTime", "PatientSex")


class Deidentifier:
    """De-identifies the files of one job.

    One instance per job keeps the new UIDs consistent across the job's files,
    so series and study relations survive. The same seed gives the same new
    UIDs, so a job that runs again overwrites its earlier output.
    """

    def __init__(self, seed: str):
        from dicognito.anonymizer import Anonymizer

        self.anonymizer = Anonymizer(seed=seed)

    def deidentify(self, dataset: pydicom.Dataset, patient_name: str, patient_id: str) -> None:
        """De-identify a data set in place and set the pseudonyms."""
        self.anonymizer.anonymize(dataset)
        dataset.remove_private_tags()
        dataset.walk(_remove_or_empty_element)
        dataset.PatientName = patient_name
        dataset.PatientID = patient_id


def _remove_or_empty_element(dataset: pydicom.Dataset, element) -> None:
    """Apply the removals and emptying above to one element; called by Dataset.walk."""
    keyword = element.keyword
    if keyword in REMOVED_KEYWORDS:
        del dataset[element.tag]
    elif keyword in EMPTIED_KEYWORDS:
        element.value = ""


def pims_pseudonym(secret: str, pims_keyfile_id: str, patient_id: str) -> str:
    """Return the pseudonym that replaces a PIMS key file entry.

    The sandbox has no PIMS. It derives a stable pseudonym from the PIMS
    project and the original PatientID, so one patient gets the same pseudonym
    in every job of that project, as with PIMS.
    """
    message = f"{pims_keyfile_id}\n{patient_id}".encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"PIMS{pims_keyfile_id}-{digest[:10].upper()}"
