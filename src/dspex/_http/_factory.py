"""Choose the transport for an LM: the shared lean pool, or httpx for proxies and user clients.

Kept apart from the interface (``_transport.py``) because it imports both
implementations, which themselves import the interface.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ._httpx_transport import HttpxTransport
from ._pool import ConnectionPool

if TYPE_CHECKING:
    import httpx

    from ._transport import Transport

__all__ = ["get_transport"]

_PROXY_VARS = ("https_proxy", "http_proxy", "all_proxy")


def _env_proxy_for(url: str | None) -> bool:
    """Return True if proxy environment variables apply to ``url`` (or any URL)."""
    if not any(os.environ.get(v) or os.environ.get(v.upper()) for v in _PROXY_VARS):
        return False
    if url is None:
        return True
    host = urllib.parse.urlsplit(url).hostname or ""
    proxies = urllib.request.getproxies_environment()
    # an undocumented (long-standing) urllib.request function, so typeshed lacks it
    return not urllib.request.proxy_bypass_environment(host, proxies)  # type: ignore[attr-defined]


_shared_lock = threading.Lock()
_shared_pools: dict[tuple[int, float], Transport] = {}


def get_transport(
    *,
    proxy: str | None = None,
    client: httpx.AsyncClient | None = None,
    max_connections_per_host: int = 256,
    keepalive_expiry: float = 30.0,
    url: str | None = None,
) -> Transport:
    """Return the transport for an LM: the lean pool, or httpx when needed.

    The httpx transport is chosen when ``client`` is given (it is used as is and
    never closed by dspex), when ``proxy`` is given, or when ``HTTPS_PROXY`` /
    ``HTTP_PROXY`` / ``ALL_PROXY`` is set in the environment (then httpx reads
    them, with ``NO_PROXY``). Pass the provider's base ``url`` to let
    ``NO_PROXY`` exempt it (e.g. a loopback server), which keeps the lean pool.
    Otherwise the lean keep-alive pool is returned; pools with the same limits
    are shared process-wide, so LMs talking to one host share connections.

    Args:
        proxy: A proxy URL such as ``"http://proxy:3128"``.
        client: A user-owned ``httpx.AsyncClient`` to send requests through.
        max_connections_per_host: Open connections allowed per (scheme, host, port).
        keepalive_expiry: Seconds an idle connection is kept before closing.
        url: The base URL the transport will mostly serve (for ``NO_PROXY``).

    Raises:
        ConfigError: A limit is not positive.
    """
    if not isinstance(max_connections_per_host, int) or max_connections_per_host < 1:
        raise ConfigError(
            f"max_connections_per_host must be a positive int, got {max_connections_per_host!r}"
        )
    if keepalive_expiry <= 0:
        raise ConfigError(f"keepalive_expiry must be > 0 seconds, got {keepalive_expiry!r}")
    if client is not None or proxy is not None or _env_proxy_for(url):
        return HttpxTransport(
            client=client,
            proxy=proxy,
            max_connections=max_connections_per_host,
            keepalive_expiry=keepalive_expiry,
        )
    key = (max_connections_per_host, float(keepalive_expiry))
    with _shared_lock:
        pool = _shared_pools.get(key)
        if pool is None:
            pool = _shared_pools[key] = ConnectionPool(
                max_connections_per_host=max_connections_per_host,
                keepalive_expiry=keepalive_expiry,
            )
    return pool
