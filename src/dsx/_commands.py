"""Implementations of ``dsx build``, ``dsx run`` and ``dsx test`` (the CLI parses arguments)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from dsx.errors import DsxError

__all__ = ["cmd_build", "cmd_eval", "cmd_optimize", "cmd_run", "cmd_test", "lm_from_env"]


def _err(message: str) -> int:
    print(f"dsx: {message}", file=sys.stderr)
    return 2


def lm_from_env(model: str) -> Any:
    """``dsx.LM(model)`` with the endpoint from DSX_API_BASE / DSX_API_KEY when set."""
    import dsx

    api_base = os.environ.get("DSX_API_BASE") or None
    api_key = os.environ.get("DSX_API_KEY") or ("dsx-local" if api_base else None)
    return dsx.LM(model, api_base=api_base, api_key=api_key)


def _setup_lm(name: str | None) -> str | None:
    """Configure the LM from --lm or DSX_LM; returns the model name used (None: keep settings)."""
    import dsx

    model = name or os.environ.get("DSX_LM")
    if model:
        dsx.configure(lm=lm_from_env(model))
    return model


def _split_target(target: str) -> tuple[str, str | None]:
    path, sep, program = target.rpartition(":")
    if sep and path.endswith((".dsx", ".json")):
        return path, program or None
    return target, None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_build(args: Any) -> int:
    from dsx.compiler.build import BuildError, build, explain

    path = Path(args.file)
    if not path.is_file():
        return _err(f"{path}: no such file")
    try:
        result = build(
            path, out=args.out, emit=args.emit, lm=args.lm, log=lambda m: print(m, file=sys.stderr)
        )
    except BuildError as exc:
        print(f"dsx build: {exc}", file=sys.stderr)
        if "error(s)" in str(exc):
            from dsx.compiler.analysis import analyze_path
            from dsx.diagnostics import render_text

            analysis = analyze_path(path)
            for d in analysis.errors:
                print(render_text(d, analysis.source(d.span.file)) + "\n", file=sys.stderr)
        return 1
    except DsxError as exc:
        print(f"dsx build: {exc}", file=sys.stderr)
        return 1
    for written in result.written:
        print(f"wrote {written}")
    if result.unit.optimizes and not result.optimized:
        print("nothing to optimize: every optimize block is unchanged since the last build")
    if args.explain:
        print(explain(result.unit))
    return 0


def cmd_run(args: Any) -> int:
    import dsx
    from dsx._load import CheckFailed, load_namespace

    path, program_name = _split_target(args.target)
    try:
        ns = load_namespace(path)
        program = ns.program(program_name)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return _err(str(exc))
    if args.input and args.jsonl:
        return _err("give either --input k=v ... or --jsonl FILE, not both")
    rows: list[dict[str, Any]] = []
    if args.jsonl:
        try:
            lines = Path(args.jsonl).read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
        except (OSError, ValueError) as exc:
            return _err(f"--jsonl {args.jsonl}: {exc}")
    else:
        row: dict[str, Any] = {}
        for item in args.input or []:
            key, sep, value = item.partition("=")
            if not sep:
                return _err(f"--input {item!r}: write it as name=value")
            row[key] = _parse_value(value)
        rows = [row]
    try:
        _setup_lm(args.lm)
    except DsxError as exc:
        return _err(str(exc))
    if dsx.settings.lm is None and not any(p.lm for p in program.predictors()):
        return _err(
            "no LM: pass --lm MODEL (a litellm model string, e.g. openai/gpt-4o-mini) or set DSX_LM"
        )
    status = 0
    names = dict((id(p), n) for n, p in program.named_predictors())
    for row in rows:
        trace: list[Any] = []
        try:
            with dsx.context(trace=trace if args.trace else None):
                pred = program(**row)
        except (DsxError, TypeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        if args.trace:
            for predictor, inputs, out in trace:
                print(
                    f"[trace] {names.get(id(predictor), predictor)}: {json.dumps(_plain(inputs), ensure_ascii=False)[:300]}"
                    f" -> {json.dumps(_plain(out.to_dict()), ensure_ascii=False)[:300]}",
                    file=sys.stderr,
                )
        values = _plain(pred.to_dict() if hasattr(pred, "to_dict") else pred)
        if args.json:
            print(json.dumps(values, ensure_ascii=False))
        else:
            for key, value in values.items() if isinstance(values, dict) else [("result", values)]:
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                print(f"{key}: {shown}")
            if len(rows) > 1:
                print()
    if args.inspect:
        dsx.inspect_history(len(dsx.runtime.lm_base.GLOBAL_HISTORY))
    return status


def _plain(value: Any) -> Any:
    from dsx.runtime.adapters._values import jsonable

    return jsonable(value)


def cmd_test(args: Any) -> int:
    import dsx
    from dsx._load import CheckFailed, load_namespace
    from dsx.runtime import _interp
    from dsx.runtime.metrics import normalize_text

    try:
        ns = load_namespace(args.file)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return _err(str(exc))
    chosen = set(getattr(args, "test", None) or ())
    tests = [
        t
        for t in ns.unit.tests
        if (not args.program or t.program == args.program) and (not chosen or t.name in chosen)
    ]
    unknown = chosen - {t.name for t in ns.unit.tests}
    if unknown:
        return _err(f"no test named {', '.join(sorted(unknown))} in {args.file}")
    if not tests:
        print(f"no test blocks in {args.file}")
        return 0
    try:
        _setup_lm(args.lm)
    except DsxError as exc:
        return _err(str(exc))
    passed = failed = 0
    for test in tests:
        env = ns._env()
        problems: list[str] = []
        try:
            program = ns.program(test.program)
            given = {k: _interp.run_sync(_interp.eval_expr(v, env)) for k, v in test.given}
            result = program(**given)
            for key, expr in test.expect:
                want = _interp.run_sync(_interp.eval_expr(expr, env))
                got = getattr(result, key, None)
                same = (
                    normalize_text(got) == normalize_text(want)
                    if isinstance(want, str)
                    else got == want
                )
                if not same:
                    problems.append(f"expected {key} = {want!r}, got {got!r}")
            env["result"] = result
            for check in test.checks:
                if not _interp.run_sync(_interp.eval_expr(check.cond, env)):
                    msg = (
                        _interp.run_sync(_interp.eval_expr(check.message, env))
                        if check.message
                        else "condition is false"
                    )
                    line = f" (line {check.loc[1]})" if check.loc else ""
                    problems.append(f"{check.severity} failed{line}: {msg}")
        except (DsxError, TypeError, ValueError) as exc:
            problems.append(f"error: {exc}")
        if problems:
            failed += 1
            print(f"FAIL {test.name} ({test.program})")
            for p in problems:
                print(f"     {p}")
        else:
            passed += 1
            print(f"ok   {test.name} ({test.program})")
    print(f"{passed} passed, {failed} failed")
    del dsx
    return 1 if failed else 0


def _load_dataset(ns: Any, spec: str, inputs: list[str] | None) -> list[Any]:
    """A data declaration's name, or a .jsonl/.json/.csv path (inputs from --inputs or the program)."""
    from dsx import ir
    from dsx.runtime.instantiate import load_data

    if any(d.name == spec for d in ns.unit.data):
        return ns.data(spec)
    path = Path(spec)
    fmt = {".jsonl": "jsonl", ".json": "json", ".csv": "csv"}.get(path.suffix)
    if fmt is None:
        raise DsxError(
            f"--data {spec}: not a data declaration of the file nor a .jsonl/.json/.csv file"
        )
    ds = ir.build(
        ir.DataSet,
        name=path.stem,
        format=fmt,
        path=str(path.resolve()),
        base_dir="/",
        inputs=tuple(inputs or ()),
    )
    return load_data(ds)


def cmd_eval(args: Any) -> int:
    import dsx
    from dsx._load import CheckFailed, load_namespace

    path, program_name = _split_target(args.target)
    try:
        ns = load_namespace(path)
        program = ns.program(program_name)
        name = program_name or ns.unit.programs[0].name
        inputs = args.inputs.split(",") if args.inputs else _ir_inputs(ns, name)
        devset = _load_dataset(ns, args.data, inputs)
        metric = ns.metric(args.metric) if args.metric else _default_metric(ns, name)
        _setup_lm(args.lm)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return _err(str(exc))
    if dsx.settings.lm is None and not any(p.lm for p in program.predictors()):
        return _err(
            "no LM: pass --lm MODEL (a litellm model string, e.g. openai/gpt-4o-mini) or set DSX_LM"
        )
    evaluate = dsx.Evaluate(
        devset=devset,
        metric=metric,
        num_threads=args.num_threads,
        display_progress=not args.json,
        display_table=args.table,
        save_as_json=args.save_json,
        save_as_csv=args.save_csv,
    )
    result = evaluate(program)
    if args.json:
        print(json.dumps({"score": result.score, "examples": len(devset), "errors": result.errors}))
    else:
        print(f"score: {result.score:.2f}% over {len(devset)} example(s), {result.errors} error(s)")
    return 0


def _ir_inputs(ns: Any, program: str) -> list[str]:
    prog = next(p for p in ns.unit.programs if p.name == program)
    root = prog.root
    if root.kind == "module":
        mod = next(m for m in ns.unit.modules if m.name == root.module)
        return [p.name for p in mod.forward.params] if mod.forward else []
    sig = next(s for s in ns.unit.signatures if s.name == root.signature)
    return [f.name for f in sig.fields if f.direction == "in"]


def _default_metric(ns: Any, program: str) -> Any:
    opt = next((o for o in ns.unit.optimizes if o.program == program), None)
    if opt is not None:
        return ns.metric(opt.metric)
    if len(ns.unit.metrics) == 1:
        return ns.metric(ns.unit.metrics[0].name)
    raise DsxError("say which metric to use: --metric NAME (a `metric` declared in the file)")


def cmd_optimize(args: Any) -> int:
    from dsx._load import CheckFailed, load_namespace
    from dsx.compiler.build import BuildError, atomic_write, run_optimize

    path, program_name = _split_target(args.target)
    try:
        ns = load_namespace(path)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return _err(str(exc))
    unit = ns.unit
    name = program_name or (unit.programs[0].name if unit.programs else None)
    opt = next((o for o in unit.optimizes if o.program == name), None)
    if opt is None:
        return _err(
            f"{path} has no `optimize {name} {{ ... }}` block; add one (optimizer, train data, metric)"
        )
    lm_name = opt.lm or args.lm or os.environ.get("DSX_LM")
    try:
        state = run_optimize(unit, opt, lm_name, log=lambda m: print(m, file=sys.stderr))
    except (BuildError, DsxError) as exc:
        print(f"dsx optimize: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else Path(path).with_name(f"{name}.state.json")
    atomic_write(out, state.model_dump_json(indent=2))
    print(f"wrote {out}" + (f" (score {state.score:.2f})" if state.score is not None else ""))
    return 0
