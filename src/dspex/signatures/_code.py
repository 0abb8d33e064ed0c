"""``Code``: source code as a signature type, with its language (DSPy's ``dspy.Code``).

As an input it renders as the bare code text; as an output the LM is asked
for a fenced block and the fences are stripped. ``Code["java"]`` names the
language; the prompt's "Type description of Code_java" line states it, as
DSPy 3.4.1 does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import model_validator

from ._media import ContentType

__all__ = ["Code"]

_FENCED = re.compile(r"```(?:[^\n]*)\n(.*?)```", re.DOTALL)
_INLINE = re.compile(r"```(.*?)```", re.DOTALL)
_BY_LANGUAGE: dict[str, type[Code]] = {}


def strip_fences(code: str) -> str:
    """Return the body of the first fenced block in ``code`` (or ``code`` unchanged)."""
    match = _FENCED.search(code) or _INLINE.search(code)
    return match.group(1).strip() if match else code


class Code(ContentType):
    """Code text; ``Code["python"]`` (the default language) or any other language.

    Example:
        >>> Code.model_validate("```python\\nprint(1)\\n```").code
        'print(1)'
    """

    code: str
    language: ClassVar[str] = "python"

    def format(self) -> str:
        """Return the code text (no content-part markers)."""
        return self.code

    @classmethod
    def description(cls) -> str:
        """Return the prompt description, naming the fence and the language."""
        return (
            "Code represented in a string, specified in the `code` field. If this is an output field, the code "
            f"field should follow the markdown code block format, e.g. \n```{cls.language.lower()}\n{{code}}\n```"
            f"\nProgramming language: {cls.language}"
        )

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, Code):
            return {"code": data.code}
        if isinstance(data, str):
            return {"code": strip_fences(data)}
        if isinstance(data, Mapping):
            if not isinstance(data.get("code"), str):
                raise ValueError(f"Code expects a string or a {{'code': str}} dict, got {data!r:.80}")
            return {"code": strip_fences(data["code"])}
        raise ValueError(f"Code expects a string or a {{'code': str}} dict, got {type(data).__name__}")

    def __class_getitem__(cls, language: Any) -> Any:
        """Return the ``Code`` subclass for ``language`` (one per language, cached).

        DSPy spells these ``Code_<language>``; the name shows in prompts, so it
        is kept.
        """
        if not isinstance(language, str) or not language:
            raise TypeError(f"Code[...] expects a language name such as 'python', got {language!r}")
        sub = _BY_LANGUAGE.get(language)
        if sub is None:
            sub = _BY_LANGUAGE[language] = type(f"Code_{language}", (Code,), {"language": language,
                                                                               "__module__": __name__})
        return sub
