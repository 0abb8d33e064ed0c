"""Pick an HTTP/1.1 parser implementation: httptools when it imports, else h11.

h11 is a required dependency (httpx's HTTP/1.1 layer needs it too), not an
optional extra, so its parsers (``_h1_h11.py``) are imported up front like the
rest (a few ms at start-up); ``_h1`` is read at call time, so a test can hide
httptools by setting ``_h1.httptools = None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from . import _h1
from ._h1_h11 import H11RequestParser, H11ResponseParser

if TYPE_CHECKING:
    from ._h1 import RequestParser, ResponseParser

__all__ = ["default_impl", "make_request_parser", "make_response_parser"]


def default_impl() -> str:
    """Return ``"httptools"`` when it imported, else ``"h11"``."""
    return "httptools" if _h1.httptools is not None else "h11"


def _check_impl(impl: str | None) -> str:
    chosen = impl or default_impl()
    if chosen not in ("httptools", "h11"):
        raise ConfigError(f"HTTP parser must be 'httptools' or 'h11', got {impl!r}")
    if chosen == "httptools" and _h1.httptools is None:
        raise ConfigError("HTTP parser 'httptools' was asked for but httptools is not installed")
    return chosen


def make_response_parser(
    method: str, target: str, host: str, impl: str | None = None
) -> ResponseParser:
    """Return a parser for the response to ``method target`` (``impl`` forces one).

    Raises:
        ConfigError: ``impl`` is not ``"httptools"``/``"h11"``, or names a missing parser.
    """
    if _check_impl(impl) == "httptools":
        return _h1.HttptoolsResponseParser(head_only=method == "HEAD")
    return H11ResponseParser(method, target, host)


def make_request_parser(impl: str | None = None) -> RequestParser:
    """Return a server-side request parser (``impl`` forces one).

    Raises:
        ConfigError: ``impl`` is not ``"httptools"``/``"h11"``, or names a missing parser.
    """
    if _check_impl(impl) == "httptools":
        return _h1.HttptoolsRequestParser()
    return H11RequestParser()
