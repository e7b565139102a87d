"""Offline-aware access to the Hugging Face hub: decide once, before any `from_pretrained`,
whether a hub id can be loaded, so that a model that is not in the local cache fails at once
with one line when there is no network (instead of ~33 s of connection retries).

- `HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE` set: only the local cache is used.
- Otherwise a 1 s probe of the hub's host (`HF_ENDPOINT`, default huggingface.co) decides;
  with no connectivity the cache is used alone (no retries), and an id that is not cached is
  a one-line error.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from urllib.parse import urlparse

from vsae.errors import VsaeError

_TRUE = {"1", "on", "yes", "true"}
ROOT_FILES = ("config.json", "model_index.json")  # a model, or a diffusers pipeline


def offline_env() -> bool:
    """True when the environment asks for offline mode (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)."""
    if any(
        os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    ):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except (ImportError, AttributeError):
        return False


def endpoint() -> tuple[str, int]:
    """(host, port) of the hub endpoint (HF_ENDPOINT or https://huggingface.co)."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


@functools.lru_cache(maxsize=4)
def _probe(host: str, port: int, timeout: float) -> bool:
    result: list[bool] = []

    def connect() -> None:
        try:
            # getaddrinfo has no timeout of its own: the thread's join bounds it.
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=connect, daemon=True, name="vsae-hub-probe")
    t.start()
    t.join(2 * timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = 1.0) -> bool:
    """Whether a TCP connection to the hub's host opens within ``timeout`` seconds (cached per process)."""
    host, port = endpoint()
    return _probe(host, port, float(timeout))


def in_cache(model_id: str) -> bool:
    """Whether the local Hugging Face cache holds ``model_id``'s config.json, or the
    model_index.json of a pipeline (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return any(isinstance(try_to_load_from_cache(model_id, f), str) for f in ROOT_FILES)
    except Exception:  # an id the hub library refuses (e.g. malformed) is simply not cached
        return False


def local_files_only(model_id: str) -> bool:
    """For a hub id (not a local directory): True when it must load from the cache alone
    (offline mode or no connectivity); a one-line VsaeError at once when it is not cached then."""
    if os.path.isdir(model_id):
        return False
    if model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1:  # a path, never a hub id
        raise VsaeError(
            f"cannot load model {model_id!r}: no such directory; give a local model directory or a hub id (org/name)"
        )
    offline = offline_env()
    if not offline and hub_reachable():
        return False
    if in_cache(model_id):
        return True
    why = "HF_HUB_OFFLINE is set" if offline else f"{endpoint()[0]} is unreachable (no network)"
    raise VsaeError(
        f"cannot load model {model_id!r}: not a local directory, not in the Hugging Face cache, and {why}; "
        "give a local model directory or download the model where there is network"
    )
