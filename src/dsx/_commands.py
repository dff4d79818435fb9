"""Implementations of ``dsx build|run|test|eval|optimize`` (the CLI parses arguments).

Every command that runs a program applies the program's learned state the same way
(:func:`_with_state`) and names its LM the same way (:mod:`dsx._lmspec`); errors are
reported by :mod:`dsx._report`.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

from dsx._lmspec import NO_LM_MESSAGE, NoLMError, lm_from_env, lm_settings, model_name
from dsx._report import report_error
from dsx.errors import DsxError, StateError

__all__ = ["cmd_build", "cmd_eval", "cmd_optimize", "cmd_run", "cmd_test", "lm_from_env"]


def _err(message: str) -> int:
    print(f"dsx: {message}", file=sys.stderr)
    return 2


def _note(message: str) -> None:
    print(f"dsx: {message}", file=sys.stderr)


def _setup_lm(name: str | None) -> str | None:
    """Configure the LM from --lm or DSX_LM; returns the model name used (None: keep settings)."""
    import dsx

    model = model_name(name)
    if model:
        dsx.configure(**lm_settings(model))
    return model


def _require_lm(*programs: Any) -> None:
    """Raise :class:`NoLMError` unless an LM is configured or every predictor has its own."""
    import dsx

    if dsx.settings.lm is not None:
        return
    if programs and all(p.lm for prog in programs for p in prog.predictors()):
        return
    raise NoLMError()


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


# -- learned state --------------------------------------------------------------------------


def _with_state(ns: Any, path: str, name: str, args: Any) -> Any:
    """Program ``name`` with the learned state the command should use, saying which.

    ``--no-state``: the bare program. ``--state FILE``: that file. Otherwise, for a .dsx
    file, the state ``dsx build``/``dsx optimize`` last wrote for the program
    (``build/NAME.state.json`` next to the file) while it matches the program's IR; for an
    IR file, the learned state it carries.
    """
    from dsx.runtime.state import read_state

    quiet = getattr(args, "quiet_state", False)
    say = (lambda m: None) if quiet else _note
    if getattr(args, "no_state", False):
        say(f"running `{name}` without learned state (--no-state)")
        return ns.program(name, learned=False)
    explicit = getattr(args, "state", None)
    if explicit:
        state = read_state(explicit)
        program = ns.program(name, learned=False)
        _load_into(program, state, name)
        if state.fingerprint and state.fingerprint != _fingerprint(ns, name):
            say(
                f"note: {explicit} was learned for another version of `{name}`; it still fits "
                "its predictors, so it is used"
            )
        say(f"using learned state {explicit} ({state.describe()})")
        return program
    if path.endswith(".json"):
        learned = ns.unit.learned.get(name)
        if learned is not None:
            say(f"using the learned state in {path} ({learned.optimizer or 'saved'})")
        else:
            say(f"`{name}` is not optimized (the IR file has no learned state for it)")
        return ns.program(name)
    from dsx.compiler.build import default_state_path

    default = default_state_path(path, name)
    shown = _shown(default)
    if not default.is_file():
        hint = (
            f"`dsx optimize {path}` learns one"
            if any(o.program == name for o in ns.unit.optimizes)
            else f"add an `optimize {name} {{ ... }}` block to learn one"
        )
        say(f"`{name}` is not optimized (no {shown}); {hint}")
        return ns.program(name)
    try:
        state = read_state(default)
    except StateError as exc:
        say(f"ignoring {shown}: {exc}")
        return ns.program(name)
    if state.fingerprint != _fingerprint(ns, name):
        say(
            f"ignoring {shown}: `{name}` changed since that state was learned; run "
            f"`dsx build {path}` (or `dsx optimize`) again, or pass --state {shown} to use it anyway"
        )
        return ns.program(name)
    program = ns.program(name, learned=False)
    _load_into(program, state, name)
    say(f"using learned state {shown} ({state.describe()}); --no-state runs the bare program")
    return program


def _load_into(program: Any, state: Any, name: str) -> None:
    from dsx.runtime.module import Module

    try:
        Module.load_state(program, state.predictors)  # program-level, also for a Predict
    except StateError as exc:
        raise StateError(f"{state.source} does not fit program `{name}`: {exc}") from None


def _fingerprint(ns: Any, name: str) -> str:
    from dsx.compiler.build import program_fingerprint

    return program_fingerprint(ns.unit, name)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _program_name(ns: Any, requested: str | None) -> str:
    if requested is None:
        if not ns.unit.programs:
            raise DsxError(
                f"{ns.unit.source} declares no `program`; add e.g. `program main = MyModule()`"
            )
        return str(ns.unit.programs[0].name)
    ns.program(requested, learned=False)  # raises a clear error for an unknown name
    return requested


# -- inputs -----------------------------------------------------------------------------------


def _program_inputs(ns: Any, program: str) -> list[tuple[str, Any, bool]]:
    """The program's inputs: (name, IR type or None, required)."""
    prog = next(p for p in ns.unit.programs if p.name == program)
    root = prog.root
    if root.kind == "module":
        mod = next(m for m in ns.unit.modules if m.name == root.module)
        if mod.forward is None:
            return []
        return [(p.name, p.type, p.default is None) for p in mod.forward.params]
    sig = next(s for s in ns.unit.signatures if s.name == root.signature)
    return [(f.name, f.type, not f.has_default) for f in sig.fields if f.direction == "in"]


def _ir_inputs(ns: Any, program: str) -> list[str]:
    return [name for name, _, _ in _program_inputs(ns, program)]


def _read_inputs(ns: Any, program: str, items: list[str]) -> dict[str, Any]:
    """``-i name=value`` items, checked against the program's inputs and their types."""
    inputs = _program_inputs(ns, program)
    types = {name: t for name, t, _ in inputs}
    row: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise DsxError(f"--input {item!r}: write it as name=value")
        if key not in types:
            close = difflib.get_close_matches(key, list(types), n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise DsxError(
                f"--input {key}: `{program}` has no input `{key}`.{hint} "
                f"Its inputs: {', '.join(types) or '(none)'}"
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # bytes that are not UTF-8, kept as surrogates
                raise DsxError(
                    f"--input {key}: the value is not UTF-8 text (the terminal or the script "
                    "sent another encoding); pass it as UTF-8"
                ) from None
        row[key] = _typed_value(ns, key, types[key], text)
    missing = [name for name, _, required in inputs if required and name not in row]
    if missing:
        raise DsxError(
            f"`{program}` needs the input(s) {', '.join(missing)}: pass "
            + " ".join(f"-i {m}=VALUE" for m in missing)
        )
    return row


def _typed_value(ns: Any, name: str, irtype: Any, text: str) -> Any:
    if irtype is None or irtype.kind == "str":
        return text
    value = _parse_value(text)
    if irtype.kind == "any":
        return value
    import pydantic

    adapter = pydantic.TypeAdapter(ns.pytype(irtype))
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        if value != text:
            try:
                return adapter.validate_python(text)
            except pydantic.ValidationError:
                pass
        errors = exc.errors()
        problem = errors[0].get("msg", str(exc)) if errors else str(exc)
        raise DsxError(
            f"--input {name}={text!r}: not a valid {irtype} ({problem}). Give JSON for "
            """structured values, e.g. -i tags='["a", "b"]'"""
        ) from None


def cmd_build(args: Any) -> int:
    from dsx.compiler.build import BuildError, build, explain

    path = Path(args.file)
    if not path.is_file():
        return _err(f"{path}: no such file")
    if path.suffix != ".dsx":
        return _err(f"{path}: dsx build takes a .dsx file")
    try:
        result = build(
            path,
            out=args.out,
            emit=args.emit,
            lm=_lm_arg(args.lm),
            log=lambda m: print(m, file=sys.stderr),
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
    for written in result.written:
        print(f"wrote {written}")
    if result.unit.optimizes and not result.optimized:
        print("nothing to optimize: every optimize block is unchanged since the last build")
    if args.explain:
        print(explain(result.unit))
    return 0


def _lm_arg(cli: str | None) -> str | None:
    """``--lm``, resolved for the build driver (which reads DSX_LM itself)."""
    return cli


def _read_rows(ns: Any, name: str, args: Any) -> list[dict[str, Any]]:
    if args.input and args.jsonl:
        raise DsxError("give either --input name=value ... or --jsonl FILE, not both")
    if not args.jsonl:
        return [_read_inputs(ns, name, args.input or [])]
    from dsx._textfile import read_text

    lines = read_text(args.jsonl, what="--jsonl file").splitlines()  # a FIFO must not hang
    rows: list[dict[str, Any]] = []
    known = _ir_inputs(ns, name)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            raise DsxError(f"--jsonl {args.jsonl}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise DsxError(f"--jsonl {args.jsonl}:{number}: expected a JSON object")
        unknown = [k for k in row if k not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise DsxError(
                f"--jsonl {args.jsonl}:{number}: `{name}` has no input `{unknown[0]}`.{hint} "
                f"Its inputs: {', '.join(known)}"
            )
        rows.append(row)
    if not rows:
        raise DsxError(f"--jsonl {args.jsonl}: no JSON objects in it (one per line is expected)")
    return rows


def _write_trace_html(recorder: Any, out: str, target: str) -> int:
    from dsx._trace_html import render_html
    from dsx.runtime._files import atomic_write

    try:
        atomic_write(out, render_html(recorder, title=f"dsx run {target}"))
    except OSError as exc:
        return _err(f"cannot write the trace page {out}: {exc.strerror or exc}")
    print(f"wrote the trace to {out}", file=sys.stderr)
    return 0


def _write_eval_report(result: Any, recorder: Any, out: str, target: str) -> int:
    from dsx._trace_html import render_eval_html
    from dsx.runtime._files import atomic_write

    try:
        atomic_write(out, render_eval_html(result, recorder, title=f"dsx eval {target}"))
    except OSError as exc:
        return _err(f"cannot write the report {out}: {exc.strerror or exc}")
    print(f"wrote the report to {out}", file=sys.stderr)
    return 0


def cmd_run(args: Any) -> int:
    import dsx
    from dsx._load import CheckFailed, load_namespace

    path, requested = _split_target(args.target)
    try:
        ns = load_namespace(path)
        name = _program_name(ns, requested)
        rows = _read_rows(ns, name, args)
        _setup_lm(args.lm)
        program = _with_state(ns, path, name, args)
        _require_lm(program)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return _err(str(exc))
    names = dict((id(p), n) for n, p in program.named_predictors())
    usage = contextlib.ExitStack()
    report = usage.enter_context(dsx.track_usage()) if getattr(args, "usage", False) else None
    recorder = None
    if getattr(args, "trace_html", None):
        from dsx._trace_html import TraceRecorder

        recorder = TraceRecorder()
        hooks = [*(dsx.settings.callbacks or ()), recorder]
        usage.enter_context(dsx.context(callbacks=hooks))
    with usage:
        status = _run_rows(args, program, rows, names)
    if recorder is not None:
        status = _write_trace_html(recorder, args.trace_html, args.target) or status
    if report is not None:
        # One line an editor can read: tokens per model and the cost when it is known.
        totals = {
            "models": report.totals(),
            "total_tokens": report.total_tokens,
            "cost": report.cost,
        }
        print(f"usage: {json.dumps(totals)}", file=sys.stderr)
    if args.inspect:
        dsx.inspect_history(len(dsx.runtime.lm_base.GLOBAL_HISTORY))
    return status


def _run_rows(args: Any, program: Any, rows: list[dict[str, Any]], names: dict[int, str]) -> int:
    import dsx

    status = 0
    for row in rows:
        trace: list[Any] = []
        try:
            with dsx.context(trace=trace if args.trace else None):
                if getattr(args, "stream", False) and not args.json:
                    from dsx._stream_cli import run_streaming

                    pred, streamed = run_streaming(program, row)
                else:
                    pred, streamed = program(**row), set()
        except Exception as exc:
            report_error(exc, show_traceback=getattr(args, "traceback", False))
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
                if key in streamed:
                    continue  # printed while it streamed
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                print(f"{key}: {shown}")
            if len(rows) > 1:
                print()
    return status


def _plain(value: Any) -> Any:
    from dsx.runtime.adapters._values import jsonable

    return jsonable(value)


def cmd_test(args: Any) -> int:
    from dsx._load import CheckFailed, load_namespace
    from dsx._report import format_error
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
        programs = {
            name: _with_state(ns, str(args.file), name, args)
            for name in dict.fromkeys(t.program for t in tests)
        }
        _require_lm(*programs.values())
    except DsxError as exc:
        return _err(str(exc))
    passed = failed = 0
    for test in tests:
        env = ns._env()
        problems: list[str] = []
        try:
            program = programs[test.program]
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
        except Exception as exc:
            if getattr(args, "traceback", False):
                report_error(exc, show_traceback=True, stream=sys.stdout)
            problems.append(format_error(exc).replace("\n", "\n     "))
        if problems:
            failed += 1
            print(f"FAIL {test.name} ({test.program})")
            for p in problems:
                print(f"     {p}")
        else:
            passed += 1
            print(f"ok   {test.name} ({test.program})")
    print(f"{passed} passed, {failed} failed")
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
        names = [d.name for d in ns.unit.data]
        close = difflib.get_close_matches(spec, names, n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise DsxError(
            f"--data {spec}: not a data declaration of the file nor a .jsonl/.json/.csv file."
            f"{hint} Data declared: {', '.join(names) or '(none)'}"
        )
    ds = ir.build(
        ir.DataSet,
        name=path.stem,
        format=fmt,
        path=os.path.abspath(path),  # not resolve(): a symlink loop is read_text's to report
        base_dir="/",
        inputs=tuple(inputs or ()),
    )
    return load_data(ds)


def cmd_eval(args: Any) -> int:
    import dsx
    from dsx._load import CheckFailed, load_namespace

    path, requested = _split_target(args.target)
    try:
        ns = load_namespace(path)
        name = _program_name(ns, requested)
        inputs = args.inputs.split(",") if args.inputs else _ir_inputs(ns, name)
        devset = _load_dataset(ns, args.data, inputs)
        metric = ns.metric(args.metric) if args.metric else _default_metric(ns, name)
        _setup_lm(args.lm)
        program = _with_state(ns, path, name, args)
        _require_lm(program)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return _err(str(exc))
    evaluate = dsx.Evaluate(
        devset=devset,
        metric=metric,
        num_threads=args.num_threads,
        display_progress=not args.json,
        display_table=args.table,
        max_errors=getattr(args, "max_errors", None),
        save_as_json=args.save_json,
        save_as_csv=args.save_csv,
    )
    recorder = None
    if getattr(args, "report", None):
        from dsx._trace_html import TraceRecorder

        recorder = TraceRecorder()
        with dsx.context(callbacks=[*(dsx.settings.callbacks or ()), recorder]):
            result = evaluate(program)
    else:
        result = evaluate(program)
    code = _eval_exit_code(result)
    if recorder is not None:
        code = _write_eval_report(result, recorder, args.report, args.target) or code
    if args.json:
        doc = {
            "score": result.score,
            "examples": len(devset),
            "done": result.num_done,
            "errors": result.errors,
            "complete": result.complete,
            "stopped": result.stopped,
            "save_errors": result.save_errors,
            "exit_code": code,
        }
        print(json.dumps(doc, ensure_ascii=False))
    else:
        over = (
            f"{len(devset)}"
            if result.num_done == len(devset)
            else f"{result.num_done} of {len(devset)}"
        )
        print(f"score: {result.score:.2f}% over {over} example(s), {result.errors} error(s)")
        if result.stopped is not None:
            why = "interrupted (Ctrl-C)" if result.stopped == "interrupted" else result.stopped
            print(f"stopped early: {why}; {len(devset) - result.num_done} example(s) did not run")
        if result.errors and result.failures:
            report_error(result.failures[0][2], prefix="first error")
    for line in result.save_errors:
        print(f"dsx eval: {line}", file=sys.stderr)
    return code


#: `dsx eval` exit statuses after a run (docs/evaluate.md).
EVAL_INTERRUPTED, EVAL_MAX_ERRORS, EVAL_NOT_SAVED = 130, 3, 4


def _eval_exit_code(result: Any) -> int:
    if result.stopped == "interrupted":
        return EVAL_INTERRUPTED
    if result.stopped is not None:
        return EVAL_MAX_ERRORS
    if result.save_errors:
        return EVAL_NOT_SAVED
    return 0


def _default_metric(ns: Any, program: str) -> Any:
    opt = next((o for o in ns.unit.optimizes if o.program == program), None)
    if opt is not None:
        return ns.metric(opt.metric)
    if len(ns.unit.metrics) == 1:
        return ns.metric(ns.unit.metrics[0].name)
    raise DsxError("say which metric to use: --metric NAME (a `metric` declared in the file)")


def cmd_optimize(args: Any) -> int:
    from dsx._load import CheckFailed, load_namespace
    from dsx.compiler.build import (
        BuildError,
        default_state_path,
        optimize_key,
        run_optimize,
        state_file,
        write_cache_entry,
    )
    from dsx.runtime.state import write_state

    path, requested = _split_target(args.target)
    try:
        ns = load_namespace(path)
        name = _program_name(ns, requested)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return _err(str(exc))
    if args.out and (Path(args.out).suffix == ".dsx" or _same_file(args.out, path)):
        return _err(
            f"--out {args.out}: that would overwrite a .dsx source file with the learned "
            f"state; give a .json path (the default is build/{name}.state.json)"
        )
    unit = ns.unit
    opt = next((o for o in unit.optimizes if o.program == name), None)
    if opt is None:
        return _err(
            f"{path} has no `optimize {name} {{ ... }}` block; add one (optimizer, train data, metric)"
        )
    lm_name = opt.lm or model_name(args.lm)
    try:
        learned = run_optimize(
            unit,
            opt,
            lm_name,
            log=lambda m: print(m, file=sys.stderr),
            run_dir=default_state_path(path, name).parent / ".runs",
        )
        state = state_file(unit, name, learned)
    except BuildError as exc:
        if NO_LM_MESSAGE in str(exc):
            return _err(NO_LM_MESSAGE)
        print(f"dsx optimize: {exc}", file=sys.stderr)
        return 1
    except DsxError as exc:
        print(f"dsx optimize: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else default_state_path(path, name)
    # `dsx build` reuses this result instead of optimizing again.
    key = optimize_key(unit, opt, {"model": lm_name} if lm_name else None)
    cache = default_state_path(path, name).parent / ".cache" / f"{name}-{key}.json"
    try:
        write_cache_entry(cache, key, learned)
    except OSError as exc:
        print(
            f"dsx optimize: could not cache the result in {cache}: {exc.strerror or exc}",
            file=sys.stderr,
        )
    try:
        write_state(out, state)
    except OSError as exc:
        # The optimization is done: never lose it because --out cannot be written.
        print(f"dsx optimize: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        kept = _save_elsewhere(state, default_state_path(path, name), out, name)
        print(f"dsx optimize: saved the learned state to {kept} instead", file=sys.stderr)
        return 1
    score = f" (score {learned.score:.2f})" if learned.score is not None else ""
    print(f"wrote {_shown(out)}{score}")
    if not args.out:
        print(f"`dsx run|eval|test {path}` now use it; --no-state runs the bare program")
    return 0


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def _save_elsewhere(state: Any, default: Path, failed: Path, name: str) -> str:
    """Write ``state`` where it can be: the default state path, else a temporary file."""
    import tempfile

    from dsx.runtime.state import write_state

    if default.resolve() != failed.resolve():
        with contextlib.suppress(OSError):
            write_state(default, state)
            return _shown(default)
    fd, tmp = tempfile.mkstemp(prefix=f"dsx-{name}-", suffix=".state.json")
    os.close(fd)
    write_state(tmp, state)
    return tmp
