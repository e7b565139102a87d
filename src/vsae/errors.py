"""User-facing errors: one line that names the problem and the fix.

The CLI prints `error: <message>` for these and exits with status 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any


class VsaeError(Exception):
    """A problem with the user's input or files, with a one-line message naming the fix."""


def file_kind(mode: int) -> str:
    """'a FIFO', 'a character device' ... for a stat mode (used in one-line reasons)."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISREG, "a regular file"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: str | os.PathLike[str], what: str, fix: str) -> Path:
    """``path`` if it is a regular file (a symlink to one counts), else a one-line ``VsaeError``
    "<what> <path> is <kind>...; <fix>". Call it before opening anything a user gives: a FIFO or a
    device would block the read forever (the one check every reader of user files shares)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise VsaeError(f"{what} {p} does not exist; {fix}") from None
    except OSError as e:
        raise VsaeError(f"{what} {p} cannot be read ({e.strerror}); {fix}") from None
    if not stat.S_ISREG(st.st_mode):
        raise VsaeError(f"{what} {p} is {file_kind(st.st_mode)}, not a regular file; {fix}")
    return p


def read_json(path: str | os.PathLike[str], what: str, fix: str) -> Any:
    """The parsed JSON of the regular file ``path`` (NaN/Infinity refused), or one line naming the
    file, the problem and ``fix``."""
    p = regular_file(path, what, fix)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(p.read_bytes(), parse_constant=no_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError, OSError) as e:
        why = getattr(e, "msg", None) or getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise VsaeError(f"{what} {p} is not valid JSON ({str(why)[:80]}); {fix}") from None
