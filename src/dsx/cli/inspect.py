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
        help="show a learned-state file (dsx optimize, dsx build, program.save), or the LMs "
        "and retrievers a .dsx file declares",
        description="Show per predictor the instructions, LM settings and demos of a learned-state "
        "file, as written by `dsx optimize`, `dsx build` and program.save(path).",
    )
    inspect.add_argument(
        "file",
        metavar="FILE",
        help="a state file (JSON), or a .dsx file to list its `lm` and `retriever` declarations",
    )
    inspect.add_argument("--demos", action="store_true", help="print every demo too")
    inspect.set_defaults(func=run)
    return inspect


def run(args: argparse.Namespace) -> int:
    from dsx.errors import StateError
    from dsx.runtime.state import check_predictor_state, read_state

    path = Path(args.file)
    if not path.exists() and not path.is_symlink():
        hint = (
            ""
            if path.suffix == ".dsx"
            else " A learned-state file is written by `dsx optimize FILE.dsx` or `dsx build "
            "FILE.dsx`, as build/PROGRAM.state.json next to the .dsx file."
        )
        print(f"dsx inspect: {path}: no such file.{hint}", file=sys.stderr)
        return 2
    if path.suffix == ".dsx":
        return _inspect_source(path)
    try:
        state = read_state(path)
        # The shape only: endpoints are shown (and flagged), loading refuses them.
        for name, pstate in state.predictors.items():
            check_predictor_state(pstate, name=name, allow_endpoints=True)
    except StateError as exc:
        # Most messages name the file already; say it once.
        where = "" if str(path) in str(exc) else f"{path}: "
        print(f"dsx inspect: {where}{exc}", file=sys.stderr)
        return 2
    made = f", {state.describe()}" if state.optimizer or state.score is not None else ""
    print(
        f"{path}: program {state.program or '?'}, dsx {state.dsx_version or '?'}, "
        f"schema {state.schema_version}{made}, {len(state.predictors)} predictor(s)"
    )
    for name, pstate in state.predictors.items():
        _print_predictor(name, pstate, show_demos=args.demos)
    if state.selector is not None:
        _print_selector(state.selector, show_demos=args.demos)
    return 0


def _print_selector(selector: dict[str, Any], *, show_demos: bool) -> None:
    """A KNN selector (k, embedder, examples) or an ensemble (reducer, members); what loading
    would refuse is noted, as for a predictor's LM (issue 19)."""
    from dsx.errors import DsxError
    from dsx.teleprompt.knn import check_selector

    kind = selector.get("kind")
    if kind == "knn":
        embedder = selector.get("embedder")
        embedder = embedder if isinstance(embedder, dict) else {}
        examples = selector.get("examples")
        count = len(examples) if isinstance(examples, list) else "?"
        vectors = selector.get("vectors")
        shape = vectors.get("shape") if isinstance(vectors, dict) else None
        stored = (
            f"vectors {shape[0]}x{shape[1]} stored"
            if isinstance(shape, list) and len(shape) == 2
            else "vectors computed at load"
        )
        print(
            f"\nselector: knn (KNNFewShot), k={selector.get('k')}, embedder "
            f"{embedder.get('model', '?')}, {count} example(s), {stored}"
        )
        print("  demos are chosen per call from the k nearest examples")
    elif kind == "ensemble":
        members = selector.get("members")
        members = members if isinstance(members, list) else []
        size = selector.get("size")
        print(
            f"\nselector: ensemble (Ensemble), {len(members)} member(s), reducer "
            f"{selector.get('reducer')}, "
            + (f"{size} member(s) per call" if size is not None else "every member per call")
            + f", seed {selector.get('seed', 0)}"
        )
        for i, member in enumerate(members, 1):
            if not isinstance(member, dict):
                print(f"  member {i}: (not an object)")
                continue
            for path, pstate in member.items():
                demos = pstate.get("demos", []) if isinstance(pstate, dict) else []
                sig = pstate.get("signature") if isinstance(pstate, dict) else None
                instructions = sig.get("instructions") if isinstance(sig, dict) else None
                print(f"  member {i} ■ {path}: {len(demos)} demo(s)")
                if show_demos:
                    if instructions:
                        print(f"    instructions: {instructions}")
                    for j, demo in enumerate(demos, 1):
                        print(f"      {j}. " + json.dumps(demo, ensure_ascii=False)[:200])
    else:
        print(f"\nselector: unknown kind {kind!r}")
    try:
        check_selector(selector, "this state")
    except DsxError as exc:
        print(f"  note: loading refuses this selector: {exc}")


def _inspect_source(path: Path) -> int:
    """A .dsx file: its `lm` and `retriever` declarations, endpoints shown."""
    from dsx.compiler.analysis import analyze_path
    from dsx.compiler.resources import describe_resources

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
