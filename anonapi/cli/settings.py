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
    """Show all settings. The token is shown as ***."""
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
    try:
        click.edit(filename=str(path))
    except click.ClickException as error:
        raise UserInputError(
            f"Could not open '{path}' in an editor: {error.message}. "
            "Set the environment variable VISUAL or EDITOR to your editor's command, or edit the file directly."
        ) from error

    # The file is read again, so that a typo shows now and not at the next command.
    SettingsFile(path).load()
    click.echo(f"Settings file '{path}' is valid.")


TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


def parse_switch(click_context: click.Context, parameter: click.Parameter, value: str) -> bool:
    """Return True or False for a word such as true or off.

    click.BOOL would take an empty string as false, which switches verification off by accident.
    """
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise click.BadParameter(
        f"{value!r} is not true or false. Give true to switch verification on, false to switch it off."
    )


@settings.command(name="set-validate-ssl")
@click.argument("value", callback=parse_switch, metavar="true|false")
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
    if not name.isprintable():
        raise UserInputError(f"Invalid user name {name!r}: it contains control characters. Give the name without them.")
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


def check_pasted_token(token: str) -> None:
    """Reject a token with spaces, control or non-ASCII characters, which a pasted token never has.

    The message gives the position of the character, never the token.

    :raises UserInputError:
    """
    for position, character in enumerate(token, start=1):
        if character.isspace() or not character.isprintable() or not character.isascii():
            raise UserInputError(
                f"The token contains a space, control or non-ASCII character (character {position} of "
                f"{len(token)}), so it was not saved. Paste only the token the server's administrator gave you."
            )


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
    check_pasted_token(token)
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
    if not password:
        raise UserInputError("The password is empty. Give the password of your account on the server.")
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
