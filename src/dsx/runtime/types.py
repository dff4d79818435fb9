"""Special field types: :class:`Image` and :class:`History`."""

from __future__ import annotations

import base64
import mimetypes
import os
from pathlib import Path
from typing import Any

import pydantic

__all__ = ["History", "Image"]


class Image(pydantic.BaseModel):
    """An image input, sent to the LM as an image content part.

    Build it from a URL, a ``data:`` URI, a file path or raw bytes::

        dsx.Image("https://example.com/cat.png")
        dsx.Image(Path("cat.png"))            # or Image.from_file("cat.png")
        dsx.Image(png_bytes)                  # or Image.from_bytes(data, mime_type="image/png")
    """

    model_config = pydantic.ConfigDict(frozen=True)

    url: str

    def __init__(self, source: Any = None, /, **data: Any) -> None:
        if source is not None:
            data["url"] = _to_url(source)
        elif "url" in data:
            data["url"] = _to_url(data["url"])
        super().__init__(**data)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        if isinstance(value, str | bytes | Path):
            return {"url": _to_url(value)}
        return value

    @classmethod
    def from_url(cls, url: str) -> Image:
        return cls(url=url)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Image:
        return cls(Path(path))

    @classmethod
    def from_bytes(cls, data: bytes, *, mime_type: str = "image/png") -> Image:
        return cls(url=f"data:{mime_type};base64,{base64.b64encode(data).decode()}")

    def content_part(self) -> dict[str, Any]:
        """The OpenAI-style content part for this image."""
        return {"type": "image_url", "image_url": {"url": self.url}}

    def __str__(self) -> str:
        short = self.url if len(self.url) <= 60 else self.url[:57] + "..."
        return f"<image {short}>"


def _to_url(source: Any) -> str:
    if isinstance(source, bytes):
        mime = _sniff_mime(source)
        return f"data:{mime};base64,{base64.b64encode(source).decode()}"
    if isinstance(source, Path):
        return _file_to_url(source)
    if isinstance(source, str):
        if source.startswith(("http://", "https://", "data:", "gs://", "s3://")):
            return source
        path = Path(source)
        if path.is_file():
            return _file_to_url(path)
        raise ValueError(
            f"dsx.Image got {source[:80]!r}: not a URL (http://, https://, data:) and no such "
            "file. Pass a URL, an existing file path or the image bytes."
        )
    raise TypeError(f"dsx.Image cannot be built from {type(source).__name__}")


def _file_to_url(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"dsx.Image could not read {path}: {exc.strerror}") from None
    mime = mimetypes.guess_type(path.name)[0] or _sniff_mime(data)
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _sniff_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


class History(pydantic.BaseModel):
    """Prior turns of a conversation, given to a predictor as an input field.

    Each message is a dict holding the field values of one earlier turn (inputs and
    outputs of the same signature); the adapter renders them as user/assistant turns
    before the current request::

        history = dsx.History(messages=[{"question": "2+2?", "answer": "4"}])
        predict(question="and doubled?", history=history)
    """

    model_config = pydantic.ConfigDict(frozen=True)

    messages: list[dict[str, Any]] = pydantic.Field(default_factory=list)
