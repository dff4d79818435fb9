"""The functions a ``.dsx`` forward body may call, by name: Python's own (``len``,
``range``, ``sorted``...) and a few for text (``join``, ``lower``, ``upper``, ``strip``),
plus ``Prediction`` to build a program's result.

One table for every path: the interpreter (``dsx run``) calls these, generated modules
bind the same objects, and the checker (``dsx check``, the editor) knows exactly these
names.
"""

from __future__ import annotations

from typing import Any

from dsx.runtime.prediction import Prediction

__all__ = ["BUILTINS"]


def _join(items: Any, sep: str = " ") -> str:
    return sep.join(str(i) for i in items)


#: Name -> the function a forward body calls by that name.
BUILTINS: dict[str, Any] = {
    "len": len,
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "range": range,
    "min": min,
    "max": max,
    "sum": sum,
    "sorted": sorted,
    "enumerate": enumerate,
    "zip": zip,
    "any": any,
    "all": all,
    "abs": abs,
    "round": round,
    "print": print,
    "join": _join,
    "lower": lambda s: str(s).lower(),
    "upper": lambda s: str(s).upper(),
    "strip": lambda s: str(s).strip(),
    "Prediction": Prediction,
}
