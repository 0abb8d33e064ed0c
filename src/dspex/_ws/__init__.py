"""WebSocket I/O shared by the WebSocket sinks and the WebSocket source (private).

``_conn.py`` drives websockets' Sans-I/O protocol objects over an anyio byte
stream (:class:`~dspex._ws._conn.ProtocolStream`) and opens client connections
(:func:`~dspex._ws._conn.connect`, :func:`~dspex._ws._conn.open_connection`).
Nothing here imports ``dspex.sinks`` or ``dspex.sources``: both depend on this
package, one way, so a source never reaches into a sink's internals.
"""
