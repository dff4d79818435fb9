"""Incremental views of a reply that is still arriving: which output fields it has so far.

:func:`fields_so_far` looks at the text received so far and returns, per output field, the
part of its final value that can no longer change, and whether the field is complete. It
understands the built-in layouts, told apart by the reply's first character: the chat
adapter's marker lines (``<<< answer >>>``, or DSPy's ``[[ ## answer ## ]]`` for
``DSPyChatAdapter``) and the JSON adapter's object (string values
are decoded as they come, escapes included; other values stream as raw JSON text).

What is held back is exactly what a later chunk could still change: a partial line that
may become a marker line, trailing whitespace (the chat adapter strips values), an
unfinished escape sequence or surrogate pair. So the pieces given out always concatenate
to the value the adapter parses at the end (for text fields).
"""

from __future__ import annotations

import json
import re

__all__ = ["fields_so_far"]

_MARKER_LINE = re.compile(r"^[ \t]*<<<[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*>>>[ \t]*$", re.M)
# A last line that could still grow into a marker line.
_MARKER_PREFIX = re.compile(
    r"[ \t]*(?:<{1,2}|<<<[ \t]*(?:[A-Za-z_][A-Za-z0-9_]*)?[ \t]*>{0,3}[ \t]*)"
)
# DSPy's layout (DSPyChatAdapter): a ``[[ ## answer ## ]]`` marker at the start of a line; the
# rest of that line already belongs to the field, so the marker counts once its ``]]`` is in.
_DSPY_MARKER = re.compile(r"^[ \t]*\[\[ ## (\w+) ## \]\]", re.M)
# A last line that could still grow into a DSPy marker (each step of ``[[ ## name ## ]]``).
_DSPY_MARKER_PREFIX = re.compile(
    r"[ \t]*\[(?:\[(?: (?:#(?:#(?: (?:\w+(?: (?:#(?:#(?: \]?)?)?)?)?)?)?)?)?)?)?"
)
_FENCE = re.compile(r"\s*```[A-Za-z]*[ \t]*\n")

#: field name -> (stable text so far, complete)
Fields = dict[str, tuple[str, bool]]


def fields_so_far(text: str, *, final: bool) -> Fields:
    """The output fields visible in ``text`` (``final``: the reply is complete)."""
    start = len(text) - len(text.lstrip())
    if start == len(text):
        return {}
    if text[start] == "{" or text.startswith("```", start):
        return _json_fields(text, final)
    return _chat_fields(text, final)


# -- marker lines -------------------------------------------------------------------------


def _chat_fields(text: str, final: bool) -> Fields:
    out: Fields = {}
    markers = [
        m for m in _MARKER_LINE.finditer(text) if final or m.end() < len(text)
    ]  # a marker line counts once its line has ended
    prefix = _MARKER_PREFIX
    # DSPy's markers instead when its kind comes first: one layout per reply, so a value
    # that quotes the other layout's marker stays text, as the adapter's parse reads it.
    dspy = list(_DSPY_MARKER.finditer(text)) if "[[ ## " in text else []
    if dspy and (not markers or dspy[0].start() < markers[0].start()):
        markers, prefix = dspy, _DSPY_MARKER_PREFIX
    for i, m in enumerate(markers):
        name = m.group(1)
        if name == "end" and m.re is _MARKER_LINE:
            break  # DSPy's closing [[ ## completed ## ]] is a section its parse reads as any
        closed = i + 1 < len(markers)
        body = text[m.end() : markers[i + 1].start() if closed else len(text)]
        if name in out:
            continue  # the first section of a name wins, as in ChatAdapter.parse
        if not (closed or final):
            last_break = body.rfind("\n")
            tail = body[last_break + 1 :]
            if prefix.fullmatch(tail):
                body = body[: last_break + 1] if last_break >= 0 else ""
        value = body.strip()
        if prefix is _DSPY_MARKER_PREFIX:  # DSPy's parse joins str.splitlines() with "\n"
            value = "\n".join(value.splitlines())
        out[name] = (value, closed or final)
    return out


# -- JSON ---------------------------------------------------------------------------------


def _json_fields(text: str, final: bool) -> Fields:
    out: Fields = {}
    i = text.find("{")
    fence = _FENCE.match(text)
    if fence is not None:
        i = text.find("{", fence.end())
    if i < 0:
        return out
    n = len(text)
    i += 1
    while True:
        i = _skip_ws(text, i)
        if i >= n or text[i] != '"':
            return out
        key_end = _string_end(text, i)
        if key_end < 0:
            return out
        try:
            key = json.loads(text[i : key_end + 1])
        except ValueError:
            return out
        i = _skip_ws(text, key_end + 1)
        if i >= n or text[i] != ":":
            return out
        i = _skip_ws(text, i + 1)
        if i >= n:
            return out
        if text[i] == '"':
            end = _string_end(text, i)
            if end < 0:
                out.setdefault(key, (_decode_prefix(text[i + 1 :]), False))
                return out
            out.setdefault(key, (_decode_prefix(text[i + 1 : end]), True))
            i = end + 1
        else:
            end = _value_end(text, i)
            if end < 0:
                raw = text[i:].rstrip()
                out.setdefault(key, (raw, final))
                return out
            out.setdefault(key, (text[i:end].rstrip(), True))
            i = end
        i = _skip_ws(text, i)
        if i >= n or text[i] != ",":
            return out
        i += 1


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    return i


# the unrolled loop, possessive: linear, and no backtracking while the string is still open
_STRING_BODY = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.S)


def _string_end(text: str, i: int) -> int:
    """The index of the quote closing the string that opens at ``i``; -1 if not yet.

    A regular expression, not a loop: the text so far is scanned again at every chunk.
    """
    m = _STRING_BODY.match(text, i + 1)
    return m.end() - 1 if m is not None else -1


def _value_end(text: str, i: int) -> int:
    """Where a non-string value that starts at ``i`` ends (the ``,`` or ``}`` after it)."""
    depth = 0
    j = i
    n = len(text)
    while j < n:
        c = text[j]
        if c == '"':
            end = _string_end(text, j)
            if end < 0:
                return -1
            j = end + 1
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            if depth == 0:
                return j
            depth -= 1
        elif c == "," and depth == 0:
            return j
        j += 1
    return -1


_PARTIAL_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{0,3})?\Z")
_HIGH_SURROGATE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\Z")


def _decode_prefix(raw: str) -> str:
    """Decode the body of a JSON string received so far, holding back an unfinished escape."""
    cut = raw
    # An odd run of backslashes at the end starts an escape that has not arrived yet.
    stripped = cut.rstrip("\\")
    odd = (len(cut) - len(stripped)) % 2
    cut = cut[:-1] if odd else _cut_tail(cut, _PARTIAL_ESCAPE)
    cut = _cut_tail(cut, _HIGH_SURROGATE)  # wait for the low half of a surrogate pair
    try:
        value = json.loads(f'"{cut}"', strict=False)
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""


def _cut_tail(text: str, pattern: re.Pattern[str]) -> str:
    """``text`` without a trailing match of ``pattern`` that is a real escape. Only the last
    characters are searched (an escape is at most 6 long): the text grows at every chunk."""
    start = max(0, len(text) - 8)
    m = pattern.search(text, start)
    if m is not None and _escaped(text, m.start()):
        return text[: m.start()]
    return text


def _escaped(text: str, backslash: int) -> bool:
    """Whether the backslash at ``backslash`` starts an escape (is not itself escaped)."""
    run = 0
    j = backslash - 1
    while j >= 0 and text[j] == "\\":
        run += 1
        j -= 1
    return run % 2 == 0
