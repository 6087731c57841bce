"""Find the DICOM files among the files of a folder.

With a check, a file counts as DICOM when its header can be read. That
header is the 128-byte preamble and ``DICM`` prefix followed by the file
meta information, or a data set near the start of the file without either
(as in pydicom's test file ``no_meta.dcm``). DICOMDIR files are media
directories, not images, and never count. The parser in this module decides
most files from their first few kilobytes. pydicom reads the header of the
rest, stopping before the pixel data.

Without a check, files are chosen by name: no extension, an extension of
digits only (``1.2.840.1234.5``), ``.dcm`` or ``.dicom``.

When files are slow to read, a few threads read them in parallel, because
a network share serves many requests at once faster than one at a time.
"""

from __future__ import annotations

import enum
import logging
import os
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, TypeVar

logger = logging.getLogger(__name__)

DICOMDIR_SOP_CLASS_UID = "1.2.840.10008.1.3.10"
DEFAULT_MAX_WORKERS = 8
# Bytes read from the start of a file to decide. A file meta group is
# usually 150 to 400 bytes long; files with a longer one go to pydicom.
HEADER_READ_SIZE = 4096
# Files per task given to the thread pool: large enough to keep the
# overhead per task small, small enough for a smooth progress bar.
FILES_PER_TASK = 64
# Reading a file header from the page cache takes about 0.02 ms, and from a
# network share or a disk that must seek 1 ms or more (estimates). Threads
# help above this time per file.
SLOW_FILE_SECONDS = 0.0002

DICOM_NAME_EXTENSIONS = (".dcm", ".dicom")

_IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"

# The DICOM value representations. Those in the second set have a 2-byte
# reserved field and a 4-byte length in explicit VR.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_VRS_WITH_LONG_LENGTH = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_UNDEFINED_LENGTH = 0xFFFFFFFF
_TAG_AND_VR = struct.Struct("<HH2s")
# (0002,0000) UL with length 4: the file meta group length.
_GROUP_LENGTH_PREFIX = b"\x02\x00\x00\x00UL\x04\x00"
# (0002,0002) media storage SOP class UID and (0002,0010) transfer syntax UID, explicit VR little endian.
_META_UID_MARKERS = ((0x0002, b"\x02\x00\x02\x00UI"), (0x0010, b"\x02\x00\x10\x00UI"))
_UINT16_LE = struct.Struct("<H")
_UINT32_LE = struct.Struct("<L")
# Number of data set elements checked when a file has no preamble.
_ELEMENTS_TO_CHECK = 4
# Stray bytes allowed before a data set without preamble: the length of a preamble and prefix.
MAX_LEADING_BYTES = 132
# The first group (0002, 0004 or 0008) in both byte orders.
_FIRST_GROUP_PATTERNS = (b"\x02\x00", b"\x04\x00", b"\x08\x00", b"\x00\x02", b"\x00\x04", b"\x00\x08")
# Tags pydicom keeps when it confirms a header: enough to tell an image from a directory.
_CONFIRMING_TAGS = ["SOPClassUID", "StudyInstanceUID", "DirectoryRecordSequence"]

ProgressCallback = Callable[[int], None]
PathType = TypeVar("PathType", str, Path)


class DataSetStart(NamedTuple):
    """The offset and encoding of a data set without preamble."""

    offset: int
    little_endian: bool
    explicit_vr: bool


class HeaderVerdict(enum.Enum):
    """The outcome of looking at the first bytes of a file."""

    DICOM = "dicom"
    DICOMDIR = "dicomdir"
    NOT_DICOM = "not dicom"
    UNDECIDED = "undecided"


def is_dicomdir_name(path: os.PathLike | str) -> bool:
    """Return True for files named DICOMDIR (any case), the name DICOM media directories must have."""
    return os.path.basename(os.fspath(path)).upper() == "DICOMDIR"


def looks_like_dicom_name(path: os.PathLike | str) -> bool:
    """Return True when a file's name fits DICOM: no extension, digits-only extension, .dcm or .dicom.

    Hidden files (name starting with a dot) and DICOMDIR files do not fit.
    """
    name = Path(path).name
    if name.startswith(".") or is_dicomdir_name(name):
        return False
    suffix = Path(name).suffix.lower()
    return suffix == "" or suffix[1:].isdigit() or suffix in DICOM_NAME_EXTENSIONS


def is_dicom_file(path: os.PathLike | str) -> bool:
    """Return True when the file has a readable DICOM header and is not a DICOMDIR.

    A file that cannot be opened or read counts as not DICOM, and a WARNING
    log message gives the reason, because the user may expect it in the selection.
    """
    if is_dicomdir_name(path):
        return False
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError as error:
        logger.warning("Cannot open '%s', leaving it out as not DICOM: %s", path, error.strerror or error)
        return False
    try:
        head = _read_head(descriptor)
        file_size = len(head) if len(head) < HEADER_READ_SIZE else os.fstat(descriptor).st_size
        verdict = inspect_header(head, file_size)
        if verdict is HeaderVerdict.UNDECIDED:
            with open(path, "rb") as handle:
                verdict = _read_header_with_pydicom(handle, head, file_size)
    except OSError as error:
        logger.warning("Cannot read '%s', leaving it out as not DICOM: %s", path, error.strerror or error)
        return False
    finally:
        os.close(descriptor)
    return verdict is HeaderVerdict.DICOM


def _read_head(descriptor: int) -> bytes:
    """Read the first HEADER_READ_SIZE bytes, or the whole file if it is shorter."""
    head = os.read(descriptor, HEADER_READ_SIZE)
    while 0 < len(head) < HEADER_READ_SIZE:
        # Network file systems may return less than asked before the end of the file.
        more = os.read(descriptor, HEADER_READ_SIZE - len(head))
        if not more:
            break
        head += more
    return head


def inspect_header(head: bytes, file_size: Optional[int] = None) -> HeaderVerdict:
    """Decide from the first bytes of a file whether it is DICOM.

    ``head`` is the start of the file (HEADER_READ_SIZE bytes or the whole
    file if shorter) and ``file_size`` its full size. Returns UNDECIDED when
    the bytes fit DICOM but pydicom must read the header to be sure.
    """
    if file_size is None:
        file_size = len(head)
    if len(head) >= 132 and head[128:132] == b"DICM":
        return _inspect_file_with_preamble(head, file_size)
    if find_data_set_start(head, file_size) is None:
        return HeaderVerdict.NOT_DICOM
    return HeaderVerdict.UNDECIDED


def find_data_set_start(head: bytes, file_size: Optional[int] = None) -> Optional[DataSetStart]:
    """Find where a DICOM data set starts in a file without preamble, or return None.

    The data set may start at byte 0 or after up to MAX_LEADING_BYTES stray
    bytes: pydicom's test file ``no_meta.dcm`` has one such byte, left over
    from a file meta group that was cut off. A start fits when the first
    group is 0002 (file meta), 0004 (directory) or 0008 and the elements from
    there parse in one of the three uncompressed encodings.
    """
    if file_size is None:
        file_size = len(head)
    window = head[: MAX_LEADING_BYTES + 2]
    offsets = sorted(
        {index for pattern in _FIRST_GROUP_PATTERNS for index in _find_all(window, pattern) if index <= MAX_LEADING_BYTES}
    )
    for offset in offsets:
        for little_endian, explicit_vr in ((True, True), (True, False), (False, True)):
            try:
                first_group = _parse_elements(head, offset, file_size, little_endian, explicit_vr, _ELEMENTS_TO_CHECK)
            except (_NotDicom, _NeedMoreBytes):
                continue
            if first_group in (0x0002, 0x0004, 0x0008):
                return DataSetStart(offset, little_endian, explicit_vr)
    return None


def find_files(folder: os.PathLike | str, recurse: bool = True) -> List[Path]:
    """Return every file in ``folder`` (and its subfolders if ``recurse``), sorted by path.

    Symbolic links to folders are not followed, so a link loop cannot make this run forever.
    """
    return [Path(path) for path in list_files(folder, recurse)]


def list_files(folder: os.PathLike | str, recurse: bool = True) -> List[str]:
    """Return the paths of every file in ``folder`` as strings, sorted folder by folder.

    find_files with strings, which is faster for tens of thousands of files.
    """
    found = []
    pending = [os.fspath(folder)]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if recurse:
                            pending.append(entry.path)
                    elif entry.is_file():
                        found.append(entry.path)
        except OSError as error:
            logger.warning("Cannot list folder '%s', skipping it: %s", current, error)
    # Sorting on the parts gives the order of sorted Path objects ('a/b' before 'a-b/c').
    found.sort(key=lambda path: path.split(os.sep))
    return found


def select_dicom_files(
    paths: Sequence[PathType],
    check_dicom: bool = True,
    max_workers: int = DEFAULT_MAX_WORKERS,
    on_progress: Optional[ProgressCallback] = None,
) -> List[PathType]:
    """Return the paths that are DICOM files, in their original order.

    With ``check_dicom`` each file's header is read (see is_dicom_file);
    without it the name decides (see looks_like_dicom_name).
    ``on_progress(count)`` is called with the number of files just checked,
    for a progress bar.

    Files are read in this thread while they come fast (from a local disk or
    the page cache), because threads only add overhead there. Once a batch
    of files takes longer than SLOW_FILE_SECONDS per file, as on a network
    share, the rest is read by ``max_workers`` threads.
    """
    if not check_dicom:
        if on_progress is not None:
            on_progress(len(paths))
        return [path for path in paths if looks_like_dicom_name(path)]

    chunks = [paths[start:start + FILES_PER_TASK] for start in range(0, len(paths), FILES_PER_TASK)]
    selected: List[PathType] = []
    remaining = 0
    for index, chunk in enumerate(chunks):
        start = time.perf_counter()
        selected.extend(_check_chunk(chunk))
        if on_progress is not None:
            on_progress(len(chunk))
        if max_workers > 1 and time.perf_counter() - start > SLOW_FILE_SECONDS * len(chunk):
            remaining = index + 1
            break
    else:
        return selected

    logger.debug("Files are slow to read, checking the remaining ones with %d threads", max_workers)
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="dicom-check") as executor:
        # map() returns results in submission order, which keeps the paths in order.
        for chunk, dicom_paths in zip(chunks[remaining:], executor.map(_check_chunk, chunks[remaining:])):
            selected.extend(dicom_paths)
            if on_progress is not None:
                on_progress(len(chunk))
    return selected


def _check_chunk(paths: Sequence[PathType]) -> List[PathType]:
    return [path for path in paths if is_dicom_file(path)]


def _inspect_file_with_preamble(head: bytes, file_size: int) -> HeaderVerdict:
    """Parse the file meta group after ``DICM`` and the first element of the data set."""
    found = _find_file_meta_uids(head)
    if found is not None:
        meta, offset = found
    else:
        try:
            meta, offset = _parse_file_meta(head, 132)
        except (_NeedMoreBytes, _NotDicom):
            return HeaderVerdict.UNDECIDED
    if meta.get(0x0002) == DICOMDIR_SOP_CLASS_UID:
        return HeaderVerdict.DICOMDIR
    if 0x0010 not in meta:
        # Without a transfer syntax the data set encoding must be guessed, which pydicom does.
        return HeaderVerdict.UNDECIDED
    transfer_syntax = meta[0x0010]
    if transfer_syntax == _DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        return HeaderVerdict.DICOM
    if offset >= file_size:
        return HeaderVerdict.UNDECIDED
    little_endian = transfer_syntax != _EXPLICIT_VR_BIG_ENDIAN
    explicit_vr = transfer_syntax != _IMPLICIT_VR_LITTLE_ENDIAN
    try:
        _parse_elements(head, offset, file_size, little_endian, explicit_vr, count=1, min_group=0x0003)
    except (_NeedMoreBytes, _NotDicom):
        # Some files do not match their own transfer syntax, and pydicom copes with many of them.
        return HeaderVerdict.UNDECIDED
    return HeaderVerdict.DICOM


class _NotDicom(Exception):
    pass


class _NeedMoreBytes(Exception):
    pass


def _find_file_meta_uids(head: bytes) -> Optional[Tuple[dict, int]]:
    """Find the media storage SOP class and transfer syntax UIDs by their tag and VR bytes.

    The fast path for the usual file meta group that starts with its group
    length (0002,0000), which gives the end of the group. The other meta
    elements hold UIDs, names and a 2-byte version, which cannot contain
    these byte sequences. Returns None for any other layout, which
    _parse_file_meta then walks element by element.
    """
    if head[132:140] != _GROUP_LENGTH_PREFIX or len(head) < 144:
        return None
    group_end = 144 + _UINT32_LE.unpack_from(head, 140)[0]
    if group_end > len(head):
        return None
    values = {}
    for element, marker in _META_UID_MARKERS:
        index = head.find(marker, 144, group_end)
        if index >= 0:
            (length,) = _UINT16_LE.unpack_from(head, index + 6)
            values[element] = head[index + 8:index + 8 + length].rstrip(b"\x00 ").decode("ascii", "replace")
    return values, group_end


def _parse_file_meta(head: bytes, offset: int) -> Tuple[dict, int]:
    """Parse the group 0002 elements (always explicit VR little endian) starting at ``offset``.

    Returns a map from element number to text value for the UID elements
    (and None for the others) and the offset of the first element after the
    group. When the group starts with its length (0002,0000), parsing stops
    as soon as the media storage SOP class and transfer syntax are known.
    """
    values: dict = {}
    group_end = None
    while True:
        if group_end is not None and offset >= group_end:
            return values, group_end
        if offset + 8 > len(head):
            raise _NeedMoreBytes
        group, element, vr = _TAG_AND_VR.unpack_from(head, offset)
        if group != 0x0002:
            if not values:
                raise _NotDicom
            return values, offset
        if vr not in _VRS:
            raise _NotDicom
        if vr in _VRS_WITH_LONG_LENGTH:
            if offset + 12 > len(head):
                raise _NeedMoreBytes
            (length,) = _UINT32_LE.unpack_from(head, offset + 8)
            value_offset = offset + 12
        else:
            (length,) = _UINT16_LE.unpack_from(head, offset + 6)
            value_offset = offset + 8
        if length == _UNDEFINED_LENGTH:
            raise _NotDicom
        if value_offset + length > len(head):
            raise _NeedMoreBytes
        if element == 0x0000 and vr == b"UL" and length == 4 and not values:
            group_end = value_offset + 4 + _UINT32_LE.unpack_from(head, value_offset)[0]
        if vr == b"UI":
            values[element] = head[value_offset:value_offset + length].rstrip(b"\x00 ").decode("ascii", "replace")
        else:
            values.setdefault(element, None)
        offset = value_offset + length
        if group_end is not None and 0x0002 in values and 0x0010 in values:
            offset = group_end


def _parse_elements(
    head: bytes,
    offset: int,
    file_size: int,
    little_endian: bool,
    explicit_vr: bool,
    count: int,
    min_group: int = 0x0002,
) -> int:
    """Parse up to ``count`` data elements from ``offset`` and return the group of the first.

    Checks that tags increase, that explicit VRs are valid and that lengths
    fit in the file. Stops early at the end of the file.

    :raises _NotDicom: if the bytes do not parse as elements
    :raises _NeedMoreBytes: if ``head`` ends before ``count`` elements and the file goes on
    """
    byte_order = "<" if little_endian else ">"
    first_group = None
    previous_tag = -1
    for _ in range(count):
        if offset >= file_size:
            break
        if offset + 8 > len(head):
            raise _NeedMoreBytes
        group, element = struct.unpack_from(byte_order + "HH", head, offset)
        tag = (group << 16) | element
        if tag <= previous_tag or group < min_group or group == 0xFFFE:
            raise _NotDicom
        if explicit_vr:
            vr = head[offset + 4:offset + 6]
            if vr not in _VRS:
                raise _NotDicom
            if vr in _VRS_WITH_LONG_LENGTH:
                if head[offset + 6:offset + 8] != b"\x00\x00":
                    raise _NotDicom
                if offset + 12 > len(head):
                    raise _NeedMoreBytes
                (length,) = struct.unpack_from(byte_order + "L", head, offset + 8)
                value_offset = offset + 12
            else:
                (length,) = struct.unpack_from(byte_order + "H", head, offset + 6)
                value_offset = offset + 8
        else:
            (length,) = struct.unpack_from(byte_order + "L", head, offset + 4)
            value_offset = offset + 8
        if first_group is None:
            first_group = group
        if length == _UNDEFINED_LENGTH:
            # An element of undefined length (a sequence or encapsulated pixel
            # data) needs a full parser, so the check ends with the elements so far.
            break
        if value_offset + length > file_size:
            raise _NotDicom
        previous_tag = tag
        offset = value_offset + length
    if first_group is None:
        raise _NotDicom
    return first_group


def _read_header_with_pydicom(handle: BinaryIO, head: bytes, file_size: int) -> HeaderVerdict:
    """Read the header with pydicom, stopping before the pixel data, and judge what it finds.

    ``handle`` is the open file at position 0. For a file without preamble
    pydicom reads from the data set start that find_data_set_start found.
    """
    import pydicom

    has_preamble = head[128:132] == b"DICM"
    source: BinaryIO = handle
    if not has_preamble:
        start = find_data_set_start(head, file_size)
        if start is None:
            return HeaderVerdict.NOT_DICOM
        source = _FileFromOffset(handle, start.offset)
    try:
        dataset = pydicom.dcmread(source, stop_before_pixels=True, force=not has_preamble, specific_tags=_CONFIRMING_TAGS)
        return _judge_data_set(dataset)
    except Exception as error:  # noqa: BLE001 - pydicom raises many kinds of errors on damaged files
        # Element values are parsed when first used, so _judge_data_set can fail on a damaged file too.
        logger.debug("pydicom cannot read the header of '%s': %s", getattr(handle, "name", handle), error)
        return HeaderVerdict.NOT_DICOM


def _judge_data_set(dataset) -> HeaderVerdict:
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS_UID:
        return HeaderVerdict.DICOMDIR
    if "DirectoryRecordSequence" in dataset:
        return HeaderVerdict.DICOMDIR
    # pydicom reads many files that are no DICOM without complaint, with force=True
    # and even after a 'DICM' prefix. A data set that identifies an object or
    # study is what sets real DICOM apart.
    if "SOPClassUID" not in dataset and "StudyInstanceUID" not in dataset:
        return HeaderVerdict.NOT_DICOM
    return HeaderVerdict.DICOM


class _FileFromOffset:
    """A read-only view of an open file that starts ``offset`` bytes in, for pydicom."""

    def __init__(self, handle: BinaryIO, offset: int):
        self._handle = handle
        self._offset = offset
        self.name = getattr(handle, "name", "<file>")
        handle.seek(offset)

    def read(self, size: int = -1) -> bytes:
        return self._handle.read(size)

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position += self._offset
        return self._handle.seek(position, whence) - self._offset

    def tell(self) -> int:
        return self._handle.tell() - self._offset


def _find_all(data: bytes, pattern: bytes) -> Iterator[int]:
    index = data.find(pattern)
    while index != -1:
        yield index
        index = data.find(pattern, index + 1)
