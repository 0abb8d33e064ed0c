"""The HTTP side of the WebSocket sink: routing, auth, origins and the live page.

Every TCP connection to the sink starts as an HTTP request parsed by websockets'
Sans-I/O ``ServerProtocol``. :func:`route` decides what to answer: a plain ``GET``
of ``/`` (or ``/index.html``, ``/app.js``, ``/style.css``, ``/events.schema.json``)
gets the static live page; an upgrade request on the sink's path is checked for
the bearer token (HTTP 401 before the upgrade, never a silent close) and the
``Origin`` (HTTP 403, by websockets' own check), then accepted (101). Anything
else gets 404.
"""

from __future__ import annotations

import hmac
import html
import http
import json
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from websockets.http11 import Request, Response
    from websockets.server import ServerProtocol

__all__ = ["HandshakePolicy", "Routed", "load_page_assets", "route"]

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "events.schema.json": "application/json",
}
_PATH_MARK = "__DSPEX_WS_PATH__"


@dataclass(frozen=True, slots=True)
class HandshakePolicy:
    """What the sink accepts: its path, bearer token and allowed origins."""

    path: str = "/"
    token: str | None = None
    origins: tuple[str, ...] | None = None
    page: bool = True
    assets: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Routed:
    """The answer to one HTTP request; ``upgrade`` True for an accepted WebSocket."""

    response: Response
    upgrade: bool
    replay: int = 0


def load_page_assets(ws_path: str) -> dict[str, bytes]:
    """Read the live page files shipped in ``dspex/web`` (blocking: call in a thread)."""
    from ..events_schema import wire_schema

    web = resources.files("dspex") / "web"
    assets: dict[str, bytes] = {}
    for name in ("index.html", "app.js", "style.css"):
        assets[name] = (web / name).read_bytes()
    page = assets["index.html"].decode()
    assets["index.html"] = page.replace(_PATH_MARK, html.escape(ws_path, quote=True)).encode()
    assets["events.schema.json"] = json.dumps(wire_schema(), indent=2).encode()
    return assets


def route(protocol: ServerProtocol, request: Request, policy: HandshakePolicy) -> Routed:
    """Answer one HTTP request: page, refusal, or WebSocket upgrade."""
    url = urllib.parse.urlsplit(request.path)
    query = urllib.parse.parse_qs(url.query)
    upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
    if not upgrade:
        name = "index.html" if url.path in ("/", "/index.html") else url.path.lstrip("/")
        if policy.page and name in policy.assets:
            return Routed(_static(protocol, name, policy.assets[name]), upgrade=False)
        if url.path != policy.path:
            return Routed(protocol.reject(http.HTTPStatus.NOT_FOUND, "Not found.\n"), upgrade=False)
    elif url.path != policy.path:
        msg = f"No WebSocket endpoint at {url.path!r}; expected {policy.path!r}.\n"
        return Routed(protocol.reject(http.HTTPStatus.NOT_FOUND, msg), upgrade=False)
    if policy.token is not None and not _authorized(request, query, policy.token):
        response = protocol.reject(
            http.HTTPStatus.UNAUTHORIZED,
            "Missing or invalid bearer token: send 'Authorization: Bearer <token>' "
            "or '?token=<token>'.\n",
        )
        response.headers["WWW-Authenticate"] = 'Bearer realm="dspex"'
        return Routed(response, upgrade=False)
    response = protocol.accept(request)  # origin (403) and handshake (400/426) checks
    if response.status_code != 101:
        return Routed(response, upgrade=False)
    return Routed(response, upgrade=True, replay=_replay_count(query))


def _authorized(request: Request, query: dict[str, list[str]], token: str) -> bool:
    expected = token.encode()
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    candidates = [given.strip()] if scheme.lower() == "bearer" else []
    candidates += query.get("token", [])
    return any(hmac.compare_digest(c.encode(), expected) for c in candidates)


def _replay_count(query: dict[str, list[str]]) -> int:
    values = query.get("replay") or ["0"]
    try:
        return max(0, int(values[-1]))
    except ValueError:
        return 0


def _static(protocol: ServerProtocol, name: str, body: bytes) -> Response:
    response = protocol.reject(http.HTTPStatus.OK, "")
    headers = response.headers
    del headers["Content-Type"], headers["Content-Length"]
    headers["Content-Type"] = _TYPES.get(name, "application/octet-stream")
    headers["Content-Length"] = str(len(body))
    headers["Cache-Control"] = "no-cache"
    headers["X-Content-Type-Options"] = "nosniff"
    response.body = body
    return response
