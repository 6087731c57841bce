"""Tests of the ``anon`` entry point: help on every command, version, and light imports at start-up."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from anonapi import __version__
from anonapi.cli.main import cli

# Modules that make start-up slow; `anon --help` and `anon status` must not import them.
HEAVY_MODULES = ["requests", "urllib3", "pydicom", "openpyxl", "tabulate", "tqdm", "factory", "anonapi.sandbox"]

FOUNDATION_GROUPS = ["status", "server", "job", "settings"]


def loaded_modules_after(arguments, settings_path) -> set:
    script = (
        "import sys\n"
        "from anonapi.cli.main import cli\n"
        "try:\n"
        f"    cli.main({arguments!r}, prog_name='anon')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    environment = {**os.environ, "ANONAPI_SETTINGS": str(settings_path), "HOME": str(settings_path.parent)}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=60
    )
    return set(completed.stderr.strip().splitlines()[-1].split())


def is_loaded(module: str, loaded: set) -> bool:
    return any(name == module or name.startswith(module + ".") for name in loaded)


@pytest.mark.parametrize("arguments", [["--help"], ["status"]])
@pytest.mark.parametrize("module", HEAVY_MODULES)
def test_start_up_skips_heavy_module(arguments, module, settings_path):
    assert not is_loaded(module, loaded_modules_after(arguments, settings_path))


def test_status_skips_heavy_modules_with_servers(fake_settings):
    loaded = loaded_modules_after(["status"], fake_settings)
    assert [module for module in HEAVY_MODULES if is_loaded(module, loaded)] == []


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert __version__ in result.stdout


def all_commands(group: click.Group, context: click.Context, prefix):
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        yield [*prefix, name]
        if isinstance(command, click.Group):
            yield from all_commands(command, context, [*prefix, name])


def foundation_command_paths():
    context = click.Context(cli)
    paths = []
    for name in FOUNDATION_GROUPS:
        command = cli.get_command(context, name)
        paths.append([name])
        if isinstance(command, click.Group):
            paths.extend(all_commands(command, context, [name]))
    return paths


@pytest.mark.parametrize("path", foundation_command_paths(), ids=" ".join)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_command_has_help(path, flag, run_anon):
    result = run_anon(*path, flag)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: anon {' '.join(path)}")


@pytest.mark.parametrize("path", foundation_command_paths(), ids=" ".join)
def test_every_command_has_short_help(path):
    context = click.Context(cli)
    command = cli
    for name in path:
        command = command.get_command(context, name)
    assert command.get_short_help_str(limit=80).strip() != ""


def test_verbose_flag_counts(run_anon, settings_path):
    result = run_anon("-vv", "status")
    assert result.exit_code == 0
