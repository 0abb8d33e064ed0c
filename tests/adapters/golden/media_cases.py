"""Content-part golden cases (Image, Audio, File, Code), written once for DSPy and dspex.

Each builder takes a namespace ``ns`` with ``Signature``, ``InputField``,
``OutputField``, ``History``, ``Image``, ``Audio``, ``File``, ``Code``, ``Document``, ``ToolCalls`` and ``ToolCallResults``
(``dspy`` when generating fixtures, ``dspex`` in the tests). Cases that need
Pillow (bytes / PIL inputs) are listed in ``NEEDS_PIL``. Never imports dspy.
"""

# No `from __future__ import annotations`: the signatures annotate with `ns.Image` etc.

import base64
from pathlib import Path
from typing import Any

# A 2x2 red PNG, as Pillow 13 writes it; DSPy re-encodes bytes through Pillow.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)
URL = "https://example.com/cat.png"
DATA_URI = "data:image/png;base64,iVBORw0KGgo="
WAV = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="
PDF = "data:application/pdf;base64,JVBERi0xLjQK"


def image_qa(ns: Any) -> Any:
    class ImageQA(ns.Signature):
        """Answer the question about the image."""

        question: str = ns.InputField()
        image: ns.Image = ns.InputField(desc="the picture")
        answer: str = ns.OutputField()

    return ImageQA


def images(ns: Any) -> Any:
    class Gallery(ns.Signature):
        images: list[ns.Image] = ns.InputField()
        caption: str = ns.OutputField()

    return Gallery


def image_dict(ns: Any) -> Any:
    class Labelled(ns.Signature):
        images: dict[str, ns.Image] = ns.InputField()
        label: str = ns.OutputField()

    return Labelled


def audio(ns: Any) -> Any:
    class Transcribe(ns.Signature):
        clip: ns.Audio = ns.InputField()
        text: str = ns.OutputField()

    return Transcribe


def file(ns: Any) -> Any:
    class Summarize(ns.Signature):
        document: ns.File = ns.InputField()
        summary: str = ns.OutputField()

    return Summarize


def code_in(ns: Any) -> Any:
    python_code = ns.Code["python"]

    class Complexity(ns.Signature):
        """Analyze the time complexity of the function."""

        code: python_code = ns.InputField()
        result: str = ns.OutputField()

    return Complexity


def code_out(ns: Any) -> Any:
    java_code = ns.Code["java"]

    class Generate(ns.Signature):
        question: str = ns.InputField()
        code: java_code = ns.OutputField()

    return Generate


def image_history(ns: Any) -> Any:
    class Chat(ns.Signature):
        image: ns.Image = ns.InputField()
        question: str = ns.InputField()
        history: ns.History = ns.InputField()
        answer: str = ns.OutputField()

    return Chat


def documents(ns: Any) -> Any:
    class Cited(ns.Signature):
        """Answer from the documents."""

        documents: list[ns.Document] = ns.InputField()
        question: str = ns.InputField()
        answer: str = ns.OutputField()

    return Cited


def tool_history(ns: Any) -> Any:
    class Agent(ns.Signature):
        question: str = ns.InputField()
        history: ns.History = ns.InputField()
        answer: str = ns.OutputField()
        calls: ns.ToolCalls = ns.OutputField()

    return Agent


def _tool_turns(ns: Any, with_ids: bool) -> list[dict[str, Any]]:
    calls = ns.ToolCalls.from_dict_list([
        {"name": "get_weather", "args": {"city": "Oslo"}, **({"id": "call_1"} if with_ids else {})},
        {"name": "get_time", "args": {}, **({"id": "call_2"} if with_ids else {})},
    ])
    results = ns.ToolCallResults.from_tool_calls_and_values(calls, ["sunny", {"hour": 9}], [False, True])
    return [
        {"question": "Weather and time in Oslo?",
         "calls": ns.ToolCalls(tool_calls=calls.tool_calls, tool_call_results=results)},
        {"question": "Thanks", "answer": "You are welcome."},
    ]


SIGNATURES = {
    "tool_history": tool_history,
    "documents": documents,
    "image_qa": image_qa,
    "images": images,
    "image_dict": image_dict,
    "audio": audio,
    "file": file,
    "code_in": code_in,
    "code_out": code_out,
    "image_history": image_history,
}
NEEDS_PIL = {"image_bytes", "image_pil"}
NATIVE = {"tool_history", "tool_history_no_ids"}  # also formatted with native function calling on


def format_cases(ns: Any, tmp: Path, pil: Any = None) -> list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]]:
    """Return ``(case, signature, demos, inputs)``; ``tmp`` holds files for ``from_path``.

    ``pil`` is ``PIL.Image`` or None (the Pillow cases are then left out).
    """
    png_path = tmp / "red.png"
    png_path.write_bytes(PNG)
    pdf_path = tmp / "report.pdf"
    pdf_path.write_bytes(b"%PDF-1.4\n")
    url_image = ns.Image(URL)
    out = [
        ("image_url", "image_qa", [], {"question": "What animal?", "image": url_image}),
        ("image_data_uri", "image_qa", [], {"question": "What color?", "image": ns.Image(DATA_URI)}),
        ("image_url_kw", "image_qa", [], {"question": "What?", "image": ns.Image(url=URL)}),
        ("image_path", "image_qa", [], {"question": "What color?", "image": ns.Image.from_path(str(png_path))}),
        ("image_list", "images", [], {"images": [url_image, ns.Image(DATA_URI)]}),
        ("image_dict", "image_dict", [], {"images": {"a": url_image}}),
        ("image_demo", "image_qa",
         [{"question": "Which animal?", "image": ns.Image("https://example.com/dog.png"), "answer": "dog"},
          {"question": "Incomplete demo", "image": url_image}],
         {"question": "What animal?", "image": url_image}),
        ("image_history", "image_history", [],
         {"image": url_image, "question": "And now?",
          "history": ns.History(messages=[{"image": ns.Image(DATA_URI), "question": "Before?", "answer": "red"}])}),
        ("audio", "audio", [], {"clip": ns.Audio(data=WAV, audio_format="wav")}),
        ("audio_data_uri", "audio", [], {"clip": ns.Audio(f"data:audio/wav;base64,{WAV}")}),
        ("file_data", "file", [], {"document": ns.File(file_data=PDF, filename="a.pdf")}),
        ("file_id", "file", [], {"document": ns.File.from_file_id("file-abc123")}),
        ("file_path", "file", [], {"document": ns.File.from_path(str(pdf_path))}),
        ("documents", "documents", [],
         {"documents": [ns.Document(data="Water boils at 100C.", title="Physics"),
                        ns.Document(data="JVBERi0xLjQK", media_type="application/pdf", context="scan")],
          "question": "When does water boil?"}),
        ("tool_history", "tool_history", [],
         {"question": "And tomorrow?", "history": ns.History(messages=_tool_turns(ns, with_ids=True))}),
        ("tool_history_no_ids", "tool_history", [],
         {"question": "And tomorrow?", "history": ns.History(messages=_tool_turns(ns, with_ids=False))}),
        ("code_in", "code_in", [], {"code": "def f(x):\n    return sorted(x)"}),
        ("code_out", "code_out", [{"question": "Add", "code": "int add(int a, int b) { return a + b; }"}],
         {"question": "Say hi"}),
    ]
    if pil is not None:
        out.append(("image_bytes", "image_qa", [], {"question": "Bytes?", "image": ns.Image(PNG)}))
        out.append(("image_pil", "image_qa", [], {"question": "PIL?", "image": ns.Image(pil.new("RGB", (2, 2)))}))
    return out


# Completions parsed by both libraries (Code outputs strip the fences).
CODE_PARSE = [
    ("code_out", "[[ ## code ## ]]\n```java\nclass A {}\n```\n\n[[ ## completed ## ]]"),
    ("code_out", "[[ ## code ## ]]\nclass B {}\n\n[[ ## completed ## ]]"),
]
