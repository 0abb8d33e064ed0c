"""``MultiChainComparison`` and ``majority``: combine several candidate answers.

``MultiChainComparison`` (DSPy 3.4.1, byte-identical prompt) shows the LM
``M`` earlier attempts as inputs ``reasoning_attempt_1..M``, each rendered
``«I'm trying to {rationale} I'm not sure but my prediction is {answer}»``,
and asks for a corrected ``rationale`` before the outputs. ``majority`` votes
over completions on one field, after DSPy's text normalisation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._util._text import normalize_text
from ..errors import InputError
from ..signatures import InputField, OutputField, Signature, ensure_signature
from ._module import Module
from ._predict import Predict
from ._prediction import Completions, Prediction

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ._stream import ModuleStream

__all__ = ["MultiChainComparison", "majority", "normalize_text"]


def _default_normalize(s: Any) -> str | None:
    return normalize_text(s) or None


def majority(
    prediction_or_completions: Prediction | Completions | Sequence[Mapping[str, Any]],
    normalize: Callable[[Any], Any] | None = _default_normalize,
    field: str | None = None,
) -> Prediction:
    """Return the most common completion (on ``field``) as a one-completion Prediction.

    ``field`` defaults to the signature's last output field (else the last
    key of the first completion). Values that ``normalize`` maps to None are
    ignored unless all are; ties go to the earliest completion (DSPy's rule).

    Raises:
        InputError: The argument is not a Prediction, Completions or list, is
            empty, or a completion lacks ``field``.
    """
    if isinstance(prediction_or_completions, Prediction):
        completions: Any = prediction_or_completions.completions
    elif isinstance(prediction_or_completions, Completions | list | tuple):
        completions = prediction_or_completions
    else:
        raise InputError(
            f"majority expects a Prediction, Completions or a list of completions, "
            f"got {type(prediction_or_completions).__name__}"
        )
    if len(completions) == 0:
        raise InputError("majority needs at least one completion, got none")
    signature = getattr(completions, "signature", None)
    if not field:
        field = list(signature.output_fields)[-1] if signature is not None else list(completions[0].keys())[-1]
    norm = normalize or (lambda x: x)
    try:
        values = [norm(c[field]) for c in completions]
    except KeyError:
        raise InputError(f"majority: a completion has no field {field!r}") from None
    counts: dict[Any, int] = {}
    for value in [v for v in values if v is not None] or values:
        counts[value] = counts.get(value, 0) + 1
    winner = max(counts, key=counts.__getitem__)  # first maximum: the earliest value wins ties
    chosen = next(c for c, v in zip(completions, values, strict=True) if v == winner)
    return Prediction.from_completions([dict(chosen.items())], signature=signature)


class MultiChainComparison(Module):
    """Compare ``M`` earlier attempts and answer with a corrected rationale.

    Args:
        signature: The task's signature; its last output field is the answer
            quoted from each attempt.
        M: How many attempts each call receives.
        temperature: The inner predictor's temperature (0.7, as DSPy).
        **config: Further LM parameters for the inner ``Predict``.

    Call it as DSPy does, ``mcc(completions, **inputs)``, where
    ``completions`` are predictions or dicts with a ``rationale`` (or
    ``reasoning``) and the answer field.

    Raises:
        InputError: ``completions`` does not hold exactly ``M`` attempts, or
            one lacks a rationale/reasoning or the answer field.
    """

    def __init__(self, signature: str | type[Signature], M: int = 3, temperature: float = 0.7, **config: Any) -> None:
        super().__init__()
        self.M = M
        sig = ensure_signature(signature)
        self.last_key = list(sig.output_fields)[-1]
        for idx in range(M):
            field = InputField(prefix=f"Student Attempt #{idx + 1}:", desc="${reasoning attempt}")
            sig = sig.append(f"reasoning_attempt_{idx + 1}", field, type_=str)
        field = OutputField(
            prefix="Accurate Reasoning: Thank you everyone. Let's now holistically", desc="${corrected reasoning}"
        )
        self.predict = Predict(sig.prepend("rationale", field, type_=str), temperature=temperature, **config)

    def _attempts(self, completions: Sequence[Any]) -> dict[str, str]:
        attempts = []
        for c in completions:
            rationale = c.get("rationale", c.get("reasoning"))
            if rationale is None or c.get(self.last_key) is None:
                raise InputError(
                    f"MultiChainComparison: each completion needs 'rationale' (or 'reasoning') and "
                    f"{self.last_key!r}; got fields {list(c.keys())}"
                )
            first = str(rationale).strip().split("\n")[0].strip()
            answer = str(c[self.last_key]).strip().split("\n")[0].strip()
            attempts.append(f"«I'm trying to {first} I'm not sure but my prediction is {answer}»")
        if len(attempts) != self.M:
            raise InputError(
                f"The number of attempts ({len(attempts)}) doesn't match the expected number M ({self.M}). "
                "Please set the correct value for M when initializing MultiChainComparison."
            )
        return {f"reasoning_attempt_{i + 1}": a for i, a in enumerate(attempts)}

    async def aforward(self, completions: Sequence[Any] = (), **inputs: Any) -> Prediction:
        """Format the attempts and call the inner predictor."""
        return await self.predict.acall(**self._attempts(completions), **inputs)

    def _inputs(self, args: tuple[Any, ...], inputs: dict[str, Any]) -> dict[str, Any]:
        if len(args) > 1:
            raise self._positional_error(args[1:])
        if args:
            inputs["completions"] = args[0]
        return inputs

    async def acall(self, *args: Any, lm: Any = None, **inputs: Any) -> Any:
        """Run on the current loop; ``completions`` may be positional, as in DSPy."""
        return await super().acall(lm=lm, **self._inputs(args, inputs))

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        """Run synchronously; ``completions`` may be positional, as in DSPy."""
        return super().__call__(**self._inputs(args, inputs))

    def stream(self, *args: Any, **inputs: Any) -> ModuleStream:
        """Stream the inner predictor's events; see ``Module.stream``."""
        return super().stream(**self._inputs(args, inputs))
