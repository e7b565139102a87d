"""How `vsae serve` listens and what it accepts (torch- and starlette-free: the command's options are
generated from these fields by :mod:`vsae.cli.from_config`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    """The server's settings.

    Attributes
    ----------
    port: port on 127.0.0.1 (0: a free one).
    threads: torch threads per request (requests already run in parallel worker threads).
    max_upload_mb: largest upload.
    """

    port: int = 0
    threads: int = 1
    max_upload_mb: float = 8.0

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes (MiB)."""
        return int(self.max_upload_mb * (1 << 20))
