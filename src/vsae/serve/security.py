"""What a request must be to reach the app (docs/serve.md, *Security model*).

A local server is still reachable from every web page the user opens: a page of another origin
can POST to it (a "simple" request: text/plain or form bodies need no CORS preflight), and a
DNS-rebinding page can read from it under its own host name. So, before any route runs:

* the ``Host`` header must name a host this server is served as (127.0.0.1, localhost, [::1],
  the ``--host`` it binds and any ``--allow-host``), else 403;
* a state-changing request (anything but GET / HEAD / OPTIONS) must come from the same origin:
  an ``Origin`` header, when sent, must be ``http://<the request's Host>``, and a browser's
  ``Sec-Fetch-Site`` must not say ``cross-site`` / ``same-site``; tools that send neither (curl,
  scripts) are let through, as they are not a browser acting for another page;
* every response carries a Content-Security-Policy (scripts, styles and fetches from this server
  only; images also as data: URIs; no framing), ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def host_name(host: str) -> str:
    """The name part of a Host header value (``[::1]:80`` -> ``::1``, ``a.b:8000`` -> ``a.b``), lower case."""
    h = host.strip().lower()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """The host names a server bound to `bind` answers to: loopback names, `bind` itself unless it
    is a wildcard (0.0.0.0 / ::), and `extra`."""
    names = set(LOOPBACK) | {host_name(e) for e in extra if e.strip()}
    if bind not in ("0.0.0.0", "::", ""):
        names.add(host_name(bind) if not bind.count(":") > 1 else bind.lower())
    return frozenset(names)


class Guard:
    """ASGI middleware enforcing the module's rules around `app`."""

    def __init__(self, app: Callable[..., Awaitable[None]], hosts: Iterable[str]):
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        why = self.refuse(scope.get("method", "GET"), headers)

        async def send_with_headers(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                have = {k.lower() for k, _ in msg.get("headers", [])}
                msg = {**msg, "headers": [*msg.get("headers", []), *(h for h in HEADERS if h[0] not in have)]}
            await send(msg)

        if why:
            body = json.dumps({"error": why}).encode()
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)

    def refuse(self, method: str, headers: dict[str, str]) -> str | None:
        """Why a request with these headers is refused (one line), or None."""
        host = headers.get("host", "")
        if host_name(host) not in self.hosts:
            return (
                f"host {host[:100]!r} is not served here (DNS rebinding guard); open the URL `vsae serve` "
                "printed, or add the name with --allow-host"
            )
        if method.upper() in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host.lower()}":
            return f"cross-origin {method} from {origin[:100]!r} refused; use the page this server serves"
        if headers.get("sec-fetch-site", "same-origin") in ("cross-site", "same-site"):
            return f"cross-site {method} refused; use the page this server serves"
        return None
