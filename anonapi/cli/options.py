"""Options that several commands share."""

from __future__ import annotations

import json
from typing import Any, Callable

import click

OUTPUT_FORMATS = ("table", "json")


def yes_option(function: Callable) -> Callable:
    """Add ``--yes``/``-y``, which skips the confirmation prompt, for scripts."""
    return click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")(function)


def output_option(*formats: str) -> Callable[[Callable], Callable]:
    """Add ``--output``/``-o`` with the given formats; the first is the default."""
    choices = formats or OUTPUT_FORMATS

    def decorator(function: Callable) -> Callable:
        return click.option(
            "-o",
            "--output",
            type=click.Choice(choices),
            default=choices[0],
            show_default=True,
            help="Output format. json and csv are for scripts.",
        )(function)

    return decorator


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))
