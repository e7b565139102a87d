"""User-facing errors: one line that names the problem and the fix.

The CLI prints `error: <message>` for these and exits with status 2, never a traceback.
"""

from __future__ import annotations

import stat


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
