"""``dsx inspect FILE``: show a learned-state file per predictor."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    inspect: argparse.ArgumentParser = subparsers.add_parser(
        "inspect",
        help="show a learned-state file (dsx optimize, dsx build, program.save)",
        description="Show per predictor the instructions, LM settings and demos of a learned-state "
        "file, as written by `dsx optimize`, `dsx build` and program.save(path).",
    )
    inspect.add_argument(
        "file",
        help="a state file (JSON), or a .dsx file to list its `lm` and `retriever` declarations",
    )
    inspect.add_argument("--demos", action="store_true", help="print every demo too")
    inspect.set_defaults(func=run)
    return inspect


def run(args: argparse.Namespace) -> int:
    from dsx.errors import StateError
    from dsx.runtime.state import check_predictor_state, read_state

    path = Path(args.file)
    if path.suffix == ".dsx":
        return _inspect_source(path)
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


def _inspect_source(path: Path) -> int:
    """A .dsx file: its `lm` and `retriever` declarations, endpoints shown."""
    from dsx.compiler._lower_resources import describe_resources
    from dsx.compiler.analysis import analyze_path

    analysis = analyze_path(path)
    errors = [d for d in analysis.diagnostics if d.severity == "error"]
    if errors:
        print(
            f"dsx inspect: {path}: {len(errors)} error(s); run `dsx check {path}`", file=sys.stderr
        )
        return 1
    lines = describe_resources(analysis.unit)
    print(f"{path}: " + ("declares:" if lines else "declares no `lm` or `retriever`"))
    for line in lines:
        print("  " + line)
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
