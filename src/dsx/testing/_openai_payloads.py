"""What :class:`dsx.testing.OpenAIServer` answers, as JSON documents: no I/O here.

Completions (one document or SSE chunks), embeddings, the ``response_format`` checks of
the server conventions it mimics, and OpenAI-style error bodies. The server module wires
these to HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dsx.runtime._structured_output import mode_of

__all__ = ["DEFAULT_MODEL", "HTTPError", "Reply", "StructuredOutput", "echo"]

DEFAULT_MODEL = "dsx-test"

StructuredOutput = Literal["openai", "llama.cpp", "ollama", "vllm", "none"]
#: The ``response_format`` modes each server convention accepts (``"none"`` ignores the
#: field). What the others do with the rest is in :func:`check_format`.
_ACCEPTED_FORMATS: dict[str, frozenset[str]] = {
    "openai": frozenset({"json_schema", "json_object", "json_object_schema", "text"}),
    "vllm": frozenset({"json_schema", "json_object", "json_object_schema", "text"}),
    "llama.cpp": frozenset({"json_object", "json_object_schema", "text"}),
    "ollama": frozenset({"json_object", "json_object_schema", "text"}),
}

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """A rich reply from a responder or script.

    Attributes:
        content: the text of every choice, or one text per choice (``None``: no content,
            as when the model only calls tools).
        tool_calls: chat tool calls, each ``{"name": str, "arguments": dict | str}`` with an
            optional ``"id"``; every choice carries them.
        finish_reason: defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``.
    """

    content: str | Sequence[str] | None = ""
    tool_calls: Sequence[Mapping[str, Any]] = ()
    finish_reason: str | None = None


class HTTPError(Exception):
    """Answered as an OpenAI-style JSON error; the connection survives."""

    def __init__(
        self, status: int, message: str, *, error_type: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type or ERROR_TYPES.get(status, "server_error")
        self.code = code

    def document(self) -> dict[str, Any]:
        return error_doc(str(self), self.error_type, self.code)


@dataclass(slots=True)
class Choice:
    text: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str


def echo(request: Mapping[str, Any]) -> str:
    """The default responder: the last user message (chat) or the last prompt (completions)."""
    if isinstance(request.get("messages"), list):
        messages = [m for m in request["messages"] if isinstance(m, dict)]
        users = [m for m in messages if m.get("role") == "user"] or messages
        return _text_of(users[-1].get("content")) if users else ""
    prompt = request.get("prompt", "")
    if isinstance(prompt, list):
        prompt = prompt[-1] if prompt else ""
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


def format_of(body: Any) -> str | None:
    """How a request body asks for structured output (see ``RecordedRequest``)."""
    if not isinstance(body, dict) or "response_format" not in body:
        return None
    given = body["response_format"]
    mode = mode_of(given)
    if mode is not None:
        return mode
    kind = given.get("type") if isinstance(given, dict) else given
    return str(kind)


def _text_of(content: Any) -> str:
    """The text of a message ``content``: a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def words(text: str | None) -> int:
    # Rough "tokens": clients only need plausible, consistent usage numbers.
    return len(text.split()) if text else 0


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    if isinstance(body.get("messages"), list):
        return sum(
            words(_text_of(m.get("content"))) for m in body["messages"] if isinstance(m, dict)
        )
    prompt = body.get("prompt", "")
    prompts = prompt if isinstance(prompt, list) else [prompt]
    return sum(words(p) for p in prompts if isinstance(p, str))


def _pieces(text: str) -> list[str]:
    """Split ``text`` into word-sized stream deltas that concatenate back to it exactly."""
    return re.findall(r"\s*\S+(?:\s+\Z)?", text) or ([text] if text else [])


def _embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector derived from a hash of ``text``."""
    values: list[float] = []
    block = 0
    while len(values) < dim:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend(v / 2**31 - 1.0 for v in struct.unpack(">8I", digest))
        block += 1
    vec = values[:dim]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def _embedding_inputs(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw:
        if all(isinstance(x, int) for x in raw):  # one pre-tokenised input
            return [json.dumps(raw)]
        if all(isinstance(x, str | list) for x in raw):
            return [x if isinstance(x, str) else json.dumps(x) for x in raw]
    raise HTTPError(400, "'input' must be a non-empty string or array", code="invalid_input")


def make_choices(reply: Any, n: int) -> list[Choice]:
    """Normalise a responder's reply into choices (a list of texts sets their number)."""
    spec = reply if isinstance(reply, Reply) else Reply(content=reply)
    content = spec.content
    if content is None or isinstance(content, str):
        texts: list[str | None] = [content] * n
    elif isinstance(content, Sequence) and content and all(isinstance(t, str) for t in content):
        texts = list(content)
    else:
        raise HTTPError(
            500,
            f"dsx test server: the responder returned {reply!r}; expected a str, a non-empty "
            "list of str (one per choice), a Reply or a Fault",
            code="bad_reply",
        )
    calls = [
        {
            "id": call.get("id") or f"call_{os.urandom(12).hex()}",
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": a
                if isinstance(a := call.get("arguments", {}), str)
                else json.dumps(a),
            },
        }
        for call in spec.tool_calls
    ]
    finish = spec.finish_reason or ("tool_calls" if calls else "stop")
    return [Choice(text, calls, finish) for text in texts]


def _chat_chunks(
    base: dict[str, Any], choices: list[Choice], extra: dict[str, Any]
) -> Iterator[dict]:
    def chunk(i: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], **extra}

    for i, ch in enumerate(choices):
        yield chunk(i, {"role": "assistant", "content": "" if ch.text is not None else None})
        for piece in _pieces(ch.text or ""):
            yield chunk(i, {"content": piece})
        for j, call in enumerate(ch.tool_calls):
            yield chunk(i, {"tool_calls": [{"index": j, **call}]})
        yield chunk(i, {}, ch.finish_reason)


def _text_chunks(
    base: dict[str, Any], choices: list[Choice], extra: dict[str, Any]
) -> Iterator[dict]:
    def chunk(i: int, text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice], **extra}

    for i, ch in enumerate(choices):
        for piece in _pieces(ch.text or ""):
            yield chunk(i, piece)
        yield chunk(i, "", ch.finish_reason)


def make_completion(kind: str, model: str, choices: list[Choice], prompt_tokens: int) -> Completion:
    completion_tokens = sum(words(c.text) for c in choices)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    prefix, obj = ("chatcmpl", "chat.completion") if kind == "chat" else ("cmpl", "text_completion")
    # 24 random hex digits, as uuid4().hex[:24] gave, without building a UUID per reply.
    base = {"id": f"{prefix}-{os.urandom(12).hex()}", "created": int(time.time()), "model": model}
    base["system_fingerprint"] = "fp_dsx_test"
    return Completion(kind, base, obj, choices, usage)


@dataclass(slots=True)
class Completion:
    """One completion, rendered as a JSON document or as stream chunks."""

    kind: str
    base: dict[str, Any]
    obj: str
    choices: list[Choice]
    usage: dict[str, int]

    def document(self) -> dict[str, Any]:
        if self.kind == "chat":
            rendered = [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": c.text, "refusal": None}
                    | ({"tool_calls": c.tool_calls} if c.tool_calls else {}),
                    "logprobs": None,
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(self.choices)
            ]
        else:
            rendered = [
                {
                    "text": c.text or "",
                    "index": i,
                    "logprobs": None,
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(self.choices)
            ]
        return {**self.base, "object": self.obj, "choices": rendered, "usage": self.usage}

    def chunks(self, *, include_usage: bool) -> list[dict[str, Any]]:
        base = {**self.base, "object": "chat.completion.chunk" if self.kind == "chat" else self.obj}
        # With include_usage OpenAI sends "usage": null on every chunk, then one usage chunk.
        extra: dict[str, Any] = {"usage": None} if include_usage else {}
        make = _chat_chunks if self.kind == "chat" else _text_chunks
        chunks = list(make(base, self.choices, extra))
        if include_usage:
            chunks.append({**base, "choices": [], "usage": self.usage})
        return chunks


def error_doc(message: str, error_type: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": None, "code": code}}


def check_format(convention: StructuredOutput, kind: str, body: dict[str, Any]) -> None:
    """Refuse a ``response_format`` the way the server of this ``convention`` does."""
    mode = format_of(body)
    if convention == "none" or mode is None or mode in _ACCEPTED_FORMATS[convention]:
        return
    given = body["response_format"]
    kind_given = given.get("type") if isinstance(given, dict) else given
    if convention == "llama.cpp":
        # llama-cpp-python's route handler reports every exception, FastAPI's request
        # validation included, as an internal server error; this is its wording.
        where = ("body", "response_format", "type") if isinstance(given, dict) else ("body",)
        detail = {
            "type": "literal_error",
            "loc": where,
            "msg": "Input should be 'text' or 'json_object'",
            "input": kind_given,
            "ctx": {"expected": "'text' or 'json_object'"},
        }
        endpoint = "create_chat_completion" if kind == "chat" else "create_completion"
        raise HTTPError(
            500,
            f'1 validation error:\n  {detail!r}\n\n  File "llama_cpp/server/app.py", '
            f"in {endpoint}\n    POST /v1/{'chat/' if kind == 'chat' else ''}completions",
            error_type="internal_server_error",
        )
    if convention == "ollama":
        raise HTTPError(
            400,
            f"invalid response_format type {kind_given!r}: supported types are "
            "'json_object' and 'text'",
            error_type="invalid_request_error",
        )
    raise HTTPError(
        400,
        f"Invalid value: {kind_given!r}. Supported values are: 'json_object', "
        "'json_schema', and 'text'.",
        error_type="invalid_request_error",
        code="invalid_value",
    )


def embeddings_document(body: dict[str, Any], model: str, default_dim: int) -> dict[str, Any]:
    """The answer to ``POST /v1/embeddings``: deterministic unit vectors (see ``_embedding``)."""
    inputs = _embedding_inputs(body.get("input"))
    dim = body.get("dimensions") or default_dim
    if not isinstance(dim, int) or not 1 <= dim <= 65536:
        raise HTTPError(400, f"'dimensions' must be an integer from 1 to 65536, got {dim!r}")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(inputs):
        vec: Any = _embedding(text, dim)
        if as_base64:  # what the openai SDK asks for by default: little-endian float32
            vec = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": vec})
    tokens = sum(words(t) for t in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}
