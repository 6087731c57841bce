"""The end-to-end demo behind ``anon sandbox demo``.

The demo starts a sandbox server and builds a network share with a few small
studies made from DICOM files that ship with pydicom. It then runs the real
``anon`` commands as separate processes, as a researcher would type them:
configure the server and user, make a mapping, add the study folders,
create the jobs and wait for the batch. At the end it reads every output file
and checks that none of the original patient names, patient ids, birth
dates or UIDs remain.

The commands use their own settings file (``ANONAPI_SETTINGS``) and home
folder inside the demo folder, so the user's own settings are never read or
changed.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

DEMO_SERVER_NAME = "sandbox"
SHARE_NAME = "share"
# Any host name works in a sandbox UNC path; this one reads like a real file server.
SHARE_HOST = "fileserver"
STUDIES_FOLDER = "studies"
OUTPUT_FOLDER = "anonymized"
# How long `anon batch watch` may wait for the jobs, in seconds.
WATCH_TIMEOUT_SECONDS = 300

# DICOM attributes whose original values must not appear in any output file.
IDENTIFYING_ATTRIBUTES = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "AccessionNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)


@dataclass
class DemoStudy:
    """One study of the demo share: its folder, patient and the files in it."""

    folder: str
    patient_name: str
    patient_id: str
    birth_date: str
    accession_number: str
    # Names of pydicom test files; each becomes one instance of the study.
    source_files: Tuple[str, ...]
    # Files that are not DICOM, as a real study folder often has.
    other_files: Dict[str, bytes] = field(default_factory=dict)


DEMO_STUDIES = (
    DemoStudy(
        folder="patient1/ct_thorax",
        patient_name="Jansen^Anna",
        patient_id="DEMO-1001",
        birth_date="19560312",
        accession_number="2026120401",
        source_files=("CT_small.dcm", "CT_small.dcm", "CT_small.dcm"),
        other_files={"notes.txt": b"Scanned after contrast, see report.\n"},
    ),
    DemoStudy(
        folder="patient2/mr_brain",
        patient_name="de Vries^Bram",
        patient_id="DEMO-1002",
        birth_date="19671105",
        accession_number="2026120402",
        source_files=("MR_small.dcm", "MR_small.dcm"),
        other_files={"screenshot.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64},
    ),
    DemoStudy(
        folder="patient3/radiotherapy",
        patient_name="Bakker^Cor",
        patient_id="DEMO-1003",
        birth_date="19480722",
        accession_number="2026120403",
        source_files=("rtplan.dcm", "rtdose.dcm"),
        other_files={"export.log": b"exported 2 objects\n"},
    ),
)


@dataclass
class OriginalStudy:
    """The identifying values that the demo wrote into one study's files."""

    study: DemoStudy
    folder: Path
    values: Dict[str, List[str]]

    def all_values(self) -> List[str]:
        return [value for values in self.values.values() for value in values if value]


def build_demo_share(studies_root: Path, studies: Sequence[DemoStudy] = DEMO_STUDIES) -> List[OriginalStudy]:
    """Write the demo studies below ``studies_root`` and return their identifying values.

    Each study gets its own patient, AccessionNumber and new Study, Series
    and SOP Instance UIDs, so no two studies share an identifier and none
    equals the value in pydicom's test file.
    """
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    originals = []
    for study in studies:
        folder = studies_root / study.folder
        folder.mkdir(parents=True, exist_ok=True)
        study_uid = generate_uid()
        # One series per kind of source file, as a scanner would write it.
        series_uids = {name: generate_uid() for name in study.source_files}
        values: Dict[str, List[str]] = {name: [] for name in IDENTIFYING_ATTRIBUTES}
        values["PatientName"] = [study.patient_name]
        values["PatientID"] = [study.patient_id]
        values["PatientBirthDate"] = [study.birth_date]
        values["AccessionNumber"] = [study.accession_number]
        values["StudyInstanceUID"] = [study_uid]
        values["SeriesInstanceUID"] = sorted(set(series_uids.values()))

        instance_uids_by_class: Dict[str, str] = {}
        for number, source_name in enumerate(study.source_files, start=1):
            dataset = _read_test_file(get_testdata_file(source_name), instance_uids_by_class)
            dataset.PatientName = study.patient_name
            dataset.PatientID = study.patient_id
            dataset.PatientBirthDate = study.birth_date
            dataset.AccessionNumber = study.accession_number
            dataset.StudyInstanceUID = study_uid
            dataset.SeriesInstanceUID = series_uids[source_name]
            dataset.SOPInstanceUID = generate_uid()
            dataset.InstanceNumber = number
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            values["SOPInstanceUID"].append(dataset.SOPInstanceUID)
            instance_uids_by_class[dataset.SOPClassUID] = dataset.SOPInstanceUID
            dataset.save_as(str(folder / f"IM{number:05d}.dcm"))

        for name, content in study.other_files.items():
            (folder / name).write_bytes(content)
        originals.append(OriginalStudy(study=study, folder=folder, values=values))
    return originals


def _read_test_file(path: str, instance_uids_by_class: Dict[str, str]):
    """Read one of pydicom's test files and point its RT plan reference to this study's plan.

    pydicom's rtdose.dcm refers to a plan by an invalid UID (a component
    starts with 0). pydicom would warn about it when the worker reads the
    file, so the reference is replaced, without validation while reading.
    """
    import pydicom
    from pydicom import config

    previous_mode = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        dataset = pydicom.dcmread(path)
        for reference in dataset.get("ReferencedRTPlanSequence", []):
            plan_uid = instance_uids_by_class.get(reference.ReferencedSOPClassUID)
            if plan_uid is not None:
                reference.ReferencedSOPInstanceUID = plan_uid
    finally:
        config.settings.reading_validation_mode = previous_mode
    return dataset


@dataclass
class OutputFile:
    """The identifying values of one de-identified output file, and its original study."""

    path: Path
    original: Optional[OriginalStudy]
    values: Dict[str, str]
    leaked: List[str]


def inspect_output(output_root: Path, originals_by_pseudo_id: Dict[str, OriginalStudy]) -> List[OutputFile]:
    """Read every DICOM file below ``output_root`` and look for original identifying values.

    A value counts as leaked when its bytes occur anywhere in the file, so a
    value copied into another attribute, a private tag or a sequence is found
    as well. Every original value of every study is looked for in every file.
    Each file is matched to its original study by the pseudonymized PatientID
    that it carries.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    all_original_values = sorted(
        {value for original in originals_by_pseudo_id.values() for value in original.all_values()}
    )
    results = []
    for path in sorted(p for p in output_root.rglob("*") if p.is_file()):
        try:
            dataset = pydicom.dcmread(str(path), stop_before_pixels=True)
        except InvalidDicomError:
            continue
        content = path.read_bytes()
        leaked = [value for value in all_original_values if value.encode() in content]
        values = {name: str(dataset.get(name, "")) for name in ("PatientName", "PatientID", "StudyInstanceUID")}
        original = originals_by_pseudo_id.get(values["PatientID"])
        results.append(OutputFile(path=path, original=original, values=values, leaked=leaked))
    return results


class DemoError(Exception):
    """A step of the demo failed. The message names the step and the cause."""


class CommandRunner:
    """Runs ``anon`` commands as separate processes and prints each command line first.

    The commands run with the interpreter of this process, so they use the
    same installation of anonapi. Their output goes straight to the
    terminal.
    """

    def __init__(self, environment: Dict[str, str], echo: Callable[[str], None]):
        self.environment = environment
        self.echo = echo

    def run(self, arguments: Sequence[str], cwd: Path, stdin_text: Optional[str] = None, note: str = "") -> None:
        """Run ``anon ARGUMENTS`` in ``cwd``.

        :raises DemoError: if the command exits with a code other than 0
        """
        self.echo("")
        self.echo(f"$ {format_command_line(['anon', *arguments])}" + (f"    ({note})" if note else ""))
        command = [sys.executable, "-m", "anonapi.cli.main", *arguments]
        # Flush what the demo printed so far, so that it comes before the command's output.
        sys.stdout.flush()
        completed = subprocess.run(
            command,
            cwd=str(cwd),
            env=self.environment,
            input=stdin_text,
            text=True,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
        )
        if completed.returncode != 0:
            raise DemoError(
                f"'anon {' '.join(arguments)}' failed with exit code {completed.returncode}; "
                "its messages are above."
            )


def format_command_line(arguments: Sequence[str]) -> str:
    """Quote a command line as the user's shell needs it: cmd.exe on Windows, a POSIX shell elsewhere."""
    if os.name == "nt":
        return subprocess.list2cmdline(list(arguments))
    return " ".join(shlex.quote(argument) for argument in arguments)


@dataclass
class DemoFolders:
    """The folders of one demo run, all below ``root``."""

    root: Path

    @property
    def share(self) -> Path:
        """The folder that the sandbox serves as share ``share``."""
        return self.root / "share"

    @property
    def studies(self) -> Path:
        return self.share / STUDIES_FOLDER

    @property
    def output(self) -> Path:
        return self.share / OUTPUT_FOLDER

    @property
    def project(self) -> Path:
        """The researcher's project folder: the mapping and the batch live here."""
        return self.root / "project"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def settings_file(self) -> Path:
        return self.root / "AnonWebAPIClientSettings.yml"

    @property
    def sandbox_data(self) -> Path:
        return self.root / "sandbox-data"

    def create(self) -> None:
        for folder in (self.studies, self.output, self.project, self.home, self.sandbox_data):
            folder.mkdir(parents=True, exist_ok=True)


def unc_path(*parts: str) -> str:
    """Return the UNC path of a folder in the demo share, such as ``\\\\fileserver\\share\\anonymized``."""
    return "\\\\" + "\\".join((SHARE_HOST, SHARE_NAME) + parts)


def run_demo(folder: Optional[Path], keep: bool, echo: Callable[[str], None]) -> int:
    """Run the demo and return the exit code: 0 when every job is DONE and no original value remains.

    :param folder: folder for the demo's files; a new temporary folder when None
    :param keep: keep the temporary folder after a successful run. A given
        folder, and the folder of a failed run, are always kept.
    :param echo: prints one line for the user
    """
    created_temporary = folder is None
    root = Path(tempfile.mkdtemp(prefix="anonapi-demo-")) if folder is None else Path(folder).resolve()
    if not created_temporary and root.exists() and any(root.iterdir()):
        echo(f"Error: folder {root} is not empty. Give a new or empty folder with --folder.")
        return 1
    try:
        _Demo(DemoFolders(root), echo).run()
    except DemoError as error:
        echo("")
        echo(f"Demo failed: {error}")
        echo(f"The demo files are in {root}")
        return 1

    echo("")
    if created_temporary and not keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        echo("Removed the demo folder. Run with --keep to look at the files afterwards.")
    else:
        echo(f"The demo files are in {root}")
    return 0


class _Demo:
    """The steps of one demo run."""

    def __init__(self, folders: DemoFolders, echo: Callable[[str], None]):
        self.folders = folders
        self.echo = echo
        self.originals: List[OriginalStudy] = []

    def run(self) -> None:
        from anonapi.sandbox.context import Sandbox

        self.folders.create()
        self.echo("anonapi demo: anonymize three DICOM studies on a local sandbox server.")
        self.echo(f"Demo folder: {self.folders.root}")
        self.build_share()

        with Sandbox(
            data_dir=self.folders.sandbox_data,
            shares={SHARE_NAME: self.folders.share},
            poll_interval=0.05,
        ) as sandbox:
            self.heading("Start a sandbox server")
            self.echo(f"The sandbox runs at {sandbox.url}.")
            self.echo(f"It serves the folder {self.folders.share} as the share {unc_path()}.")
            runner = CommandRunner(self.command_environment(), self.echo)

            self.configure(runner, sandbox.url)
            self.make_mapping(runner)
            self.create_jobs(runner)
            self.check_jobs_and_output(sandbox)

    def heading(self, text: str) -> None:
        self.echo("")
        self.echo(f"== {text} ==")

    def command_environment(self) -> Dict[str, str]:
        """Return the environment for ``anon``: the demo's own settings file and home folder."""
        environment = dict(os.environ)
        environment["ANONAPI_SETTINGS"] = str(self.folders.settings_file)
        environment["HOME"] = str(self.folders.home)
        environment["USERPROFILE"] = str(self.folders.home)
        # The demo answers all questions through options; an editor would wait for a person.
        for name in ("VISUAL", "EDITOR"):
            environment.pop(name, None)
        return environment

    def build_share(self) -> None:
        self.heading("Build a share with three studies")
        self.originals = build_demo_share(self.folders.studies)
        rows = []
        for original in self.originals:
            study = original.study
            other_files = ", ".join(sorted(study.other_files)) or "-"
            rows.append((f"{STUDIES_FOLDER}/{study.folder}", study.patient_name, study.patient_id,
                         len(study.source_files), other_files))
        from tabulate import tabulate

        self.echo(tabulate(rows, headers=["folder", "PatientName", "PatientID", "DICOM files", "other files"]))

    def configure(self, runner: CommandRunner, url: str) -> None:
        from anonapi.sandbox.server import DEMO_PASSWORD, DEMO_PROJECT, DEMO_USER

        self.heading("Tell anon about the server and the user")
        project = self.folders.project
        runner.run(["server", "add", DEMO_SERVER_NAME, url], project)
        runner.run(["settings", "user", "set-username", DEMO_USER], project)
        runner.run(
            ["settings", "user", "get-token", "--stdin"], project,
            stdin_text=DEMO_PASSWORD + "\n", note="the password comes from stdin; without --stdin it is asked for",
        )
        runner.run(["server", "status"], project)

        self.heading("Set the project and destination that new mappings get")
        runner.run(
            ["create", "set-defaults", "--project", DEMO_PROJECT, "--destination-path", unc_path(OUTPUT_FOLDER)],
            project,
        )
        self.add_unc_path_to_settings()

    def add_unc_path_to_settings(self) -> None:
        """Tell anonapi the UNC path of the demo share, which a real share's mount table would provide."""
        from anonapi.settings import SettingsFile

        settings_file = SettingsFile(self.folders.settings_file)
        settings = settings_file.load()
        settings.unc_paths[str(self.folders.share)] = unc_path()
        settings_file.save(settings)
        self.echo("")
        self.echo(
            f"anonapi finds the UNC path of a mapped drive (Windows) or a CIFS mount (Linux) by itself. "
            f"The demo share is a plain folder, so the demo writes '{self.folders.share}: {unc_path()}' "
            f"under unc_paths in the settings file, as you would for a share that the system does not report."
        )

    def make_mapping(self, runner: CommandRunner) -> None:
        self.heading("Make a mapping in the project folder")
        project = self.folders.project
        self.echo(f"$ cd {self.folders.project}")
        runner.run(["map", "init"], project)

        self.heading("Add the study folders from the share")
        self.echo(f"$ cd {self.folders.studies}")
        folders = sorted({study.folder.split("/")[0] + "/*" for study in DEMO_STUDIES})
        runner.run(["map", "add-study-folders", *folders], self.folders.studies)
        runner.run(["map", "status"], self.folders.studies)

    def create_jobs(self, runner: CommandRunner) -> None:
        self.heading("Create the jobs and wait for them")
        project = self.folders.project
        self.echo(f"$ cd {project}")
        runner.run(["create", "from-mapping", "--yes"], project)
        runner.run(["batch", "watch", "--interval", "1", "--timeout", str(WATCH_TIMEOUT_SECONDS)], project)
        runner.run(["batch", "status", "--patient-name"], project)

    def check_jobs_and_output(self, sandbox) -> None:
        """Compare every output file with its original study and raise DemoError on any leak or failed job."""
        from anonapi.batch import BatchFolder
        from anonapi.client import AnonClientTool
        from anonapi.objects import RemoteAnonServer

        self.heading("Check the output")
        batch = BatchFolder(self.folders.project).load()
        tool = AnonClientTool(username=sandbox.user_name, token=sandbox.token)
        jobs = tool.get_job_info_list(RemoteAnonServer(DEMO_SERVER_NAME, sandbox.url), batch.job_ids, True)
        not_done = [f"{job.job_id} ({job.status})" for job in jobs if job.status != "DONE"]
        missing = sorted(set(batch.job_ids) - {str(job.job_id) for job in jobs})
        if not_done or missing or len(batch.job_ids) != len(self.originals):
            raise DemoError(
                f"expected {len(self.originals)} jobs with status DONE; not DONE: {not_done or 'none'}, "
                f"not found: {missing or 'none'}, jobs in the batch: {len(batch.job_ids)}"
            )

        originals_by_pseudo_id = {}
        for job in jobs:
            original = self.original_for_source(job.source_path or "")
            if original is None:
                raise DemoError(f"job {job.job_id} has source {job.source_path!r}, which is none of the demo studies")
            originals_by_pseudo_id[job.source_anonymizedpatientid] = original

        outputs = inspect_output(self.folders.output, originals_by_pseudo_id)
        self.show_output_table(outputs)
        self.check_outputs(outputs)

    def original_for_source(self, source_path: str) -> Optional[OriginalStudy]:
        normalized = source_path.replace("\\", "/")
        for original in self.originals:
            if f"/{STUDIES_FOLDER}/{original.study.folder}/" in normalized + "/":
                return original
        return None

    def show_output_table(self, outputs: Sequence[OutputFile]) -> None:
        from tabulate import tabulate

        def change(before: str, after: str) -> str:
            return f"{shorten(before)} -> {shorten(after)}"

        rows = []
        for output in outputs:
            original = output.original
            # Output files are <job id>/<new SOPInstanceUID>.dcm; the UID is shortened to fit.
            shown_path = f"{output.path.parent.name}/{shorten(output.path.name)}"
            if original is None:
                rows.append((shown_path, "?", output.values["PatientName"], output.values["PatientID"], "?"))
                continue
            rows.append((
                shown_path,
                original.study.folder,
                change(original.study.patient_name, output.values["PatientName"]),
                change(original.study.patient_id, output.values["PatientID"]),
                change(original.values["StudyInstanceUID"][0], output.values["StudyInstanceUID"]),
            ))
        self.echo(f"{len(outputs)} files in {self.folders.output}, with their original and new values:")
        self.echo(tabulate(rows, headers=["output file", "original study", "PatientName", "PatientID",
                                          "StudyInstanceUID"]))

    def check_outputs(self, outputs: Sequence[OutputFile]) -> None:
        expected_count = sum(len(original.study.source_files) for original in self.originals)
        if len(outputs) != expected_count:
            raise DemoError(f"expected {expected_count} DICOM files in {self.folders.output}, found {len(outputs)}")
        unmatched = [str(output.path) for output in outputs if output.original is None]
        if unmatched:
            raise DemoError(f"output files whose PatientID is no job's pseudonym: {', '.join(unmatched)}")
        leaks = [f"{output.path.name}: {', '.join(output.leaked)}" for output in outputs if output.leaked]
        if leaks:
            raise DemoError(f"original identifying values remain in the output: {'; '.join(leaks)}")

        attributes = ", ".join(IDENTIFYING_ATTRIBUTES)
        value_count = sum(len(original.all_values()) for original in self.originals)
        self.echo("")
        self.echo(
            f"All {len(self.originals)} jobs are DONE. None of the {value_count} original values "
            f"({attributes}) occurs anywhere in the {len(outputs)} output files, "
            f"and the {sum(len(o.study.other_files) for o in self.originals)} files that are not DICOM were left out."
        )


def shorten(text: str, keep: int = 12) -> str:
    """Shorten long values such as UIDs to their last ``keep`` characters, so that tables fit a terminal."""
    return text if len(text) <= keep + 3 else "..." + text[-keep:]
