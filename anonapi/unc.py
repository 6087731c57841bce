"""UNC paths (``\\\\server\\share\\folder``) and their local counterparts.

An anonymization server reads and writes data on network shares, so every
path sent to it must be a UNC path. On the user's computer the same share is
usually reached through a mapped drive (Windows, ``H:\\data``) or a CIFS
mount (Linux, ``/mnt/share/data``). This module translates between the two.
It first uses what the system reports: the drive mappings on Windows, the
mount table on Linux and macOS. Then it uses the ``unc_paths`` map from the
settings file, which maps a local path prefix to a UNC prefix.

The parsing functions take the text of a mount table or of ``net use`` so
that they can be tested on any system.
"""

from __future__ import annotations

import logging
import ntpath
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

from anonapi.exceptions import UserInputError

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

CIFS_FILE_SYSTEM_TYPES = ("cifs", "smb3", "smbfs")

_UNC_PATTERN = re.compile(r"^[\\/]{2}[^\\/]+[\\/]+[^\\/]+")


@dataclass(frozen=True)
class ShareMount:
    """A network share reachable at a local path: ``unc`` is mounted at ``local_path``."""

    unc: str
    local_path: str


def is_unc_path(text: Optional[str]) -> bool:
    """Return True for ``\\\\server\\share`` and paths below it (forward slashes allowed)."""
    return bool(text) and bool(_UNC_PATTERN.match(str(text).strip()))


def normalize_unc(text: str) -> str:
    """Return a UNC path with backslashes and without a trailing backslash."""
    parts = [part for part in re.split(r"[\\/]+", text.strip()) if part]
    return "\\\\" + "\\".join(parts)


def join_unc(root: str, relative: Union[str, "os.PathLike[str]"]) -> str:
    """Join a UNC root and a relative path (with / or \\ separators) into one UNC path."""
    relative_parts = [part for part in re.split(r"[\\/]+", str(relative)) if part and part != "."]
    return "\\".join([normalize_unc(root), *relative_parts])


def unc_relative_to(path: str, root: str) -> Optional[str]:
    """Return ``path`` relative to ``root`` with forward slashes, or None if it is not below it.

    Server and share names are compared ignoring case, as Windows does.
    """
    path_parts = normalize_unc(path)[2:].split("\\")
    root_parts = normalize_unc(root)[2:].split("\\")
    if len(path_parts) < len(root_parts):
        return None
    if [part.lower() for part in path_parts[: len(root_parts)]] != [part.lower() for part in root_parts]:
        return None
    return "/".join(path_parts[len(root_parts):]) or "."


def parse_mount_table(text: str) -> List[ShareMount]:
    """Parse the Linux mount table (``/proc/mounts`` format) into its CIFS and SMB mounts.

    A line reads ``//server/share/sub /mnt/x cifs rw,... 0 0``. Spaces and
    other special characters are escaped as octal (``\\040``).
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[2].lower() not in CIFS_FILE_SYSTEM_TYPES:
            continue
        device, mount_point = _unescape_octal(fields[0]), _unescape_octal(fields[1])
        if is_unc_path(device):
            mounts.append(ShareMount(unc=normalize_unc(device), local_path=mount_point))
    return mounts


def parse_mount_output(text: str) -> List[ShareMount]:
    """Parse the output of ``mount`` on macOS into its SMB and CIFS mounts.

    A line reads ``//user@server/share on /Volumes/share (smbfs, nodev, ...)``.
    """
    pattern = re.compile(r"^//(?:[^@/]*@)?(?P<server>[^/\s]+)/(?P<share>.+?) on (?P<mount>.+) \((?P<type>[^,)]+)")
    mounts = []
    for line in text.splitlines():
        match = pattern.match(line.strip())
        if match and match.group("type").strip().lower() in CIFS_FILE_SYSTEM_TYPES:
            share = _unescape_percent(match.group("share"))
            mounts.append(ShareMount(unc=normalize_unc(f"//{match.group('server')}/{share}"), local_path=match.group("mount")))
    return mounts


def parse_net_use(text: str) -> List[ShareMount]:
    """Parse the output of the Windows command ``net use`` into drive mappings.

    A line reads ``OK           H:        \\\\server\\share     Microsoft Windows Network``.
    The status column may be empty and the network column may wrap to the next line.
    """
    pattern = re.compile(r"(?:^|\s)(?P<drive>[A-Za-z]:)\s+(?P<unc>\\\\\S+(?:\s\S+)*?)(?:\s{2,}|$)")
    mounts = []
    for line in text.splitlines():
        match = pattern.search(line.rstrip())
        if match and is_unc_path(match.group("unc")):
            mounts.append(ShareMount(unc=normalize_unc(match.group("unc")), local_path=match.group("drive").upper() + "\\"))
    return mounts


def find_share_mounts() -> List[ShareMount]:
    """Return the network shares that this system reports as mounted or mapped.

    Returns an empty list where the system reports nothing.
    """
    try:
        if sys.platform.startswith("linux"):
            return parse_mount_table(Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace"))
        if sys.platform == "darwin":
            output = subprocess.run(["mount"], capture_output=True, text=True, timeout=10, check=False).stdout
            return parse_mount_output(output)
        if sys.platform == "win32":
            return _windows_drive_mappings()
    except (OSError, subprocess.SubprocessError) as error:
        logger.debug("Cannot read the mounted network shares: %s", error)
    return []


def to_unc(
    path: PathLike,
    settings_unc_map: Optional[Mapping[str, str]] = None,
    mounts: Optional[List[ShareMount]] = None,
) -> Optional[str]:
    """Return the UNC path for a local path, or None if neither the system nor the settings know it.

    A path that is already a UNC path is returned normalized. ``mounts``
    defaults to what the system reports (see find_share_mounts). Where mounts
    nest, the longest local path wins. ``settings_unc_map`` maps local path
    prefixes to UNC prefixes and is tried only when the system reports no share for the path.
    """
    text = os.fspath(path)
    if is_unc_path(text):
        return normalize_unc(text)
    candidates = _local_forms(text)
    if mounts is None:
        mounts = find_share_mounts()
    prefix_map = {mount.local_path: mount.unc for mount in mounts}
    for table in (prefix_map, dict(settings_unc_map or {})):
        for candidate in candidates:
            unc = _translate_by_prefix(candidate, table)
            if unc is not None:
                return unc
    return None


def to_local(
    unc: str,
    settings_unc_map: Optional[Mapping[str, str]] = None,
    mounts: Optional[List[ShareMount]] = None,
) -> Optional[Path]:
    """Return the local path where a UNC path can be reached, or None if it is not mounted.

    This is to_unc the other way round, with the same sources in the same order.
    """
    if not is_unc_path(unc):
        return None
    if mounts is None:
        mounts = find_share_mounts()
    tables = [{mount.unc: mount.local_path for mount in mounts}, {value: key for key, value in (settings_unc_map or {}).items()}]
    for table in tables:
        best = None
        for unc_prefix, local_prefix in table.items():
            if not is_unc_path(unc_prefix):
                continue
            relative = unc_relative_to(unc, unc_prefix)
            if relative is not None and (best is None or len(unc_prefix) > len(best[0])):
                best = (unc_prefix, local_prefix, relative)
        if best is not None:
            local = Path(best[1])
            return local if best[2] == "." else local.joinpath(*best[2].split("/"))
    return None


def require_unc(path: PathLike, settings_unc_map: Optional[Mapping[str, str]] = None, name: str = "root_source_path") -> str:
    """Return the UNC path for ``path``, as to_unc does.

    :raises UserInputError: if no UNC path is known, saying how to set one
    """
    unc = to_unc(path, settings_unc_map)
    if unc is None:
        raise UserInputError(
            f"Cannot find the UNC path of {name} '{os.fspath(path)}': it is not on a mapped drive or a CIFS mount "
            f"that this computer reports. Set {name} to a UNC path such as \\\\server\\share\\folder "
            f"(anon map edit), or add the local folder and its UNC path to unc_paths in the settings file."
        )
    return unc


def _local_forms(text: str) -> List[str]:
    """Return the absolute forms of a local path to look up: as given, then with symbolic links resolved."""
    if re.match(r"^[A-Za-z]:[\\/]", text):
        # A Windows drive path is absolute already, also when another system reads it.
        return [ntpath.normpath(text)] if sys.platform != "win32" else [os.path.abspath(text)]
    absolute = os.path.abspath(text)
    forms = [absolute]
    try:
        resolved = str(Path(absolute).resolve())
    except (OSError, RuntimeError):
        resolved = absolute
    if resolved != absolute:
        forms.append(resolved)
    return forms


def _translate_by_prefix(local: str, prefix_map: Dict[str, str]) -> Optional[str]:
    """Translate ``local`` with the longest matching local prefix in ``prefix_map`` (local -> UNC)."""
    best: Optional[tuple] = None
    for local_prefix, unc_prefix in prefix_map.items():
        if not is_unc_path(unc_prefix):
            logger.warning("Ignoring unc_paths entry '%s': '%s' is not a UNC path", local_prefix, unc_prefix)
            continue
        relative = _relative_local(local, local_prefix)
        if relative is not None and (best is None or len(local_prefix) > len(best[0])):
            best = (local_prefix, unc_prefix, relative)
    if best is None:
        return None
    return join_unc(best[1], best[2])


def _relative_local(path: str, prefix: str) -> Optional[str]:
    """Return ``path`` relative to ``prefix`` when it is that folder or below it, comparing whole components."""
    if re.match(r"^[A-Za-z]:", prefix) or re.match(r"^[A-Za-z]:", path):
        # Windows paths compare without case, whatever system runs this.
        path_norm = ntpath.normcase(ntpath.normpath(path))
        prefix_norm = ntpath.normcase(ntpath.normpath(prefix)).rstrip("\\")
        if path_norm == prefix_norm:
            return "."
        if path_norm.startswith(prefix_norm + "\\"):
            return ntpath.normpath(path)[len(prefix_norm) + 1:]
        return None
    path_norm = os.path.normpath(path)
    prefix_norm = os.path.normpath(prefix)
    if path_norm == prefix_norm:
        return "."
    if prefix_norm == os.sep or path_norm.startswith(prefix_norm.rstrip(os.sep) + os.sep):
        return os.path.relpath(path_norm, prefix_norm)
    return None


def _unescape_octal(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def _unescape_percent(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _windows_drive_mappings() -> List[ShareMount]:
    """Return the mapped network drives, asking Windows through WNetGetConnectionW.

    Falls back to parsing ``net use`` if the Windows API cannot be called.
    """
    try:
        return _drive_mappings_from_api()
    except (OSError, AttributeError) as error:
        logger.debug("WNetGetConnectionW failed (%s), trying 'net use'", error)
    output = subprocess.run(["net", "use"], capture_output=True, text=True, timeout=10, check=False).stdout
    return parse_net_use(output)


def _drive_mappings_from_api() -> List[ShareMount]:
    import ctypes
    import string

    mpr = ctypes.WinDLL("mpr")  # type: ignore[attr-defined]
    logical_drives = ctypes.windll.kernel32.GetLogicalDrives()  # type: ignore[attr-defined]
    mounts = []
    for index, letter in enumerate(string.ascii_uppercase):
        if not logical_drives & (1 << index):
            continue
        buffer = ctypes.create_unicode_buffer(1024)
        length = ctypes.c_ulong(len(buffer))
        # WNetGetConnectionW returns 0 (NO_ERROR) only for network drives.
        if mpr.WNetGetConnectionW(f"{letter}:", buffer, ctypes.byref(length)) == 0 and is_unc_path(buffer.value):
            mounts.append(ShareMount(unc=normalize_unc(buffer.value), local_path=f"{letter}:\\"))
    return mounts
