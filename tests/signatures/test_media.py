"""dx.Image / dx.Audio / dx.File / dx.Code: construction, errors, serialisation, content-part splitting."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import pydantic
import pytest

import dspex as dx
from dspex.adapters._parts import split_message
from dspex.errors import ConfigError, InputError

if TYPE_CHECKING:
    from pathlib import Path

PNG_URI = "data:image/png;base64,iVBORw0KGgo="


def test_image_accepts_urls_data_uris_dicts_and_images() -> None:
    assert dx.Image("https://example.com/a.png").url == "https://example.com/a.png"
    assert dx.Image("gs://bucket/a.png").url == "gs://bucket/a.png"
    assert dx.Image(PNG_URI).url == PNG_URI
    assert dx.Image({"url": PNG_URI}).url == PNG_URI
    assert dx.Image(dx.Image(PNG_URI)) == dx.Image(url=PNG_URI)
    assert repr(dx.Image(PNG_URI)) == "Image(url=data:image/png;base64,<IMAGE_BASE_64_ENCODED(12)>)"


def test_image_rejects_local_paths_and_odd_values(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"Image.from_path"):
        dx.Image(str(tmp_path / "a.png"))
    with pytest.raises(InputError, match="expected a URL"):
        dx.Image(3.5)
    with pytest.raises(InputError, match="only one"):
        dx.Image(PNG_URI, url=PNG_URI)


def test_image_from_path_reads_a_data_uri(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"\x89PNG")
    assert dx.Image.from_path(path).url == "data:image/png;base64,iVBORw=="
    with pytest.raises(InputError, match="not found"):
        dx.Image.from_path(tmp_path / "missing.png")
    odd = tmp_path / "blob.unknownext"
    odd.write_bytes(b"x")
    with pytest.raises(InputError, match="MIME type"):
        dx.Image.from_path(odd)


def test_image_bytes_encode_through_pillow() -> None:
    with pytest.raises(InputError, match="identified as an image"):
        dx.Image(b"not an image")


def test_image_bytes_without_pillow_raise_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    with pytest.raises(ConfigError, match="Pillow"):
        dx.Image(b"\x89PNG")


def test_image_serialises_to_marked_parts_and_validates_from_a_string() -> None:
    img = dx.Image(PNG_URI)
    dumped = img.model_dump()
    assert dumped.startswith("<<CUSTOM-TYPE-START-IDENTIFIER>>")
    assert dumped.endswith("<<CUSTOM-TYPE-END-IDENTIFIER>>")
    assert str(img) == dumped
    assert pydantic.TypeAdapter(dx.Image).validate_python("https://e.com/x.png").url == "https://e.com/x.png"


def test_audio_and_file_forms_and_errors() -> None:
    audio = dx.Audio("data:audio/x-wav;base64,AAAA")
    assert (audio.data, audio.audio_format) == ("AAAA", "wav")
    assert dx.Audio(b"\x00", audio_format="mp3").format() == [
        {"type": "input_audio", "input_audio": {"data": "AA==", "format": "mp3"}}]
    with pytest.raises(InputError, match="carries its own format"):
        dx.Audio("data:audio/wav;base64,AAAA", audio_format="mp3")
    with pytest.raises(pydantic.ValidationError, match="unsupported audio"):
        dx.Audio(data=None)
    with pytest.raises(InputError, match="data URIs"):
        dx.File("report.pdf")
    with pytest.raises(InputError, match="at least one of"):
        dx.File({"name": "x"})
    with pytest.raises(pydantic.ValidationError, match="at least one of"):
        pydantic.TypeAdapter(dx.File).validate_python({"name": "x"})
    f = dx.File.from_bytes(b"%PDF", filename="a.pdf", mime_type="application/pdf")
    assert f.format() == [{"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERg==",
                                                     "filename": "a.pdf"}}]
    assert repr(f) == "File(file_data=<DATA_URI(application/pdf, 8 chars)>, filename='a.pdf')"


def test_code_language_classes_are_cached_and_strip_fences() -> None:
    assert dx.Code["rust"] is dx.Code["rust"]
    assert dx.Code["rust"].__name__ == "Code_rust"
    assert "Programming language: rust" in dx.Code["rust"].description()
    assert dx.Code.model_validate({"code": "```\nx = 1\n```"}).code == "x = 1"
    assert dx.Code.model_validate("print(2)").model_dump() == "print(2)"
    with pytest.raises(TypeError, match="language name"):
        dx.Code[3]
    with pytest.raises(pydantic.ValidationError, match="Code expects"):
        dx.Code.model_validate(12)


def test_split_message_leaves_plain_and_assistant_messages_alone() -> None:
    plain = {"role": "user", "content": "hello"}
    assert split_message(plain) is plain
    marked = f"a{dx.Image(PNG_URI)}b"
    assistant = {"role": "assistant", "content": marked}
    assert split_message(assistant) is assistant
    assert split_message({"role": "user", "content": marked})["content"] == [
        {"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": PNG_URI}}, {"type": "text", "text": "b"}]
    broken = "<<CUSTOM-TYPE-START-IDENTIFIER>>not json at all<<CUSTOM-TYPE-END-IDENTIFIER>>"
    assert split_message({"role": "user", "content": broken})["content"][0]["type"] == "text"


def test_saved_demos_keep_dspys_image_representation(tmp_path: Path) -> None:
    predict = dx.Predict("question, image: Image -> answer")
    predict.demos = [dx.Example(question="q", image=dx.Image(PNG_URI), answer="a")]
    path = tmp_path / "p.json"
    predict.save(path)
    saved = json.loads(path.read_text())["demos"][0]
    assert saved["image"] == str(dx.Image(PNG_URI))  # DSPy writes the marked string too
    loaded = dx.Predict("question, image: Image -> answer")
    loaded.load(path)
    messages = dx.ChatAdapter().format(loaded.signature, loaded.demos, {"question": "x", "image": dx.Image(PNG_URI)})
    assert messages[1]["content"][1] == {"type": "image_url", "image_url": {"url": PNG_URI}}


def test_document_parts_and_validation() -> None:
    doc = dx.Document(data="Water boils at 100C.", title="Physics", context="textbook")
    assert doc.format() == [{"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                             "data": "Water boils at 100C."},
                             "citations": {"enabled": True}, "title": "Physics", "context": "textbook"}]
    assert dx.Document.model_validate("plain text").data == "plain text"
    assert str(doc) == "Document('Physics': 20 chars)"
    pdf = dx.Document(data="JVBERi0=", media_type="application/pdf")
    assert pdf.format()[0]["source"]["type"] == "base64"
    with pytest.raises(pydantic.ValidationError, match="Document expects"):
        dx.Document.model_validate(3)
    with pytest.raises(pydantic.ValidationError):
        dx.Document(data="x", media_type="text/html")


CITE = {"cited_text": "Water boils", "document_index": 0, "start_char_index": 0, "end_char_index": 11}


@pytest.mark.parametrize("raw", [[CITE], {"citations": [CITE]}, CITE])
def test_citations_accept_dspys_shapes(raw: object) -> None:
    cites = dx.Citations.model_validate(raw)
    assert len(cites) == 1
    assert cites[0].cited_text == "Water boils"
    assert next(iter(cites)).document_index == 0
    assert cites.format() == [{"type": "char_location", **CITE}]
    assert dx.Citations.from_dict_list([CITE]) == cites
    assert isinstance(cites[0], dx.Citations.Citation)


def test_citations_output_parses_from_a_completion_and_rejects_garbage() -> None:
    sig = dx.Signature("documents: list[Document], question -> answer, citations: Citations")
    text = f'[[ ## answer ## ]]\n100C\n\n[[ ## citations ## ]]\n{json.dumps([CITE])}\n\n[[ ## completed ## ]]'
    parsed = dx.ChatAdapter().parse(sig, text)
    assert parsed["answer"] == "100C"
    assert parsed["citations"][0].end_char_index == 11
    with pytest.raises(dx.errors.ParseError, match="citations"):
        dx.ChatAdapter().parse(sig, "[[ ## answer ## ]]\nx\n\n[[ ## citations ## ]]\nnone at all")
