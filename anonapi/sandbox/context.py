"""The Sandbox context manager: a sandbox server in a background thread, for tests and scripts."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from anonapi.exceptions import SandboxError
from anonapi.responses import JobStatus
from anonapi.sandbox.faults import Faults
from anonapi.sandbox.server import DEMO_PROJECT, DEMO_USER, SandboxConfig, SandboxServer
from anonapi.sandbox.shares import Share

PathLike = Union[str, Path]

UNFINISHED_STATUSES = (JobStatus.ACTIVE, JobStatus.UPLOADED)


class Sandbox:
    """A running sandbox server on 127.0.0.1, started on enter and stopped on exit.

    Example::

        with Sandbox(shares={"share": tmp_path}) as sandbox:
            client = WebAPIClient(sandbox.url, sandbox.user_name, sandbox.token)

    :param data_dir: folder for the database and certificates; a temporary
        folder, removed on exit, when None
    :param shares: share name to folder, ``\\\\<any host>\\<name>`` in UNC paths
    :param read_only_shares: like ``shares``, but jobs cannot write there
    :param pacs_dir: folder of DICOM files that WADO jobs fetch studies from
    :param opt_out_file: text file with one opted-out PatientID per line
    :param tls: serve HTTPS with a certificate made in ``data_dir``; clients
        trust it through ``ca_bundle``
    :param certificate: PEM certificate to serve HTTPS with instead of a made
        one; needs ``key``
    :param port: 0 picks a free port
    :param poll_interval: seconds the worker sleeps when it has nothing to do;
        new and changed jobs wake it at once
    """

    def __init__(
        self,
        data_dir: Optional[PathLike] = None,
        shares: Optional[Mapping[str, PathLike]] = None,
        pacs_dir: Optional[PathLike] = None,
        opt_out_file: Optional[PathLike] = None,
        tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        base_path: str = "/sandbox",
        read_only_shares: Optional[Mapping[str, PathLike]] = None,
        poll_interval: float = 0.1,
        certificate: Optional[PathLike] = None,
        key: Optional[PathLike] = None,
    ):
        self._given_data_dir = Path(data_dir) if data_dir is not None else None
        share_list = [Share(name, Path(folder)) for name, folder in (shares or {}).items()]
        share_list += [Share(name, Path(folder), read_only=True) for name, folder in (read_only_shares or {}).items()]
        self._config_arguments: Dict[str, Any] = dict(
            shares=share_list,
            pacs_dir=Path(pacs_dir) if pacs_dir is not None else None,
            opt_out_file=Path(opt_out_file) if opt_out_file is not None else None,
            tls=tls,
            host=host,
            port=port,
            base_path=base_path,
            poll_interval=poll_interval,
            certificate=Path(certificate) if certificate is not None else None,
            key=Path(key) if key is not None else None,
        )
        self.data_dir: Optional[Path] = None
        self._temporary_dir: Optional[str] = None
        self.server: Optional[SandboxServer] = None
        self.faults = Faults()
        self.user_name = DEMO_USER
        self.project_name = DEMO_PROJECT
        self.token = ""

    # Starting and stopping

    def __enter__(self) -> "Sandbox":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)
            self._temporary_dir = None

    def start(self) -> None:
        """Start the server; after a stop() it comes back on the same port with the same data."""
        if self.server is not None:
            return
        if self.data_dir is None:
            if self._given_data_dir is None:
                self._temporary_dir = tempfile.mkdtemp(prefix="anonapi-sandbox-")
                self.data_dir = Path(self._temporary_dir)
            else:
                self.data_dir = self._given_data_dir
        config = SandboxConfig(data_dir=self.data_dir, **self._config_arguments)
        server = SandboxServer(config, faults=self.faults)
        server.open()
        server.start_thread()
        self.server = server
        # A restart reuses the port, so that clients find the server again.
        self._config_arguments["port"] = server.port
        self.token = self.store.create_token(self.user_name)

    def stop(self) -> None:
        """Stop the server, cutting open connections. Jobs and users stay in ``data_dir``."""
        # Taken first, so that a second stop from another thread finds nothing to stop.
        server, self.server = self.server, None
        if server is not None:
            server.close(force=True)

    def restart(self) -> None:
        """Stop and start again, as a server restart would; unfinished jobs are picked up again."""
        self.stop()
        self.start()

    # Information

    def _running_server(self) -> SandboxServer:
        if self.server is None:
            raise SandboxError("The sandbox is not running; use it inside 'with Sandbox() as sandbox:'")
        return self.server

    @property
    def url(self) -> str:
        """Base URL of the API, such as ``http://127.0.0.1:54321/sandbox``."""
        return self._running_server().url

    @property
    def store(self):
        """The SandboxStore, to inspect or prepare users and jobs directly."""
        store = self._running_server().store
        assert store is not None
        return store

    @property
    def admin_secret(self) -> str:
        """Value of the X-Sandbox-Admin-Secret header for the ``_sandbox/faults`` function."""
        return self._running_server().admin_secret

    @property
    def ca_bundle(self) -> Optional[Path]:
        """CA certificate to trust (REQUESTS_CA_BUNDLE, or requests' ``verify``) with tls=True."""
        return self._running_server().ca_bundle

    # Users and jobs

    def add_user(self, name: str, password: str, projects: Iterable[str] = ()) -> str:
        """Add a user connected to ``projects`` and return a new token for it."""
        self.store.add_user(name, password, projects)
        return self.store.create_token(name)

    def get_job(self, job_id: Union[int, str]) -> Dict[str, Any]:
        """Return all stored fields of a job, or raise KeyError if it does not exist."""
        row = self.store.get_job(int(job_id))
        if row is None:
            raise KeyError(f"Job {job_id} does not exist on this sandbox")
        return row

    def wait_for_jobs(
        self, job_ids: Iterable[Union[int, str]], timeout: float = 60.0
    ) -> Dict[Union[int, str], str]:
        """Wait until none of the jobs is ACTIVE or UPLOADED and return their statuses.

        The result maps each job id, as given, to its status.

        :raises KeyError: if a job does not exist
        :raises TimeoutError: if a job is still unfinished after ``timeout`` seconds
        """
        given_ids: List[Union[int, str]] = list(job_ids)
        numbers = [int(job_id) for job_id in given_ids]
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.store.job_statuses(numbers)
            missing = [job_id for job_id in numbers if job_id not in statuses]
            if missing:
                raise KeyError(f"Jobs {missing} do not exist on this sandbox")
            unfinished = {job_id: status for job_id, status in statuses.items() if status in UNFINISHED_STATUSES}
            if not unfinished:
                return {given: statuses[number] for given, number in zip(given_ids, numbers)}
            if time.monotonic() > deadline:
                raise TimeoutError(f"Jobs still unfinished after {timeout} seconds: {unfinished}")
            time.sleep(0.02)

    def wait_for_status(self, job_id: Union[int, str], status: str, timeout: float = 60.0) -> Dict[str, Any]:
        """Wait until a job has ``status`` and return its stored fields.

        Useful with ``faults.hold_jobs(JobStatus.UPLOADED)`` to catch a job while it is held.

        :raises TimeoutError: if the job does not get the status within ``timeout`` seconds
        """
        deadline = time.monotonic() + timeout
        while True:
            row = self.get_job(job_id)
            if row["status"] == status:
                return row
            if time.monotonic() > deadline:
                raise TimeoutError(f"Job {job_id} is {row['status']}, not {status}, after {timeout} seconds")
            time.sleep(0.02)
