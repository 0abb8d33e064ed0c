"""The HTTP/1.1 client under the LM providers (private).

A keep-alive connection pool on anyio streams (``_pool.py``) with an asyncio
fast path (``_aio.py``) and blocking sockets for a sync call that has its loop
to itself (``_blocking.py``); one request/response exchange over all three
kinds of stream (``_exchange.py``); connections, targets, deadlines and the
request head (``_conn.py``); the HTTP/1.1 parsers (``_h1.py``, h11 fallback in
``_h1_h11.py``, chosen by ``_parsers.py``); the SSE decoder (``_sse.py``); an
httpx-backed transport for proxies and user clients (``_httpx_transport.py``);
the transport interface (``_transport.py``) and the factory that picks one
(``_factory.py``). Nothing here imports ``dspex.lm``: the dependency is one-way.
"""
