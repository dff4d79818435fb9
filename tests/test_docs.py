"""Every Python code block in README.md and docs/*.md runs.

The blocks of one file run in order in one namespace, like a doctest session, with a
scripted LM configured (see ``_FILES``); ``docs/lm.md`` also gets a local OpenAI-compatible
server as its ``OPENAI_BASE_URL``. Each block is one test, ``docs/evaluate.md:7`` (the line
of its opening fence). A block that cannot run here is marked in the markdown by an HTML
comment just above it, which readers do not see::

    <!-- dsx-docs: skip (needs an API key) -->

and shows up as skipped with that reason.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import linecache
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import dsx
from dsx.runtime.lm_base import BaseLM
from dsx.testing import FunctionLM

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
_SKIP = re.compile(r"^\s*<!--\s*dsx-docs:\s*skip\s*\((?P<reason>[^)]*)\)\s*-->\s*$")
_MARKER = re.compile(r"<!--\s*dsx-docs:")
_PYTHON = frozenset({"python", "py", "python3"})


@dataclass(frozen=True)
class Block:
    """One fenced Python block: where it starts, its code, why it is skipped (if it is)."""

    file: str
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None = None

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


def parse_blocks(text: str, file: str) -> list[Block]:
    """The Python blocks of a markdown text, with their skip markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: tuple[int, str] | None = None  # a skip marker waiting for its block
    i = 0
    while i < len(lines):
        line = lines[i]
        skip = _SKIP.match(line)
        if skip:
            pending = (i + 1, skip.group("reason").strip())
            i += 1
            continue
        if _MARKER.search(line):
            raise ValueError(f"{file}:{i + 1}: malformed dsx-docs marker: {line.strip()}")
        fence = _FENCE.match(line)
        if fence is None:
            if line.strip() and pending is not None:
                raise ValueError(
                    f"{file}:{pending[0]}: a skip marker must come just before a block"
                )
            i += 1
            continue
        indent, ticks, lang = fence.groups()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(ticks):
            end += 1
        body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end]]
        if lang.lower() in _PYTHON:
            reason = pending[1] if pending else None
            blocks.append(Block(file, i + 1, "\n".join(body) + "\n", reason))
        elif pending is not None:
            raise ValueError(
                f"{file}:{pending[0]}: a skip marker must come just before a python block"
            )
        pending = None
        i = end + 1
    if pending is not None:
        raise ValueError(f"{file}:{pending[0]}: a skip marker must come just before a block")
    return blocks


# -- the scripted LM the blocks run with ------------------------------------------------------

_OUTPUT = re.compile(r"^- `(\w+)` \(([^)]*)\)", re.MULTILINE)


def docs_lm(values: dict[str, Any] | None = None) -> BaseLM:
    """An LM that fills every output field the prompt asks for.

    A field named in ``values`` gets that value; others get a value of their type.
    """
    values = dict(values or {})

    def reply(messages: list[dict[str, Any]]) -> dict[str, Any]:
        system = str(messages[0].get("content", "")) if messages else ""
        outputs = system.split("Your outputs:", 1)[-1].split("\n\n", 1)[0]
        return {
            name: values[name] if name in values else _placeholder(type_)
            for name, type_ in _OUTPUT.findall(outputs)
        }

    return FunctionLM(reply, model="docs-lm")


def _placeholder(type_: str) -> Any:
    if type_.startswith("Literal["):
        return ast.literal_eval(type_[len("Literal") :])[0]
    return {"int": 1, "float": 0.5, "bool": True}.get(
        type_, [] if type_.startswith("list") else "…"
    )


@dataclass
class DocFile:
    """How one file's blocks run: its LM, and whether it needs the local HTTP server."""

    lm: Callable[[], BaseLM] = docs_lm
    server: bool = False
    marks: list[Any] = field(default_factory=list)


_CAPITALS = {"answer": "Paris", "reasoning": "It is the capital."}
_FILES: dict[str, DocFile] = {
    "docs/evaluate.md": DocFile(lambda: docs_lm(_CAPITALS)),
    "docs/optimizers.md": DocFile(lambda: docs_lm(_CAPITALS)),
    "docs/lm.md": DocFile(server=True),
    "docs/sandbox.md": DocFile(marks=[pytest.mark.sandbox]),
}

# Whole pages expected to fail, with the reason (none today).
_XFAIL_FILES: dict[str, str] = {}
# Single blocks expected to fail, by id ("docs/x.md:12"), with the reason.
_XFAIL: dict[str, str] = {}


# -- running a file --------------------------------------------------------------------------

_RESULTS: dict[str, dict[int, BaseException | None]] = {}


def _blocks() -> list[Block]:
    found: list[Block] = []
    for path in DOC_FILES:
        found += parse_blocks(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())
    return found


def _compile(block: Block) -> Any:
    tree = ast.parse(block.code, filename=block.file)
    ast.increment_lineno(tree, block.line)  # tracebacks point at the markdown's lines
    # dont_inherit: this file's `from __future__ import annotations` must not leak into the docs
    return compile(
        tree, block.file, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )


def _exec(block: Block, namespace: dict[str, Any]) -> None:
    code = _compile(block)
    if code.co_flags & inspect.CO_COROUTINE:  # top-level await / async for
        asyncio.run(eval(code, namespace))
    else:
        exec(code, namespace)


@contextlib.contextmanager
def _environment(file: str, spec: DocFile, workdir: Path) -> Iterator[None]:
    from dsx.runtime import cache

    saved_env = dict(os.environ)
    saved_cwd = Path.cwd()
    saved_cache = cache._cache
    saved_path = list(sys.path)
    os.chdir(workdir)
    try:
        with contextlib.ExitStack() as stack:
            if spec.server:
                from dsx.testing import OpenAIServer

                server = stack.enter_context(OpenAIServer())
                os.environ["OPENAI_BASE_URL"] = os.environ["OPENAI_API_BASE"] = server.api_base
                os.environ["OPENAI_API_KEY"] = "sk-docs-test"
            dsx.settings.reset()
            dsx.configure(lm=spec.lm())
            yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path
        dsx.settings.reset()
        if cache._cache is not saved_cache:  # a block reconfigured the LM cache
            cache._cache = saved_cache


def _run_file(file: str, workdir: Path) -> dict[int, BaseException | None]:
    spec = _FILES.get(file, DocFile())
    path = ROOT / file
    linecache.cache[file] = (0, None, path.read_text(encoding="utf-8").splitlines(True), file)
    namespace: dict[str, Any] = {"__name__": "__docs__", "dsx": dsx}  # pages assume `import dsx`
    results: dict[int, BaseException | None] = {}
    with _environment(file, spec, workdir):
        for block in parse_blocks(path.read_text(encoding="utf-8"), file):
            if block.skip is not None:
                continue
            try:
                _exec(block, namespace)
            except BaseException as exc:  # reported by the block's own test
                if isinstance(exc, KeyboardInterrupt):
                    raise
                results[block.line] = exc
            else:
                results[block.line] = None
    return results


def _params() -> list[Any]:
    params = []
    for block in _blocks():
        marks = list(_FILES.get(block.file, DocFile()).marks)
        reason = _XFAIL.get(block.id) or _XFAIL_FILES.get(block.file)
        if reason:
            marks.append(pytest.mark.xfail(reason=reason, strict=False))
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


@pytest.mark.parametrize("block", _params())
def test_doc_block_runs(block: Block, tmp_path_factory: pytest.TempPathFactory) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.id} is marked skip in the markdown: {block.skip}")
    if block.file not in _RESULTS:  # the file's first block to be tested runs the whole file
        workdir = tmp_path_factory.mktemp(block.file.replace("/", "_"))
        _RESULTS[block.file] = _run_file(block.file, workdir)
    error = _RESULTS[block.file][block.line]
    if error is not None:
        raise error


# -- the machinery itself --------------------------------------------------------------------


def test_every_markdown_file_is_covered():
    names = {p.relative_to(ROOT).as_posix() for p in DOC_FILES}
    assert "README.md" in names and "docs/evaluate.md" in names
    assert set(_FILES) <= names


def test_blocks_parse_with_lines_languages_and_skip_markers():
    text = (
        "# Title\n"
        "```python\nx = 1\n```\n"
        "```\nnot python\n```\n"
        "<!-- dsx-docs: skip (needs an API key) -->\n"
        "\n"
        "```python\nimport secret\n```\n"
        "```sh\nmake demo\n```\n"
    )
    blocks = parse_blocks(text, "t.md")
    assert [(b.line, b.code, b.skip) for b in blocks] == [
        (2, "x = 1\n", None),
        (10, "import secret\n", "needs an API key"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "<!-- dsx-docs: skip (why) -->\nsome prose\n```python\nx\n```\n",
        "<!-- dsx-docs: skip (why) -->\n```sh\nls\n```\n",
        "<!-- dsx-docs: skip why -->\n```python\nx\n```\n",
        "```python\nx\n```\n<!-- dsx-docs: skip (dangling) -->\n",
    ],
)
def test_misplaced_or_malformed_skip_markers_are_errors(text):
    with pytest.raises(ValueError, match="marker"):
        parse_blocks(text, "t.md")


def test_blocks_share_a_namespace_and_may_await(tmp_path, monkeypatch):
    (tmp_path / "session.md").write_text(
        "```python\nimport asyncio\nvalue = 20\n```\n"
        "```python\nawait asyncio.sleep(0)\nvalue += 22\n```\n"
        "```python\nimport dsx\nassert value == 42\ndsx.Predict('q -> a')(q='x')\n```\n"
        "```python\nundefined_name\n```\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    results = _run_file("session.md", tmp_path)
    assert [line for line, error in results.items() if error is None] == [1, 5, 9]
    assert isinstance(results[14], NameError)
    assert "session.md" in "".join(traceback.format_tb(results[14].__traceback__))


def test_the_docs_lm_answers_every_output_field_by_type():
    predict = dsx.Predict(
        "question -> answer, n: int, ok: bool, tags: list[str], level: Literal['low', 'high']",
        lm=docs_lm({"answer": "Paris"}),
    )
    pred = predict(question="?")
    assert (pred.answer, pred.n, pred.ok, pred.tags, pred.level) == ("Paris", 1, True, [], "low")
