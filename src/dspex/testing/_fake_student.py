"""A fake "student" LM behaviour: right only when its prompt teaches it the task.

:class:`StudentTask` is a family of string-rewriting tasks. A question names
a rule and a word (``"mirror lantern"``); the answer is the rule applied to
the word (``"nretnal"``). The fake server, given ``FakeLLMServer(student=
StudentTask())``, answers such a question correctly only if the prompt holds
a *relevant demo* — an earlier user turn asking the same rule, followed by an
assistant turn with that demo's correct answer — or the task's instruction
phrase in the system prompt. Otherwise it answers the word unchanged, which
is wrong. Everything is a pure function of the prompt, so it is
deterministic: a correct optimizer (one that puts good demos or the right
instruction into the prompt) visibly lifts the dev score, offline.

Asked to *propose an instruction* (a prompt with a ``proposed_instruction``
output field, as COPRO's and MIPROv2's proposers send), the student proposes
the teaching phrase when the prompt shows it a solved example of the task (a
``Question: <rule> <word>`` line followed by ``Answer: <right answer>``, as
MIPROv2's fewshot-aware proposer does); otherwise one phrasing from
:attr:`StudentTask.proposals`, picked by a hash of the prompt and the
completion's index. Either way an optimizer must find the phrase by scoring.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..modules import Example
from ._fake_answers import fields_from_prompt

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["RULES", "StudentTask"]


def _shift(word: str) -> str:
    return "".join(chr((ord(c) - 97 + 1) % 26 + 97) if "a" <= c <= "z" else c for c in word)


#: The rules a question may name: rule name -> rewrite of a lowercase word.
RULES: dict[str, Callable[[str], str]] = {
    "mirror": lambda w: w[::-1],
    "double": lambda w: w + w,
    "shift": _shift,
    "rotate": lambda w: w[1:] + w[:1],
    "devowel": lambda w: "".join(c for c in w if c not in "aeiou"),
    "sort": lambda w: "".join(sorted(w)),
}

_WORDS = (
    "lantern", "harbor", "pepper", "violin", "marble", "canyon", "falcon", "meadow", "silver", "thunder",
    "garden", "rocket", "candle", "wizard", "copper", "orchid", "puzzle", "blanket", "crystal", "dolphin",
    "velvet", "tractor", "island", "walnut", "saddle", "pirate", "jungle", "mango", "feather", "window",
    "basket", "dragon", "glacier", "lemon", "parrot", "quiver", "spider", "tunnel", "yogurt", "zipper",
    "anchor", "bishop", "cobalt", "donkey", "engine", "forest", "goblet", "hammer",
)
_QUESTION = re.compile(r"\[\[ ## question ## \]\]\n(\w+) (\w+)")
_ANSWER = re.compile(r"\[\[ ## answer ## \]\]\n(.*)")
_ASKED = re.compile(r"\b(\w+) (\w+)\b")
_SOLVED = re.compile(r"Question: (\w+ \w+)\nAnswer: (\w+)")


class StudentTask:
    """A task family the fake server's student learns only from demos or an instruction.

    Args:
        rules: Which of :data:`RULES` the examples use.
        instruction: A phrase that, when present in the system prompt,
            teaches every rule at once (what an instruction optimizer finds).

    Raises:
        ConfigError: An unknown rule name, or no rules.

    Example:
        >>> task = StudentTask(rules=["mirror", "double"])
        >>> [(e.question, e.answer) for e in task.examples(2)]
        [('mirror saddle', 'elddas'), ('double jungle', 'junglejungle')]
    """

    def __init__(self, rules: Sequence[str] | None = None,
                 instruction: str = "Apply the rule named first to the word that follows it.") -> None:
        chosen = list(rules) if rules is not None else list(RULES)
        unknown = [r for r in chosen if r not in RULES]
        if unknown or not chosen:
            raise ConfigError(f"StudentTask rules must be a non-empty subset of {sorted(RULES)}, got {chosen!r}")
        self.rules = chosen
        self.instruction = instruction
        #: What the student proposes as instructions: only the first one teaches.
        self.proposals = [instruction, "Answer the question.", "Repeat the word that follows the rule name.",
                          "Read the question carefully and reply with one word."]

    def answer(self, question: str) -> str:
        """Return the correct answer of a question such as ``"mirror lantern"``.

        Raises:
            ConfigError: The question is not ``"<rule> <word>"`` with a known rule.
        """
        rule, _, word = question.partition(" ")
        if rule not in RULES or not word:
            raise ConfigError(f"a StudentTask question is '<rule> <word>' with a rule in {sorted(RULES)}, "
                              f"got {question!r}")
        return RULES[rule](word)

    def examples(self, n: int, *, seed: int = 0) -> list[Example]:
        """Return ``n`` examples (``question`` → ``answer``), rules in turn, words drawn with ``seed``."""
        rng = random.Random(seed)
        out = []
        for i in range(n):
            rule = self.rules[i % len(self.rules)]
            word = rng.choice(_WORDS)
            while RULES[rule](word) == word:  # the unchanged word must be a wrong answer
                word = rng.choice(_WORDS)
            out.append(Example(question=f"{rule} {word}", answer=RULES[rule](word)).with_inputs("question"))
        return out

    def _taught(self, rule: str, texts: Sequence[str]) -> bool:
        """Return whether a demo in ``texts`` (user turn, then assistant turn) shows ``rule`` correctly."""
        for user, assistant in itertools.pairwise(texts):
            asked = _QUESTION.search(user)
            shown = _ANSWER.search(assistant)
            if asked and shown and asked.group(1) == rule and asked.group(1) in RULES \
                    and shown.group(1).strip() == RULES[rule](asked.group(2)):
                return True
        return False

    def propose(self, system: str, texts: Sequence[str], key: str) -> str | None:
        """Return a completion for an instruction-proposing prompt, else None.

        Every output field gets a short text; the instruction field
        (``proposed_instruction``, or GEPA's ``new_instruction``) gets the
        teaching phrase when a solved example (or, for GEPA, feedback naming
        a right answer) is shown, else one of :attr:`proposals` chosen by the
        SHA-256 of the prompt and ``key``. JSON-adapter prompts get JSON.
        """
        found = fields_from_prompt(system)
        names = [spec.name for spec in found[0]] if found else []
        field = next((n for n in ("proposed_instruction", "new_instruction") if n in names), None)
        if field is None:
            return None
        digest = hashlib.sha256("\n".join([system, *texts, key]).encode("utf-8", "replace")).digest()
        pick = self.proposals[int.from_bytes(digest[:4], "big") % len(self.proposals)]
        shown = self._solved_shown if field == "proposed_instruction" else self._answer_revealed
        if any(shown(text) for text in texts):
            pick = self.instruction
        values = {name: pick if name == field else "Answer:" for name in names}
        if found and found[1] == "json":
            return json.dumps(values)
        return "\n\n".join([*(f"[[ ## {n} ## ]]\n{v}" for n, v in values.items()), "[[ ## completed ## ]]"])

    @staticmethod
    def _answer_revealed(text: str) -> bool:
        """Return whether ``text`` asks a ``<rule> <word>`` question and also holds its right answer."""
        for rule, word in _ASKED.findall(text):
            if rule in RULES and RULES[rule](word) != word and RULES[rule](word) in text.replace(f"{rule} {word}", ""):
                return True
        return False

    @staticmethod
    def _solved_shown(text: str) -> bool:
        for asked, shown in _SOLVED.findall(text):
            rule, _, word = asked.partition(" ")
            if rule in RULES and word and RULES[rule](word) == shown.strip():
                return True
        return False

    def complete(self, system: str, texts: Sequence[str], key: str = "") -> str | None:
        """Return the student's completion, or None when the prompt is not one of its questions.

        Args:
            system: The system prompt.
            texts: Every message's text in order (the last is the question).
            key: The completion's identity (its choice index: the same prompt gets the same answers
                from any client, whatever else its request carries).
        """
        if not texts:
            return None
        proposal = self.propose(system, texts, key)
        if proposal is not None:
            return proposal
        asked = _QUESTION.search(texts[-1])
        if asked is None or asked.group(1) not in RULES:
            return None
        rule, word = asked.group(1), asked.group(2)
        knows = self.instruction in system or self._taught(rule, texts[:-1])
        value = RULES[rule](word) if knows else word
        found = fields_from_prompt(system)
        names = [spec.name for spec in found[0]] if found else ["answer"]
        blocks = [f"[[ ## {name} ## ]]\n" + (f"The rule is {rule}." if name != "answer" else value)
                  for name in names]
        return "\n\n".join([*blocks, "[[ ## completed ## ]]"])
