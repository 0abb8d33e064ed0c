"""Signatures, Predict and ChainOfThought on a scripted LM: no network, no key.

    python examples/qa_offline.py
"""

from __future__ import annotations

import dspex as dx
from dspex.testing import ScriptedLM


class QA(dx.Signature):
    """Answer with a short fact."""

    question: str = dx.InputField()
    answer: str = dx.OutputField(desc="1 to 5 words")


def main() -> None:
    lm = ScriptedLM(
        {
            "Capital of France": {"reasoning": "France's capital is Paris.", "answer": "Paris"},
            "2 + 2": {"reasoning": "Two plus two is four.", "answer": "4"},
        }
    )
    qa = dx.ChainOfThought(QA)
    with dx.context(lm=lm):
        for question in ("Capital of France?", "What is 2 + 2?"):
            pred = qa(question=question)
            print(f"{question} -> {pred.answer}  (reasoning: {pred.reasoning})")

    # What the model saw: DSPy's ChatAdapter format, byte for byte.
    messages = dx.ChatAdapter().format(qa.predict.signature, [], {"question": "Capital of France?"})
    print(messages[0]["content"].splitlines()[0])

    # Typed outputs are coerced and checked.
    rate = dx.Predict("review -> sentiment: Literal['pos', 'neg'], confidence: float")
    pred = rate(review="Loved it", lm=ScriptedLM([{"sentiment": "pos", "confidence": "0.9"}]))
    print(pred.sentiment, pred.confidence + 0.0)


if __name__ == "__main__":
    main()
