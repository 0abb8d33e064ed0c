"""``dspex serve FLOW``: run a flow with its events live on a WebSocket and a web page.

``FLOW`` is a Python file that defines ``flow`` (a :class:`~dspex.flows.Flow`)
and optionally ``lm`` (passed to the run) or ``settings`` (a dict of run
settings), or a YAML flow spec when the YAML loader is available. If the flow
has no WebSocket sink, one is attached to its first sink node (or to every
terminal node when it has none). The command prints the page URL, runs the flow
and prints its report; exit code 0 on success, 1 if the run failed, 2 for a bad
flow file.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..flows import Flow
    from ..sinks import WebSocketSink

__all__ = ["attach_websocket", "load_flow", "serve_command"]


def load_flow(path: Path) -> tuple[Flow, dict[str, Any]]:
    """Load ``flow`` (and run settings) from a Python file or YAML spec.

    Raises:
        click.UsageError: The file defines no flow or cannot be loaded.
    """
    from ..flows import Flow

    if path.suffix in (".yaml", ".yml"):
        return _load_yaml(path), {}
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


def _load_yaml(path: Path) -> Flow:
    import importlib

    try:
        module = importlib.import_module("dspex.flows._yaml")
    except ImportError:
        raise click.UsageError("YAML flows are not available in this build; use a Python flow file") from None
    for name in ("load_flow", "load", "from_yaml", "flow_from_yaml"):
        loader = getattr(module, name, None)
        if callable(loader):
            flow: Flow = loader(path)
            return flow
    raise click.UsageError("the YAML flow loader has no load function")


def attach_websocket(flow: Flow, **options: Any) -> WebSocketSink:
    """Return the flow's WebSocket sink, attaching a new one if it has none."""
    from ..flows import NodeHandle
    from ..sinks import WebSocketSink, websocket

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
@click.option("--token", envvar="DSPEX_WS_TOKEN", default=None, help="Bearer token clients must send.")
@click.option("--run-id", default=None, help="Run id (resume with a keyed source).")
def serve_command(flow_path: Path, host: str, port: int, ws_path: str, token: str | None,
                  run_id: str | None) -> None:
    """Run FLOW with its tokens, results and metrics live on a web page."""
    import sys

    from .._util._sync import run_sync
    from ..errors import ConfigError

    flow, settings = load_flow(flow_path)
    try:
        live = attach_websocket(flow, host=host, port=port, path=ws_path, token=token)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    code = run_sync(_serve, flow, live, settings, run_id)
    sys.exit(code)


async def _serve(flow: Flow, live: WebSocketSink, settings: dict[str, Any], run_id: str | None) -> int:
    import anyio

    from ..errors import DspexError

    async def announce() -> None:
        await live.started.wait()
        auth = "  (add ?token=<your token>)" if live.server.token else ""  # never print the secret
        click.echo(f"live page: {live.page_url}{auth}\nWebSocket feed: {live.url}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        try:
            report = await flow.run(run_id=run_id, **settings)
        except DspexError as exc:
            click.echo(f"error: {exc}", err=True)
            return 1
        finally:
            tg.cancel_scope.cancel()
    click.echo(
        f"{report.status}: {report.items_out} out / {report.items_in} in, {report.items_failed} failed, "
        f"{report.duration_s:.2f} s, cost ${report.cost:.4f}"
    )
    return 0 if report.status == "completed" else 1
