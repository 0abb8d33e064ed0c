"""Signatures: typed input → output contracts, fields and ML types."""

from ._code import Code as Code
from ._documents import Citations as Citations
from ._documents import Document as Document
from ._fields import InputField as InputField
from ._fields import OutputField as OutputField
from ._fields import infer_prefix as infer_prefix
from ._make import clear_signature_cache as clear_signature_cache
from ._make import ensure_signature as ensure_signature
from ._make import make_signature as make_signature
from ._media import Audio as Audio
from ._media import File as File
from ._media import Image as Image
from ._schema import output_json_schema as output_json_schema
from ._schema import tool_json_schema as tool_json_schema
from ._signature import Signature as Signature
from ._tool import Tool as Tool
from ._tool_results import ToolCallResults as ToolCallResults
from ._types import Citation as Citation
from ._types import Confidence as Confidence
from ._types import Embedding as Embedding
from ._types import History as History
from ._types import Reasoning as Reasoning
from ._types import ToolCalls as ToolCalls

__all__ = [
    "Audio",
    "Citation",
    "Citations",
    "Code",
    "Confidence",
    "Document",
    "Embedding",
    "File",
    "History",
    "Image",
    "InputField",
    "OutputField",
    "Reasoning",
    "Signature",
    "Tool",
    "ToolCallResults",
    "ToolCalls",
    "clear_signature_cache",
    "ensure_signature",
    "infer_prefix",
    "make_signature",
    "output_json_schema",
    "tool_json_schema",
]
