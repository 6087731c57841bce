"""Entry point of the ``anon`` command.

Command groups are imported only when they run, so that ``anon --help`` and
``anon status`` start fast and never import requests, pydicom, openpyxl,
tabulate, tqdm or the sandbox.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Dict, List, Optional, Tuple

import click

from anonapi import __version__
from anonapi.cli.context import AnonCommandContext, format_error
from anonapi.exceptions import AnonAPIError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

# name -> (module, attribute, short help). The short help is repeated here so
# that listing the commands does not import their modules.
COMMANDS: Dict[str, Tuple[str, str, str]] = {
    "status": ("anonapi.cli.status", "status", "Show servers, user and settings file."),
    "server": ("anonapi.cli.server", "server", "Add, list, activate and check servers."),
    "job": ("anonapi.cli.job", "job", "Show, reset and cancel single jobs."),
    "settings": ("anonapi.cli.settings", "settings", "Show and change local settings."),
    "batch": ("anonapi.cli.batch", "batch", "Work with the batch of jobs in this folder."),
    "map": ("anonapi.cli.map", "map_group", "Build the mapping from sources to pseudonyms."),
    "select": ("anonapi.cli.select", "select", "Select files for a single job."),
    "create": ("anonapi.cli.create", "create", "Create jobs from the mapping."),
    "sandbox": ("anonapi.cli.sandbox", "sandbox", "Run a local IDIS-compatible test server."),
}


class CommandError(click.ClickException):
    """An anonapi error shown to the user as ``Error: <message>``, exit code 1."""


class LazyGroup(click.Group):
    """A click group that imports each command's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module_name), attribute)

    def invoke(self, ctx: click.Context):
        """Run the command and turn anonapi errors into a one-line message and exit code 1.

        With -vv the traceback is logged as well, for bug reports.
        """
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except AnonAPIError as error:
            _log_traceback(ctx)
            raise CommandError(format_error(error)) from error
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            # The reader of our output went away, as `anon ... | head` does: not an error.
            _silence_stdout()
            ctx.exit(0)
        except OSError as error:
            # A file or folder problem that no library code expected, such as a full disk.
            _log_traceback(ctx)
            target = f" on '{error.filename}'" if error.filename else ""
            raise CommandError(
                f"{error.strerror or error}{target}. Check the path, its permissions and the free space, "
                "then try again."
            ) from error
        except Exception as error:
            _log_traceback(ctx)
            raise CommandError(
                f"Unexpected {type(error).__name__}: {' '.join(str(error).split())}. This is a bug in anonapi: "
                "run the command again with -vv and report what it prints."
            ) from error

    def resolve_command(self, ctx: click.Context, args: List[str]):
        """Resolve the command, suggesting the closest name for a typing error such as 'bacth'."""
        name = click.utils.make_str(args[0])
        if name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, COMMANDS, n=1)
            if close:
                ctx.fail(f"No such command '{name}'. Did you mean '{close[0]}'?")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _silence_stdout() -> None:
    # Python flushes stdout once more at exit, which would raise BrokenPipeError again.
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(devnull)


def _log_traceback(ctx: click.Context) -> None:
    if getattr(ctx.obj, "verbosity", 0) >= 2:
        logging.getLogger("anonapi").exception("Traceback of the error below")


def configure_logging(verbosity: int) -> None:
    """Send diagnostics to stderr: warnings by default, INFO with -v, DEBUG with -vv."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="anonapi")
@click.option("-v", "--verbose", count=True, help="Show more diagnostics: -v for INFO, -vv for DEBUG and tracebacks.")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Control IDIS anonymization servers: jobs, batches, mappings and settings.

    Add -h to any command for its help.
    """
    configure_logging(verbose)
    if isinstance(ctx.obj, AnonCommandContext):
        # Tests pass their own context, for example with another working folder.
        ctx.obj.verbosity = verbose
    else:
        ctx.obj = AnonCommandContext(verbosity=verbose)


def main(argv: Optional[List[str]] = None) -> None:
    """Run ``anon`` as a console script."""
    cli.main(args=argv, prog_name="anon")


if __name__ == "__main__":
    main()
