"""``Document`` inputs and ``Citations`` outputs (DSPy 3.4.1's experimental citation types).

A ``Document`` is sent as an Anthropic-style ``document`` content part with
citations enabled (the same part DSPy sends, whatever the provider). A
``Citations`` output is parsed from the JSON the LM writes (a list of
citation objects, ``{"citations": [...]}`` or one citation object).

Difference on purpose: DSPy's prompt note for a ``Citations`` output embeds
the class docstring in the JSON schema; dspex's schema leaves docstrings out
(as for every dspex type), so that one system-message line differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

from pydantic import model_validator

from ._media import ContentType
from ._model import _Model

__all__ = ["Citations", "Document"]


class Document(ContentType):
    """A text (or base64 PDF) document the LM may quote and cite.

    Example:
        >>> Document(data="Water boils at 100C.", title="Physics").format()[0]["type"]
        'document'
    """

    data: str
    title: str | None = None
    media_type: Literal["text/plain", "application/pdf"] = "text/plain"
    context: str | None = None

    def format(self) -> list[dict[str, Any]]:
        """Return one ``document`` part (``source`` text or base64, citations enabled)."""
        block: dict[str, Any] = {
            "type": "document",
            "source": {"type": "base64" if self.media_type == "application/pdf" else "text",
                       "media_type": self.media_type, "data": self.data},
            "citations": {"enabled": True},
        }
        if self.title:
            block["title"] = self.title
        if self.context:
            block["context"] = self.context
        return [block]

    @classmethod
    def description(cls) -> str:
        """Return the prompt description (DSPy's wording)."""
        return ("A document containing text content that can be referenced and cited. "
                "Include the full text content and optionally a title for proper referencing.")

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, Document | Mapping):
            return data
        if isinstance(data, str):
            return {"data": data}
        raise ValueError(f"Document expects text, a dict or a Document, got {type(data).__name__}")

    def __str__(self) -> str:
        title = f"'{self.title}': " if self.title else ""
        return f"Document({title}{len(self.data)} chars)"


class CitedSpan(_Model):
    """One citation: the quoted text and where it sits in which document."""

    type: str = "char_location"
    cited_text: str
    document_index: int
    document_title: str | None = None
    start_char_index: int
    end_char_index: int
    supported_text: str | None = None

    def format(self) -> dict[str, Any]:
        """Return the citation as a dict, optional keys only when set."""
        out = self.model_dump(include={"type", "cited_text", "document_index", "start_char_index",
                                       "end_char_index"})
        out.update({k: getattr(self, k) for k in ("document_title", "supported_text") if getattr(self, k)})
        return out


class Citations(ContentType):
    """Citations of the input documents, e.g. ``result.citations[0].cited_text``.

    Accepts a list of citation dicts, ``{"citations": [...]}`` or one
    citation dict (what LMs write in text mode).
    """

    Citation: ClassVar[type[CitedSpan]] = CitedSpan  # DSPy spells the item type Citations.Citation
    citations: list[CitedSpan]

    @classmethod
    def from_dict_list(cls, items: list[dict[str, Any]]) -> Citations:
        """Return citations built from ``[{"cited_text": ..., "document_index": ...}, ...]``."""
        return cls(citations=[CitedSpan(**item) for item in items])

    @classmethod
    def description(cls) -> str:
        """Return the prompt description (DSPy's wording)."""
        return ("Citations with quoted text and source references. "
                "Include the exact text being cited and information about its source.")

    def format(self) -> list[dict[str, Any]]:
        """Return each citation as a dict."""
        return [c.format() for c in self.citations]

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, Citations):
            return {"citations": data.citations}
        if isinstance(data, list) and all(isinstance(i, Mapping) and "cited_text" in i for i in data):
            return {"citations": data}
        if isinstance(data, Mapping):
            if isinstance(data.get("citations"), list):
                return {"citations": data["citations"]}
            if "cited_text" in data:
                return {"citations": [data]}
        raise ValueError("Citations expects a list of {'cited_text', 'document_index', 'start_char_index', "
                         f"'end_char_index'}} objects or {{'citations': [...]}}, got {data!r:.120}")

    def __iter__(self) -> Iterator[CitedSpan]:  # type: ignore[override]
        return iter(self.citations)

    def __len__(self) -> int:
        return len(self.citations)

    def __getitem__(self, index: int) -> CitedSpan:
        return self.citations[index]
