"""``validate``: assert or suggest a condition on each record.

``validate(fn, msg, retries=0, mode="assert")`` checks ``fn(record)``. When it
is false (or raises ``AssertionError``) a ``ValidationFailed`` event is emitted
and, when the node sits right after a ``map``, the map is re-invoked with the
message as *feedback* (the ``feedback`` setting, which ``Predict`` appends to
its prompt) up to ``retries`` times, like DSPy's ``Assert``/``Suggest``. Once
retries are used up, ``"assert"`` fails the item through the node's error
policy (an ``AssertionFailed``) and ``"suggest"`` lets it pass with a
``_flags`` entry ``{"node": ..., "message": ...}``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import AssertionFailed, ConfigError
from ..events import ValidationFailed
from ._base import Operator
from ._map import NodeFailure

if TYPE_CHECKING:
    from ..backpressure._edge import EdgeReceiver
    from ._base import NodeContext, Outputs
    from ._item import Item

__all__ = ["Check", "ValidateOperator"]

_MODES = ("assert", "suggest")


class ValidateOperator(Operator):
    """Check each record; retry the upstream map with feedback; assert or flag.

    Args:
        fn: ``record -> bool`` (sync or async); may raise ``AssertionError``.
        msg: The failure message (or ``record -> str``), fed back on retry.
        retries: Re-invocations of the upstream map with feedback.
        mode: ``"assert"`` (fail the item) or ``"suggest"`` (flag and pass).
        name: Node name (default ``"validate-<n>"``).
    """

    kind = "validate"

    def __init__(
        self, fn: Callable[[Any], Any], msg: str | Callable[[Any], str] = "validation failed",
        *, retries: int = 0, mode: str = "assert", name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if not callable(fn):
            raise ConfigError(f"validate expects a callable record -> bool, got {fn!r}")
        if mode not in _MODES:
            raise ConfigError(f"validate mode must be 'assert' or 'suggest', got {mode!r}")
        if not isinstance(retries, int) or retries < 0:
            raise ConfigError(f"validate retries must be an int >= 0, got {retries!r}")
        self.fn = fn
        self.msg = msg
        self.retries = retries
        self.mode = mode

    def check(self, ctx: NodeContext) -> Check:
        """Return the runtime check bound to this node's context."""
        return Check(self, ctx)

    async def run(self, receive: EdgeReceiver, out: Outputs, ctx: NodeContext) -> None:
        check = self.check(ctx)
        stats = ctx.stats
        async for chunk in receive:
            stats.items_in += len(chunk)
            start = time.perf_counter()
            emitted: list[Item] = []
            for item in chunk:
                try:
                    message = await check.evaluate(item.data, item)
                    if message is not None:
                        await check.note_failure(message, item, 1)
                        item.data = check.reject(item.data, message, item)
                except NodeFailure as failure:
                    await ctx.fail(item, failure.error)
                    continue
                emitted.append(item)
            stats.busy_s += time.perf_counter() - start
            await out.send(emitted)


class Check:
    """A validate node's condition, bound to the node's context at run time."""

    __slots__ = ("ctx", "op", "retries")

    def __init__(self, op: ValidateOperator, ctx: NodeContext) -> None:
        self.op = op
        self.ctx = ctx
        self.retries = op.retries

    def message(self, record: Any) -> str:
        """Return the failure message for ``record``."""
        msg = self.op.msg
        return str(msg(record)) if callable(msg) else str(msg)

    async def evaluate(self, record: Any, item: Item) -> str | None:
        """Return None if ``record`` passes, else the failure message.

        Raises:
            NodeFailure: ``fn`` raised something other than AssertionError.
        """
        try:
            ok = self.op.fn(record)
            if inspect.isawaitable(ok):
                ok = await ok
        except AssertionError as exc:
            return str(exc) or self.message(record)
        except Exception as exc:
            raise NodeFailure(self.ctx, exc) from exc
        return None if ok else self.message(record)

    async def note_failure(self, message: str, item: Item, attempt: int) -> None:
        """Count a failed check and emit ``ValidationFailed``."""
        ctx = self.ctx
        ctx.services.validation_failures += 1
        extra = ctx.stats.extra
        extra["validation_failures"] = extra.get("validation_failures", 0) + 1
        if attempt <= self.retries:
            extra["retries"] = extra.get("retries", 0) + 1
        if ctx.events:
            await ctx.emit(ValidationFailed(message=message, attempt=attempt), item)

    def reject(self, record: Any, message: str, item: Item) -> Any:
        """Give up on ``record``: raise (assert) or return it flagged (suggest).

        Raises:
            NodeFailure: In ``"assert"`` mode, carrying an ``AssertionFailed``.
        """
        ctx = self.ctx
        if self.op.mode == "assert":
            error = AssertionFailed(
                f"validate node {ctx.name!r}: {message}", node=ctx.name, item_id=item.id
            )
            raise NodeFailure(ctx, error)
        ctx.stats.extra["flagged"] = ctx.stats.extra.get("flagged", 0) + 1
        flag = {"node": ctx.name, "message": message}
        if isinstance(record, Mapping):
            return {**record, "_flags": [*record.get("_flags", ()), flag]}
        return record
