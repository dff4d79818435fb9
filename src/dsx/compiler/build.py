"""The ``dsx build`` driver: check → optimize (cached) → codegen, with atomic writes.

Each ``optimize`` block's result is cached in ``<out>/.cache/`` under a key hashed from the
program's IR, the data files' contents, the optimizer and its settings, the metric and the
LM settings. An unchanged rebuild re-optimizes nothing and says so.

A cache entry is bound to its key by a content hash checked on read, and its LM settings
pass the same trust boundary as any state (``dsx.runtime.state``): an edited or foreign
entry is discarded with one log line and the program is optimized again, never trusted.

Which LM a model string (``--lm``, an optimize block's ``lm``, an optimizer's
``prompt_model``) means is the caller's to say: ``lm_factory`` turns it into the settings
for ``dsx.context`` (the command line passes its own, which knows ``local``, ``hf/DIR`` and
``DSX_API_BASE``); the default is a plain ``dsx.LM(model)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsx import ir
from dsx.compiler.analysis import Analysis, analyze_path
from dsx.compiler.codegen import generate, python_root, reachable
from dsx.errors import NO_LM_MESSAGE, DsxError
from dsx.runtime._files import atomic_write as atomic_write

__all__ = [
    "BuildError",
    "BuildResult",
    "LMFactory",
    "build",
    "default_state_path",
    "explain",
    "lm_identity",
    "program_fingerprint",
    "read_cache_entry",
    "state_file",
    "write_cache_entry",
]


#: Turns a model string into ``dsx.context`` settings: ``{"lm": LM, ...}`` (an adapter too,
#: when the model implies one). Called as ``factory(model)``, or ``factory(model, options)``
#: with the command's ``--lm-option`` settings.
LMFactory = Callable[..., dict[str, Any]]


def plain_lm(model: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default :data:`LMFactory`: ``dsx.LM(model, **options)``, configured by litellm's
    environment."""
    import dsx

    return {"lm": dsx.LM(model, **dict(options or {}))}


def lm_identity(lm_name: str | None, options: Mapping[str, Any] | None = None) -> Any:
    """What an optimize block's cache key holds of the LM it runs with (``None``: none)."""
    if not lm_name:
        return None
    if not options:
        return {"model": lm_name}
    return {"model": lm_name, "options": dict(sorted(options.items()))}


class BuildError(DsxError):
    """The build could not finish; the message says why and what to do."""


@dataclass
class BuildResult:
    analysis: Analysis
    unit: ir.Unit
    written: list[Path] = field(default_factory=list)
    optimized: list[str] = field(default_factory=list)  # programs optimized in this run
    reused: list[str] = field(default_factory=list)  # programs whose cached state was reused


def _program_part(unit: ir.Unit, name: str) -> dict[str, Any]:
    """What a program is made of: its root, and the modules, signatures and types it reaches."""
    need = reachable(unit, name)
    return {
        "program": unit.get("programs", name).model_dump(mode="json", exclude={"loc"}),
        "modules": [m.model_dump(mode="json") for m in unit.modules if m.name in need["modules"]],
        "signatures": [
            s.model_dump(mode="json") for s in unit.signatures if s.name in need["signatures"]
        ],
        "types": [r.model_dump(mode="json") for r in unit.records if r.name in need["types"]]
        + [e.model_dump(mode="json") for e in unit.enums if e.name in need["types"]],
    }


def program_fingerprint(unit: ir.Unit, name: str) -> str:
    """A hash of program ``name``'s IR (not of where it sits in the file).

    A learned state records the fingerprint of the program it was learned for;
    ``dsx run|eval|test`` apply it only while the program still has that fingerprint.
    """
    text = json.dumps(_strip_locs(_program_part(unit, name)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def default_state_path(source: str | Path, program: str) -> Path:
    """Where ``dsx build`` and ``dsx optimize`` put a program's learned state by default."""
    return Path(source).parent / "build" / f"{program}.state.json"


def state_file(unit: ir.Unit, name: str, learned: ir.Learned) -> Any:
    """The learned state of program ``name`` as a state file (``dsx.runtime.state``)."""
    from dsx.runtime.instantiate import apply_learned, instantiate
    from dsx.runtime.state import make_state

    ns = instantiate(unit)
    ns.resources.make_none()  # a state file holds no LM or retriever: make none of them
    program = ns.program(name, learned=False)
    apply_learned(program, learned, name)
    return make_state(
        program,
        name=name,
        optimizer=learned.optimizer or None,
        score=learned.score,
        fingerprint=program_fingerprint(unit, name),
    )


def optimize_key(unit: ir.Unit, opt: ir.Optimize, lm: dict[str, Any] | None) -> str:
    part: dict[str, Any] = {
        **_program_part(unit, opt.program),
        "optimizer": opt.optimizer,
        "settings": [list(kv) for kv in opt.settings],
        "seed": opt.seed,
        "metric": next(
            (
                m.model_dump(mode="json", exclude={"loc"})
                for m in unit.metrics
                if m.name == opt.metric
            ),
            None,
        ),
        "lm": lm,
        "data": {},
        "tests": [
            t.model_dump(mode="json", exclude={"loc"})
            for t in unit.tests
            if t.program == opt.program
        ]
        if "tests" in (opt.train, opt.dev)
        else [],
    }
    for name in (opt.train, opt.dev):
        ds = next((d for d in unit.data if d.name == name), None)
        if ds is not None:
            data_path = Path(ds.base_dir) / ds.path
            try:
                digest = hashlib.sha256(data_path.read_bytes()).hexdigest()
            except OSError as exc:
                raise BuildError(
                    f"data `{name}`: cannot read {data_path}: {exc.strerror}"
                ) from None
            part["data"][name] = [ds.format, list(ds.inputs), digest]
    text = json.dumps(_strip_locs(part), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


_CACHE_FORMAT = "dsx-build-cache"


def _cache_digest(key: str, learned: Any) -> str:
    text = json.dumps(learned, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{_CACHE_FORMAT}\n{key}\n{text}".encode()).hexdigest()


def write_cache_entry(path: Path, key: str, learned: ir.Learned) -> None:
    """Store an optimize block's result under ``key``, with the hash that binds them."""
    data = learned.model_dump(mode="json")
    doc = {"format": _CACHE_FORMAT, "key": key, "sha256": _cache_digest(key, data), "learned": data}
    atomic_write(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


class CacheEntryRejected(DsxError):
    """A build-cache entry cannot be used; the message says why."""


def read_cache_entry(path: Path, key: str) -> ir.Learned:
    """The cached result stored under ``key`` at ``path``, checked.

    Raises:
        CacheEntryRejected: the entry is unreadable, was written for another key, does not
            match its hash (edited), or carries LM settings state may not (an endpoint, a
            key, an unknown setting).
    """
    from dsx.errors import StateError
    from dsx.runtime.state import check_lm_state

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheEntryRejected(f"it is unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != _CACHE_FORMAT:
        raise CacheEntryRejected("it is not a dsx build-cache entry (or an older format)")
    if doc.get("key") != key:
        raise CacheEntryRejected(f"it was written for another key ({str(doc.get('key'))[:12]})")
    if doc.get("sha256") != _cache_digest(key, doc.get("learned")):
        raise CacheEntryRejected("its content does not match its hash (it was edited)")
    try:
        learned = ir.Learned.model_validate(doc["learned"])
        for name, predictor in learned.predictors.items():
            check_lm_state(predictor.lm, name=name)
        if learned.selector is not None:
            from dsx.teleprompt.knn import check_selector

            check_selector(learned.selector, "cache")
    except (ValueError, StateError) as exc:
        raise CacheEntryRejected(str(exc).splitlines()[0]) from None
    return learned


def _strip_locs(value: Any) -> Any:
    # Locations change when unrelated text moves; they do not change what is optimized.
    if isinstance(value, dict):
        return {k: _strip_locs(v) for k, v in value.items() if k != "loc"}
    if isinstance(value, list):
        return [_strip_locs(v) for v in value]
    return value


def build(
    path: str | Path,
    *,
    out: str | Path | None = None,
    emit: str = "py",
    lm: str | None = None,
    log: Callable[[str], None] = print,
    lm_factory: LMFactory = plain_lm,
    lm_options: Mapping[str, Any] | None = None,
) -> BuildResult:
    """Build ``path``. ``emit`` is ``py`` (modules + state JSON), ``ir`` or ``ast``;
    ``lm_factory`` makes the LMs that optimize blocks name (see the module docstring);
    ``lm_options`` are the settings of ``lm`` (the command's LM), where a block names none."""
    source = Path(path)
    analysis = analyze_path(source)
    if analysis.errors:
        raise BuildError(f"{source} has {len(analysis.errors)} error(s); run `dsx check {source}`")
    out_dir = Path(out) if out is not None else source.parent / "build"
    unit = analysis.unit
    result = BuildResult(analysis, unit)
    learned = dict(unit.learned)
    if emit == "py" and not unit.programs:
        raise BuildError(
            f"{source} declares no `program`, so there is nothing to build; add one, e.g. "
            "`program main = Predict(MySignature)`"
        )
    if emit not in ("py", "ir", "ast"):
        raise BuildError(f"unknown --emit {emit!r}: use py, ir or ast")
    _check_out_dir(out_dir)
    keys = _check_before_optimizing(unit, out_dir, lm, lm_options)
    for opt in unit.optimizes:
        lm_name = opt.lm or lm or os.environ.get("DSX_LM")
        options = None if opt.lm else lm_options
        key = keys[id(opt)]
        cache_file = out_dir / ".cache" / f"{opt.program}-{key}.json"
        if cache_file.is_file():
            try:
                learned[opt.program] = read_cache_entry(cache_file, key)
                result.reused.append(opt.program)
                log(
                    f"optimize {opt.program}: inputs unchanged, reusing the cached result ({key[:12]})"
                )
                continue
            except CacheEntryRejected as exc:
                log(
                    f"optimize {opt.program}: discarding the cached result {cache_file.name}: "
                    f"{exc}; optimizing again"
                )
        log(f"optimize {opt.program}: running {opt.optimizer} ...")
        state = run_optimize(
            unit,
            opt,
            lm_name,
            log=log,
            run_dir=out_dir / ".runs",
            lm_factory=lm_factory,
            lm_options=options,
        )
        try:
            write_cache_entry(cache_file, key, state)
        except OSError as exc:  # the build still uses the result; only reuse is lost
            log(f"optimize {opt.program}: could not cache the result in {cache_file}: {_why(exc)}")
        learned[opt.program] = state
        result.optimized.append(opt.program)
        log(f"optimize {opt.program}: done ({len(state.predictors)} predictor(s))")
    unit = unit.model_copy(update={"learned": learned})
    result.unit = unit
    try:
        _emit(result, analysis, unit, source.stem, out_dir, emit)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise BuildError(f"cannot write{where}: {_why(exc)} (output directory {out_dir})") from None
    return result


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _check_out_dir(out_dir: Path) -> None:
    """Fail before any work when the output directory cannot be written."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BuildError(f"--out {out_dir} is a file; give a directory to write the build to")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".dsx-probe-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BuildError(f"cannot write to the output directory {out_dir}: {_why(exc)}") from None


def _emit(
    result: BuildResult,
    analysis: Analysis,
    unit: ir.Unit,
    stem: str,
    out_dir: Path,
    emit: str,
) -> None:
    if emit == "ir":
        target = out_dir / f"{stem}.ir.json"
        atomic_write(target, unit.to_json())
        result.written.append(target)
    elif emit == "ast":
        target = out_dir / f"{stem}.ast.txt"
        pf = analysis.files[analysis.root]
        atomic_write(target, "\n\n".join(repr(d) for d in pf.decls) + "\n")
        result.written.append(target)
    elif emit == "py":
        # The modules find `use python` modules relative to themselves: no absolute path, so
        # the same input builds to the same bytes in any folder.
        root = python_root(unit.source, out_dir)
        for prog in unit.programs:
            module_path = out_dir / f"{prog.name}.py"
            atomic_write(module_path, generate(unit, prog.name, python_root=root))
            result.written.append(module_path)
            learned_state = unit.learned.get(prog.name)
            if learned_state is not None:
                from dsx.runtime.state import write_state

                state_path = out_dir / f"{prog.name}.state.json"
                write_state(state_path, state_file(unit, prog.name, learned_state))
                result.written.append(state_path)
    else:
        raise BuildError(f"unknown --emit {emit!r}: use py, ir or ast")


def _check_before_optimizing(
    unit: ir.Unit, out_dir: Path, lm: str | None, lm_options: Mapping[str, Any] | None = None
) -> dict[int, str]:
    """Fail before any work when an optimize block that must run cannot: no such optimizer,
    or no LM for one that calls it. Returns each block's cache key (by ``id``), computed once
    (it hashes the data files)."""
    import dsx
    from dsx.teleprompt import OPTIMIZERS, get_optimizer

    keys: dict[int, str] = {}
    for opt in unit.optimizes:
        lm_name = opt.lm or lm or os.environ.get("DSX_LM")
        options = None if opt.lm else lm_options
        key = keys[id(opt)] = optimize_key(unit, opt, lm_identity(lm_name, options))
        with contextlib.suppress(CacheEntryRejected):
            read_cache_entry(out_dir / ".cache" / f"{opt.program}-{key}.json", key)
            continue
        cls = get_optimizer(opt.optimizer)
        if cls is None:
            raise BuildError(
                f"optimize {opt.program}: the optimizer {opt.optimizer} is not available in this "
                f"version of dsx (available: {', '.join(OPTIMIZERS)})"
            )
        if cls.requires_lm(dict(opt.settings)) and not lm_name and dsx.settings.lm is None:
            raise BuildError(f"optimize {opt.program} with {opt.optimizer}: {NO_LM_MESSAGE}")
    return keys


def run_optimize(
    unit: ir.Unit,
    opt: ir.Optimize,
    lm_name: str | None,
    *,
    log: Callable[[str], None] | None = None,
    run_dir: Path | None = None,
    lm_factory: LMFactory = plain_lm,
    lm_options: Mapping[str, Any] | None = None,
) -> ir.Learned:
    """Run one optimize block and return the program's learned state.

    Progress lines of the optimizer go to ``log`` (prefixed with the program's name).
    An optimizer that can resume (``run_dir``) keeps its run state under ``run_dir``
    unless the block sets its own, so an interrupted build resumes where it stopped.
    ``lm_factory`` makes the LMs that ``lm_name`` (with ``lm_options``, when given) and
    the block's settings name.
    """
    import dsx
    from dsx.runtime.instantiate import examples_from_tests, extract_learned, instantiate
    from dsx.teleprompt import OPTIMIZERS, get_optimizer

    cls = get_optimizer(opt.optimizer)
    if cls is None:
        raise BuildError(
            f"optimize {opt.program}: the optimizer {opt.optimizer} is not available in this "
            f"version of dsx (available: {', '.join(OPTIMIZERS)})"
        )
    if cls.requires_lm(dict(opt.settings)) and not lm_name and dsx.settings.lm is None:
        raise BuildError(f"optimize {opt.program} with {opt.optimizer}: {NO_LM_MESSAGE}")
    if not getattr(cls, "exports_to_ir", True):
        raise BuildError(
            f"optimize {opt.program}: {opt.optimizer} builds a program whose state cannot be "
            "baked into a build (it chooses demos or members at run time); use it from Python"
        )
    ns = instantiate(unit)
    program = ns.program(opt.program, learned=False)

    def dataset(name: str | None) -> list[Any] | None:
        if name is None:
            return None
        if name == "tests":
            return examples_from_tests(ns, opt.program)
        return ns.data(name)

    trainset = dataset(opt.train) or []
    if not trainset:
        raise BuildError(f"optimize {opt.program}: the training data `{opt.train}` is empty")
    settings = _settings_for(opt, lm_factory)
    if opt.seed is not None:
        settings.setdefault("seed", opt.seed)
    if run_dir is not None and "run_dir" in inspect.signature(cls).parameters:
        settings.setdefault("run_dir", str(run_dir))
    try:
        optimizer = cls(**settings)
    except TypeError as exc:
        raise BuildError(
            f"optimize {opt.program}: bad settings for {opt.optimizer}: {exc}"
        ) from None
    if hasattr(optimizer, "metric") and getattr(optimizer, "metric", None) is None:
        optimizer.metric = ns.metric(opt.metric)
    if log is not None and hasattr(optimizer, "on_progress"):
        # Progress lines go through the build's log, prefixed like its own lines.
        optimizer.on_progress = lambda line: log(f"optimize {opt.program}: {line}")
    context: dict[str, Any] = {}
    if lm_name:
        context.update(lm_factory(lm_name, lm_options) if lm_options else lm_factory(lm_name))
    try:
        with dsx.context(**context):
            compiled = optimizer.compile(program, trainset=trainset, valset=dataset(opt.dev))
    except DsxError as exc:
        if isinstance(exc, BuildError):
            raise
        raise BuildError(f"optimize {opt.program}: {opt.optimizer} failed: {exc}") from exc
    # One "run" entry per program run (entries without an "event" are runs too).
    runs = [e for e in getattr(optimizer, "log", []) if e.get("event", "run") == "run"]
    failures = [e for e in runs if "error" in e]
    if failures and len(failures) == len(runs):
        raise BuildError(
            f"optimize {opt.program}: every run of the program failed while optimizing; the "
            f"first error: {failures[0]['error']}"
        )
    score = getattr(optimizer, "best_score", None)
    trajectory: list[float] = getattr(optimizer, "score_trajectory", list)()
    return extract_learned(
        compiled,
        optimizer=opt.optimizer,
        score=score if isinstance(score, float) else None,
        trajectory=trajectory,
    )


def _settings_for(opt: ir.Optimize, lm_factory: LMFactory = plain_lm) -> dict[str, Any]:
    """The block's optimizer settings; a model string for an LM setting becomes that LM."""
    from dsx.teleprompt import optimizer_info

    settings = dict(opt.settings)
    info = optimizer_info(opt.optimizer)
    for key, value in settings.items():
        setting = info.settings.get(key) if info is not None else None
        if setting is not None and "model" in setting.kinds and isinstance(value, str):
            settings[key] = lm_factory(value)["lm"]
    return settings


def _original_instructions(unit: ir.Unit, name: str) -> dict[str, str]:
    """Per predictor path, its instructions before optimization (``{}`` if it cannot load)."""
    from dsx.runtime.instantiate import instantiate

    try:
        ns = instantiate(unit)
        ns.resources.make_none()  # only the instructions are read
        program = ns.program(name, learned=False)
    except DsxError:
        return {}
    return {path: p.signature.instructions for path, p in program.named_predictors()}


def explain(unit: ir.Unit) -> str:
    """Per program and predictor: the chosen instructions and demos."""
    lines = []
    for prog in unit.programs:
        state = unit.learned.get(prog.name)
        if state is None:
            lines.append(f"program {prog.name}: not optimized")
            continue
        score = f" (score {state.score:.2f}%)" if state.score is not None else ""
        lines.append(f"program {prog.name}: optimized with {state.optimizer or '?'}{score}")
        before = _original_instructions(unit, prog.name)
        for path, p in state.predictors.items():
            lines.append(f"  ■ {path}")
            if p.instructions is None:
                lines.append("    instructions: (unchanged)")
            else:
                lines.append(f"    - instructions before: {before.get(path, '?')}")
                lines.append(f"    + instructions after:  {p.instructions}")
            if p.lm:
                shown = {k: v for k, v in p.lm.items() if k != "finetuned"}
                lines.append("    lm: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
                ref = p.lm.get("finetuned")
                if isinstance(ref, dict):  # BootstrapFinetune's model reference
                    lines.append(
                        f"    fine-tuned: {ref.get('model')} from {ref.get('base_model')} "
                        f"({ref.get('provider')} job {ref.get('job_id')}, "
                        f"data sha256 {str(ref.get('data_hash'))[:12]})"
                    )
            lines.append(f"    demos: {len(p.demos)}")
            for i, demo in enumerate(p.demos, 1):
                lines.append(f"      {i}. " + json.dumps(demo, ensure_ascii=False)[:160])
        if state.trajectory:
            lines.append("  " + _trajectory_line(state.trajectory))
    return "\n".join(lines)


def _trajectory_line(trajectory: Sequence[float]) -> str:
    """``score trajectory: 0.00% → 50.00% (at 3) → 100.00% (at 7), 12 candidates scored``."""
    steps = [f"{trajectory[0]:.2f}%"]
    for i in range(1, len(trajectory)):
        if trajectory[i] > trajectory[i - 1]:
            steps.append(f"{trajectory[i]:.2f}% (at {i + 1})")
    return f"score trajectory: {' → '.join(steps)}, {len(trajectory)} candidates scored"
