"""``dsx run FILE[:program]``: run a program on ``-i`` inputs or each line of ``--jsonl``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from dsx.cli._common import (
    add_lm_option,
    add_lm_override_option,
    add_state_options,
    add_traceback,
    err,
    load,
    plain,
    program_name,
    ready_program,
    split_target,
    write_page,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    run_: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run a program on inputs",
        description="Run FILE[:program] (a .dsx or .ir.json file) on --input values or each line of --jsonl.",
    )
    run_.add_argument(
        "target", metavar="FILE[:program]", help="the program to run (default: the first)"
    )
    run_.add_argument(
        "--input",
        "-i",
        action="append",
        metavar="NAME=VALUE",
        help="an input, repeatable; a `str` input takes VALUE as it is, others parse it as "
        """JSON (-i tags='["a", "b"]')""",
    )
    run_.add_argument(
        "--jsonl",
        metavar="FILE",
        help="run once per JSON object in FILE (a data file's other fields, such as expected "
        "outputs, are left out)",
    )
    run_.add_argument("--json", action="store_true", help="print outputs as JSON")
    add_lm_option(run_)
    run_.add_argument("--trace", action="store_true", help="show each predictor call")
    run_.add_argument("--inspect", action="store_true", help="print the prompts sent")
    run_.add_argument(
        "--usage",
        action="store_true",
        help="print the tokens and cost used, as one line `usage: {JSON}` on stderr",
    )
    run_.add_argument(
        "--stream",
        action="store_true",
        help="print each output field as the LM writes it (with --json: one JSON event a line)",
    )
    run_.add_argument(
        "--trace-html",
        metavar="FILE",
        help="write the call tree (prompts, outputs, timing, tokens, cost) as an HTML page",
    )
    add_lm_override_option(run_)
    add_state_options(run_)
    add_traceback(run_)
    run_.set_defaults(func=run)
    return run_


def run(args: argparse.Namespace) -> int:
    import dsx
    from dsx._load import CheckFailed
    from dsx.cli._inputs import read_rows
    from dsx.errors import DsxError

    path, requested = split_target(args.target)
    try:
        ns = load(path)
        name = program_name(ns, requested)
        rows = read_rows(ns, name, args)
        program = ready_program(ns, path, name, args)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return err(str(exc))
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
        from dsx._trace_html import render_html

        page = render_html(recorder, title=f"dsx run {args.target}")
        status = write_page(args.trace_html, page, what="trace page", wrote="trace") or status
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
    from dsx._report import report_error

    status = 0
    for row in rows:
        trace: list[Any] = []
        try:
            with dsx.context(trace=trace if args.trace else None):
                if getattr(args, "stream", False) and args.json:
                    from dsx.cli._stream import run_streaming_json

                    pred, streamed = run_streaming_json(program, row), set[str]()
                elif getattr(args, "stream", False):
                    from dsx.cli._stream import run_streaming

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
                    f"[trace] {names.get(id(predictor), predictor)}: {json.dumps(plain(inputs), ensure_ascii=False)[:300]}"
                    f" -> {json.dumps(plain(out.to_dict()), ensure_ascii=False)[:300]}",
                    file=sys.stderr,
                )
        values = plain(pred.to_dict() if hasattr(pred, "to_dict") else pred)
        if args.json and getattr(args, "stream", False):
            print(json.dumps({"event": "result", "outputs": values}, ensure_ascii=False))
        elif args.json:
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
