"""``dsx optimize FILE[:program]``: run a program's optimize block, save the learned state."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from dsx.cli._common import (
    add_lm_option,
    add_traceback,
    err,
    load,
    program_name,
    shown,
    split_target,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    opt: argparse.ArgumentParser = subparsers.add_parser(
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
    add_lm_option(
        opt,
        help="the LM to optimize with when the block names no `lm`: a litellm model string or "
        "`local` for the local model (default: DSX_LM)",
    )
    add_traceback(opt)
    opt.set_defaults(func=run)
    return opt


def run(args: argparse.Namespace) -> int:
    from dsx._load import CheckFailed
    from dsx.cli._lm import NO_LM_MESSAGE, lm_settings, model_name, parse_lm_options
    from dsx.compiler.build import (
        BuildError,
        default_state_path,
        lm_identity,
        optimize_key,
        run_optimize,
        state_file,
        write_cache_entry,
    )
    from dsx.errors import DsxError
    from dsx.runtime.state import write_state

    path, requested = split_target(args.target)
    try:
        ns = load(path)
        name = program_name(ns, requested)
    except CheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except DsxError as exc:
        return err(str(exc))
    if args.out and (Path(args.out).suffix == ".dsx" or _same_file(args.out, path)):
        return err(
            f"--out {args.out}: that would overwrite a .dsx source file with the learned "
            f"state; give a .json path (the default is build/{name}.state.json)"
        )
    unit = ns.unit
    opt = next((o for o in unit.optimizes if o.program == name), None)
    if opt is None:
        return err(
            f"{path} has no `optimize {name} {{ ... }}` block; add one (optimizer, train data, metric)"
        )
    lm_name = opt.lm or model_name(args.lm)
    try:
        options = None if opt.lm else parse_lm_options(args.lm_option, lm_name)
    except DsxError as exc:
        return err(str(exc))
    try:
        learned = run_optimize(
            unit,
            opt,
            lm_name,
            log=lambda m: print(m, file=sys.stderr),
            run_dir=default_state_path(path, name).parent / ".runs",
            lm_factory=lm_settings,
            lm_options=options,
        )
        state = state_file(unit, name, learned)
    except BuildError as exc:
        if NO_LM_MESSAGE in str(exc):
            return err(NO_LM_MESSAGE)
        print(f"dsx optimize: {exc}", file=sys.stderr)
        return 1
    except DsxError as exc:
        print(f"dsx optimize: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else default_state_path(path, name)
    # `dsx build` reuses this result instead of optimizing again.
    key = optimize_key(unit, opt, lm_identity(lm_name, options))
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
    print(f"wrote {shown(out)}{score}")
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
            return shown(default)
    fd, tmp = tempfile.mkstemp(prefix=f"dsx-{name}-", suffix=".state.json")
    os.close(fd)
    write_state(tmp, state)
    return tmp
