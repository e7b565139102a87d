"""Strict reading of the JSON bodies of the POST routes: each bad field is one clear 400.

Integers must be JSON integers (not ``true``, not ``"10"``, not ``10.7``), numbers finite JSON
numbers within a bound, required fields present; a body past its size limit is a 413.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request

from vsae.errors import VsaeError

MAX_VALUE = 1e6  # |value| of a latent edit; SAE activations are far below it
MAX_SEED = 2**32 - 1  # torch generators take 64-bit seeds; 32 bits are plenty and portable

REQUIRED: Any = object()  # a default meaning "the field is required"


async def json_object(req: Request, max_bytes: int) -> dict[str, Any]:
    """The request body as a JSON object: 413 past `max_bytes` (declared or read), 400 when it is
    not ``application/json`` or not a JSON object."""
    ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise VsaeError("the request body must be a JSON object sent as Content-Type: application/json")
    declared = req.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"JSON body of {int(declared)} bytes is over the limit of {max_bytes}")
    buf = bytearray()
    async for chunk in req.stream():
        buf += chunk
        if len(buf) > max_bytes:
            raise HTTPException(413, f"JSON body is over the limit of {max_bytes} bytes")
    try:
        body = json.loads(bytes(buf))
    except (ValueError, RecursionError):
        raise VsaeError("the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise VsaeError("the request body must be a JSON object")
    return body


def integer(body: dict[str, Any], name: str, lo: int, hi: int, default: Any = REQUIRED) -> int:
    """Field `name`: a JSON integer in lo..hi (`default` when absent; required without one)."""
    v = body.get(name, REQUIRED)
    if v is REQUIRED or v is None:
        if default is REQUIRED:
            raise VsaeError(f"give {name} (an integer in {lo}..{hi})")
        return int(default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise VsaeError(f"{name} must be an integer in {lo}..{hi}, not {json.dumps(v)[:40]}")
    if not lo <= v <= hi:
        raise VsaeError(f"{name} {v} out of range ({lo}..{hi})")
    return v


def number(body: dict[str, Any], name: str, bound: float, default: Any = REQUIRED) -> float:
    """Field `name`: a finite JSON number with |x| <= bound (`default` when absent)."""
    v = body.get(name, REQUIRED)
    if v is REQUIRED or v is None:
        if default is REQUIRED:
            raise VsaeError(f"give {name} (a finite number, |{name}| <= {bound:g})")
        return float(default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise VsaeError(f"{name} must be a finite number, not {json.dumps(v)[:40]}")
    x = float(v) if abs(v) < 1e300 else math.inf  # a huge JSON int would overflow float()
    if not math.isfinite(x) or abs(x) > bound:
        raise VsaeError(f"{name} must be a finite number with |{name}| <= {bound:g}")
    return x


def choice(body: dict[str, Any], name: str, options: tuple[str, ...], default: str) -> str:
    """Field `name`: one of `options` (`default` when absent)."""
    v = body.get(name, default)
    if v is None:
        v = default
    if not isinstance(v, str) or v not in options:
        raise VsaeError(f"unknown {name} {str(v)[:40]!r}; use one of {', '.join(options)}")
    return v


def line(body: dict[str, Any], name: str, max_len: int, default: str | None = None) -> str:
    """Field `name`: one line of 1..max_len characters (`default` when absent or empty)."""
    v = body.get(name)
    if v is None or v == "":
        if default is None:
            raise VsaeError(f"give {name}: one line of 1..{max_len} characters")
        v = default
    if not isinstance(v, str):
        raise VsaeError(f"{name} must be a string")
    v = v.strip()
    if not v or len(v) > max_len or "\n" in v or "\r" in v:
        raise VsaeError(f"the {name} must be one line of 1..{max_len} characters")
    return v
