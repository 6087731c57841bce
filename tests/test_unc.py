"""UNC paths: recognizing them, and converting between local paths and UNC paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from anonapi.exceptions import UserInputError
from anonapi.unc import (
    ShareMount,
    is_unc_path,
    join_unc,
    normalize_unc,
    parse_mount_output,
    parse_mount_table,
    parse_net_use,
    require_unc,
    to_local,
    to_unc,
    unc_relative_to,
)

PROC_MOUNTS = """\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
/dev/sda1 / ext4 rw,relatime 0 0
//fileserver/research /mnt/research cifs rw,relatime,vers=3.1.1,cache=strict,username=z123 0 0
//fileserver/radng$/data /mnt/radng\\040data smb3 rw,relatime 0 0
//nas/share /mnt/research/nested cifs rw 0 0
nas:/export /mnt/nfs nfs4 rw 0 0
"""

NET_USE = """\
New connections will be remembered.


Status       Local     Remote                    Network

-------------------------------------------------------------------------------
OK           H:        \\\\umcfs097\\radngdata$     Microsoft Windows Network
Disconnected X:        \\\\server1\\share2         Microsoft Windows Network
             Z:        \\\\a-very-long-server-name\\and-a-long-share-name
                                                Microsoft Windows Network
The command completed successfully.
"""

MACOS_MOUNT = """\
/dev/disk3s1s1 on / (apfs, sealed, local, read-only, journaled)
//z123@fileserver/research%20data on /Volumes/research data (smbfs, nodev, nosuid, mounted by z123)
map auto_home on /System/Volumes/Data/home (autofs, automounted, nobrowse)
"""


@pytest.mark.parametrize(
    "text",
    ["\\\\server\\share", "\\\\server\\share\\folder\\file.dcm", "//server/share/folder", "\\\\umcfs097\\radngdata$"],
)
def test_is_unc_path_accepts(text):
    assert is_unc_path(text)


@pytest.mark.parametrize("text", ["", None, "C:\\data", "/mnt/share", "\\tmp\\data", "\\\\server", "relative\\path"])
def test_is_unc_path_rejects(text):
    assert not is_unc_path(text)


def test_normalize_unc_uses_backslashes():
    assert normalize_unc("//server/share/a/") == "\\\\server\\share\\a"


def test_join_unc_relative_with_slashes():
    assert join_unc("\\\\server\\share\\data", "patient1/study") == "\\\\server\\share\\data\\patient1\\study"


def test_unc_relative_to_ignores_case():
    assert unc_relative_to("\\\\Server\\Share\\data\\p1", "\\\\server\\share") == "data/p1"


def test_unc_relative_to_other_share():
    assert unc_relative_to("\\\\server\\other\\p1", "\\\\server\\share") is None


def test_parse_mount_table_finds_cifs_and_smb3():
    mounts = parse_mount_table(PROC_MOUNTS)
    assert mounts == [
        ShareMount(unc="\\\\fileserver\\research", local_path="/mnt/research"),
        ShareMount(unc="\\\\fileserver\\radng$\\data", local_path="/mnt/radng data"),
        ShareMount(unc="\\\\nas\\share", local_path="/mnt/research/nested"),
    ]


def test_parse_net_use_drives():
    mounts = parse_net_use(NET_USE)
    assert mounts == [
        ShareMount(unc="\\\\umcfs097\\radngdata$", local_path="H:\\"),
        ShareMount(unc="\\\\server1\\share2", local_path="X:\\"),
        ShareMount(unc="\\\\a-very-long-server-name\\and-a-long-share-name", local_path="Z:\\"),
    ]


def test_parse_mount_output_macos():
    mounts = parse_mount_output(MACOS_MOUNT)
    assert mounts == [ShareMount(unc="\\\\fileserver\\research data", local_path="/Volumes/research data")]


def test_to_unc_below_cifs_mount():
    mounts = parse_mount_table(PROC_MOUNTS)
    assert to_unc("/mnt/research/study1/patient2", mounts=mounts) == "\\\\fileserver\\research\\study1\\patient2"


def test_to_unc_mount_point_itself():
    mounts = parse_mount_table(PROC_MOUNTS)
    assert to_unc("/mnt/research", mounts=mounts) == "\\\\fileserver\\research"


def test_to_unc_nested_mount_wins():
    mounts = parse_mount_table(PROC_MOUNTS)
    assert to_unc("/mnt/research/nested/a", mounts=mounts) == "\\\\nas\\share\\a"


def test_to_unc_escaped_mount_point():
    mounts = parse_mount_table(PROC_MOUNTS)
    assert to_unc("/mnt/radng data/p1", mounts=mounts) == "\\\\fileserver\\radng$\\data\\p1"


def test_to_unc_prefix_is_whole_component():
    mounts = [ShareMount(unc="\\\\server\\share", local_path="/mnt/data")]
    assert to_unc("/mnt/database/x", mounts=mounts) is None


def test_to_unc_mapped_drive():
    mounts = parse_net_use(NET_USE)
    assert to_unc("H:\\mydata\\patient1", mounts=mounts) == "\\\\umcfs097\\radngdata$\\mydata\\patient1"


def test_to_unc_mapped_drive_ignores_case():
    mounts = parse_net_use(NET_USE)
    assert to_unc("h:\\MyData", mounts=mounts) == "\\\\umcfs097\\radngdata$\\MyData"


def test_to_unc_settings_fallback(tmp_path):
    unc_map = {str(tmp_path / "share"): "\\\\localhost\\share"}
    assert to_unc(tmp_path / "share" / "p1", unc_map, mounts=[]) == "\\\\localhost\\share\\p1"


def test_to_unc_system_before_settings(tmp_path):
    mounts = [ShareMount(unc="\\\\system\\share", local_path=str(tmp_path))]
    unc_map = {str(tmp_path): "\\\\settings\\share"}
    assert to_unc(tmp_path / "a", unc_map, mounts=mounts) == "\\\\system\\share\\a"


def test_to_unc_follows_symbolic_link(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    unc_map = {str(tmp_path / "real"): "\\\\server\\share"}
    assert to_unc(tmp_path / "link" / "x", unc_map, mounts=[]) == "\\\\server\\share\\x"


def test_to_unc_unknown_is_none(tmp_path):
    assert to_unc(tmp_path, {}, mounts=[]) is None


def test_to_unc_keeps_unc_path():
    assert to_unc("//server/share/x", mounts=[]) == "\\\\server\\share\\x"


def test_to_unc_ignores_invalid_settings_entry(tmp_path):
    assert to_unc(tmp_path / "a", {str(tmp_path): "/not/unc"}, mounts=[]) is None


def test_to_local_through_mount():
    mounts = parse_mount_table(PROC_MOUNTS)
    assert to_local("\\\\FileServer\\research\\p1\\s1", mounts=mounts) == Path("/mnt/research/p1/s1")


def test_to_local_through_settings(tmp_path):
    unc_map = {str(tmp_path): "\\\\localhost\\share"}
    assert to_local("\\\\localhost\\share\\a\\b", unc_map, mounts=[]) == tmp_path / "a" / "b"


def test_to_local_not_mounted():
    assert to_local("\\\\server\\share\\a", {}, mounts=[]) is None


def test_require_unc_error_says_how(tmp_path, monkeypatch):
    monkeypatch.setattr("anonapi.unc.find_share_mounts", lambda: [])
    with pytest.raises(UserInputError, match="Set root_source_path to a UNC path .*unc_paths in the settings file"):
        require_unc(tmp_path)


def test_require_unc_returns_unc(tmp_path, monkeypatch):
    monkeypatch.setattr("anonapi.unc.find_share_mounts", lambda: [])
    assert require_unc(tmp_path / "x", {str(tmp_path): "\\\\s\\share"}) == "\\\\s\\share\\x"
