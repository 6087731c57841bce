"""Running a sandbox: storage, worker and web server, in the foreground or in a thread."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from pathlib import Path
from typing import List, Optional

from anonapi.exceptions import SandboxError
from anonapi.sandbox.api import SandboxApi
from anonapi.sandbox.app import SandboxApplication
from anonapi.sandbox.db import SandboxStore
from anonapi.sandbox.faults import ADMIN_SECRET_FILE_NAME, URL_FILE_NAME, Faults
from anonapi.sandbox.pacs import PacsIndex
from anonapi.sandbox.shares import Share, ShareMap
from anonapi.sandbox.tls import ensure_certificate
from anonapi.sandbox.worker import Worker

logger = logging.getLogger(__name__)

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"
DEMO_PROJECT = "Wetenschap-Algemeen"



def _raise_keyboard_interrupt(signal_number, frame) -> None:
    raise KeyboardInterrupt()


class SandboxConfig:
    """Settings of one sandbox server; see ``anon sandbox serve --help`` for each."""

    def __init__(
        self,
        data_dir: Path,
        shares: Optional[List[Share]] = None,
        pacs_dir: Optional[Path] = None,
        opt_out_file: Optional[Path] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        base_path: str = "/sandbox",
        tls: bool = False,
        certificate: Optional[Path] = None,
        key: Optional[Path] = None,
        poll_interval: float = 1.0,
        access_log: bool = False,
    ):
        if (certificate is None) != (key is None):
            raise SandboxError("Give both a TLS certificate and its key, or neither")
        self.data_dir = Path(data_dir)
        self.shares = list(shares or [])
        self.pacs_dir = Path(pacs_dir) if pacs_dir is not None else None
        self.opt_out_file = Path(opt_out_file) if opt_out_file is not None else None
        self.host = host
        self.port = port
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.tls = tls or certificate is not None
        self.certificate = certificate
        self.key = key
        self.poll_interval = poll_interval
        self.access_log = access_log


def write_private_file(path: Path, text: str) -> None:
    """Write a file that only its owner may read."""
    descriptor = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


class SandboxServer:
    """One sandbox: SQLite store, job worker and uvicorn web server.

    ``open()`` prepares storage and binds the socket, so ``url`` is known
    before serving starts. Then either ``serve_forever()`` runs in the
    foreground (``anon sandbox serve``) or ``start_thread()`` runs the web
    server in a background thread (the Sandbox context manager).
    """

    def __init__(self, config: SandboxConfig, faults: Optional[Faults] = None):
        self.config = config
        self.faults = faults if faults is not None else Faults()
        self.store: Optional[SandboxStore] = None
        self.worker: Optional[Worker] = None
        self.socket: Optional[socket.socket] = None
        self.uvicorn_server = None
        self.thread: Optional[threading.Thread] = None
        self.admin_secret = ""
        self.ca_bundle: Optional[Path] = None
        self.certificate: Optional[Path] = None
        self.key: Optional[Path] = None

    # Life cycle

    def open(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = SandboxStore(config.data_dir)
        if not self.store.has_user(DEMO_USER):
            self.store.add_user(DEMO_USER, DEMO_PASSWORD, [DEMO_PROJECT])
            logger.info("Created the demo user %r in project %s", DEMO_USER, DEMO_PROJECT)
        self.admin_secret = self._load_admin_secret()
        if config.tls:
            self._prepare_tls()

        shares = ShareMap(config.shares)
        pacs = PacsIndex(config.pacs_dir)
        pacs.refresh()
        self.worker = Worker(
            store=self.store,
            shares=shares,
            pacs=pacs,
            faults=self.faults,
            secret=self.store.get_setting("secret", lambda: secrets.token_hex(32)),
            opt_out_file=config.opt_out_file,
            poll_interval=config.poll_interval,
        )
        self.socket = self._bind_socket(config.host, config.port)
        write_private_file(config.data_dir / URL_FILE_NAME, self.url + "\n")

    def _load_admin_secret(self) -> str:
        path = self.config.data_dir / ADMIN_SECRET_FILE_NAME
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
        secret = secrets.token_urlsafe(24)
        write_private_file(path, secret + "\n")
        return secret

    def _prepare_tls(self) -> None:
        if self.config.certificate is not None:
            self.certificate, self.key = self.config.certificate, self.config.key
            return
        files = ensure_certificate(self.config.data_dir)
        self.certificate, self.key, self.ca_bundle = files.certificate, files.key, files.ca_bundle

    @staticmethod
    def _bind_socket(host: str, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only
        # when the protocol is given, and without it keep-alive calls wait for delayed ACKs.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            sock.close()
            raise SandboxError(
                f"Could not listen on {host}:{port}: {error.strerror or error}; choose another port or host"
            ) from error
        sock.listen(128)
        sock.set_inheritable(True)
        return sock

    @property
    def port(self) -> int:
        assert self.socket is not None, "call open() first"
        return self.socket.getsockname()[1]

    @property
    def url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{host}:{self.port}{self.config.base_path}"

    def _make_uvicorn_server(self):
        import uvicorn

        assert self.store is not None and self.worker is not None
        api = SandboxApi(self.store, on_jobs_changed=self.worker.notify)
        app = SandboxApplication(api, self.faults, self.config.base_path, self.admin_secret).build()
        # http and loop are left at "auto": uvicorn then uses httptools and uvloop
        # where they are installed (the sandbox extra installs them). With them,
        # 1,000 modify_job calls over HTTPS from 8 threads took about 40% less
        # CPU time than with h11 and asyncio's own loop (0.21 against 0.34 s).
        uvicorn_config = uvicorn.Config(
            app,
            log_config=None,
            access_log=self.config.access_log,
            lifespan="off",
            # Clients reach the sandbox directly, so X-Forwarded-For is not to be
            # trusted; leaving the middleware out also saves CPU time per call.
            proxy_headers=False,
            timeout_graceful_shutdown=5,
            ssl_certfile=str(self.certificate) if self.certificate else None,
            ssl_keyfile=str(self.key) if self.key else None,
        )
        return uvicorn.Server(uvicorn_config)

    def _log_start(self) -> None:
        config = self.config
        shares = ", ".join(f"{share.name}={share.folder}" for share in config.shares) or "none"
        logger.info(
            "Sandbox started at %s (data folder %s, shares %s, PACS folder %s)",
            self.url, config.data_dir, shares, config.pacs_dir or "none",
        )

    def serve_forever(self) -> None:
        """Serve in the foreground until interrupted (Ctrl+C or SIGTERM)."""
        assert self.worker is not None and self.socket is not None, "call open() first"
        self.uvicorn_server = self._make_uvicorn_server()
        self.worker.start()
        self._log_start()
        # uvicorn handles SIGINT and SIGTERM itself and raises the signal again
        # after its shutdown. Turning SIGTERM into KeyboardInterrupt as well
        # lets the worker and the database close cleanly in both cases.
        previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            self.uvicorn_server.run(sockets=[self.socket])
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            self.close()

    def start_thread(self, timeout: float = 30.0) -> None:
        """Serve in a background thread and return once the server accepts connections."""
        assert self.worker is not None and self.socket is not None, "call open() first"
        self.uvicorn_server = self._make_uvicorn_server()
        self.worker.start()
        self.thread = threading.Thread(
            target=self.uvicorn_server.run, kwargs={"sockets": [self.socket]},
            name="sandbox-http", daemon=True,
        )
        self.thread.start()
        started = threading.Event()
        while not started.wait(0.01):
            if self.uvicorn_server.started:
                started.set()
            elif not self.thread.is_alive():
                self.close()
                raise SandboxError(f"The sandbox web server at {self.url} failed to start; see the log")
            timeout -= 0.01
            if timeout <= 0:
                self.close()
                raise SandboxError(f"The sandbox web server at {self.url} did not start in time")
        self._log_start()

    def close(self, force: bool = False) -> None:
        """Stop the web server and the worker and close the store. Safe to call twice.

        :param force: close open connections at once instead of waiting up to
            5 seconds for them. Without it, an idle HTTPS keep-alive
            connection delays the stop by those 5 seconds.
        """
        if self.uvicorn_server is not None:
            self.uvicorn_server.force_exit = force
            self.uvicorn_server.should_exit = True
        if self.thread is not None:
            self.thread.join(30)
            self.thread = None
        if self.worker is not None:
            self.worker.stop()
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        if self.store is not None:
            self.store.close()
            self.store = None
            logger.info("Sandbox stopped")
        self.uvicorn_server = None
