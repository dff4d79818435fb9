"""Shared by the codegen tests: run a .dsx program through the interpreter and through the
module ``dsx build`` writes, with the same scripted LM, and report what each did."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dsx
from dsx import ir
from dsx.compiler.codegen import generate, python_root
from dsx.runtime.instantiate import instantiate
from dsx.testing import FunctionLM

_ROOT = Path(__file__).resolve().parents[2]
_PROJECTS = (str(_ROOT / "examples"), str(_ROOT / "tests"), "/tmp")
_OUTPUT = re.compile(r"^- `(\w+)` \((.*?)\)(?::.*)?$")
_counter = itertools.count()


def _instance(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A small value that matches a JSON schema (one item per array)."""
    if "$ref" in schema:
        return _instance(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _instance(options[0], defs)
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _instance(props[k], defs) for k in schema.get("required", []) if k in props}
    if kind == "array":
        return [_instance(schema.get("items", {"type": "string"}), defs)]
    return {"integer": 2, "number": 1.5, "boolean": True, "null": None}.get(kind, "text")


def typed_reply(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """A reply that fits the outputs the system message asks for (ChatAdapter layout)."""
    system = str(messages[0]["content"])
    outputs = system.split("Your outputs:", 1)[-1].split("\n\n", 1)[0]
    reply: dict[str, Any] = {}
    for line in outputs.splitlines():
        m = _OUTPUT.match(line.strip())
        if m is None:
            continue
        name, kind = m.group(1), m.group(2)
        marker = re.search(rf"<<< {name} >>>\n\{{{name} — (.*)\}}\n", system)
        hint = marker.group(1) if marker else ""
        if hint.startswith("JSON matching the schema "):
            schema = json.loads(hint[len("JSON matching the schema ") :])
            reply[name] = _instance(schema, schema.get("$defs", {}))
        elif hint.startswith("exactly one of: "):
            options = hint[len("exactly one of: ") :].split(", ")
            reply[name] = "finish" if "finish" in options else options[0]
        elif kind == "int":
            reply[name] = 3
        elif kind == "float":
            reply[name] = 2.5
        elif kind == "bool":
            reply[name] = True
        else:
            reply[name] = f"{name} {len(messages)}"
    return reply


def scripted_lm() -> FunctionLM:
    """A fresh scripted LM (no cache) answering every signature with typed values."""
    return FunctionLM(typed_reply, cache=False)


def sample(t: ir.TypeRef, unit: ir.Unit) -> Any:
    """An input value of type ``t``."""
    k = t.kind
    if k == "str":
        return "What is the capital of France?"
    if k == "int":
        return 2
    if k == "float":
        return 0.5
    if k == "bool":
        return True
    if k in ("list", "tuple", "set"):
        return [sample(t.args[0], unit)] if t.args else ["a"]
    if k == "dict":
        return {"key": sample(t.args[1], unit)} if len(t.args) == 2 else {}
    if k == "optional":
        return sample(t.args[0], unit)
    if k == "union":
        return sample(t.args[0], unit)
    if k == "literal":
        return t.values[0]
    if k == "enum":
        return next(e for e in unit.enums if e.name == t.name).members[0].name
    if k == "record":
        rec = next(r for r in unit.records if r.name == t.name)
        return {f.name: sample(f.type, unit) for f in rec.fields if not f.has_default}
    return "text"


def program_inputs(unit: ir.Unit, name: str) -> dict[str, Any]:
    """Values for every input of program ``name`` (its module's forward, or its signature)."""
    root = unit.get("programs", name).root
    if root.kind == "module":
        mod = unit.get("modules", root.module or "")
        assert mod.forward is not None
        return {p.name: sample(p.type, unit) for p in mod.forward.params if p.type is not None}
    sig = unit.get("signatures", root.signature or "")
    return {f.name: sample(f.type, unit) for f in sig.fields if f.direction == "in"}


def load_module(path: Path) -> Any:
    """Import a generated module from ``path`` under a fresh name."""
    name = f"dsx_built_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_sandboxes(program: Any) -> None:
    """Give every code-writing agent a scripted sandbox that submits typed outputs."""
    from dsx.testing.fake_sandbox import FakeSandbox, fake_result

    for _, sub in [("", program), *program.named_sub_modules()]:
        if hasattr(sub, "sandbox") and hasattr(sub, "signature"):
            final = {
                n: {int: 3, float: 2.5, bool: True}.get(f.annotation, "text")
                for n, f in sub.signature.output_fields.items()
            }
            sub.sandbox = lambda tools=None, timeout=None, final=final: FakeSandbox(
                default=fake_result(final=final), tools=tools
            )


def plain(value: Any) -> Any:
    """``value`` with pydantic models as dicts (each path has its own record classes)."""
    if hasattr(value, "model_dump"):
        return {"__type__": type(value).__name__, **plain(value.model_dump())}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass
class Run:
    output: Any
    prompts: list[Any]
    error: str | None = None


def _passages(query: str, k: int = 3) -> list[str]:
    return [f"passage {i} about {query}" for i in range(k)]


def _outcome(program: Any, inputs: dict[str, Any], mode: str) -> Run:
    import asyncio

    lm = scripted_lm()
    fake_sandboxes(program)
    for _, predictor in program.named_predictors():
        if hasattr(predictor.lm, "_dsx_declared"):
            predictor.lm = None  # a declared LM (`lm fast = ...`): the scripted one instead
    for _, sub in [("", program), *program.named_sub_modules()]:
        if isinstance(sub, dsx.Retrieve) and sub.rm is not None:
            sub.rm = _passages  # no embedding model in a codegen test
    try:
        with dsx.context(lm=lm, rm=_passages):
            result = program(**inputs) if mode == "sync" else asyncio.run(program.acall(**inputs))
        output = plain(result.to_dict() if hasattr(result, "to_dict") else result)
        error = None
    except Exception as exc:  # both paths must fail alike too
        output, error = (
            None,
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
    return Run(output, [h["messages"] for h in lm.history], error)


@contextmanager
def isolated_imports() -> Iterator[None]:
    """Undo what the interpreter and the modules add to sys.path / sys.modules."""
    path, modules = list(sys.path), set(sys.modules)
    try:
        yield
    finally:
        sys.path[:] = path
        for name in set(sys.modules) - modules:  # only the projects' own helpers
            where = str(getattr(sys.modules[name], "__file__", None) or "")
            if where.startswith(_PROJECTS):
                sys.modules.pop(name, None)


def run_both(
    unit: ir.Unit, name: str, out_dir: Path, inputs: dict[str, Any], *, mode: str = "sync"
) -> tuple[Run, Run]:
    """Program ``name`` run by the interpreter and by its generated module."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.py"
    path.write_text(generate(unit, name, python_root=python_root(unit.source, out_dir)))
    interpreted = instantiate(unit).program(name)
    built = load_module(path).program()
    return _outcome(interpreted, inputs, mode), _outcome(built, inputs, mode)
