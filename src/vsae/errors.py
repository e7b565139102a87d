"""User-facing errors: one line that names the problem and the fix.

The CLI prints `error: <message>` for these and exits with status 2, never a traceback.
"""


class VsaeError(Exception):
    """A problem with the user's input or files, with a one-line message naming the fix."""
