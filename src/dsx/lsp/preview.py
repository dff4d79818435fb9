"""Prompt preview: the custom request ``dsx/renderPrompt``.

Answers the exact messages a program's predictors would send for given inputs, without
calling an LM: the runtime renders them (``Predict.render`` — the adapter, instructions,
demos and learned state a run would use). Inputs come from the request, from a ``test``
block's ``given``, or are left out: a missing input renders as a placeholder
``{{name}}`` and is listed in ``placeholders``, so the preview shows something while the
user types. The learned state ``dsx build``/``dsx optimize`` wrote for the program
(``build/<program>.state.json``) is applied while it matches the program, as ``dsx run``
does.

A unit with ``use python`` imports runs the user's Python to instantiate; that happens
only when the client says it may (``allowPython``, the VS Code extension sends its
workspace trust), and then in a child process (``python -m dsx.lsp.preview``) so the
server never imports workspace code and always sees the current ``.py`` files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dsx import ir
from dsx.errors import DsxError

__all__ = ["METHOD", "PreviewError", "render_prompt", "render_request"]

#: The custom request's method name.
METHOD = "dsx/renderPrompt"

#: Seconds a child process may take to render a unit with ``use python``.
CHILD_TIMEOUT = 30.0


class PreviewError(DsxError):
    """Why nothing could be rendered; the message is shown in the preview."""


def render_prompt(
    unit: ir.Unit,
    *,
    program: str | None = None,
    predictor: str | None = None,
    test: str | None = None,
    inputs: dict[str, Any] | None = None,
    use_state: bool = True,
) -> dict[str, Any]:
    """Render ``program``'s prompts (JSON-able answer of ``dsx/renderPrompt``).

    Raises:
        PreviewError: no such program/test/predictor, or the runtime refused the inputs.
    """
    from dsx.runtime import _interp
    from dsx.runtime.instantiate import instantiate

    found = None
    if test is not None:
        found = next((t for t in unit.tests if t.name == test), None)
        if found is None:
            tests = ", ".join(t.name for t in unit.tests) or "none"
            raise PreviewError(f"no test `{test}` in this file (tests: {tests})")
        program = program or found.program
    names = [p.name for p in unit.programs]
    if not names:
        raise PreviewError(
            "this file declares no `program`; add e.g. `program main = Predict(Sig)`"
        )
    name = program or names[0]
    if name not in names:
        raise PreviewError(f"no program `{name}` in this file (programs: {', '.join(names)})")
    ns = instantiate(_prune(unit, name, found))
    ns.resources.make_none()  # declared LMs and retrievers: rendering needs none of them
    given: dict[str, Any] = {}
    if found is not None:
        env = ns._env()
        given = {k: _interp.run_sync(_interp.eval_expr(v, env)) for k, v in found.given}
    given.update(inputs or {})
    instance = ns.program(name, learned=False)
    state = _apply_state(unit, instance, name) if use_state else {"used": False, "note": "off"}
    predictors = instance.named_predictors()
    if predictor is not None:
        predictors = [(n, p) for n, p in predictors if n == predictor]
        if not predictors:
            raise PreviewError(f"program `{name}` has no predictor `{predictor}`")
    if not predictors:
        raise PreviewError(f"program `{name}` has no predictors, so it has no prompt")
    rendered = [_render_one(n, p, given) for n, p in predictors]
    from dsx.compiler.inputs import program_inputs  # what `dsx run -i` checks against

    return {
        "program": name,
        "programs": names,
        "programInputs": [
            {"name": n, "type": str(t) if t is not None else "any", "required": required}
            for n, t, required in program_inputs(ns.unit, name)
        ],
        "tests": [t.name for t in unit.tests if t.program == name],
        "inputs": _jsonable(given),
        "state": state,
        "predictors": rendered,
    }


def _prune(unit: ir.Unit, name: str, test: ir.Test | None) -> ir.Unit:
    """``unit`` with only the declarations program ``name`` (and ``test``) can reach.

    Instantiating builds every signature and module of the unit; a 5,000-line file has
    hundreds the previewed program never uses. Reachability is found by names: any string
    in a declaration's IR that names another declaration pulls it in (keeping one too many
    costs time, never correctness).
    """
    decls: dict[str, Any] = {}
    for group in (unit.signatures, unit.records, unit.enums, unit.modules):
        for decl in group:
            decls[decl.name] = decl
    program = next(p for p in unit.programs if p.name == name)
    needed: set[str] = set()
    todo: list[Any] = [program] + ([test] if test is not None else [])
    while todo:
        for text in _strings(todo.pop().model_dump(mode="json")):
            if text in decls and text not in needed:
                needed.add(text)
                todo.append(decls[text])

    def keep(items: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(i for i in items if i.name in needed)

    return unit.model_copy(
        update={
            "signatures": keep(unit.signatures),
            "records": keep(unit.records),
            "enums": keep(unit.enums),
            "modules": keep(unit.modules),
            "programs": (program,),
        }
    )


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _render_one(name: str, predictor: Any, given: dict[str, Any]) -> dict[str, Any]:
    from dsx.runtime.predict import default_adapter
    from dsx.runtime.settings import settings

    signature = predictor.signature
    fields = list(signature.input_fields)
    missing = [f for f in fields if f not in given]
    values = {f: given[f] for f in fields if f in given}
    try:
        if missing:
            # Placeholders are no valid values of typed fields: format without the checks.
            adapter = settings.adapter or default_adapter()
            values.update({f: "{{" + f + "}}" for f in missing})
            messages = adapter.format(signature, predictor.demos, values)
        else:
            messages = predictor.render(**values)
    except DsxError as exc:
        raise PreviewError(f"cannot render `{name}`: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise PreviewError(f"cannot render `{name}`: {exc}") from None
    return {
        "name": name,
        "signature": signature.__name__,
        "inputs": fields,
        "placeholders": missing,
        "demos": len(predictor.demos),
        "messages": _jsonable(messages),
    }


def _apply_state(unit: ir.Unit, instance: Any, name: str) -> dict[str, Any]:
    from dsx.compiler.build import default_state_path, program_fingerprint
    from dsx.errors import StateError
    from dsx.runtime.module import Module
    from dsx.runtime.state import read_state

    if unit.source.startswith("<"):
        return {"used": False, "note": "an unsaved document has no build/ folder"}
    path = default_state_path(unit.source, name)
    shown = str(Path("build") / path.name)
    if not path.is_file():
        return {"used": False, "path": str(path), "note": f"not optimized (no {shown})"}
    try:
        state = read_state(path)
        if state.fingerprint != program_fingerprint(unit, name):
            return {
                "used": False,
                "path": str(path),
                "note": f"{shown} was learned for another version of `{name}`; rebuild it",
            }
        Module.load_state(instance, state.predictors)
    except StateError as exc:
        return {"used": False, "path": str(path), "note": f"{shown} is not usable: {exc}"}
    return {"used": True, "path": str(path), "note": f"{shown} ({state.describe()})"}


def _jsonable(value: Any) -> Any:
    from dsx.runtime.adapters._values import jsonable

    return jsonable(value)


# ---- the request ------------------------------------------------------------------------
def render_request(unit: ir.Unit, params: dict[str, Any], *, allow_python: bool) -> dict[str, Any]:
    """Answer ``dsx/renderPrompt`` for ``unit``: in this process for a pure ``.dsx`` unit,
    in a child process when it has ``use python`` imports (and the client allows them)."""
    options = _options(params)
    if not unit.python:
        return render_prompt(unit, **options)
    if not allow_python:
        modules = ", ".join(sorted({p.module for p in unit.python}))
        raise PreviewError(
            f"this file uses Python modules ({modules}); previewing it runs them, which needs "
            "a trusted workspace"
        )
    payload = json.dumps({"unit": unit.to_json(), "options": options})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dsx.lsp.preview"],
            input=payload,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            cwd=str(Path(unit.source).parent) if not unit.source.startswith("<") else None,
        )
    except subprocess.TimeoutExpired:
        raise PreviewError(
            f"rendering took more than {CHILD_TIMEOUT:.0f} s (importing the Python modules?)"
        ) from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise PreviewError("rendering failed: " + " | ".join(tail)) from None
    if "error" in answer:
        raise PreviewError(answer["error"])
    return answer["result"]


def _options(params: dict[str, Any]) -> dict[str, Any]:
    def text(key: str) -> str | None:
        value = params.get(key)
        if value is None or isinstance(value, str):
            return value
        raise PreviewError(f"`{key}` must be a string")

    inputs = params.get("inputs")
    if inputs is not None and not isinstance(inputs, dict):
        raise PreviewError("`inputs` must be an object of input names to values")
    use_state = params.get("useState", True)
    return {
        "program": text("program"),
        "predictor": text("predictor"),
        "test": text("test"),
        "inputs": inputs,
        "use_state": bool(use_state),
    }


def _child() -> int:
    """``python -m dsx.lsp.preview``: render the unit on stdin (JSON) to stdout (JSON)."""
    request = json.loads(sys.stdin.read())
    try:
        unit = ir.Unit.from_json(request["unit"])
        result = render_prompt(unit, **request["options"])
    except Exception as exc:  # every failure is an answer, the server shows it
        print(json.dumps({"error": str(exc) if isinstance(exc, DsxError) else repr(exc)}))
        return 0
    print(json.dumps({"result": result}))
    return 0


if __name__ == "__main__":
    sys.exit(_child())
