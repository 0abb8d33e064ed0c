"""The per-call path of a module call in a flow makes no closure cells.

A closure or comprehension in one of these functions (even in a branch the
call never takes) allocates a cell per variable it reads on every call, and
the cells stay alive as long as the call is in flight. With hundreds of
calls in flight the cyclic GC promotes and traverses them; that GC work was
the largest single part of dspex's CPU per LM call (see
``benchmarks/results/hot_path-percall-*.json``). Move such branches into
their own function instead.
"""

from __future__ import annotations

from typing import Any

import pytest

from dspex.adapters import _exchange
from dspex.lm._engine import Endpoint
from dspex.lm._lm import LM
from dspex.modules import _call
from dspex.modules._module import Module
from dspex.modules._predict import Predict
from dspex.operators._callables import RecordCall

HOT = [
    RecordCall._call_module,
    Module._acall,
    Predict._predict,
    _call.complete_with_retries,
    _exchange._once,
    LM.acall,
    LM._fetch,
    Endpoint.complete,
    Endpoint._complete,
    Endpoint._attempt,
    Endpoint._send,
    Endpoint._exchange,
]


@pytest.mark.parametrize("fn", HOT, ids=lambda fn: fn.__qualname__)
def test_no_closure_cells(fn: Any) -> None:
    assert fn.__code__.co_cellvars == (), (
        f"{fn.__qualname__} makes closure cells for {fn.__code__.co_cellvars} on every call; "
        "expected none (move the closure or comprehension into a helper function)"
    )
