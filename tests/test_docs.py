"""The documentation: it builds without warnings, covers every command, and its code runs.

The tutorials' commands run against a sandbox with the data that each
tutorial describes, so that the tutorials stay true.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import click
import pytest

from anonapi.cli.main import cli

CHECKOUT = Path(__file__).resolve().parent.parent
DOCS = CHECKOUT / "docs"
# Pages that a person wrote, as opposed to the generated command reference.
NARRATIVE_PAGES = sorted(DOCS.rglob("*.md"))


def walk_commands(command: click.Command, path: str = "anon") -> Iterator[Tuple[str, click.Command]]:
    """Yield every command and group below ``command`` with its full name, such as ``anon batch status``.

    Groups are asked for their commands through ``list_commands`` and
    ``get_command``, so that lazily loaded groups are walked as well.
    """
    yield path, command
    if isinstance(command, click.Group):
        context = click.Context(command, info_name=path.split()[-1])
        for name in command.list_commands(context):
            subcommand = command.get_command(context, name)
            assert subcommand is not None, f"{path} lists '{name}' but cannot load it"
            yield from walk_commands(subcommand, f"{path} {name}")


ALL_COMMANDS: List[Tuple[str, click.Command]] = list(walk_commands(cli))
COMMAND_NAMES = [name for name, _ in ALL_COMMANDS]


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: List[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(path: Path) -> str:
    """Return the visible text of an HTML page with runs of white space as one space."""
    extractor = _TextExtractor()
    extractor.feed(path.read_text(encoding="utf-8"))
    return " ".join("".join(extractor.parts).split())


@pytest.fixture(scope="module")
def built_html(tmp_path_factory) -> Path:
    """Build the HTML docs with warnings as errors and return the output folder."""
    output = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", str(DOCS), str(output)],
        capture_output=True,
        text=True,
        cwd=str(CHECKOUT),
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    return output


def test_docs_build_without_warnings(built_html):
    assert (built_html / "index.html").exists()


def test_release_notes_include_history(built_html):
    history_heading = (CHECKOUT / "HISTORY.md").read_text(encoding="utf-8").split("\n## ", 1)[1].splitlines()[0]
    assert history_heading in html_text(built_html / "history.html")


def test_command_tree_is_not_empty():
    assert len(ALL_COMMANDS) > 20


@pytest.mark.parametrize("name, command", ALL_COMMANDS, ids=COMMAND_NAMES)
def test_command_has_help(name, command):
    assert (command.help or "").strip(), f"'{name}' has no help text"


@pytest.mark.parametrize("name, command", ALL_COMMANDS, ids=COMMAND_NAMES)
def test_command_options_have_help(name, command):
    missing = [
        parameter.name
        for parameter in command.params
        if isinstance(parameter, click.Option) and not parameter.hidden and not (parameter.help or "").strip()
    ]
    assert not missing, f"options of '{name}' without help text: {missing}"


@pytest.fixture(scope="module")
def reference_text(built_html) -> str:
    return html_text(built_html / "reference.html")


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_command_in_reference(name, reference_text):
    # sphinx-click writes a usage line such as "anon batch status [OPTIONS]" for every command.
    assert f"{name} [OPTIONS]" in reference_text, f"'{name}' is missing from the command reference"


@pytest.fixture(scope="module")
def narrative_text() -> str:
    return " ".join(page.read_text(encoding="utf-8") for page in NARRATIVE_PAGES)


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_command_in_narrative_docs(name, narrative_text):
    pattern = re.escape(name) + r"(?![\w-])"
    assert re.search(pattern, narrative_text), f"no page besides the reference mentions '{name}'"


def python_blocks(page: Path) -> List[str]:
    """Return the fenced ``python`` code blocks of a Markdown page."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_testresources_example_runs():
    blocks = [block for block in python_blocks(DOCS / "python.md") if "MockAnonClientTool(" in block]
    assert len(blocks) == 1
    exec(compile(blocks[0], "python.md", "exec"), {})


def test_sandbox_fixture_example_runs(sandbox):
    blocks = [block for block in python_blocks(DOCS / "python.md") if "def test_" in block]
    assert len(blocks) == 1
    namespace: Dict[str, object] = {}
    exec(compile(blocks[0], "python.md", "exec"), namespace)
    test_functions = [value for name, value in namespace.items() if name.startswith("test_")]
    for test_function in test_functions:
        test_function(sandbox)


def test_python_examples_compile():
    for page in NARRATIVE_PAGES:
        for block in python_blocks(page):
            compile(block, str(page), "exec")


def test_readme_commands_exist():
    readme = (CHECKOUT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^python3 (scripts/\S+\.py)$", readme, flags=re.M)
    assert commands == ["scripts/quickstart.py", "scripts/run_tests.py"]
    for script in commands:
        assert (CHECKOUT / script).is_file(), f"README names {script}, which does not exist"


def test_ci_runs_readme_test_command():
    ci_script = (CHECKOUT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 scripts/run_tests.py" in ci_script


# --- Tutorials ----------------------------------------------------------------------

TUTORIALS = DOCS / "tutorials"
# A MyST comment before a console block names the folder its commands run in.
RUN_MARKER = re.compile(r"^% run in: (?P<place>[^\n]+)\n```console\n(?P<body>.*?)^```", flags=re.S | re.M)


def tutorial_blocks(page: Path) -> List[Tuple[str, List[str]]]:
    """Return the runnable console blocks of a tutorial: the folder name and the commands."""
    blocks = []
    for match in RUN_MARKER.finditer(page.read_text(encoding="utf-8")):
        commands = [line[2:] for line in match.group("body").splitlines() if line.startswith("$ ")]
        blocks.append((match.group("place").strip(), commands))
    return blocks


def split_command(line: str) -> List[str]:
    """Split a command line as the Windows command prompt does: quotes group, backslashes are literal."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""
    return list(lexer)


def markdown_table(page: Path, first_header: str) -> List[List[str]]:
    """Return the header and rows of the Markdown table whose first header cell is ``first_header``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if not set("".join(cells)) <= set("- "):
            table.append(cells)
    return table


def write_xlsx(path: Path, table: List[List[str]]) -> None:
    """Write a spreadsheet with a line of text above the table, as researchers' files often have."""
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Studies for the lung study, exported from the study database"])
    sheet.append([])
    for row in table:
        sheet.append(row)
    workbook.save(str(path))


class TutorialWorld:
    """A sandbox with the share, PACS and folders that a tutorial describes, and a runner for its commands."""

    def __init__(self, root: Path, sandbox, places: Dict[str, Path], unc_paths: Dict[str, str]):
        import yaml

        self.sandbox = sandbox
        self.places = places
        settings_path = root / "AnonWebAPIClientSettings.yml"
        settings_path.write_text(yaml.safe_dump({
            "active_server_name": "p01",
            "servers": {"p01": sandbox.url},
            "user_name": sandbox.user_name,
            "user_token": sandbox.token,
            # Stands in for the mount table, which does not know the test's share folder.
            "unc_paths": unc_paths,
        }), encoding="utf-8")
        home = root / "home"
        home.mkdir()
        self.environment = {key: value for key, value in os.environ.items() if not key.startswith("ANONAPI_")}
        self.environment.update(
            ANONAPI_SETTINGS=str(settings_path),
            HOME=str(home),
            USERPROFILE=str(home),
            # `anon map edit` opens this "editor", which closes at once, and then checks the mapping.
            EDITOR=f'"{sys.executable}" -c pass',
        )

    def run_tutorial(self, page: Path) -> List[str]:
        """Run every marked console block of ``page`` in order and return the command lines run."""
        blocks = tutorial_blocks(page)
        text = page.read_text(encoding="utf-8")
        assert len(blocks) == text.count("```console"), f"{page.name} has console blocks without a '% run in:' line"
        command_lines = []
        for place, commands in blocks:
            for line in commands:
                self.run(line, self.places[place])
                command_lines.append(line)
        return command_lines

    def run(self, line: str, cwd: Path) -> None:
        arguments = split_command(line)
        assert arguments[0] == "anon", f"tutorial command does not start with anon: {line}"
        result = subprocess.run(
            [sys.executable, "-m", "anonapi.cli.main", *arguments[1:]],
            cwd=str(cwd), env=self.environment, input="y\n", capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"'{line}' failed in {cwd}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture
def pacs_world(tmp_path):
    from anonapi.sandbox import Sandbox
    from anonapi.sandbox.demo import DemoStudy, build_demo_share

    page = TUTORIALS / "pacs.md"
    table = markdown_table(page, "accession number")
    studies = [
        DemoStudy(f"study{number}", f"Patient^{number}", f"PAT-{number}", "19600101", row[0], ("CT_small.dcm",))
        for number, row in enumerate(table[1:], start=1)
    ]
    build_demo_share(tmp_path / "pacs", studies)
    project = tmp_path / "project"
    project.mkdir()
    write_xlsx(project / "accession_numbers.xlsx", table)
    research = tmp_path / "research"
    (research / "lungstudy_anonymized").mkdir(parents=True)

    with Sandbox(shares={"research": research}, pacs_dir=tmp_path / "pacs", poll_interval=0.05) as sandbox:
        world = TutorialWorld(tmp_path, sandbox, {"project folder": project}, {})
        world.output = research / "lungstudy_anonymized"
        world.expected_files = len(studies)
        yield world


def test_pacs_tutorial_runs(pacs_world):
    command_lines = pacs_world.run_tutorial(TUTORIALS / "pacs.md")

    assert "anon create from-mapping" in command_lines
    assert len(list(pacs_world.output.rglob("*.dcm"))) == pacs_world.expected_files


def test_pacs_tutorial_pseudonyms_from_spreadsheet(pacs_world):
    import pydicom

    pacs_world.run_tutorial(TUTORIALS / "pacs.md")

    table = markdown_table(TUTORIALS / "pacs.md", "accession number")
    names = {str(pydicom.dcmread(str(path)).PatientName) for path in pacs_world.output.rglob("*.dcm")}
    assert names == {row[1] for row in table[1:]}


@pytest.fixture
def share_world(tmp_path):
    from anonapi.sandbox import Sandbox
    from anonapi.sandbox.demo import DemoStudy, build_demo_share

    page = TUTORIALS / "share.md"
    research = tmp_path / "research"
    data = research / "lungstudy"
    studies = [
        DemoStudy("patient01/ct_2025", "Smit^Els", "PAT-101", "19510101", "A101", ("CT_small.dcm", "CT_small.dcm"),
                  {"notes.txt": b"contrast\n"}),
        DemoStudy("patient02/ct_2025/series1", "Visser^Jan", "PAT-102", "19520202", "A102", ("CT_small.dcm",)),
        DemoStudy("patient03/ct_2025", "Mulder^Iris", "PAT-103", "19530303", "A103", ("MR_small.dcm",)),
        DemoStudy("patient03/ct_2025_fixed", "Mulder^Iris", "PAT-103", "19530303", "A104", ("CT_small.dcm",)),
    ]
    build_demo_share(data, studies)
    (data / "patient02" / "ct_2025" / "screenshot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    write_xlsx(data / "folders.xlsx", markdown_table(page, "folder"))
    (research / "lungstudy_anonymized").mkdir()
    project = tmp_path / "project"
    project.mkdir()

    with Sandbox(shares={"research": research}, poll_interval=0.05) as sandbox:
        world = TutorialWorld(
            tmp_path, sandbox, {"project folder": project, "data folder": data},
            {str(research): "\\\\fileserver01\\research"},
        )
        world.output = research / "lungstudy_anonymized"
        world.data = data
        yield world


def test_share_tutorial_runs(share_world):
    command_lines = share_world.run_tutorial(TUTORIALS / "share.md")

    assert "anon create from-mapping" in command_lines
    # patient01 has two DICOM files, patient02 and patient03's fixed folder one each.
    assert len(list(share_world.output.rglob("*.dcm"))) == 4


def test_share_tutorial_leaves_out_other_files(share_world):
    share_world.run_tutorial(TUTORIALS / "share.md")

    selection = (share_world.data / "patient01" / "ct_2025" / "fileselection.txt").read_text(encoding="utf-8")
    assert "notes.txt" not in selection
    assert "IM00001.dcm" in selection


def test_share_tutorial_layout_matches_test_data(share_world):
    layout = (TUTORIALS / "share.md").read_text(encoding="utf-8")
    for name in ("folders.xlsx", "notes.txt", "screenshot.png", "series1", "ct_2025_fixed"):
        assert name in layout


def test_split_command_keeps_backslashes():
    assert split_command(r'anon x \\server\share "a b"') == ["anon", "x", r"\\server\share", "a b"]
