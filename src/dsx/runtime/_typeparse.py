"""Safe parsing of type expressions written as text (``"list[str]"``, ``"int | None"``).

Only names from an explicit namespace are resolved — nothing is evaluated — so a
signature string can never run code.
"""

from __future__ import annotations

import ast
import builtins
import enum
import typing
from typing import Any

__all__ = ["BASE_TYPE_NAMESPACE", "parse_type", "type_name"]

BASE_TYPE_NAMESPACE: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "bytes": bytes,
    "list": list,
    "dict": dict,
    "tuple": tuple,
    "set": set,
    "None": type(None),
    "Any": typing.Any,
    "Optional": typing.Optional,
    "Union": typing.Union,
    "Literal": typing.Literal,
    "List": typing.List,  # noqa: UP006 - accepted spelling in signature strings
    "Dict": typing.Dict,  # noqa: UP006
    "Tuple": typing.Tuple,  # noqa: UP006
    "typing": typing,
}


class TypeParseError(ValueError):
    """A type expression could not be parsed; the message says why."""


def parse_type(text: str, namespace: dict[str, Any]) -> Any:
    """Parse ``text`` into a Python type, resolving names only from ``namespace``."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise TypeParseError(f"`{text}` is not a valid type expression") from None
    return _build(tree.body, text, namespace)


def _build(node: ast.expr, text: str, ns: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        if node.id in ns:
            return ns[node.id]
        raise TypeParseError(
            f"unknown type `{node.id}` in `{text}`; built-in types are str, int, float, bool, "
            "list[...], dict[..., ...], tuple[...], Optional[...], Literal[...]; pass other "
            "types with custom_types={...}"
        )
    if isinstance(node, ast.Attribute):
        base = _build(node.value, text, ns)
        try:
            return getattr(base, node.attr)
        except AttributeError:
            raise TypeParseError(f"`{ast.unparse(node)}` does not name a type") from None
    if isinstance(node, ast.Constant):
        if node.value is None:
            return type(None)
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _build(node.left, text, ns), _build(node.right, text, ns)
        return typing.Union[left, right]  # noqa: UP007
    if isinstance(node, ast.Subscript):
        base = _build(node.value, text, ns)
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is typing.Literal:
            args = tuple(_literal_value(e, text) for e in elts)
        else:
            args = tuple(_build(e, text, ns) for e in elts)
        try:
            return base[args if len(args) > 1 else args[0]]
        except TypeError as exc:
            raise TypeParseError(f"`{ast.unparse(node)}` in `{text}`: {exc}") from None
    if isinstance(node, ast.List):  # e.g. Callable[[int], str] is not supported; be clear
        raise TypeParseError(f"unexpected list `{ast.unparse(node)}` in type `{text}`")
    raise TypeParseError(f"`{ast.unparse(node)}` is not a type (in `{text}`)")


def _literal_value(node: ast.expr, text: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
    ):
        return -node.operand.value
    if isinstance(node, ast.Name):  # Literal[yes, no] — be lenient: bare words are strings
        return node.id
    raise TypeParseError(f"Literal values must be constants, got `{ast.unparse(node)}` in `{text}`")


def type_name(tp: Any) -> str:
    """A short readable name for a type, as shown in prompts and reprs."""
    if tp is type(None):
        return "None"
    if tp is typing.Any:
        return "Any"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "Literal[" + ", ".join(repr(a) for a in typing.get_args(tp)) + "]"
    if origin is typing.Union or (origin is not None and origin.__name__ == "UnionType"):
        args = typing.get_args(tp)
        if len(args) == 2 and type(None) in args:
            other = args[0] if args[1] is type(None) else args[1]
            return f"Optional[{type_name(other)}]"
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        args = typing.get_args(tp)
        name = getattr(origin, "__name__", str(origin))
        if not args:
            return name
        return f"{name}[" + ", ".join(type_name(a) for a in args) + "]"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def is_enum(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def caller_namespace(skip_prefix: str = "dsx.") -> dict[str, Any]:
    """Names visible in the first frame outside dsx (for resolving custom types)."""
    import sys

    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(skip_prefix):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return {}
    ns = {k: v for k, v in frame.f_globals.items() if isinstance(v, type) or _is_typing(v)}
    ns.update({k: v for k, v in frame.f_locals.items() if isinstance(v, type) or _is_typing(v)})
    ns.pop("__builtins__", None)
    return ns


def _is_typing(value: Any) -> bool:
    return getattr(value, "__module__", None) == "typing" or value is builtins.type
