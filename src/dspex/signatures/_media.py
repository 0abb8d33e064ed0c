"""Content-part types: ``Image``, ``Audio`` and ``File`` inputs, formatted as DSPy 3.4.1 does.

Each type renders as OpenAI chat content parts (``image_url``, ``input_audio``,
``file``). Inside a prompt string the parts travel between DSPy's reserved
``<<CUSTOM-TYPE-START-IDENTIFIER>>`` / ``<<CUSTOM-TYPE-END-IDENTIFIER>>``
markers (that is what the pydantic serializer returns, so values nested in
lists and dicts serialise the same way DSPy's do); the adapters then split
each user message into a list of parts (``adapters/_parts.py``). Provider
clients translate the parts for Anthropic and Gemini.

Construction never touches the network or the filesystem: local files go
through ``from_path`` and downloads through ``from_url`` (which blocks), as in
DSPy 3.4.1. Image bytes and PIL images need the optional Pillow package
(``pip install dspex[images]``); DSPy re-encodes them with Pillow, and so do we,
so the data URIs match.
"""

from __future__ import annotations

import base64
import io
import json
import mimetypes
import os
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from pydantic import ConfigDict, model_serializer, model_validator

from ..errors import ConfigError, InputError
from ._model import _Model

__all__ = ["CUSTOM_TYPE_END", "CUSTOM_TYPE_START", "Audio", "ContentType", "File", "Image"]

CUSTOM_TYPE_START = "<<CUSTOM-TYPE-START-IDENTIFIER>>"
CUSTOM_TYPE_END = "<<CUSTOM-TYPE-END-IDENTIFIER>>"


class ContentType(_Model):
    """Base of the types that render as content parts (DSPy's ``dspy.Type``).

    ``format()`` returns a list of OpenAI content parts, or a plain string for
    text-like types; serialising the value (``model_dump``, JSON) gives the
    marker-wrapped string the adapters split into parts.
    """

    @abstractmethod
    def format(self) -> list[dict[str, Any]] | str:
        """Return the value as OpenAI chat content parts (or plain text)."""

    @model_serializer(mode="plain")
    def _serialize(self) -> str:
        formatted = self.format()
        if isinstance(formatted, list):
            return f"{CUSTOM_TYPE_START}{json.dumps(formatted, ensure_ascii=False)}{CUSTOM_TYPE_END}"
        return formatted

    def __str__(self) -> str:
        return self._serialize()


def _pil_image_class() -> Any:
    try:
        from PIL import Image as PILImage  # optional extra: dspex[images]
    except ImportError:
        return None
    return PILImage.Image


def _mime_for(path: str) -> str | None:
    return mimetypes.guess_type(path)[0]


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('utf-8')}"


def _is_url(text: str) -> bool:
    try:
        parsed = urlparse(text)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https", "gs") and bool(parsed.netloc)


def _download(url: str, verify: bool, timeout: float | None) -> tuple[bytes, str]:
    """Fetch ``url`` (HTTP(S) only; blocks) and return ``(body, content_type)``."""
    import httpx  # only needed for the explicit download helpers

    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InputError(f"from_url requires an HTTP(S) URL, got {url!r}")
    response = httpx.get(url, verify=verify, timeout=timeout, follow_redirects=True)
    response.raise_for_status()
    return response.content, response.headers.get("Content-Type", "")


def _encode_pil(image: Any) -> str:
    buffer = io.BytesIO()
    fmt = image.format or "PNG"
    image.save(buffer, format=fmt)
    mime = _mime_for(f"file.{fmt.lower()}")
    if mime is None:
        raise InputError(f"cannot determine the MIME type of image format {fmt!r}; expected PNG, JPEG, GIF, WEBP …")
    return _data_uri(mime, buffer.getvalue())


def encode_image(value: Any) -> str:
    """Return ``value`` as a data URI or a remote URL (DSPy's ``encode_image``).

    Accepts a data URI, an http(s)/gs URL, bytes or a PIL image (both need
    Pillow), an ``Image``, or ``{"url": ...}``.

    Raises:
        InputError: Any other value, including a local path (use ``Image.from_path``).
        ConfigError: Bytes or a PIL image without Pillow installed.
    """
    if isinstance(value, Mapping) and "url" in value:
        return encode_image(value["url"])
    if isinstance(value, Image):
        return value.url
    if isinstance(value, str):
        if value.startswith("data:") or _is_url(value):
            return value
        raise InputError(
            f"unrecognized image string {value[:80]!r}: expected an http(s)/gs URL or a data URI; "
            "load local files with Image.from_path()"
        )
    pil = _pil_image_class()
    if pil is not None and isinstance(value, pil):
        return _encode_pil(value)
    if isinstance(value, bytes | bytearray):
        if pil is None:
            raise ConfigError("image bytes need Pillow: pip install 'dspex[images]'")
        from PIL import Image as PILImage
        from PIL import UnidentifiedImageError

        try:
            opened = PILImage.open(io.BytesIO(bytes(value)))
        except UnidentifiedImageError as exc:
            raise InputError(f"bytes could not be identified as an image: {exc}") from exc
        return _encode_pil(opened)
    raise InputError(f"unsupported image value of type {type(value).__name__}; expected a URL, data URI, bytes "
                     "or PIL image")


class Image(ContentType):
    """An image input: ``Image("https://…")``, ``Image(png_bytes)``, ``Image.from_path(p)``.

    The ``url`` is a remote URL or a base64 data URI; it is sent as an
    ``image_url`` content part.

    Raises:
        InputError: The source is not an image reference (see ``encode_image``).
    """

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, validate_assignment=True, extra="forbid")

    url: str

    def __init__(self, source: Any = None, /, **data: Any) -> None:
        if source is not None and "url" in data:
            raise InputError("Image received both a source and url=; expected only one image source")
        if source is not None:
            data["url"] = source["url"] if isinstance(source, Mapping) and set(source) == {"url"} else source
        if "url" in data:
            data["url"] = encode_image(data["url"])
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        # Field values (a bare URL in a demo dict, say) validate like Image(value).
        if isinstance(data, Mapping):
            return data
        return {"url": encode_image(data)}

    def format(self) -> list[dict[str, Any]]:
        """Return ``[{"type": "image_url", "image_url": {"url": ...}}]``."""
        return [{"type": "image_url", "image_url": {"url": self.url}}]

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Image:
        """Read a local image file into a data URI (reads the file; blocks).

        Raises:
            InputError: The file is missing or its MIME type is unknown.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputError(f"image file not found: {path!r}")
        mime = _mime_for(path)
        if mime is None:
            raise InputError(f"cannot determine the MIME type of {path!r}; expected an image file extension")
        with open(path, "rb") as fh:
            return cls(_data_uri(mime, fh.read()))

    @classmethod
    def from_url(cls, url: str, verify: bool = True, timeout: float | None = 30.0) -> Image:
        """Download ``url`` (blocks, follows redirects) into a data URI.

        Raises:
            InputError: ``url`` is not HTTP(S), or no MIME type can be found.
        """
        body, mime = _download(url, verify, timeout)
        mime = mime or _mime_for(url) or ""
        if not mime:
            raise InputError(f"cannot determine the MIME type of {url!r}")
        return cls(_data_uri(mime, body))

    def __repr__(self) -> str:
        if "base64" in self.url:
            size = len(self.url.split("base64,")[1])
            kind = self.url.split(";")[0].split("/")[-1]
            return f"Image(url=data:image/{kind};base64,<IMAGE_BASE_64_ENCODED({size})>)"
        return f"Image(url='{self.url}')"


def encode_audio(value: Any, audio_format: str = "wav") -> dict[str, str]:
    """Return ``{"data": base64, "audio_format": ...}`` for a data URI, bytes, dict or ``Audio``.

    Raises:
        InputError: Any other value (local files go through ``Audio.from_path``).
    """
    if isinstance(value, Mapping) and "data" in value and "audio_format" in value:
        return dict(value)
    if isinstance(value, Audio):
        return {"data": value.data, "audio_format": value.audio_format}
    if isinstance(value, str) and value.startswith("data:audio/"):
        header, sep, data = value.partition(",")
        _, slash, fmt = header.removeprefix("data:").split(";", 1)[0].partition("/")
        if not sep or not slash or not fmt:
            raise InputError(f"malformed audio data URI {value[:60]!r}; expected data:audio/<format>;base64,<data>")
        return {"data": data, "audio_format": fmt.removeprefix("x-")}
    if isinstance(value, bytes | bytearray):
        return {"data": base64.b64encode(bytes(value)).decode("utf-8"), "audio_format": audio_format}
    raise InputError(f"unsupported audio value of type {type(value).__name__}; expected a data:audio/ URI, bytes "
                     "(with audio_format=), a {'data', 'audio_format'} dict, or Audio.from_path()")


class Audio(ContentType):
    """An audio input, sent as an ``input_audio`` content part (base64 ``data`` + ``audio_format``).

    Raises:
        InputError: The source is not audio data (see ``encode_audio``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str
    audio_format: str

    def __init__(self, source: Any = None, /, **data: Any) -> None:
        if source is not None:
            if "data" in data:
                raise InputError("Audio received data both positionally and as data=; expected one")
            fmt = data.pop("audio_format", None)
            if fmt is not None and (isinstance(source, Audio | Mapping)
                                    or (isinstance(source, str) and source.startswith("data:audio/"))):
                raise InputError("Audio received audio_format= for a source that carries its own format")
            data = {**encode_audio(source, fmt or "wav"), **data}
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        return encode_audio(data)

    def format(self) -> list[dict[str, Any]]:
        """Return ``[{"type": "input_audio", "input_audio": {"data": ..., "format": ...}}]``."""
        return [{"type": "input_audio", "input_audio": {"data": self.data, "format": self.audio_format}}]

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Audio:
        """Read a local audio file (reads the file; blocks).

        Raises:
            InputError: The file is missing or not ``audio/*`` by extension.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputError(f"audio file not found: {path!r}")
        mime = _mime_for(path)
        if not mime or not mime.startswith("audio/"):
            raise InputError(f"unsupported MIME type {mime!r} for audio file {path!r}; expected audio/*")
        with open(path, "rb") as fh:
            return cls(data=base64.b64encode(fh.read()).decode("utf-8"),
                       audio_format=mime.split("/")[1].removeprefix("x-"))

    @classmethod
    def from_url(cls, url: str, verify: bool = True, timeout: float | None = 30.0) -> Audio:
        """Download ``url`` (blocks, follows redirects).

        Raises:
            InputError: ``url`` is not HTTP(S) or the response is not ``audio/*``.
        """
        body, mime = _download(url, verify, timeout)
        mime = mime or "audio/wav"
        if not mime.startswith("audio/"):
            raise InputError(f"unsupported MIME type {mime!r} for audio at {url!r}; expected audio/*")
        return cls(data=base64.b64encode(body).decode("utf-8"), audio_format=mime.split("/")[1].removeprefix("x-"))

    def __repr__(self) -> str:
        return f"Audio(data=<AUDIO_BASE_64_ENCODED({len(self.data)})>, audio_format='{self.audio_format}')"


_FILE_KEYS = ("file_data", "file_id", "filename")


def encode_file(value: Any) -> dict[str, Any]:
    """Return ``value`` as ``{"file_data"?, "file_id"?, "filename"?}``.

    Raises:
        InputError: Not bytes, a data URI, such a dict or a ``File``.
    """
    if isinstance(value, File):
        return {k: getattr(value, k) for k in _FILE_KEYS if getattr(value, k) is not None}
    if isinstance(value, Mapping):
        if any(k in value for k in _FILE_KEYS):
            return dict(value)
        raise InputError("a File value must contain at least one of: file_data, file_id, or filename")
    if isinstance(value, str):
        if value.startswith("data:"):
            return {"file_data": value}
        raise InputError(f"file strings must be data URIs, got {value[:80]!r}; load local files with "
                         "File.from_path()")
    if isinstance(value, bytes | bytearray):
        return {"file_data": _data_uri("application/octet-stream", bytes(value))}
    raise InputError(f"unsupported file value of type {type(value).__name__}; expected bytes, a data URI or a dict")


class File(ContentType):
    """A file input (PDF …), sent as a ``file`` content part.

    Raises:
        InputError: The source is not a file reference (see ``encode_file``).
    """

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, validate_assignment=True, extra="forbid")

    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None

    def __init__(self, source: Any = None, /, **data: Any) -> None:
        if source is not None:
            given = encode_file(source)
            overlap = sorted(set(given) & set(data))
            if overlap:
                raise InputError(f"File received {', '.join(overlap)} both positionally and as keywords")
            data = {**given, **data}
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        return encode_file(data)

    def format(self) -> list[dict[str, Any]]:
        """Return ``[{"type": "file", "file": {...}}]`` with the fields that are set."""
        part = {k: getattr(self, k) for k in _FILE_KEYS if getattr(self, k)}
        return [{"type": "file", "file": part}]

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], filename: str | None = None,
                  mime_type: str | None = None) -> File:
        """Read a local file (blocks); ``filename`` defaults to its basename.

        Raises:
            InputError: The file is missing.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputError(f"file not found: {path!r}")
        with open(path, "rb") as fh:
            body = fh.read()
        mime = mime_type or _mime_for(path) or "application/octet-stream"
        return cls(file_data=_data_uri(mime, body), filename=filename or os.path.basename(path))

    @classmethod
    def from_bytes(cls, body: bytes, filename: str | None = None,
                   mime_type: str = "application/octet-stream") -> File:
        """Return a file holding ``body`` as a data URI."""
        return cls(file_data=_data_uri(mime_type, body), filename=filename)

    @classmethod
    def from_file_id(cls, file_id: str, filename: str | None = None) -> File:
        """Return a reference to a file already uploaded to the provider."""
        return cls(file_id=file_id, filename=filename)

    def __repr__(self) -> str:
        parts = []
        if self.file_data is not None:
            if self.file_data.startswith("data:"):
                mime = self.file_data.split(";")[0].split(":")[1]
                size = len(self.file_data.split("base64,")[1]) if "base64," in self.file_data else len(self.file_data)
                parts.append(f"file_data=<DATA_URI({mime}, {size} chars)>")
            else:
                parts.append(f"file_data=<DATA({len(self.file_data)} chars)>")
        parts += [f"{k}='{getattr(self, k)}'" for k in ("file_id", "filename") if getattr(self, k) is not None]
        return f"File({', '.join(parts)})"
