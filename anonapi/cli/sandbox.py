"""``anon sandbox``: run a local IDIS-compatible server and manage its users and faults.

The server needs the sandbox extra (``pip install anonapi[sandbox]``); its
modules are imported inside the commands, so ``anon sandbox --help`` works
without it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Tuple

import click

from anonapi.exceptions import UserInputError

DATA_DIR_VARIABLE = "ANONAPI_SANDBOX_DIR"
DEFAULT_PORT = 8000


def default_data_dir() -> Path:
    return Path.home() / ".anonapi-sandbox"


def data_dir_option(function):
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=DATA_DIR_VARIABLE,
        default=default_data_dir,
        show_default="~/.anonapi-sandbox",
        help=f"Folder with the sandbox database, certificates and admin secret. Env: {DATA_DIR_VARIABLE}.",
    )(function)


def parse_shares(values: Tuple[str, ...], read_only: bool) -> list:
    from anonapi.sandbox.shares import parse_share_option

    shares = []
    for value in values:
        try:
            share = parse_share_option(value, read_only=read_only)
        except ValueError as error:
            raise UserInputError(str(error)) from error
        if not share.folder.is_dir():
            raise UserInputError(f"Share folder {share.folder} of share {share.name!r} does not exist; create it first")
        shares.append(share)
    return shares


def import_sandbox_server():
    """Import the server module, or explain how to install what it needs."""
    try:
        from anonapi.sandbox import server
    except ImportError as error:
        raise UserInputError(
            f"The sandbox needs the sandbox extra, which is not installed ({error}); "
            f"install it with pip install '.[sandbox]' in a checkout of anonapi"
        ) from error
    return server


@click.group()
def sandbox() -> None:
    """Run a local IDIS-compatible test server that really anonymizes DICOM files."""


@sandbox.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="TCP port to listen on; 0 picks a free port.")
@click.option("--base-path", default="/sandbox", show_default=True,
              help="Path of the API below the host, the last part of the server URL.")
@data_dir_option
@click.option("--share", "shares", multiple=True, metavar="NAME=FOLDER",
              help=r"Serve FOLDER as \\<any host>\NAME in UNC paths. Repeatable.")
@click.option("--read-only-share", "read_only_shares", multiple=True, metavar="NAME=FOLDER",
              help="Like --share, but jobs fail when they write there. Repeatable.")
@click.option("--pacs-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of DICOM files that WADO jobs fetch studies from.")
@click.option("--opt-out-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Text file with one PatientID per line of patients who opted out.")
@click.option("--tls", is_flag=True,
              help="Serve HTTPS. Without --certificate a CA and certificate are made in the data folder.")
@click.option("--certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM certificate for --tls (implies --tls); needs --key.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="PEM private key of --certificate.")
@click.option("--poll-interval", type=click.FloatRange(0.01), default=1.0, show_default=True,
              help="Seconds the worker waits before looking for new jobs again when idle.")
@click.option("--access-log", is_flag=True, help="Log every HTTP request.")
def serve(
    host: str,
    port: int,
    base_path: str,
    data_dir: Path,
    shares: Tuple[str, ...],
    read_only_shares: Tuple[str, ...],
    pacs_dir: Optional[Path],
    opt_out_file: Optional[Path],
    tls: bool,
    certificate: Optional[Path],
    key: Optional[Path],
    poll_interval: float,
    access_log: bool,
) -> None:
    """Run the sandbox server in the foreground until Ctrl+C.

    A demo user (name demo, password demo, project Wetenschap-Algemeen) is
    created on first start. The commands that point anon at the sandbox are
    printed at start.
    """
    server_module = import_sandbox_server()
    share_list = parse_shares(shares, read_only=False) + parse_shares(read_only_shares, read_only=True)
    config = server_module.SandboxConfig(
        data_dir=data_dir, shares=share_list, pacs_dir=pacs_dir, opt_out_file=opt_out_file,
        host=host, port=port, base_path=base_path, tls=tls, certificate=certificate, key=key,
        poll_interval=poll_interval, access_log=access_log,
    )
    show_server_logs()
    if host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("anonapi.sandbox").warning(
            "Listening on %s makes the sandbox reachable from other computers; its demo user has "
            "a known password, so use test data only", host,
        )
    server = server_module.SandboxServer(config)
    try:
        server.open()
    except BaseException:
        server.close()
        raise

    click.echo(f"Sandbox server URL: {server.url}")
    click.echo(f"Demo user: {server_module.DEMO_USER}, password {server_module.DEMO_PASSWORD}, "
               f"project {server_module.DEMO_PROJECT}")
    if server.ca_bundle is not None:
        click.echo(f"CA certificate: {server.ca_bundle} (set REQUESTS_CA_BUNDLE to this file to trust it)")
    click.echo(f"Admin secret for fault injection: {data_dir / server_module.ADMIN_SECRET_FILE_NAME}")
    click.echo("To use it from anon, run:")
    for command in (f"anon server add sandbox {server.url}", "anon server activate sandbox",
                    f"anon settings user set-username {server_module.DEMO_USER}",
                    "anon settings user get-token"):
        click.echo(f"  {command}")
    click.echo("Press Ctrl+C to stop.")
    server.serve_forever()


def show_server_logs() -> None:
    """Show INFO messages of the sandbox (starts, stops, jobs) unless -v already shows more."""
    for name in ("anonapi.sandbox", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)


@sandbox.command("add-user")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="The user's password, for the get_token function. Asked for when not given.")
@click.option("--project", "projects", multiple=True, metavar="PROJECT",
              help="Project to connect the user to; made if new. Repeatable.")
@data_dir_option
def add_user(name: str, password: str, projects: Tuple[str, ...], data_dir: Path) -> None:
    """Add a user, or set a user's password, and connect it to projects."""
    from anonapi.sandbox.db import SandboxStore

    if not password:
        raise UserInputError(f"The password of user {name!r} must not be empty")
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SandboxStore(data_dir)
    try:
        store.add_user(name, password, projects)
    finally:
        store.close()
    project_text = ", ".join(projects) if projects else "no new projects"
    click.echo(f"Saved user {name} ({project_text}) in {data_dir}")


@sandbox.command()
@data_dir_option
def users(data_dir: Path) -> None:
    """List the sandbox's users and their projects."""
    from anonapi.sandbox.db import DATABASE_FILE_NAME, SandboxStore

    if not (data_dir / DATABASE_FILE_NAME).is_file():
        raise UserInputError(f"No sandbox data in {data_dir}; start it once with 'anon sandbox serve'")
    store = SandboxStore(data_dir)
    try:
        user_list = store.list_users()
    finally:
        store.close()
    for user in user_list:
        click.echo(f"{user['name']}: {', '.join(user['projects']) or '(no projects)'}")


FAULT_ACTIONS = ["fail-next", "delay-next", "drop-next", "hold-jobs", "release-jobs",
                 "fill-destination", "fail-archive-next", "clear"]


@sandbox.command()
@click.argument("action", type=click.Choice(FAULT_ACTIONS))
@click.option("--count", type=click.IntRange(0), default=1, show_default=True,
              help="Number of calls or WADO jobs the fault applies to.")
@click.option("--status", "status", default=None,
              help="HTTP status for fail-next (default 500) and fail-archive-next (404 or 400), "
                   "or job status for hold-jobs (ACTIVE or UPLOADED).")
@click.option("--seconds", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Delay per call for delay-next.")
@click.option("--off", is_flag=True, help="With fill-destination: make the destination writable again.")
@click.option("--url", default=None,
              help="Server URL; by default the one the server in --data-dir wrote at its start.")
@data_dir_option
def fault(action: str, count: int, status: Optional[str], seconds: float, off: bool,
          url: Optional[str], data_dir: Path) -> None:
    """Make a running sandbox fail on purpose, to test how a client copes.

    fail-next, delay-next and drop-next apply to the next COUNT API calls.
    hold-jobs keeps jobs in a status until release-jobs. fill-destination
    makes writes fail with "No space left on device". fail-archive-next
    makes the next COUNT WADO jobs fail as if the PACS responded 404 or 400.
    clear switches every fault off.
    """
    import requests

    from anonapi.sandbox.faults import ADMIN_SECRET_FILE_NAME, ADMIN_SECRET_HEADER, URL_FILE_NAME
    from anonapi.sandbox.tls import CA_FILE_NAME

    url = url or read_data_file(data_dir, URL_FILE_NAME)
    secret = read_data_file(data_dir, ADMIN_SECRET_FILE_NAME)
    fields = {"action": action.replace("-", "_")}
    if action in ("fail-next", "delay-next", "drop-next", "fail-archive-next"):
        fields["count"] = str(count)
    if action == "delay-next":
        fields["seconds"] = str(seconds)
    if action == "fill-destination":
        fields["full"] = "false" if off else "true"
    if status is not None:
        fields["status"] = status
    ca_bundle = data_dir / CA_FILE_NAME
    try:
        response = requests.post(
            f"{url.rstrip('/')}/_sandbox/faults", data=fields, headers={ADMIN_SECRET_HEADER: secret},
            timeout=10, verify=str(ca_bundle) if ca_bundle.is_file() else True,
        )
    except requests.RequestException as error:
        raise UserInputError(f"Could not reach the sandbox at {url}: {error}; is it running?") from error
    if response.status_code != 200:
        raise UserInputError(f"The sandbox at {url} rejected the fault ({response.status_code}): {response.text}")
    click.echo(f"Faults of {url}: {response.text}")


def read_data_file(data_dir: Path, name: str) -> str:
    path = data_dir / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise UserInputError(
            f"Could not read {path}: {error.strerror}; start the sandbox with --data-dir {data_dir} first"
        ) from error


@sandbox.command()
@click.option("--folder", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the demo's share, settings, mapping and batch; kept afterwards. "
                   "Default: a new temporary folder.")
@click.option("--keep", is_flag=True, help="Keep the temporary demo folder after a successful run.")
@click.pass_context
def demo(click_context: click.Context, folder: Optional[Path], keep: bool) -> None:
    """Anonymize three small DICOM studies end to end on a local sandbox.

    Starts a sandbox, builds a share with studies made from pydicom's test
    files, then runs and prints the anon commands a researcher would type:
    configure the server and user, make a mapping, add the study folders,
    create the jobs, wait for the batch and show its status. Finally it
    compares each output file with its original. Exit code 1 if a job is not
    DONE or an original patient name, id, birth date or UID remains.
    The demo uses its own settings file; yours is not read or changed.
    """
    import_sandbox_server()
    from anonapi.sandbox.demo import run_demo

    exit_code = run_demo(folder, keep, click.echo)
    if exit_code:
        click_context.exit(exit_code)


__all__: List[str] = ["sandbox"]
