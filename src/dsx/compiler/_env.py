"""What the checker knows without reading user code: built-in module kinds, functions,
metrics and optimizers, plus helpers (did-you-mean, finding a Python module's source)."""

from __future__ import annotations

import ast as pyast
import difflib
import importlib.machinery
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from dsx.runtime.builtins import BUILTINS as _RUNTIME_BUILTINS
from dsx.runtime.kinds import KindInfo, registry
from dsx.runtime.metrics import BUILTIN_METRICS as _RUNTIME_METRICS
from dsx.teleprompt import optimizer_info as optimizer_info
from dsx.teleprompt import optimizer_names

__all__ = [
    "BUILTIN_FUNCTIONS",
    "BUILTIN_METRICS",
    "KINDS",
    "KNOWN_OPTIMIZERS",
    "OPTIMIZERS",
    "KindInfo",
    "did_you_mean",
    "optimizer_info",
    "python_module_names",
]

# The module kinds are the runtime's: each class declares how a `.dsx` declaration builds
# it (`dsx_kind`), and the registry collects them (dsx.runtime.kinds).
KINDS: dict[str, KindInfo] = registry()

PREDICTOR_KINDS = frozenset(k for k, v in KINDS.items() if v.takes_signature)

# Built-in functions and metrics are the runtime's (one source of truth): what a forward
# body may call is what the interpreter can run (`Prediction(answer = a)` builds a forward's
# composite result), and a metric name is one the runtime has.
BUILTIN_FUNCTIONS = frozenset(_RUNTIME_BUILTINS)

BUILTIN_METRICS = frozenset(_RUNTIME_METRICS)

# The optimizers and their settings come from the runtime's registry (one source of truth):
# ``OPTIMIZERS`` are those this dsx has; a planned one (``SIMBA``...) is known but rejected.
OPTIMIZERS = frozenset(optimizer_names())
KNOWN_OPTIMIZERS = frozenset(optimizer_names(planned=True))

OPTIMIZE_KEYS = frozenset({"with", "train", "dev", "metric", "lm", "seed"})

PRIMITIVE_TYPES = frozenset({"str", "int", "float", "bool", "any", "Image", "History"})
GENERIC_TYPES = {"list": 1, "dict": 2, "tuple": -1}


def reserved_output_names() -> frozenset[str]:
    """Names an output field cannot have: ``pred.items`` is ``Prediction.items``, a method,
    in ``dsx run`` and in built modules alike (read from the runtime's class)."""
    from dsx.runtime.prediction import Prediction

    return frozenset(n for n in dir(Prediction) if not n.startswith("_"))


def rename_reserved(name: str) -> str:
    """A name to suggest instead of a reserved one: ``items`` -> ``item_list``."""
    return f"{name[:-1]}_list" if name.endswith("s") else f"{name}_value"


def a(word: str) -> str:
    """``word`` with its indefinite article: ``a signature``, ``an enum``."""
    vowel_sound = word[:1].lower() in "aeiou" or word.lower() == "lm"  # "an lm"
    return f"{'an' if vowel_sound else 'a'} {word}"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def find_python_source(module: str, base_dir: Path) -> Path | None:
    """The source file of ``module``, searching ``base_dir`` then ``sys.path``, without importing it."""
    import sys

    search: list[str] | None = [str(base_dir), *sys.path]
    path: Path | None = None
    for part in module.split("."):
        spec = importlib.machinery.PathFinder.find_spec(part, search)
        if spec is None:
            return None
        if spec.submodule_search_locations:
            search = list(spec.submodule_search_locations)
            path = Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
        else:
            search = None
            path = Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    return path


@lru_cache(maxsize=256)
def _names_in(path: str, mtime: float) -> frozenset[str] | None:
    try:
        tree = pyast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, pyast.FunctionDef | pyast.AsyncFunctionDef | pyast.ClassDef):
            names.add(node.name)
        elif isinstance(node, pyast.Assign):
            for target in node.targets:
                if isinstance(target, pyast.Name):
                    names.add(target.id)
        elif isinstance(node, pyast.AnnAssign) and isinstance(node.target, pyast.Name):
            names.add(node.target.id)
        elif isinstance(node, pyast.Import | pyast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    return None  # cannot know statically
                names.add((alias.asname or alias.name).split(".")[0])
    if "__getattr__" in names:
        return None
    return frozenset(names)


def python_module_names(module: str, base_dir: Path) -> tuple[Path | None, frozenset[str] | None]:
    """``(source path, top-level names)`` of a Python module found by reading (not importing) it.

    Names are ``None`` when they cannot be known statically (star imports, ``__getattr__``,
    extension modules).
    """
    path = find_python_source(module, base_dir)
    if path is None:
        return None, None
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return path, None
    return path, _names_in(str(path), mtime)
