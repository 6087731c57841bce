"""``anon settings``: show and change the local settings file, including the user's credentials."""

from __future__ import annotations

import sys

import click

from anonapi.cli.context import AnonCommandContext, pass_anon_context
from anonapi.exceptions import CredentialsRejectedError, UnknownFunctionError, UserInputError


@click.group()
def settings() -> None:
    """Show and change local settings."""


@settings.command()
@pass_anon_context
def show(context: AnonCommandContext) -> None:
    """Show all settings. The token is replaced by ``***``."""
    import yaml

    values = context.settings.to_dict()
    values["user_token"] = "***" if context.settings.has_token else ""
    click.echo(f"Settings file: {context.settings_file.path}")
    click.echo(yaml.safe_dump(values, default_flow_style=False, sort_keys=False, allow_unicode=True).rstrip())


@settings.command()
@pass_anon_context
def edit(context: AnonCommandContext) -> None:
    """Open the settings file in your editor ($VISUAL or $EDITOR), then check it."""
    from anonapi.settings import SettingsFile

    path = context.settings_file.path
    if not path.exists():
        context.settings_file.load()
    click.edit(filename=str(path))

    # The file is read again, so that a typo shows now and not at the next command.
    SettingsFile(path).load()
    click.echo(f"Settings file '{path}' is valid.")


@settings.command(name="set-validate-ssl")
@click.argument("value", type=click.BOOL, metavar="true|false")
@pass_anon_context
def set_validate_ssl(context: AnonCommandContext, value: bool) -> None:
    """Switch verification of the servers' TLS certificates on (true) or off (false)."""
    context.settings.validate_ssl = value
    context.save_settings()
    click.echo(f"TLS certificate verification is now {'on' if value else 'off'}.")
    if not value:
        click.echo(
            "Warning: anon now accepts any certificate, so a server that impersonates yours would receive "
            "your token. Switch it back on with 'anon settings set-validate-ssl true' when you can.",
            err=True,
        )


@settings.group()
def user() -> None:
    """Show and set the user name and token for the API."""


@user.command(name="info")
@pass_anon_context
def user_info(context: AnonCommandContext) -> None:
    """Show the user name and whether a token is set. The token itself is never shown."""
    current = context.settings
    click.echo(f"User name: {current.user_name or '(not set)'}")
    click.echo(f"Token: {'set' if current.has_token else 'not set'}")


@user.command(name="set-username")
@click.argument("name")
@pass_anon_context
def set_username(context: AnonCommandContext, name: str) -> None:
    """Set the user name sent with every request to NAME."""
    if not name.strip():
        raise UserInputError("The user name is empty. Give the name the server knows you by.")
    context.settings.user_name = name.strip()
    context.save_settings()
    click.echo(f"User name is now '{name.strip()}'.")


def read_secret(prompt: str, from_stdin: bool) -> str:
    """Read a secret from a hidden prompt, or from the first line of stdin if asked or if stdin is not a terminal."""
    if from_stdin or not sys.stdin.isatty():
        secret = sys.stdin.readline()
    else:
        secret = click.prompt(prompt, hide_input=True, show_default=False)
    return secret.strip()


@user.command(name="set-token")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the token from stdin instead of a prompt.")
@pass_anon_context
def set_token(context: AnonCommandContext, from_stdin: bool) -> None:
    """Store the API token. It is read from a hidden prompt, or from stdin.

    The token is not taken as an argument, so that it does not end up in
    the shell history.
    """
    token = read_secret("Token", from_stdin)
    if not token:
        raise UserInputError("The token is empty. Paste the token the server's administrator gave you.")
    context.settings.user_token = token
    context.save_settings()
    click.echo("Token saved.")


@user.command(name="get-token")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from stdin instead of a prompt.")
@pass_anon_context
def get_token(context: AnonCommandContext, from_stdin: bool) -> None:
    """Get a new token from the active server with your password, and store it.

    Only servers that have a get_token API function can do this. For other
    servers, ask the administrator for a token and use 'anon settings user set-token'.
    """
    active = context.get_active_server()
    user_name = context.settings.user_name
    if not user_name:
        raise UserInputError("No user name set. Set it with 'anon settings user set-username NAME'.")

    password = read_secret(f"Password for {user_name} on {active.name}", from_stdin)
    try:
        token = context.get_client_tool().get_token(active, password)
    except CredentialsRejectedError as error:
        raise UserInputError(
            f"Server {active} rejected the password or user name '{user_name}'. Check the user name with "
            "'anon settings user info', then try again with the right password."
        ) from error
    except UnknownFunctionError as error:
        raise UnknownFunctionError(
            f"Server {active} has no get_token function, so anon cannot get a token from it. "
            "Ask the server's administrator for a token and store it with 'anon settings user set-token'.",
            url=error.url,
        ) from error

    context.settings.user_token = token
    context.save_settings()
    click.echo(f"Got a new token for {user_name} from {active.name} and saved it.")
