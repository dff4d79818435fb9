"""``dsx eval FILE[:program] --data ...``: evaluate a program on a data set with a metric."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path
from typing import Any

from dsx.cli._common import (
    add_lm_option,
    add_lm_override_option,
    add_state_options,
    add_traceback,
    err,
    load,
    program_name,
    ready_program,
    split_target,
    write_page,
)

__all__ = ["EVAL_INTERRUPTED", "EVAL_MAX_ERRORS", "EVAL_NOT_SAVED", "add_parser", "run"]

#: `dsx eval` exit statuses after a run (docs/evaluate.md).
EVAL_INTERRUPTED, EVAL_MAX_ERRORS, EVAL_NOT_SAVED = 130, 3, 4


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    ev: argparse.ArgumentParser = subparsers.add_parser(
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
        "--num-threads",
        type=int,
        default=None,
        metavar="N",
        help="how many examples run at once (default: dsx.settings.num_threads, 8)",
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
    add_lm_option(ev)
    add_lm_override_option(ev)
    add_state_options(ev)
    add_traceback(ev)
    ev.set_defaults(func=run)
    return ev


def run(args: argparse.Namespace) -> int:
    import dsx
    from dsx._load import CheckFailed
    from dsx._report import report_error
    from dsx.cli._inputs import input_names
    from dsx.errors import DsxError

    path, requested = split_target(args.target)
    try:
        ns = load(path)
        name = program_name(ns, requested)
        inputs = args.inputs.split(",") if args.inputs else input_names(ns, name)
        devset = _load_dataset(ns, args.data, inputs)
        metric = _named_metric(ns, args.metric) if args.metric else _default_metric(ns, name)
        program = ready_program(ns, path, name, args)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return err(str(exc))
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
    code = _exit_code(result)
    if recorder is not None:
        from dsx._trace_html import render_eval_html

        page = render_eval_html(result, recorder, title=f"dsx eval {args.target}")
        code = write_page(args.report, page, what="report", wrote="report") or code
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


def _load_dataset(ns: Any, spec: str, inputs: list[str] | None) -> list[Any]:
    """A data declaration's name, or a .jsonl/.json/.csv path (inputs from --inputs or the program)."""
    from dsx import ir
    from dsx.errors import DsxError
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


def _exit_code(result: Any) -> int:
    if result.stopped == "interrupted":
        return EVAL_INTERRUPTED
    if result.stopped is not None:
        return EVAL_MAX_ERRORS
    if result.save_errors:
        return EVAL_NOT_SAVED
    return 0


def _default_metric(ns: Any, program: str) -> Any:
    from dsx.errors import DsxError

    opt = next((o for o in ns.unit.optimizes if o.program == program), None)
    if opt is not None:
        return ns.metric(opt.metric)
    if len(ns.unit.metrics) == 1:
        return ns.metric(ns.unit.metrics[0].name)
    if not ns.unit.metrics:
        raise DsxError(_NO_METRICS.format(source=ns.unit.source))
    names = ", ".join(m.name for m in ns.unit.metrics)
    raise DsxError(f"say which metric to use: --metric NAME (the file declares {names})")


_NO_METRICS = (
    "{source} declares no `metric`: add one to the file, e.g. `metric em = exact_match` "
    "(every output field equals the example's) or `metric score = mymodule.my_metric` "
    "with `use python`"
)


def _named_metric(ns: Any, name: str) -> Any:
    from dsx.errors import DsxError

    names = [m.name for m in ns.unit.metrics]
    if name not in names:
        if not names:
            raise DsxError(_NO_METRICS.format(source=ns.unit.source))
        raise DsxError(f"--metric {name}: no such metric; the file declares {', '.join(names)}")
    return ns.metric(name)
