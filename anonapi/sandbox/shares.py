"""Network shares of the sandbox: UNC paths mapped to local folders.

``\\\\<any host>\\NAME\\sub\\folder`` means ``<folder of share NAME>/sub/folder``.
Forward slashes work as well. Every path is resolved, symbolic links
included, and must stay inside its share's folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple


class ShareError(Exception):
    """A UNC path cannot be used: not a UNC path, unknown share, or it leaves the share."""


class Share:
    """A folder that the sandbox serves as ``\\\\<any host>\\<name>``."""

    def __init__(self, name: str, folder: Path, read_only: bool = False):
        if not re.fullmatch(r"[^\\/:*?\"<>|]+", name):
            raise ValueError(f"Invalid share name {name!r}: it must not contain \\ / : * ? \" < > |")
        self.name = name
        self.folder = Path(folder)
        self.read_only = read_only

    @property
    def root(self) -> Path:
        """The share's folder with symbolic links resolved."""
        return Path(os.path.realpath(self.folder))

    def __repr__(self) -> str:
        return f"Share({self.name!r}, {str(self.folder)!r}, read_only={self.read_only})"


def parse_share_option(text: str, read_only: bool = False) -> Share:
    """Parse ``NAME=FOLDER`` as given to ``--share``."""
    name, separator, folder = text.partition("=")
    if not separator or not name or not folder:
        raise ValueError(f"Invalid share {text!r}: expected NAME=FOLDER, for example data=/srv/dicom")
    return Share(name.strip(), Path(folder).expanduser(), read_only=read_only)


def split_unc_path(unc_path: str) -> Tuple[str, str, List[str]]:
    """Split ``\\\\host\\share\\a\\b`` into host, share name and the remaining parts."""
    normalized = unc_path.strip().replace("/", "\\")
    if not normalized.startswith("\\\\"):
        raise ShareError(f"{unc_path!r} is not a UNC path; expected \\\\host\\share\\folder")
    parts = [part for part in normalized[2:].split("\\") if part not in ("", ".")]
    if len(parts) < 2:
        raise ShareError(f"UNC path {unc_path!r} names no share; expected \\\\host\\share\\folder")
    return parts[0], parts[1], parts[2:]


def is_inside(path: Path, root: Path) -> bool:
    """Check whether ``path`` is ``root`` or below it. Both must be resolved already."""
    return path == root or root in path.parents


class ShareMap:
    """The shares of one sandbox, by name (case-insensitive, as on Windows)."""

    def __init__(self, shares: Iterable[Share] = ()):
        self.shares: Dict[str, Share] = {}
        for share in shares:
            self.add(share)

    def add(self, share: Share) -> None:
        self.shares[share.name.lower()] = share

    def names(self) -> List[str]:
        return sorted(share.name for share in self.shares.values())

    def get_share(self, unc_path: str) -> Share:
        _, share_name, _ = split_unc_path(unc_path)
        share = self.shares.get(share_name.lower())
        if share is None:
            known = ", ".join(self.names()) or "none"
            raise ShareError(
                f"Share {share_name!r} in {unc_path!r} does not exist on this server "
                f"(shares: {known})"
            )
        return share

    def resolve(self, unc_path: str) -> Tuple[Share, Path]:
        """Return the share and local path for a UNC path.

        :raises ShareError: if the path is not a UNC path, names an unknown
            share, or leaves the share through ``..`` or a symbolic link
        """
        share = self.get_share(unc_path)
        _, _, parts = split_unc_path(unc_path)
        return share, resolve_inside(share, share.root.joinpath(*parts), unc_path)


def resolve_inside(share: Share, path: Path, shown_path: Optional[str] = None) -> Path:
    """Resolve a path and check that it stays inside the share.

    :raises ShareError: if the resolved path is outside the share's folder
    """
    resolved = Path(os.path.realpath(path))
    if not is_inside(resolved, share.root):
        raise ShareError(
            f"Path {shown_path or str(path)!r} leaves share {share.name!r}; "
            f"paths must stay inside the share (no '..' or links out of it)"
        )
    return resolved

