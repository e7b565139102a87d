"""How `vsae serve` listens and what it accepts (torch- and starlette-free: the command's options are
generated from these fields by :mod:`vsae.cli.from_config`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    """The server's settings.

    Attributes
    ----------
    host: address to bind (default 127.0.0.1, this machine only; the server has no login, so
      another address exposes it to that network).
    port: port to listen on (0: a free one).
    allow_host: extra Host names the server answers to, comma-separated (e.g. a name that points
      at --host); loopback names and --host itself are always allowed.
    threads: torch threads per request (requests already run in parallel worker threads).
    max_upload_mb: largest upload.
    """

    host: str = "127.0.0.1"
    port: int = 0
    allow_host: str = ""
    threads: int = 1
    max_upload_mb: float = 8.0

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes (MiB)."""
        return int(self.max_upload_mb * (1 << 20))

    @property
    def extra_hosts(self) -> tuple[str, ...]:
        """``allow_host`` as a tuple of names."""
        return tuple(h.strip() for h in self.allow_host.split(",") if h.strip())
