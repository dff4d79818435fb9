"""The ``dsx`` command line.

Subcommands arrive with the features they drive (``check``, ``fmt``, ``build``, ``run``,
``lsp``, ...); each is imported only when used so that ``dsx --help`` stays instant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dsx._version import __version__

__all__ = ["main"]


def _cmd_inspect(args: argparse.Namespace) -> int:
    from dsx.errors import StateError
    from dsx.runtime.state import check_predictor_state, read_state

    path = Path(args.file)
    try:
        state = read_state(path)
        # The shape only: endpoints are shown (and flagged), loading refuses them.
        for name, pstate in state.predictors.items():
            check_predictor_state(pstate, name=name, allow_endpoints=True)
    except StateError as exc:
        print(f"dsx inspect: {path}: {exc}", file=sys.stderr)
        return 2
    made = f", {state.describe()}" if state.optimizer or state.score is not None else ""
    print(
        f"{path}: program {state.program or '?'}, dsx {state.dsx_version or '?'}, "
        f"schema {state.schema_version}{made}, {len(state.predictors)} predictor(s)"
    )
    for name, pstate in state.predictors.items():
        _print_predictor(name, pstate, show_demos=args.demos)
    return 0


def _print_predictor(name: str, state: dict[str, Any], *, show_demos: bool) -> None:
    sig = state.get("signature", {})
    fields = sig.get("fields", [])
    ins = ", ".join(
        f"{f['name']}: {f.get('type', 'str')}" for f in fields if f.get("kind") == "input"
    )
    outs = ", ".join(
        f"{f['name']}: {f.get('type', 'str')}" for f in fields if f.get("kind") == "output"
    )
    print(f"\n■ {name}  ({ins} -> {outs})")
    print(f"  instructions: {sig.get('instructions', '')}")
    lm = state.get("lm")
    if lm:
        from dsx.runtime.state import LM_STATE_SETTINGS

        print("  lm: " + ", ".join(f"{k}={v}" for k, v in lm.items()))
        refused = [k for k in lm if k not in LM_STATE_SETTINGS]
        if refused:
            print(
                f"  note: loading refuses {', '.join(refused)} (endpoints, keys and unknown "
                "LM settings) unless allow_endpoints=True"
            )
    demos = state.get("demos", [])
    print(f"  demos: {len(demos)}")
    if show_demos:
        for i, demo in enumerate(demos, 1):
            print(f"    {i}. " + json.dumps(demo, ensure_ascii=False)[:200])


def _cmd_check(args: argparse.Namespace) -> int:
    from dsx._textfile import TextFileError
    from dsx.compiler.analysis import analyze_path
    from dsx.diagnostics import render_json, render_text

    paths = _expand(args.files)
    if paths is None:
        return 2
    if not paths:  # "0 file(s) checked: no problems" would pass a CI that checked nothing
        print("dsx check: no .dsx files to check", file=sys.stderr)
        return 2
    collected = []
    errors = warnings = 0
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    unreadable: list[str] = []
    for path in paths:
        try:
            analysis = analyze_path(path)
        except TextFileError as exc:  # not UTF-8, unreadable: say so and check the rest
            unreadable.append(str(exc))
            print(f"dsx check: {exc}", file=sys.stderr)
            continue
        for diag in analysis.diagnostics:
            source = analysis.source(diag.span.file)
            collected.append((diag, source))
            errors += diag.severity == "error"
            warnings += diag.severity == "warning"
    if args.format == "json":
        print(render_json(collected))
    else:
        for diag, source in collected:
            print(render_text(diag, source, color=color) + "\n")
        summary = f"{len(paths)} file(s) checked: {errors} error(s), {warnings} warning(s)"
        if unreadable:
            summary += f", {len(unreadable)} unreadable"
        print(summary if collected or unreadable else f"{len(paths)} file(s) checked: no problems")
    return 1 if errors or unreadable else 0


def _expand(items: Sequence[str]) -> list[Path] | None:
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            # A directory named `x.dsx` is not a source file.
            found = sorted(f for f in p.rglob("*.dsx") if f.is_file())
            if not found:
                print(f"dsx check: {item}: no .dsx files in this directory", file=sys.stderr)
            paths.extend(found)
        elif p.is_symlink() and not p.exists():
            print(
                f"dsx: {item}: a symbolic link that leads nowhere (dangling, or a loop)",
                file=sys.stderr,
            )
            return None
        elif p.exists():
            paths.append(p)  # a FIFO too: reading it never blocks (dsx._textfile)
        else:
            print(f"dsx: {item}: no such file or directory", file=sys.stderr)
            return None
    return paths


def _lazy(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        from dsx import _commands

        return int(getattr(_commands, name)(args))

    return run


def _add_state_options(cmd: argparse.ArgumentParser) -> None:
    group = cmd.add_mutually_exclusive_group()
    group.add_argument(
        "--state",
        metavar="FILE",
        help="apply this learned-state file (default: build/PROGRAM.state.json next to a .dsx "
        "file, when it was learned for the program as it is now)",
    )
    group.add_argument(
        "--no-state", action="store_true", help="run the bare program, without learned state"
    )


def _add_traceback(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--traceback",
        action="store_true",
        default=argparse.SUPPRESS,
        help="on an error, show the whole Python traceback",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsx",
        description="dsx — program language models: typed signatures, modules, optimizers.",
    )
    parser.add_argument("--version", action="version", version=f"dsx {__version__}")
    parser.add_argument(
        "--traceback", action="store_true", help="on an error, show the whole Python traceback"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "check",
        help="check .dsx files and report every problem",
        description="Parse and check .dsx files (and what they import); print every diagnostic. "
        "Exit status 1 if there are errors.",
    )
    check.add_argument("files", nargs="+", metavar="FILE", help=".dsx files or directories")
    check.add_argument(
        "--format", choices=["text", "json"], default="text", help="output format (default: text)"
    )
    check.add_argument(
        "--color",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour the text output",
    )
    check.set_defaults(func=_cmd_check)
    from dsx.compiler.fmt_cli import add_fmt_command
    from dsx.local.cli import add_model_command
    from dsx.lsp.cli import add_lsp_command
    from dsx.retrievers.cli import add_index_command
    from dsx.sandbox.cli import add_sandbox_command

    add_fmt_command(sub)
    add_lsp_command(sub)
    add_sandbox_command(sub)
    add_model_command(sub)
    add_index_command(sub)
    build = sub.add_parser(
        "build",
        help="compile a .dsx program (and its optimization) into Python modules",
        description="Check FILE, run each `optimize` block whose inputs changed (results are cached "
        "in OUT/.cache), and write one Python module per program plus its learned state as JSON.",
    )
    build.add_argument("file", metavar="FILE", help="the .dsx file")
    build.add_argument(
        "--out", metavar="DIR", help="output directory (default: build/ next to FILE)"
    )
    build.add_argument(
        "--emit", choices=["py", "ir", "ast"], default="py", help="what to write (default: py)"
    )
    build.add_argument(
        "--explain",
        action="store_true",
        help="show the chosen instructions and demos per predictor",
    )
    build.add_argument(
        "--lm",
        metavar="MODEL",
        help="LM for optimization (default: DSX_LM or the optimize block's `lm`)",
    )
    _add_traceback(build)
    build.set_defaults(func=_lazy("cmd_build"))
    run = sub.add_parser(
        "run",
        help="run a program on inputs",
        description="Run FILE[:program] (a .dsx or .ir.json file) on --input values or each line of --jsonl.",
    )
    run.add_argument(
        "target", metavar="FILE[:program]", help="the program to run (default: the first)"
    )
    run.add_argument(
        "--input",
        "-i",
        action="append",
        metavar="NAME=VALUE",
        help="an input (JSON values are parsed)",
    )
    run.add_argument("--jsonl", metavar="FILE", help="run once per JSON object in FILE")
    run.add_argument("--json", action="store_true", help="print outputs as JSON")
    run.add_argument("--lm", metavar="MODEL", help="litellm model string (default: DSX_LM)")
    run.add_argument("--trace", action="store_true", help="show each predictor call")
    run.add_argument("--inspect", action="store_true", help="print the prompts sent")
    run.add_argument(
        "--usage",
        action="store_true",
        help="print the tokens and cost used, as one line `usage: {JSON}` on stderr",
    )
    run.add_argument(
        "--stream",
        action="store_true",
        help="print each output field as the LM writes it (not with --json)",
    )
    run.add_argument(
        "--trace-html",
        metavar="FILE",
        help="write the call tree (prompts, outputs, timing, tokens, cost) as an HTML page",
    )
    _add_state_options(run)
    _add_traceback(run)
    run.set_defaults(func=_lazy("cmd_run"))
    test = sub.add_parser(
        "test",
        help="run the test blocks of a .dsx file",
        description="Run every `test` block: the program on the `given` inputs, then `expect` and `assert`.",
    )
    test.add_argument("file", metavar="FILE", help="the .dsx file")
    test.add_argument("--program", metavar="NAME", help="only the tests of this program")
    test.add_argument("--test", metavar="NAME", action="append", help="only this test (repeatable)")
    test.add_argument("--lm", metavar="MODEL", help="litellm model string (default: DSX_LM)")
    _add_state_options(test)
    _add_traceback(test)
    test.set_defaults(func=_lazy("cmd_test"))
    ev = sub.add_parser(
        "eval",
        help="evaluate a program on a data set with a metric",
        description="Run FILE[:program] over --data (a `data` name of the file, or a .jsonl/.json/.csv "
        "file) concurrently and score it with --metric (a `metric` of the file). Exit status: 0 "
        "every example ran; 3 stopped by --max-errors; 4 the results could not be saved; 130 "
        "interrupted (Ctrl-C); 1/2 nothing ran (errors in the file or the command line).",
    )
    ev.add_argument("target", metavar="FILE[:program]")
    ev.add_argument(
        "--report",
        metavar="FILE.html",
        help="write an HTML page: the score, every example with its prediction, score, "
        "latency and tokens, and a latency histogram",
    )
    ev.add_argument(
        "--data", required=True, metavar="NAME|PATH", help="a data declaration or a data file"
    )
    ev.add_argument(
        "--metric",
        metavar="NAME",
        help="a metric declaration (default: the optimize block's, or the only one)",
    )
    ev.add_argument(
        "--inputs",
        metavar="A,B",
        help="input fields of a data file (default: the program's inputs)",
    )
    ev.add_argument(
        "--num-threads", type=int, default=None, metavar="N", help="how many examples run at once"
    )
    ev.add_argument(
        "--max-errors",
        type=int,
        default=None,
        metavar="N",
        help="stop after N failed examples (default: dsx.settings.max_errors, 10); exit 3",
    )
    ev.add_argument(
        "--table", type=int, default=0, metavar="N", help="show the first N results as a table"
    )
    ev.add_argument("--save-json", metavar="PATH", help="write every result as JSON")
    ev.add_argument("--save-csv", metavar="PATH", help="write every result as CSV")
    ev.add_argument("--json", action="store_true", help="print the score as JSON")
    ev.add_argument("--lm", metavar="MODEL", help="litellm model string (default: DSX_LM)")
    _add_state_options(ev)
    _add_traceback(ev)
    ev.set_defaults(func=_lazy("cmd_eval"))
    opt = sub.add_parser(
        "optimize",
        help="run a program's optimize block and save the learned state",
        description="Run the `optimize` block of FILE[:program] and write the learned state as JSON "
        "(default: build/PROGRAM.state.json next to FILE, where `dsx run|eval|test` find it). "
        "`dsx build` reuses and embeds the same result.",
    )
    opt.add_argument("target", metavar="FILE[:program]")
    opt.add_argument(
        "--out",
        metavar="PATH",
        help="where to write the state JSON (default: build/PROGRAM.state.json)",
    )
    opt.add_argument(
        "--lm", metavar="MODEL", help="litellm model string (default: the block's `lm` or DSX_LM)"
    )
    _add_traceback(opt)
    opt.set_defaults(func=_lazy("cmd_optimize"))
    inspect = sub.add_parser(
        "inspect",
        help="show a learned-state file (dsx optimize, dsx build, program.save)",
        description="Show per predictor the instructions, LM settings and demos of a learned-state "
        "file, as written by `dsx optimize`, `dsx build` and program.save(path).",
    )
    inspect.add_argument("file", help="a state file (JSON)")
    inspect.add_argument("--demos", action="store_true", help="print every demo too")
    inspect.set_defaults(func=_cmd_inspect)
    return parser


def _tolerant_output() -> None:
    """Print text with lone surrogates (file names that are not UTF-8, escaped surrogates in
    a model's JSON) as escapes, whatever the locale, instead of failing mid-output."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):
                stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_usage(sys.stderr)
        print(
            "dsx: a command is needed, e.g. `dsx check FILE.dsx`; `dsx --help` lists them all",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("dsx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `dsx check | head`: the reader went away; say nothing more.
        import os

        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:
        from dsx._report import report_error

        report_error(exc, show_traceback=getattr(args, "traceback", False))
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
