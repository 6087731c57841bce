"""Parse job ids as users type them: ``1 2 3``, ranges ``5-12`` and comma lists ``1,4,7-9``."""

from __future__ import annotations

from typing import Iterable, List

from anonapi.exceptions import UserInputError

# A range larger than this is almost certainly a typo (5-50000 for 5-500).
MAX_RANGE_SIZE = 100_000


def parse_job_ids(values: Iterable[str]) -> List[str]:
    """Expand each value into job ids, keeping order and dropping repeats.

    Ids are returned as strings, the form batch files store.

    :raises UserInputError: for a value that is not an id, a range or a comma list
    """
    result: List[str] = []
    seen = set()
    for value in values:
        for part in str(value).replace(",", " ").split():
            for job_id in _expand(part):
                if job_id not in seen:
                    seen.add(job_id)
                    result.append(job_id)
    return result


def is_job_id(text: str) -> bool:
    """Return whether ``text`` is a job id: ASCII digits only."""
    # str.isdigit alone also accepts characters such as '²' that int() rejects.
    return text.isascii() and text.isdigit()


def _expand(part: str) -> List[str]:
    if is_job_id(part):
        return [str(int(part))]
    start, separator, end = part.partition("-")
    if separator and is_job_id(start) and is_job_id(end):
        first, last = int(start), int(end)
        if first > last:
            raise UserInputError(
                f"Invalid job id range '{part}': the start is larger than the end. Write it as {last}-{first}."
            )
        if last - first + 1 > MAX_RANGE_SIZE:
            raise UserInputError(
                f"Invalid job id range '{part}': more than {MAX_RANGE_SIZE} ids. Check the numbers."
            )
        return [str(job_id) for job_id in range(first, last + 1)]
    raise UserInputError(
        f"Invalid job id '{part}'. Use whole numbers such as 12, ranges such as 5-12, or lists such as 1,4,7-9."
    )
