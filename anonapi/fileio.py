"""Safe writes of the user's files: atomic replacement and a lock between processes."""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Union

from anonapi.exceptions import FileLockedError

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write_text(
    path: PathLike, text: str, encoding: str = "utf-8", mode: Optional[int] = None, newline: Optional[str] = None
) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one, never half.

    The text goes to a temporary file in the same folder, which is flushed to
    disk and then renamed over ``path``. ``mode`` sets the permission bits of
    the new file (for example 0o600 for files that contain secrets) before any
    content is written.

    :raises FileLockedError: if another program holds ``path`` open (Windows)
    """
    # Imported here, because commands that only read files, such as 'anon batch reset', need not pay for it.
    import tempfile

    target = Path(path)
    try:
        descriptor, temporary_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except PermissionError as error:
        raise _locked_error(target) from error
    try:
        if mode is not None:
            os.chmod(temporary_name, mode)
        elif target.exists():
            os.chmod(temporary_name, target.stat().st_mode & 0o777)
        else:
            os.chmod(temporary_name, 0o666 & ~_current_umask())
        with os.fdopen(descriptor, "w", encoding=encoding, newline=newline) as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(temporary_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary_name)
        raise


def _replace(source: str, target: Path) -> None:
    try:
        os.replace(source, target)
    except PermissionError as error:
        # On Windows a file that Excel has open cannot be replaced.
        raise _locked_error(target) from error


def _locked_error(target: Path) -> FileLockedError:
    return FileLockedError(
        f"Cannot write '{target}': permission denied, because another program such as Excel has it open or "
        f"the folder '{target.parent}' is read-only. Close it in the other program and try again, or ask for "
        "write permission on the folder."
    )


def delete_file(path: PathLike) -> None:
    """Remove a user's file.

    :raises FileLockedError: if another program has the file open (Windows), or the folder is read-only
    """
    target = Path(path)
    try:
        target.unlink()
    except PermissionError as error:
        raise FileLockedError(
            f"Cannot delete '{target}': permission denied. If another program such as Excel has it open, "
            f"close it in the other program and try again; else ask for write permission on '{target.parent}'."
        ) from error


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def file_lock(path: PathLike, timeout: float = 30.0) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` while the block runs.

    Other anonapi processes that lock the same path wait, so that two
    read-modify-write cycles on one file cannot lose each other's changes.
    The lock is an O_EXCL lock file, which works on Windows and on network
    shares. A lock file older than ``timeout`` seconds is taken to be left
    over from a crashed process and removed.

    :raises FileLockedError: if the lock is not free within ``timeout`` seconds
    """
    lock_path = Path(f"{path}.lock")
    deadline = time.monotonic() + timeout
    while True:
        try:
            descriptor = os.open(lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(descriptor, f"{os.getpid()} {socket.gethostname()}".encode())
            os.close(descriptor)
            break
        except FileExistsError:
            _remove_stale_lock(lock_path, timeout)
            if time.monotonic() > deadline:
                raise FileLockedError(
                    f"Cannot lock '{path}': another anon process has held '{lock_path}' for "
                    f"{timeout:.0f} s. If none is running, delete '{lock_path}' and try again."
                ) from None
            time.sleep(0.01)
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise FileLockedError(f"Cannot lock '{path}': {error.strerror}. Check the folder's permissions.") from error
            raise
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock_path)


def _remove_stale_lock(lock_path: Path, max_age: float) -> None:
    with contextlib.suppress(OSError):
        if _owner_has_exited(lock_path) or time.time() - lock_path.stat().st_mtime > max_age:
            lock_path.unlink()


def _owner_has_exited(lock_path: Path) -> bool:
    """Return whether the lock's owner ran on this host and is no longer running."""
    if sys.platform == "win32":
        # os.kill(pid, 0) terminates the process on Windows, so only the age check applies there.
        return False
    try:
        pid_text, _, host = lock_path.read_text().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    if host.strip() != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
