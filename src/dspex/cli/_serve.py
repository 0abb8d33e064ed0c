"""``dspex serve FLOW``: run a flow with its events live on a WebSocket and a web page.

``FLOW`` is a Python file that defines ``flow`` (a :class:`~dspex.flows.Flow`)
and optionally ``lm`` (passed to the run) or ``settings`` (a dict of run
settings), or a YAML flow spec (``.yaml``/``.yml``, see :mod:`dspex.flows._yaml`). If the flow
has no WebSocket sink, one is attached to its first sink node (or to every
terminal node when it has none). The command prints the page URL, runs the flow
and prints its report; exit code 0 on success, 1 if the run failed, 2 for a bad
flow file.

``--wait-for-viewer S`` holds the sources until a page connects (at most S
seconds) and ``--linger S`` (default 30) keeps the page served after the run
while a viewer is connected (up to S seconds; with no viewer the command ends
a second after the run), so a short run can still be watched to its end.

The feed is never open by default: without ``--token`` (or ``DSPEX_WS_TOKEN``)
a random token is generated and the printed page URL carries it
(``http://127.0.0.1:8765/?token=…``; the page passes it on to the WebSocket).
``--no-auth`` serves without one; browsers from other origins are refused
either way.
"""

from __future__ import annotations

import runpy
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

import anyio
import click

from .._util._sync import run_sync
from ..errors import DspexError, FlowSpecError
from ..flows import Flow, NodeHandle
from ..flows._yaml import load_yaml
from ..sinks import WebSocketSink, websocket
from ._exit import EXIT_FAILED, exit_codes

__all__ = ["NO_AUTH_WARNING", "attach_websocket", "load_flow", "new_token", "page_link", "serve_command"]


NO_AUTH_WARNING = "warning: the feed has no token (--no-auth): anyone who can reach this port can read it"


def new_token() -> str:
    """Return a fresh random bearer token (URL-safe, 128 bits)."""
    return secrets.token_urlsafe(16)


def page_link(live: WebSocketSink, token: str | None) -> str:
    """The live page URL, carrying ``token`` in its query when given."""
    url: str = live.page_url
    return f"{url}?{urllib.parse.urlencode({'token': token})}" if token else url


def load_flow(path: Path) -> tuple[Flow, dict[str, Any]]:
    """Load ``flow`` (and run settings) from a Python file or a YAML spec.

    Returns:
        The flow and the keyword arguments for its ``run`` (context settings
        such as ``lm``, and run options such as ``max_failure_rate``).

    Raises:
        click.UsageError: The file defines no flow or cannot be loaded; for
            YAML the message starts with ``file:line:column``.
    """
    if path.suffix in (".yaml", ".yml"):
        try:
            loaded = load_yaml(path)
        except FlowSpecError as exc:
            raise click.UsageError(str(exc)) from None
        return loaded.flow, {**loaded.settings, **loaded.run_options}
    try:
        namespace = runpy.run_path(str(path), run_name="__dspex_flow__")
    except Exception as exc:
        raise click.UsageError(f"cannot load flow file {str(path)!r}: {type(exc).__name__}: {exc}") from exc
    flow = namespace.get("flow")
    if not isinstance(flow, Flow):
        raise click.UsageError(f"{str(path)!r} must define `flow = dx.Flow(...)`; found {type(flow).__name__}")
    settings = dict(namespace.get("settings") or {})
    if "lm" in namespace and "lm" not in settings:
        settings["lm"] = namespace["lm"]
    return flow, settings


def attach_websocket(flow: Flow, **options: Any) -> WebSocketSink:
    """Return the flow's WebSocket sink, attaching a new one if it has none.

    Raises:
        ConfigError: ``options`` are not valid for a WebSocket sink.
    """
    sink_nodes = [n for n in flow.nodes if n.kind == "sink"]
    for node in sink_nodes:
        for sink in node.sinks:
            if isinstance(sink, WebSocketSink):
                return sink
    live = websocket(**options)
    if sink_nodes:
        sink_nodes[0].sinks = (*sink_nodes[0].sinks, live)
        return live
    fed = {id(parent) for n in flow.nodes for parent, _ in n.inputs}
    for node in [n for n in flow.nodes if id(n) not in fed]:
        flow.add_sink(NodeHandle(flow, node), [live], name=f"{node.name}-live")
    return live


@click.command("serve")
@click.argument("flow_path", metavar="FLOW", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface for the page and feed.")
@click.option("--port", default=8765, show_default=True, type=int, help="Port (0 picks a free one).")
@click.option("--path", "ws_path", default="/", show_default=True, help="WebSocket endpoint path.")
@click.option("--token", envvar="DSPEX_WS_TOKEN", default=None,
              help="Bearer token clients must send (default: a random one, printed in the page URL).")
@click.option("--no-auth", is_flag=True, help="Serve the feed without a token (anyone reaching the port reads it).")
@click.option("--run-id", default=None, help="Run id (resume with a keyed source).")
@click.option("--wait-for-viewer", "wait_s", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds to wait for a page to connect before the sources start.")
@click.option("--linger", "linger_s", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="After the run, keep serving up to this long while a page is connected.")
@exit_codes()
def serve_command(flow_path: Path, host: str, port: int, ws_path: str, token: str | None,
                  no_auth: bool, run_id: str | None, wait_s: float, linger_s: float) -> None:
    """Run FLOW with its tokens, results and metrics live on a web page."""
    if no_auth and token:
        raise click.UsageError("--no-auth and --token (or DSPEX_WS_TOKEN) contradict each other; pick one")
    flow, settings = load_flow(flow_path)
    generated = None if no_auth or token else new_token()
    live = attach_websocket(flow, host=host, port=port, path=ws_path, token=token or generated)
    if live.server.token != generated:  # the flow brought its own sink: its settings stand
        generated = None
    live.wait_for_client_s, live.linger_s = wait_s, linger_s
    # closing the sink includes the linger: give it room beyond the flush deadline
    settings["sink_timeout_s"] = max(float(settings.get("sink_timeout_s", 30.0)), 30.0 + linger_s)
    if not run_sync(_serve, flow, live, settings, run_id, generated):
        raise click.exceptions.Exit(EXIT_FAILED)


async def _serve(flow: Flow, live: WebSocketSink, settings: dict[str, Any], run_id: str | None,
                 generated: str | None = None) -> bool:
    """Run ``flow`` while announcing the page; return whether the run completed.

    Raises:
        DspexError: The run failed (``exit_codes`` reports it).
    """

    async def announce() -> None:
        await live.started.wait()
        # a generated token is printed (it is the only way in); one the user chose is not
        chosen = live.server.token is not None and generated is None
        hint = "  (add ?token=<your token>)" if chosen else ""
        click.echo(f"live page: {page_link(live, generated)}{hint}\nWebSocket feed: {live.url}")
        if live.wait_for_client_s:
            click.echo(f"the run starts when a page connects (or in {live.wait_for_client_s:g} s)")
        if live.server.token is None:
            click.echo(NO_AUTH_WARNING, err=True)

    failure: DspexError | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        try:
            report = await flow.run(run_id=run_id, **settings)
        except DspexError as exc:
            failure = exc
        finally:
            tg.cancel_scope.cancel()
    if failure is not None:  # raised outside the task group, which would wrap it in an ExceptionGroup
        raise failure
    # the report's duration includes waiting for and lingering with the viewer: say how much
    extra = live.waited_s + live.lingered_s
    around = f" (incl. {extra:.1f} s waiting for or lingering with the page)" if extra >= 0.05 else ""
    click.echo(
        f"{report.status}: {report.items_out} out / {report.items_in} in, {report.items_failed} failed, "
        f"{report.duration_s:.2f} s{around}, cost ${report.cost:.4f}"
    )
    return bool(report.status == "completed")
