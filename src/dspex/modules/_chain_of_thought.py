"""``ChainOfThought``: a ``Predict`` that writes its reasoning before answering.

The signature gets a ``reasoning`` output field prepended (description
``${reasoning}``, as in DSPy, so prompts are byte-identical); everything else
is ``Predict``. The prediction's ``reasoning`` is a
:class:`~dspex.signatures.Reasoning` (a ``str``) whose ``.steps`` splits it
into steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..signatures import OutputField, Reasoning, Signature, ensure_signature
from ._module import Module
from ._predict import Predict
from ._state import jsonable_config, register_loadable, signature_from_spec, signature_spec

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

    from ._prediction import Prediction

__all__ = ["ChainOfThought"]


@register_loadable("dspex.modules.ChainOfThought")
class ChainOfThought(Module):
    """Reason step by step, then produce the signature's outputs.

    Args:
        signature: A signature class or string.
        rationale_field: A custom ``dx.OutputField`` for the reasoning.
        rationale_field_type: The reasoning field's type (``str`` by default,
            which keeps DSPy's prompt; ``dx.Reasoning`` works too).
        **config: LM parameters for the inner ``Predict``.

    Example:
        >>> import dspex as dx
        >>> from dspex.testing import ScriptedLM
        >>> cot = dx.ChainOfThought("question -> answer")
        >>> list(cot.predict.signature.output_fields)
        ['reasoning', 'answer']
        >>> lm = ScriptedLM([{"reasoning": "1. 2+2 is 4.\\n2. So 4.", "answer": "4"}])
        >>> pred = cot(question="2+2?", lm=lm)
        >>> pred.answer, pred.reasoning.steps
        ('4', ['2+2 is 4.', 'So 4.'])
    """

    def __init__(
        self,
        signature: str | type[Signature],
        rationale_field: FieldInfo | None = None,
        rationale_field_type: Any = str,
        **config: Any,
    ) -> None:
        super().__init__()
        sig = ensure_signature(signature)
        if rationale_field is not None:
            rationale_type = rationale_field.annotation or rationale_field_type
        else:
            rationale_type = rationale_field_type
            rationale_field = OutputField(desc="${reasoning}")
        self.predict = Predict(sig.prepend("reasoning", rationale_field, type_=rationale_type), **config)

    async def aforward(self, **inputs: Any) -> Prediction:
        """Call the inner predictor; ``reasoning`` comes back as ``Reasoning``."""
        pred = await self.predict.acall(**inputs)
        reasoning = pred.get("reasoning")
        if isinstance(reasoning, str) and not isinstance(reasoning, Reasoning):
            pred["reasoning"] = Reasoning(reasoning)
        return pred

    def _program_spec(self) -> dict[str, Any]:
        return {"signature": signature_spec(self.predict.signature), "config": jsonable_config(self.predict.config)}

    @classmethod
    def _from_program_spec(cls, spec: dict[str, Any], types: Any = None) -> ChainOfThought:
        sig = signature_from_spec(spec["signature"], types)
        rationale_type: Any = sig.output_fields["reasoning"].annotation if "reasoning" in sig.output_fields else str
        return cls(sig.delete("reasoning"), rationale_field_type=rationale_type, **spec.get("config", {}))
