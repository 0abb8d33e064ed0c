"""Native reasoning: a ``dx.Reasoning`` output filled by the model's own reasoning (DSPy 3.4.1).

When a signature has an output typed ``dx.Reasoning`` and the LM reports
``supports_reasoning``, DSPy removes that field from the prompt, sends
``reasoning_effort`` (the call's kwarg, else the LM's, else ``"low"``) and
fills the field from the response's reasoning content (None when the
provider returns none). ``reasoning_effort=None`` switches it off; GPT-5
models on the chat API are left in text mode (their reasoning is not
returned there), as DSPy does. :func:`reasoning_plan` decides;
:class:`ReasoningCapture` wraps the LM to keep the reasoning of its calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..signatures._types import Reasoning

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..lm._types import LMResponse, Message
    from ..signatures import Signature
    from ._prepared import Prepared

__all__ = ["ReasoningCapture", "ReasoningPlan", "reasoning_plan", "with_reasoning"]


@dataclass(frozen=True)
class ReasoningPlan:
    """The reduced signature, the native field and the effort to request."""

    render: type[Signature]
    field: str
    effort: Any


def reasoning_plan(prepared: Prepared, lm: Any, lm_kwargs: Mapping[str, Any]) -> ReasoningPlan | None:
    """Return the plan when this call's ``Reasoning`` output goes native, else None.

    ``prepared`` is the adapter's entry for the call's signature (the reduced
    signature is made once per entry, not per call).
    """
    field = prepared.reasoning_field
    if field is None or not getattr(lm, "supports_reasoning", False):
        return None
    defaults = getattr(lm, "kwargs", None) or {}
    if "reasoning_effort" in lm_kwargs:
        effort = lm_kwargs["reasoning_effort"]
    else:
        effort = defaults.get("reasoning_effort", "low")
    if effort is None:
        return None
    if "gpt-5" in str(getattr(lm, "model", "")) and getattr(lm, "model_type", "chat") == "chat":
        return None
    return ReasoningPlan(prepared.without_reasoning(), field, effort)


class ReasoningCapture:
    """An LM proxy that records the reasoning content of each ``acall`` response.

    Everything else (``model``, ``provider``, ``stream`` …) is the wrapped
    LM's. Streamed calls carry no reasoning, so they record none.
    """

    def __init__(self, lm: Any) -> None:
        self._lm = lm
        self.reasoning: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lm, name)

    async def acall(self, messages: list[Message], **params: Any) -> LMResponse:
        response: LMResponse = await self._lm.acall(messages, **params)
        self.reasoning = list(getattr(response, "reasoning", None) or [])
        return response


def with_reasoning(signature: type[Signature], plan: ReasoningPlan, values: dict[str, Any],
                   text: str | None) -> dict[str, Any]:
    """Return ``values`` with the native field added, in ``signature``'s output order."""
    filled = {**values, plan.field: Reasoning(text) if text else None}
    return {name: filled.get(name) for name in signature.output_fields}
