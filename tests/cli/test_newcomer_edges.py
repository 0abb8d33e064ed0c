"""A newcomer's rough edges: demo -n bounds, the port probe and TIME_WAIT, honest demo timing."""

from __future__ import annotations

import json
import socket
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from dspex.cli._app import cli
from dspex.cli._demo import _free, _summary

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize("n", ["-5", "0"])
def test_demo_rejects_a_non_positive_item_count(n: str) -> None:
    result = CliRunner().invoke(cli, ["demo", "-n", n])
    assert result.exit_code == 2
    assert "is not in the range x>=1" in result.output


def _time_wait_port() -> int:
    """Return a port whose only trace is a connection in TIME_WAIT (the server closed first)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = listener.accept()
        conn.close()  # the active closer keeps the TIME_WAIT on the listening port
        client.recv(1)
        client.close()
    return port


def test_port_probe_treats_time_wait_as_free() -> None:
    port = _time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError, match="in use"):
        plain.bind(("127.0.0.1", port))  # what the old probe did: "busy"
    assert _free(port) == port


def test_port_probe_still_sees_a_live_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert _free(listener.getsockname()[1]) == 0


def test_demo_summary_leaves_out_time_waiting_for_a_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"answer": "4", "expected": "4"}) + "\n")
    report = SimpleNamespace(status="completed", items_out=10, items_in=10, items_failed=0, duration_s=7.0,
                             usage={}, cost=0.0)
    _summary(report, answers, waited_s=5.0)
    out = capsys.readouterr().out
    assert "10/10 items in 2.00 s (+ 5.0 s waiting for the page) (5.0 items/s)" in out
