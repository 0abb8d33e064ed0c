"""The HTTP side of the WebSocket sink: routing, auth, origins and the live page.

Every TCP connection to the sink starts as an HTTP request parsed by websockets'
Sans-I/O ``ServerProtocol``. :func:`route` decides what to answer: a plain ``GET``
of ``/`` (or ``/index.html``, ``/app.js``, ``/style.css``, ``/events.schema.json``)
gets the static live page; an upgrade request on the sink's path is checked for
the bearer token (HTTP 401 before the upgrade, never a silent close) and the
``Origin`` (HTTP 403), then accepted (101). Anything else gets 404.

Browsers apply no CORS to WebSockets: any page the user visits may open
``ws://127.0.0.1:PORT/`` and read the feed. So the default is same-origin: a
request whose ``Origin`` is not the server's own (its bound host, or
``localhost``/``127.0.0.1``/``[::1]`` when it listens on loopback or every
interface, at its port) and not listed in ``origins`` is refused. An IP-literal
``Origin`` equal to the request's ``Host`` is also the server's own (a page
cannot rebind an IP address, unlike a DNS name). Requests without ``Origin``
(non-browser clients) are allowed: the token is their guard.
"""

from __future__ import annotations

import hmac
import html
import http
import ipaddress
import json
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING

from ..events_schema import wire_schema

if TYPE_CHECKING:
    from websockets.http11 import Request, Response
    from websockets.server import ServerProtocol

__all__ = ["HandshakePolicy", "Routed", "load_page_assets", "own_origins", "route"]

_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "events.schema.json": "application/json",
}
_PATH_MARK = "__DSPEX_WS_PATH__"


@dataclass(frozen=True, slots=True)
class HandshakePolicy:
    """What the sink accepts: its path, bearer token and allowed origins.

    ``origins`` lists extra allowed ``Origin`` values (``"*"`` allows any);
    ``own`` holds the server's own ``(host, port)`` pairs (see :func:`own_origins`).
    """

    path: str = "/"
    token: str | None = None
    origins: tuple[str, ...] = ()
    own: frozenset[tuple[str, int]] = frozenset()
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
    if not _origin_allowed(request, policy):
        origin = request.headers.get("Origin", "")
        msg = (f"Origin {origin[:200]!r} is not allowed: this feed serves its own page; "
               "list other origins in origins=[...].\n")
        return Routed(protocol.reject(http.HTTPStatus.FORBIDDEN, msg), upgrade=False)
    response = protocol.accept(request)  # handshake checks (400/426)
    if response.status_code != 101:
        return Routed(response, upgrade=False)
    return Routed(response, upgrade=True, replay=_replay_count(query))


def own_origins(host: str, port: int) -> frozenset[tuple[str, int]]:
    """The ``(host, port)`` pairs a page served by this server has as origin.

    The bound ``host`` itself; when it is loopback or a wildcard (``0.0.0.0``,
    ``::``), also ``localhost``, ``127.0.0.1`` and ``::1``.
    """
    names = {host.lower().strip("[]")}
    if host in ("", "0.0.0.0", "::", "localhost") or _is_loopback(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    return frozenset((name, port) for name in names)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _origin_allowed(request: Request, policy: HandshakePolicy) -> bool:
    origin = request.headers.get("Origin")
    if origin is None or "*" in policy.origins or origin in policy.origins:
        return True
    mine = _host_port(origin)
    if mine is None:
        return False  # "null" (sandboxed frames, file://) or garbage
    if mine in policy.own:
        return True
    # An IP-literal origin that names the very address the browser dialled is
    # this server (e.g. the page opened at http://192.168.1.5:8765/ on 0.0.0.0).
    # A DNS name is not trusted this way: a rebinding page would pass.
    scheme_port = 443 if origin.lower().startswith("https:") else 80
    host = _host_port("//" + request.headers.get("Host", ""), default_port=scheme_port)
    try:
        ipaddress.ip_address(mine[0])
    except ValueError:
        return False
    return host == mine


def _host_port(url: str, default_port: int | None = None) -> tuple[str, int] | None:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if port is None:
        port = default_port if default_port is not None else {"http": 80, "https": 443}.get(parts.scheme)
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


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
