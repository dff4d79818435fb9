"""Lay out generated Python the way ``ruff format`` (and black) would, without needing ruff.

Codegen emits each statement as one logical line; :func:`layout` splits a line that is too
long at its brackets, each item on its own line with a trailing ("magic") comma, so that
ruff keeps the split as it is. Strings get ruff's preferred quotes (:func:`requote`), and
:func:`literal` writes data (learned state, the source map) as plain Python literals.

The result does not depend on the Python version or on whether ruff is installed, so a
build is reproducible; ``tests/compiler/test_codegen_golden.py`` runs ``ruff format
--check`` over the output.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LINE_LENGTH", "Raw", "layout", "literal", "py_str", "requote"]

#: ruff's (and black's) default line length; output that fits it fits any longer one.
LINE_LENGTH = 88

_STRING = re.compile(r"""([A-Za-z]{0,2})('''|\"\"\"|'|")""")
_CLOSE = {"(": ")", "[": "]", "{": "}"}


def py_str(text: str) -> str:
    """A Python string literal for ``text`` with the quotes ruff prefers."""
    return requote(repr(text))


def requote(token: str) -> str:
    """``token`` (a one-line string literal) with ruff's preferred quotes: double, unless
    that needs more backslashes than single quotes."""
    m = _STRING.match(token)
    if m is None or len(m.group(2)) == 3:
        return token
    prefix, quote = m.group(1), m.group(2)
    body = token[len(prefix) + 1 : -1]
    other = "'" if quote == '"' else '"'
    if "f" in prefix.lower() and other in "".join(re.findall(r"\{[^{}]*\}", body)):
        return token  # the other quote is used inside a replacement field
    # unescape the current quote, escape the other one (both only when not already escaped)
    new = re.sub(rf"((?:^|[^\\])(?:\\\\)*)\\{quote}", rf"\1{quote}", body)
    new = re.sub(rf"((?:^|[^\\])(?:\\\\)*){other}", rf"\1\\{other}", new)
    new = re.sub(rf"((?:^|[^\\])(?:\\\\)*){other}", rf"\1\\{other}", new)  # adjacent quotes
    new_escapes, old_escapes = new.count("\\"), body.count("\\")
    if new_escapes > old_escapes or (new_escapes == old_escapes and quote == '"'):
        return token
    return f"{prefix}{other}{new}{other}"


class Raw(str):
    """Python source text that :func:`literal` writes as it is (a type, a name)."""

    __slots__ = ()


def literal(value: Any) -> str:
    """``value`` (JSON-like data, tuples allowed) as a one-line Python literal."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return py_str(value)
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


# -- layout -----------------------------------------------------------------------------------


@dataclass
class _Group:
    open: str
    items: list[list[Any]] = field(default_factory=list)
    close: str = ""
    comma: bool = False  # may end with a comma when split (not a parenthesized expression)
    had_comma: bool = False  # written with a trailing comma
    is_call: bool = False  # a call's arguments or a subscript, not a literal or (expr)

    def flat(self) -> str:
        text = ", ".join(_flat(i).strip() for i in self.items)
        return self.open + text + ("," if self.had_comma else "") + self.close


class _Lit(str):
    """A string literal (its text is never searched for operators)."""

    __slots__ = ()


def _flat(elems: list[Any]) -> str:
    return "".join(e if isinstance(e, str) else e.flat() for e in elems)


def _tokens(text: str) -> list[str]:
    """Split a logical line into string literals, brackets, commas and other text."""
    out: list[str] = []
    i, n, start = 0, len(text), 0
    while i < n:
        ch = text[i]
        m = _STRING.match(text, i) if ch.isalpha() or ch in "'\"" else None
        if m is not None and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            quote = m.group(2)
            j = m.end()
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            j = min(j + len(quote), n)
            if start < i:
                out.append(text[start:i])
            out.append(_Lit(requote(text[i:j])))
            i = start = j
            continue
        if ch.isalnum() or ch == "_":  # an identifier or a number: skip it whole
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            i = j
            continue
        if ch in "()[]{},":
            if start < i:
                out.append(text[start:i])
            out.append(ch)
            i = start = i + 1
            continue
        i += 1
    if start < n:
        out.append(text[start:])
    return out


def _parse(tokens: list[str]) -> list[Any]:
    """Nest the tokens into groups (bracket pairs split at their top-level commas)."""
    stack: list[tuple[list[Any], _Group, list[Any]]] = []
    elems: list[Any] = []
    for tok in tokens:
        if tok in _CLOSE:
            prev = _last_text(elems)
            is_call = bool(prev) and (
                prev[-1] in ")]\"'"
                or ((prev[-1].isalnum() or prev[-1] == "_") and not _ends_with_keyword(prev))
            )
            group = _Group(tok, close=_CLOSE[tok], is_call=is_call)
            group.comma = tok != "(" or is_call  # (expr) is no tuple; see also _finish
            stack.append((elems, group, []))
            elems = stack[-1][2]
        elif tok in ")]}" and stack:
            outer, group, _ = stack.pop()
            _finish(group, elems)
            group.close = tok
            outer.append(group)
            elems = outer
        elif tok == "," and stack and _in_comprehension_target(elems):
            elems.append(tok)  # `[... for i, x in ...]`: part of the target, not a separator
        elif tok == "," and stack:
            group = stack[-1][1]
            group.items.append(elems)
            stack[-1] = (stack[-1][0], group, [])
            elems = stack[-1][2]
        else:
            elems.append(tok)
    while stack:  # unbalanced (should not happen): keep the text as it is
        outer, group, _ = stack.pop()
        outer.append(group.open + _flat(elems))
        elems = outer
    return elems


def _in_comprehension_target(elems: list[Any]) -> bool:
    """Whether a comma here is inside a comprehension's ``for a, b in`` target."""
    text = "".join(e for e in elems if isinstance(e, str) and not isinstance(e, _Lit))
    at = text.rfind(" for ")
    return at >= 0 and " in " not in text[at + 5 :]


def _finish(group: _Group, last: list[Any]) -> None:
    if _flat(last).strip():
        group.items.append(last)
    elif group.items:
        group.had_comma = True
    several = len(group.items) > 1 or group.had_comma
    text = " " + _flat(group.items[0]) + " " if group.items else ""
    if " for " in text and not several:
        group.comma = False  # a comprehension takes no trailing comma
    if group.open == "(" and not group.is_call:
        group.comma = several  # a tuple, not a parenthesized expression
    if group.open == "[" and group.is_call and not several:
        group.comma = False  # x[i,] would be a tuple index


def _last_text(elems: list[Any]) -> str:
    for e in reversed(elems):
        if isinstance(e, str):
            return e.rstrip() if e.strip() else ""
        return ")"
    return ""


def _ends_with_keyword(text: str) -> bool:
    m = re.search(r"[A-Za-z_][A-Za-z0-9_]*$", text)
    return m is not None and keyword.iskeyword(m.group(0)) and m.group(0) not in ("None",)


def layout(text: str, indent: str = "", width: int = LINE_LENGTH) -> list[str]:
    """Physical lines for one logical line at ``indent``, split to fit ``width``."""
    elems = _unwrap(_parse(_tokens(text)))
    flat = indent + _flat(elems).strip()
    if len(flat) <= width:
        return [flat]
    m = _STATEMENT.match(elems[0]) if elems and isinstance(elems[0], str) else None
    if m is not None and not isinstance(elems[0], _Lit):
        head, colon = m.group(0), m.group(1) is not None and text.rstrip().endswith(":")
        expr = [elems[0][len(head) :], *elems[1:]]
        if colon and isinstance(expr[-1], str) and not isinstance(expr[-1], _Lit):
            expr[-1] = expr[-1].rstrip()[:-1]
        expr = _strip(expr)
        ops = _operators(expr)
        bracketed = [e for e in expr if not (isinstance(e, str) and not e.strip())]
        # ruff splits at the brackets instead when one operator has a bracketed operand
        # at an end: `a > f(...)`, `(...) == c`.
        inner = indent + "    "
        fits = len(inner + _flat(expr).strip()) <= width  # on its own line in parentheses
        atom = not ops and not any(isinstance(e, _Group) for e in expr)  # a string, a name
        if (
            ops
            and (
                len(ops[1]) > 1
                or not bracketed
                or not (isinstance(bracketed[-1], _Group) or isinstance(bracketed[0], _Group))
            )
        ) or (fits and (atom or _split_point(elems, indent, width) is None)):
            end = ":" if colon else ""
            lines = [indent + head + "("]
            if fits:
                lines.append(inner + _flat(expr).strip())
            elif ops:
                lines += _split_at(expr, ops[1], inner, width)
            return [*lines, indent + ")" + end]
    return _fit(elems, indent, width)


# Statements whose expression ruff wraps in parentheses to split it at its operators.
_STATEMENT = re.compile(
    r"(?:(if |elif |while |for [\w, ]+ in )|return |[A-Za-z_][\w.]* (?:[-+*/%]|//)?= )"
)


def _unwrap(elems: list[Any]) -> list[Any]:
    """Drop parentheses ruff calls redundant: ``return (await f())`` → ``return await f()``."""
    if not elems or isinstance(elems[0], _Lit) or not isinstance(elems[0], str):
        return elems
    m = _STATEMENT.fullmatch(elems[0])
    rest = elems[1:]
    if m is not None and rest and rest[-1] == ":" and m.group(1):
        rest = rest[:-1]
    if (
        m is not None
        and len(rest) == 1
        and isinstance(rest[0], _Group)
        and rest[0].open == "("
        and not rest[0].is_call
        and not rest[0].comma
        and len(rest[0].items) == 1
    ):
        return [elems[0], *_strip(rest[0].items[0]), *elems[1 + len(rest) :]]
    return elems


# Binary operators (with the spaces codegen writes around them), lowest priority first.
_PRIORITY = [
    (" if ", " else "),
    (" or ",),
    (" and ",),
    (" not in ", " in ", " is not ", " is ", " == ", " != ", " <= ", " >= ", " < ", " > "),
    (" | ",),
    (" ^ ",),
    (" & ",),
    (" << ", " >> "),
    (" + ", " - "),
    (" * ", " / ", " // ", " % ", " @ "),
]


def _operators(elems: list[Any]) -> tuple[int, list[tuple[int, int, str]]] | None:
    """The lowest-priority top-level binary operators: (priority, [(elem, offset, op)])."""
    found: dict[int, list[tuple[int, int, str]]] = {}
    for i, e in enumerate(elems):
        if isinstance(e, _Group | _Lit):
            continue
        for level, ops in enumerate(_PRIORITY):
            pattern = "|".join(re.escape(op) for op in ops)
            for m in re.finditer(pattern, e):
                found.setdefault(level, []).append((i, m.start(), m.group(0)))
    if not found:
        return None
    level = min(found)
    return level, found[level]


def _split_at(
    elems: list[Any], ops: list[tuple[int, int, str]], indent: str, width: int, suffix: str = ""
) -> list[str]:
    """One line per operand, each after its operator (``+ b``), as ruff splits them."""
    parts: list[list[Any]] = [[]]
    cut = {(i, off): op for i, off, op in ops}
    for i, e in enumerate(elems):
        if isinstance(e, str) and not isinstance(e, _Lit):
            pos = 0
            for (j, off), op in sorted(cut.items()):
                if j == i:
                    parts[-1].append(e[pos:off])
                    parts.append([_Lit(op.strip() + " ")])  # never split again
                    pos = off + len(op)
            parts[-1].append(e[pos:])
        else:
            parts[-1].append(e)
    lines: list[str] = []
    for i, part in enumerate(parts):
        part, end = _strip(part), suffix if i == len(parts) - 1 else ""
        inner_ops = _operators(part)  # an operand still too long: split at its own operators
        if part and part[0] == "for ":
            inner_ops = None  # a comprehension's `for x in [...]`: its `in` is no operator
        if inner_ops and len(indent + _flat(part).strip() + end) > width:
            lines += _split_at(part, inner_ops[1], indent, width, end)
        else:
            lines += _fit(part, indent, width, end)
    return lines


def _fit(elems: list[Any], indent: str, width: int, suffix: str = "") -> list[str]:
    flat = indent + _flat(elems).strip() + suffix
    if len(flat) <= width:
        return [flat]
    # Split the last bracket pair whose opening line and closing line then fit (the last
    # non-empty one when none does), as ruff's right-hand split does.
    candidates = [i for i, e in enumerate(elems) if isinstance(e, _Group) and e.items]
    if not candidates:
        return [flat]
    found = _split_point(elems, indent, width, suffix)
    at = candidates[-1] if found is None else found
    group: _Group = elems[at]
    head = (_flat(elems[:at]) + group.open).strip()
    tail = group.close + _flat(elems[at + 1 :]).rstrip() + suffix
    lines = [indent + head]
    inner = indent + "    "
    if len(group.items) == 1 and not group.comma:
        # (expr), a one-item subscript or a comprehension: split inside at operators
        item = _strip(group.items[0])
        too_long = len(inner + _flat(item).strip()) > width
        comp = _comprehension(item)
        ops = _operators(item)
        if comp and too_long:
            lines += _split_at(item, comp, inner, width)
        elif ops and too_long and not comp:
            lines += _split_at(item, ops[1], inner, width)
        else:
            lines += _fit(item, inner, width)
        lines.append(indent + tail)
        return lines
    last = len(group.items) - 1
    for i, item in enumerate(group.items):
        end = "," if (i < last or group.comma) else ""
        item = _strip(item)
        ops = _operators(item)
        if ops and len(inner + _flat(item).strip() + end) > width:
            lines += _split_at(item, ops[1], inner, width, end)  # in brackets: no parentheses
        else:
            lines += _fit(item, inner, width, end)
    lines.append(indent + tail)
    return lines


def _split_point(elems: list[Any], indent: str, width: int, suffix: str = "") -> int | None:
    """The last bracket pair whose opening and closing lines fit when it is split."""
    for i in range(len(elems) - 1, -1, -1):
        if isinstance(elems[i], _Group) and elems[i].items:
            head = indent + (_flat(elems[:i]) + elems[i].open).strip()
            tail = indent + elems[i].close + _flat(elems[i + 1 :]).rstrip() + suffix
            if len(head) <= width and len(tail) <= width:
                return i
    return None


def _comprehension(elems: list[Any]) -> list[tuple[int, int, str]]:
    """The top-level ``for`` and ``if`` clauses of a comprehension (none if it is not one)."""
    cuts: list[tuple[int, int, str]] = []
    for i, e in enumerate(elems):
        if isinstance(e, _Group | _Lit):
            continue
        for m in re.finditer(r" for | if | async for ", e):
            if m.group(0) == " for " or cuts:
                cuts.append((i, m.start(), m.group(0)))
    return cuts


def _strip(elems: list[Any]) -> list[Any]:
    out = list(elems)
    if out and isinstance(out[0], str) and not isinstance(out[0], _Lit):
        out[0] = out[0].lstrip()
    if out and isinstance(out[-1], str) and not isinstance(out[-1], _Lit):
        out[-1] = out[-1].rstrip()
    return out
