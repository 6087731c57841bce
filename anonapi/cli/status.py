"""``anon status``: the servers, user and settings file in use, shown without contacting a server."""

from __future__ import annotations

import click

from anonapi.cli.context import AnonCommandContext, pass_anon_context


@click.command()
@pass_anon_context
def status(context: AnonCommandContext) -> None:
    """Show servers, user and settings file.

    The active server is marked with *. No server is contacted.
    """
    settings = context.settings
    click.echo(f"Settings file: {context.settings_file.path}")
    click.echo("Servers (* = active):")
    if not settings.servers:
        click.echo("  none. Add one with 'anon server add NAME URL'.")
    for server in settings.servers:
        marker = "*" if server == settings.active_server else " "
        click.echo(f"{marker} {server.name} {server.url}")
    click.echo(f"User name: {settings.user_name or '(not set)'}")
    click.echo(f"Token: {'set' if settings.has_token else 'not set'}")
