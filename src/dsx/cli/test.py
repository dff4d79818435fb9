"""``dsx test FILE``: run the ``test`` blocks of a .dsx file (``given``, ``expect``, ``assert``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from dsx.cli._common import (
    add_lm_option,
    add_lm_override_option,
    add_state_options,
    add_traceback,
    err,
    load,
    program_name,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    test: argparse.ArgumentParser = subparsers.add_parser(
        "test",
        help="run the test blocks of a .dsx file",
        description="Run every `test` block: the program on the `given` inputs, then `expect` and "
        "`assert`. Exit status: 0 every test passed (or the file has none); 1 a test failed or "
        "the file has errors; 2 a wrong --program or --test, no LM, or a state that cannot be "
        "used.",
    )
    test.add_argument("file", metavar="FILE", help="the .dsx file")
    test.add_argument("--program", metavar="NAME", help="only the tests of this program")
    test.add_argument("--test", metavar="NAME", action="append", help="only this test (repeatable)")
    add_lm_option(test)
    add_lm_override_option(test)
    add_state_options(test)
    add_traceback(test)
    test.set_defaults(func=run)
    return test


def run(args: argparse.Namespace) -> int:
    from dsx._load import CheckFailed
    from dsx._report import format_error, report_error
    from dsx.cli._lm import override_declared, require_lm, setup_lm
    from dsx.cli._state import with_state
    from dsx.errors import DsxError
    from dsx.runtime import _interp
    from dsx.runtime._testblocks import scripted_replies
    from dsx.runtime.metrics import normalize_text

    try:
        ns = load(args.file)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return err(str(exc))
    if args.program:
        try:  # a misspelt --program must not pass as "no test blocks"
            program_name(ns, args.program)
        except DsxError as exc:
            return err(str(exc))
    chosen = set(getattr(args, "test", None) or ())
    tests = [
        t
        for t in ns.unit.tests
        if (not args.program or t.program == args.program) and (not chosen or t.name in chosen)
    ]
    unknown = chosen - {t.name for t in ns.unit.tests}
    if unknown:
        return err(f"no test named {', '.join(sorted(unknown))} in {args.file}")
    if not tests:
        print(f"no test blocks in {args.file}")
        return 0
    try:
        model = setup_lm(args.lm, args.lm_option)
        programs = {
            name: with_state(ns, str(args.file), name, args)
            for name in dict.fromkeys(t.program for t in tests)
        }
        if args.lm_override:
            override_declared(model, *programs.values())
        # tests that script the LM's replies (`reply`) need no configured LM
        unscripted = {t.program for t in tests if not t.replies}
        if unscripted:
            require_lm(*(programs[name] for name in unscripted))
    except DsxError as exc:
        return err(str(exc))
    passed = failed = 0
    for test in tests:
        env = ns._env()
        problems: list[str] = []
        try:
            program = programs[test.program]
            given = {k: _interp.run_sync(_interp.eval_expr(v, env)) for k, v in test.given}
            with scripted_replies(test, program, env):
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
