"""State that every ``anon`` command shares: verbosity, working folder, settings and client.

The top-level ``cli`` group stores an AnonCommandContext in ``ctx.obj``;
commands receive it with ``@pass_anon_context``. Settings are read and the
client is built only when a command first needs them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import click

from anonapi.exceptions import AnonAPIError, CredentialsRejectedError, NoActiveServerError, ServerError

if TYPE_CHECKING:
    from anonapi.bulk import BulkResult
    from anonapi.client import AnonClientTool
    from anonapi.objects import RemoteAnonServer
    from anonapi.settings import AnonClientSettings, SettingsFile


class AnonCommandContext:
    """What a command needs besides its own arguments.

    :param verbosity: 0 by default, 1 for -v, 2 or more for -vv
    :param current_dir: folder the command works in, by default the process's working folder
    :param settings_file: settings file to use, by default the one at ``default_settings_path()``
    """

    def __init__(
        self,
        verbosity: int = 0,
        current_dir: Optional[Path] = None,
        settings_file: Optional["SettingsFile"] = None,
    ):
        self.verbosity = verbosity
        self.current_dir = Path(current_dir) if current_dir is not None else Path.cwd()
        self._settings_file = settings_file
        self._settings: Optional["AnonClientSettings"] = None
        self._client_tool: Optional["AnonClientTool"] = None

    @property
    def settings_file(self) -> "SettingsFile":
        """The settings file, from ``$ANONAPI_SETTINGS`` or the home folder unless given."""
        if self._settings_file is None:
            from anonapi.settings import SettingsFile, default_settings_path

            self._settings_file = SettingsFile(default_settings_path())
        return self._settings_file

    @property
    def settings(self) -> "AnonClientSettings":
        """The settings, read on first use. A new settings file is announced on stderr."""
        if self._settings is None:
            self._settings = self.settings_file.load()
            if self.settings_file.created:
                click.echo(f"Created settings file '{self.settings_file.path}' with default values.", err=True)
        return self._settings

    def save_settings(self) -> None:
        """Write the current settings to the settings file."""
        self.settings_file.save(self.settings)
        # A new user name or token needs a new client.
        self._client_tool = None

    def get_active_server(self) -> "RemoteAnonServer":
        """Return the server that commands talk to.

        :raises NoActiveServerError: listing the known servers and how to activate one
        """
        settings = self.settings
        if settings.active_server is not None:
            return settings.active_server
        if settings.servers:
            names = ", ".join(server.name for server in settings.servers)
            raise NoActiveServerError(
                f"No active server. Known servers: {names}. Activate one with 'anon server activate NAME'."
            )
        raise NoActiveServerError(
            "No active server, and no servers are known. "
            "Add one with 'anon server add NAME URL', then run 'anon server activate NAME'."
        )

    def get_client_tool(self) -> "AnonClientTool":
        """Return a client tool with the user name, token and connection settings from the settings file."""
        if self._client_tool is None:
            from anonapi.client import AnonClientTool

            settings = self.settings
            self._client_tool = AnonClientTool(
                username=settings.user_name,
                token=settings.user_token,
                validate_https=settings.validate_ssl,
                timeout=settings.timeout,
                max_concurrent_requests=settings.max_concurrent_requests,
            )
        return self._client_tool


pass_anon_context = click.make_pass_decorator(AnonCommandContext)


def format_error(error: AnonAPIError) -> str:
    """Return the one-line message shown for ``error``, with the commands that fix it where there are some."""
    message = " ".join(str(error).split())
    if isinstance(error, CredentialsRejectedError):
        message += (
            " Show them with 'anon settings user info', change them with "
            "'anon settings user set-username NAME' and 'anon settings user set-token'. "
            "The settings hold one token for all servers, so after working with another server, "
            "get a token for this one with 'anon settings user get-token'."
        )
    return message


@contextlib.contextmanager
def report_on_stop(
    report_jobs: Callable[["BulkResult"], None], total: int, past_tense: str, server_name: str
) -> Iterator[None]:
    """Print what a change of ``total`` jobs did before an error stopped it, then let the error through.

    ``report_jobs`` prints the lines per job, and a summary line follows. The
    error itself is printed last, on stderr, by the command's error handling.
    """
    try:
        yield
    except ServerError as error:
        result = error.bulk_result
        if result is not None:
            report_jobs(result)
            done, failed = len(result.succeeded), len(result.failed)
            click.echo(
                f"{past_tense} {done} of {total} jobs on {server_name} before stopping, {failed} failed, "
                f"{max(0, total - done - failed)} not sent or without a response. "
                "Check their status before running the command again."
            )
        raise
