"""The worker thread that processes sandbox jobs: fetch, de-identify, deliver.

A job goes ACTIVE -> UPLOADED -> DONE, or to ERROR with a message. While
the job is ACTIVE, the worker checks all paths and reads every input file
once. This is the download, counted in files_downloaded. While the job is
UPLOADED, the worker de-identifies each file and writes it to
``<destination>/<job id>/<new SOPInstanceUID>.dcm``, counted in
files_processed.

Any change to a job through the API (cancel, reset, modify) increases its
generation. The worker writes only to the generation it started with, so
it lets go of a job that was changed under it.
"""

from __future__ import annotations

import errno
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

from anonapi.responses import JobStatus
from anonapi.sandbox.db import SandboxStore
from anonapi.sandbox.faults import Faults
from anonapi.sandbox.pacs import PACS_NAME, PacsIndex, StudyNotFoundError, wado_query
from anonapi.sandbox.shares import ShareError, ShareMap

logger = logging.getLogger(__name__)

HTTP_REASONS = {400: "Bad Request", 404: "Not Found"}


class JobFailed(Exception):
    """Processing a job failed; the message is stored as the job's error."""


class JobAbandoned(Exception):
    """The job was changed through the API while the worker processed it."""


def read_opt_out_file(path: Optional[Path]) -> Set[str]:
    """Return the PatientIDs in an opt-out file: one per line, ``#`` starts a comment."""
    if path is None:
        return set()
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        logger.error("Could not read opt-out file %s: %s", path, error)
        raise JobFailed(f"Could not read the opt-out list {path}: {error}") from error
    return {line.split("#", 1)[0].strip() for line in lines} - {""}


class JobRun:
    """One attempt at processing one job."""

    def __init__(self, worker: "Worker", row: Dict[str, Any]):
        self.worker = worker
        self.row = row
        self.job_id: int = row["job_id"]
        self.generation: int = row["generation"]

    def update(self, **changes: Any) -> None:
        if not self.worker.store.update_job_run(self.job_id, self.generation, **changes):
            raise JobAbandoned()

    def pre_processing_error(self, message: str) -> JobFailed:
        return JobFailed(f"Error while pre-processing job {self.job_id}: {message}")

    def run(self) -> None:
        files = self.find_input_files()
        destination_folder = self.check_destination()
        patient_ids = self.download(files)
        patient_name, patient_id = self.choose_pseudonyms(patient_ids)

        self.update(status=JobStatus.UPLOADED)
        self.wait_while_held(JobStatus.UPLOADED)
        self.deidentify_files(files, destination_folder / str(self.job_id), patient_name, patient_id)
        self.update(status=JobStatus.DONE, error=None)

    def find_input_files(self) -> List[Path]:
        from anonapi.sandbox.sources import SourceError, list_path_source

        row = self.row
        if row["source_type"] == "WADO":
            return self.find_study_files()
        try:
            return list_path_source(self.worker.shares, row["source_path"] or "")
        except (ShareError, SourceError) as error:
            raise self.pre_processing_error(str(error)) from error

    def find_study_files(self) -> List[Path]:
        row = self.row
        instance_id = (row["source_instance_id"] or "").strip()
        archive_status = self.worker.faults.take_archive_failure()
        try:
            if archive_status is not None:
                raise StudyNotFoundError(wado_query(instance_id))
            _, objects = self.worker.pacs.find_study(instance_id)
        except StudyNotFoundError as error:
            status = archive_status or 404
            raise self.pre_processing_error(
                f"WadoWrapperException: Got HTTP error response from server when requesting "
                f"'{PACS_NAME}/wado/{error.query}' "
                f"Original error:'HTTP Error {status}: {HTTP_REASONS[status]}'"
            ) from error

        sop_classes = {
            uid.strip() for uid in (row["source_sop_class_filter_list"] or "").split(",") if uid.strip()
        }
        if sop_classes:
            objects = [item for item in objects if item.sop_class_uid in sop_classes]
        if not objects:
            raise self.pre_processing_error(
                f"Study {instance_id} has no objects of SOP classes {', '.join(sorted(sop_classes))}"
            )
        return [item.path for item in objects]

    def check_destination(self) -> Path:
        """Return the local destination folder, after checking that jobs may write there."""
        destination_path = self.row["destination_path"] or ""
        try:
            share, folder = self.worker.shares.resolve(destination_path)
        except ShareError as error:
            raise JobFailed(f"Invalid destination for job {self.job_id}: {error}") from error
        if not folder.is_dir():
            raise JobFailed(
                f"Destination folder {destination_path} does not exist; create it or fix "
                f"destination_path and reset job {self.job_id}"
            )
        if share.read_only:
            raise JobFailed(
                f"Could not write to destination {destination_path}: share {share.name!r} "
                f"is read-only (permission denied)"
            )
        return folder

    def download(self, files: List[Path]) -> List[str]:
        """Read each input file once, check opt-out, and return the PatientIDs found."""
        from anonapi.sandbox.dicomfiles import NotDicomError, read_dicom

        opted_out = set()
        if not self.row["source_ignore_opt_out"]:
            opted_out = read_opt_out_file(self.worker.opt_out_file)
        patient_ids: List[str] = []
        self.update(files_downloaded=0, files_processed=0)
        for count, path in enumerate(files, start=1):
            self.check_not_stopped()
            try:
                dataset = read_dicom(path, stop_before_pixels=True)
            except NotDicomError as error:
                raise self.pre_processing_error(str(error)) from error
            except OSError as error:
                raise self.pre_processing_error(f"Could not read {path.name}: {error.strerror}") from error
            patient_id = str(dataset.get("PatientID", "") or "")
            if patient_id in opted_out:
                raise self.pre_processing_error(
                    f'Patient "{patient_id}" does not want his or her data to be used for research'
                )
            if patient_id not in patient_ids:
                patient_ids.append(patient_id)
            self.update(files_downloaded=count)
        return patient_ids

    def choose_pseudonyms(self, patient_ids: List[str]):
        from anonapi.sandbox.deidentify import pims_pseudonym

        row = self.row
        patient_name = row["source_anonymizedpatientname"]
        patient_id = row["source_anonymizedpatientid"]
        if patient_name and patient_id:
            return patient_name, patient_id
        pseudonym = pims_pseudonym(
            self.worker.secret, row["source_pims_keyfile_id"] or "", patient_ids[0] if patient_ids else ""
        )
        patient_name = patient_name or pseudonym
        patient_id = patient_id or pseudonym
        self.update(source_anonymizedpatientname=patient_name, source_anonymizedpatientid=patient_id)
        return patient_name, patient_id

    def deidentify_files(self, files: List[Path], job_folder: Path, patient_name: str, patient_id: str) -> None:
        from anonapi.sandbox.deidentify import Deidentifier
        from anonapi.sandbox.dicomfiles import read_dicom

        deidentifier = Deidentifier(seed=f"{self.worker.secret}:{self.job_id}")
        destination_text = "\\".join([(self.row["destination_path"] or "").rstrip("\\/"), str(self.job_id), ""])
        for count, path in enumerate(files, start=1):
            self.check_not_stopped()
            dataset = read_dicom(path)
            deidentifier.deidentify(dataset, patient_name, patient_id)
            try:
                self.write_output(dataset, job_folder)
            except OSError as error:
                raise JobFailed(
                    f"Could not move file {path.name} to {destination_text}, "
                    f"original error:[Errno {error.errno}] {error.strerror}"
                ) from error
            self.update(files_processed=count)

    def write_output(self, dataset, job_folder: Path) -> None:
        """Write one file through a temporary name, so no half-written file is left behind."""
        from anonapi.sandbox.dicomfiles import write_dicom

        if self.worker.faults.destination_full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        job_folder.mkdir(exist_ok=True)
        handle, temporary_name = tempfile.mkstemp(dir=job_folder, suffix=".part")
        os.close(handle)
        try:
            write_dicom(dataset, Path(temporary_name))
            os.replace(temporary_name, job_folder / f"{dataset.SOPInstanceUID}.dcm")
        except BaseException:
            Path(temporary_name).unlink(missing_ok=True)
            raise

    def check_not_stopped(self) -> None:
        if self.worker.stopping.is_set() or not self.worker.store.is_current(self.job_id, self.generation):
            raise JobAbandoned()

    def wait_while_held(self, status: str) -> None:
        while self.worker.faults.held_status == status:
            self.check_not_stopped()
            self.worker.faults.jobs_released.wait(self.worker.poll_interval)


class Worker:
    """A background thread that processes ACTIVE jobs, highest priority first, then oldest.

    One thread processes one job at a time, as a queue.
    """

    def __init__(
        self,
        store: SandboxStore,
        shares: ShareMap,
        pacs: PacsIndex,
        faults: Faults,
        secret: str,
        opt_out_file: Optional[Path] = None,
        poll_interval: float = 1.0,
    ):
        self.store = store
        self.shares = shares
        self.pacs = pacs
        self.faults = faults
        self.secret = secret
        self.opt_out_file = opt_out_file
        self.poll_interval = poll_interval
        self.stopping = threading.Event()
        self.wake_up = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def start(self) -> None:
        requeued = self.store.requeue_interrupted_jobs()
        if requeued:
            logger.info("Picking up %d jobs interrupted by the last stop: %s", len(requeued), requeued)
        self.stopping.clear()
        self.thread = threading.Thread(target=self.run, name="sandbox-worker", daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        self.wake_up.set()
        self.faults.jobs_released.set()
        if self.thread is not None:
            self.thread.join(timeout)
            if self.thread.is_alive():
                logger.warning("Worker did not stop within %s seconds", timeout)
            self.thread = None

    def notify(self) -> None:
        """Wake the worker up now because a job was created or changed."""
        self.wake_up.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            if self.faults.held_status == JobStatus.ACTIVE:
                # No job is picked up, so new and changed jobs need not wake the
                # worker: a wake-up per API call costs a sixth of the server's CPU time.
                self.faults.jobs_released.wait(self.poll_interval)
                continue
            self.wake_up.clear()
            row = self.store.next_active_job()
            if row is None:
                self.wake_up.wait(self.poll_interval)
                continue
            self.process(row)

    def process(self, row: Dict[str, Any]) -> None:
        job_id = row["job_id"]
        source = row["source_path"] if row["source_type"] == "PATH" else row["source_instance_id"]
        logger.info("Job %s started: %s %s -> %s", job_id, row["source_type"], source, row["destination_path"])
        job_run = JobRun(self, row)
        try:
            job_run.run()
        except JobAbandoned:
            logger.info("Job %s was changed or the server is stopping; stopped processing it", job_id)
        except JobFailed as error:
            logger.warning("Job %s failed: %s", job_id, error)
            self.store.update_job_run(job_id, job_run.generation, status=JobStatus.ERROR, error=str(error))
        except Exception as error:  # a bug must fail the job, not stop the worker
            logger.exception("Job %s failed with an unexpected error", job_id)
            message = f"Internal error of the sandbox while processing job {job_id}: {error!r}"
            self.store.update_job_run(job_id, job_run.generation, status=JobStatus.ERROR, error=message)
        else:
            finished = self.store.get_job(job_id) or {}
            logger.info("Job %s done: %s files written", job_id, finished.get("files_processed"))
