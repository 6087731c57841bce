"""``anon server``: the list of servers in the settings, the active server, its status and jobs."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from anonapi.cli.context import AnonCommandContext, pass_anon_context
from anonapi.cli.options import echo_json, output_option
from anonapi.exceptions import UserInputError
from anonapi.objects import RemoteAnonServer


@click.group()
def server() -> None:
    """Add, list, activate and check servers."""


def validate_server_url(url: str) -> str:
    """Return ``url`` without a trailing slash.

    :raises UserInputError: if it is not an http or https URL with a host, or
        has parts that the API's function names cannot be appended to
    """
    from anonapi.client import mask_url

    example = "such as https://anonserver.example.org/p01"
    masked_url = mask_url(url)
    if any(character.isspace() or not character.isprintable() for character in url):
        raise UserInputError(
            f"Invalid server URL {masked_url!r}: it contains spaces or control characters. "
            f"Remove them, and give a URL {example}."
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UserInputError(f"Invalid server URL '{masked_url}': {error}. Give a URL {example}.") from error

    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UserInputError(
            f"Invalid server URL '{masked_url}': it must start with http:// or https:// and name a host, {example}."
        )
    if parts.username is not None or parts.password is not None:
        # anon authenticates with the token. requests would send these as basic authentication.
        raise UserInputError(
            f"Invalid server URL '{masked_url}': it contains a user name or password. "
            "Remove them: anon sends your user name and token with each request."
        )
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise UserInputError(
            f"Invalid server URL '{masked_url}': it has a query (?) or fragment (#), but anon appends the API "
            f"function names to the URL's path. Give the base URL of the API, {example}."
        )
    if port == 0:
        raise UserInputError(
            f"Invalid server URL '{masked_url}': port 0 cannot be connected to. Give the server's port."
        )
    return url.rstrip("/")


def validate_server_name(name: str) -> str:
    """Return ``name`` if it can be a server name.

    :raises UserInputError: if it is empty or has spaces at its ends or control characters
    """
    if not name.strip():
        raise UserInputError("The server name is empty. Give a short name such as p01.")
    if name != name.strip() or not name.isprintable():
        raise UserInputError(
            f"Invalid server name {name!r}: it starts or ends with a space, or contains control characters. "
            "Give a short name such as p01."
        )
    return name


def find_server(context: AnonCommandContext, name: str) -> RemoteAnonServer:
    """Return the server called ``name`` from the settings.

    :raises UserInputError: listing the known names
    """
    found = context.settings.get_server(name)
    if found is None:
        known = ", ".join(item.name for item in context.settings.servers) or "none"
        raise UserInputError(f"No server named '{name}'. Known servers: {known}. See 'anon server list'.")
    return found


@server.command()
@click.argument("name")
@click.argument("url")
@pass_anon_context
def add(context: AnonCommandContext, name: str, url: str) -> None:
    """Add a server called NAME with base URL URL to the settings.

    The first server added becomes the active one.
    """
    new_server = RemoteAnonServer(validate_server_name(name), validate_server_url(url))
    settings = context.settings
    existing = settings.get_server(name)
    if existing is not None:
        raise UserInputError(
            f"A server named '{name}' already exists ({existing.url}). "
            f"Choose another name, or remove it first with 'anon server remove {name}'."
        )
    settings.servers.append(new_server)
    activated = settings.active_server is None
    if activated:
        settings.active_server = new_server
    context.save_settings()

    click.echo(f"Added server {new_server}.")
    if activated:
        click.echo(f"Activated {name}, because no server was active.")


@server.command(name="list")
@pass_anon_context
def list_servers(context: AnonCommandContext) -> None:
    """List the servers in the settings. A * marks the active one."""
    settings = context.settings
    if not settings.servers:
        click.echo("No servers. Add one with 'anon server add NAME URL'.")
        return
    for item in settings.servers:
        marker = "*" if item == settings.active_server else " "
        click.echo(f"{marker} {item.name} {item.url}")


@server.command()
@click.argument("name")
@pass_anon_context
def remove(context: AnonCommandContext, name: str) -> None:
    """Remove the server called NAME from the settings."""
    settings = context.settings
    removed = find_server(context, name)
    settings.servers.remove(removed)
    was_active = settings.active_server == removed
    if was_active:
        settings.active_server = None
    context.save_settings()

    click.echo(f"Removed server {removed}.")
    if was_active:
        click.echo("It was the active server: activate another with 'anon server activate NAME'.")


@server.command()
@click.argument("name")
@pass_anon_context
def activate(context: AnonCommandContext, name: str) -> None:
    """Make the server called NAME the one that commands talk to."""
    context.settings.active_server = find_server(context, name)
    context.save_settings()
    click.echo(f"Active server is now {context.settings.active_server}.")


@server.command(name="status")
@click.pass_context
@pass_anon_context
def server_status(context: AnonCommandContext, click_context: click.Context) -> None:
    """Check whether the active server is up and is an IDIS web API.

    Exits with status 1 if it is not.
    """
    active = context.get_active_server()
    result = context.get_client_tool().get_server_status(active)
    if result.is_online:
        click.echo(f"{active}: OK, {result.message}.")
    else:
        # On one line, because the message can contain the server's own text.
        click.echo(f"{active}: not OK. {' '.join(result.message.split())}")
        click_context.exit(1)


@server.command()
@output_option("table", "json")
@pass_anon_context
def jobs(context: AnonCommandContext, output: str) -> None:
    """List the latest jobs on the active server, newest first."""
    active = context.get_active_server()
    latest = context.get_client_tool().get_jobs(active)
    if output == "json":
        echo_json(latest.to_dicts())
        return
    click.echo(f"Latest {len(latest)} jobs on {active}:")
    click.echo(latest.as_table_string())
