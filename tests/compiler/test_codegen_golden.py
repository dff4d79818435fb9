"""Golden generated Python for each example, and what makes a build reproducible and
readable: the same bytes from any folder, no absolute path, no sys.path change, one forward
body per module, and output that `ruff format --check` accepts.

The golden modules live in tests/compiler/golden/<example>.<program>.py.golden (not .py, so
that the repository's own lint leaves them alone). A difference fails; a missing golden
fails. `DSX_UPDATE_GOLDEN=1` rewrites them (review the diff)."""

from __future__ import annotations

import ast as pyast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _codegen_kit import isolated_imports, load_module, scripted_lm

import dsx
from dsx.compiler.analysis import analyze_path, analyze_source
from dsx.compiler.build import build
from dsx.compiler.codegen import generate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("DSX_UPDATE_GOLDEN") == "1"


def _programs() -> list[tuple[Path, str]]:
    return [
        (path, prog.name)
        for path in sorted(EXAMPLES.glob("*.dsx"))
        for prog in analyze_path(path).unit.programs
    ]


PROGRAMS = _programs()


@pytest.fixture(autouse=True)
def _own_imports():
    # Building optimizes, which imports a project's helpers in this process; each test
    # starts without the previous tests' helpers (they share module names).
    with isolated_imports():
        yield


def _ruff_unformatted(paths: list[Path]) -> str | None:
    """What `ruff format --check` (default settings) says about ``paths``; None if clean."""
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the dev extra)")
    done = subprocess.run(
        [ruff, "format", "--isolated", "--check", "--diff", *map(str, paths)],
        capture_output=True,
        text=True,
    )
    return None if done.returncode == 0 else done.stdout + done.stderr


@pytest.mark.parametrize(("path", "program"), PROGRAMS, ids=[f"{p.stem}:{n}" for p, n in PROGRAMS])
def test_generated_python_matches_the_golden_module(path, program):
    # As `dsx build` writes it into the default build/ folder next to the example.
    code = generate(analyze_path(path).unit, program, python_root="..")
    golden = GOLDEN / f"{path.stem}.{program}.py.golden"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        golden.write_text(code, encoding="utf-8")
    assert golden.is_file(), (
        f"no golden module {golden.relative_to(ROOT)}: run "
        "DSX_UPDATE_GOLDEN=1 pytest tests/compiler/test_codegen_golden.py and review it"
    )
    assert code == golden.read_text(encoding="utf-8"), (
        f"the generated module differs from {golden.name}; if the change is intended, "
        "rerun with DSX_UPDATE_GOLDEN=1 and review the diff"
    )


def test_golden_modules_pass_ruff_format_check(tmp_path):
    copies = []
    for golden in sorted(GOLDEN.glob("*.py.golden")):
        copy = tmp_path / golden.name.removesuffix(".golden")
        copy.write_text(golden.read_text(encoding="utf-8"), encoding="utf-8")
        copies.append(copy)
    assert len(copies) >= len(PROGRAMS)
    assert _ruff_unformatted(copies) is None, _ruff_unformatted(copies)


# A program that exercises the layout: long lines of every kind, docstrings ruff would
# change, quotes, keyword names, records, enums, operators, comprehensions.
STRESS = """use python "helpers_for_layout" as helpers

/// A record described in one line.
type Evidence {
    quote: str "the exact words quoted from the ticket, kept short but complete please"
    relevance_of_this_particular_quote: float
    tags: list[str] = []
}

enum Urgency { low, normal, high }

/// Instructions over
/// several lines, with "quotes" and a back\\slash.
signature VeryLongSignatureNameForLayout {
    in  the_question_being_asked_by_the_user: str  "a description that is long enough to wrap"
    in  supporting_context_passages: list[str]
    out answer_that_is_given_back: str
    out urgency: Urgency
    out evidence_items_found: list[Evidence]
}

signature Short = "question -> answer"

/// A module with a long forward.
module LayoutModule(number_of_passages: int = 3, label: str = "a label with 'single' quotes") {
    predictor_with_a_long_name = ChainOfThought(VeryLongSignatureNameForLayout)
    short = Predict(Short)

    forward(the_question_being_asked_by_the_user: str, supporting_context_passages: list[str] = []) {
        first_prediction_result = predictor_with_a_long_name(the_question_being_asked_by_the_user = the_question_being_asked_by_the_user, supporting_context_passages = supporting_context_passages)
        total = len(first_prediction_result.answer_that_is_given_back) + len(supporting_context_passages) + number_of_passages * 2
        same = (len(the_question_being_asked_by_the_user) == total) == (len(supporting_context_passages) > 1000000)
        found = "needle" in the_question_being_asked_by_the_user or "haystack" not in supporting_context_passages
        words = [w for w in supporting_context_passages if len(w) > 3 and "a very long literal to compare with" != w]
        if total > 1000000000 and same and found and len(words) > 1000000000 and label != "x" {
            return short(question = "unreachable {label} {total}")
        }
        text = "say \\"hi\\" to {the_question_being_asked_by_the_user}, it's {total} - {same}, {found}"
        return short(question = text + helpers.shout(first_prediction_result.answer_that_is_given_back))
    }
}

program layout_program_with_a_rather_long_name = LayoutModule(number_of_passages = 2)
"""

HELPERS = "def shout(text):\n    return str(text).upper()\n"


@pytest.fixture
def stress_project(tmp_path):
    project = tmp_path / "stress"
    project.mkdir()
    (project / "layout.dsx").write_text(STRESS, encoding="utf-8")
    (project / "helpers_for_layout.py").write_text(HELPERS, encoding="utf-8")
    with isolated_imports():
        yield project


def test_long_lines_docstrings_and_quotes_are_laid_out_as_ruff_does(stress_project):
    analysis = analyze_path(stress_project / "layout.dsx")
    assert analysis.errors == [], analysis.errors
    code = generate(analysis.unit, "layout_program_with_a_rather_long_name", python_root=".")
    out = stress_project / "layout_module.py"
    out.write_text(code, encoding="utf-8")
    assert _ruff_unformatted([out]) is None, _ruff_unformatted([out]) + "\n" + code
    # Only what cannot be split stays long: comments, docstrings, single string literals.
    long = [line.strip() for line in code.splitlines() if len(line) > 88]
    unsplittable = re.compile(r"""(#|\"\"\"|(\w+ ?= ?)?f?["']).*""")
    assert long and all(unsplittable.fullmatch(line) for line in long), long
    # The instructions survive exactly (a docstring would have been re-indented by ruff).
    module = load_module(out)
    assert (
        module.VeryLongSignatureNameForLayout.instructions
        == 'Instructions over\nseveral lines, with "quotes" and a back\\slash.'
    )
    # Every physical line of a split statement maps to its .dsx line.
    tree = pyast.parse(code)
    call = next(
        n
        for n in pyast.walk(tree)
        if isinstance(n, pyast.Assign)
        and isinstance(n.targets[0], pyast.Name)
        and n.targets[0].id == "first_prediction_result"
    )
    assert call.end_lineno is not None and call.end_lineno > call.lineno
    lines = {module._SOURCE_MAP[n] for n in range(call.lineno, call.end_lineno + 1)}
    where = STRESS.splitlines().index(next(x for x in STRESS.splitlines() if "first_pred" in x))
    assert lines == {("layout.dsx", where + 1)}
    # ...and it runs like the interpreter.
    lm_built, lm_interp = scripted_lm(), scripted_lm()
    inputs = {"the_question_being_asked_by_the_user": "q", "supporting_context_passages": ["ab"]}
    with dsx.context(lm=lm_built):
        built = module.program()(**inputs)
    with dsx.context(lm=lm_interp):
        interpreted = dsx.instantiate(analysis.unit).program(
            "layout_program_with_a_rather_long_name"
        )(**inputs)
    assert built.to_dict() == interpreted.to_dict()
    assert [h["messages"] for h in lm_built.history] == [h["messages"] for h in lm_interp.history]


REPRO = """use python "botkit.helpers" as helpers

/// Answer briefly.
signature QA {
    in  question: str
    out answer: str
}

module Bot {
    answer = Predict(QA)

    forward(question: str) {
        return answer(question = helpers.tidy(question))
    }
}

program bot = Bot()

data train = jsonl("data/train.jsonl", inputs = [question])
metric em = exact_match

optimize bot {
    with   LabeledFewShot(k = 2)
    train  train
    metric em
}
"""


def _project(where: Path) -> Path:
    (where / "botkit").mkdir(parents=True)
    (where / "botkit" / "__init__.py").write_text("")
    (where / "botkit" / "helpers.py").write_text("def tidy(text):\n    return text.strip()\n")
    (where / "data").mkdir()
    rows = [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2"}]
    (where / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (where / "bot.dsx").write_text(REPRO)
    return where / "bot.dsx"


def test_building_in_two_folders_gives_identical_bytes_without_absolute_paths(tmp_path):
    first = _project(tmp_path / "a")
    second = _project(tmp_path / "elsewhere" / "deeper" / "b")
    for source in (first, second):
        build(source, log=lambda line: None)
    names = sorted(p.name for p in (first.parent / "build").iterdir() if p.is_file())
    assert names == ["bot.py", "bot.state.json"]
    for name in names:
        one = (first.parent / "build" / name).read_bytes()
        two = (second.parent / "build" / name).read_bytes()
        assert one == two, name
        assert str(tmp_path).encode() not in one and b"/tmp" not in one
    code = (first.parent / "build" / "bot.py").read_text()
    assert '_dsx.import_python("botkit.helpers", __file__, "..")' in code
    assert "sys.path" not in code
    # An --out folder elsewhere gets the path from there, still relative.
    build(first, out=tmp_path / "a" / "dist" / "py", log=lambda line: None)
    moved = (tmp_path / "a" / "dist" / "py" / "bot.py").read_text()
    assert '_dsx.import_python("botkit.helpers", __file__, "../..")' in moved


def test_one_forward_body_per_module(tmp_path):
    source = _project(tmp_path / "p")
    build(source, log=lambda line: None)
    tree = pyast.parse((source.parent / "build" / "bot.py").read_text())
    bot = next(n for n in tree.body if isinstance(n, pyast.ClassDef) and n.name == "Bot")
    bodies = [n.name for n in bot.body if isinstance(n, pyast.FunctionDef | pyast.AsyncFunctionDef)]
    assert bodies == ["__init__", "aforward"]
    assert pyast.unparse(bot.body[-1]) == "forward = _dsx.sync_forward(aforward)"


BUILT_ELSEWHERE = r"""
import importlib.util, json, sys
before = list(sys.path)
spec = importlib.util.spec_from_file_location("bot_module", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import dsx
from dsx.testing import FunctionLM
lm = FunctionLM(lambda messages: {"answer": messages[-1]["content"].split(">>>")[1].split()[0]})
program = module.program()
with dsx.context(lm=lm):
    pred = program(question="  hello  ")

async def in_a_loop():
    with dsx.context(lm=lm):
        return program(question="looped").answer  # sync call inside a running loop

import asyncio
print(json.dumps({
    "answer": pred.answer,
    "looped": asyncio.run(in_a_loop()),
    "sys_path_unchanged": sys.path == before,
    "helpers_from": sys.modules["botkit.helpers"].__file__,
    "toolchain": [m for m in sys.modules if m.startswith(("dsx.compiler", "dsx.grammar", "lark"))],
}))
"""


def test_a_moved_project_still_imports_its_helpers_without_touching_sys_path(tmp_path):
    source = _project(tmp_path / "orig")
    build(source, log=lambda line: None)
    moved = tmp_path / "moved" / "copy"
    shutil.copytree(source.parent, moved)
    shutil.rmtree(source.parent)  # nothing may point back at the original folder
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", BUILT_ELSEWHERE, str(moved / "build" / "bot.py")],
        capture_output=True,
        text=True,
        cwd=elsewhere,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "answer": "hello",
        "looped": "looped",
        "sys_path_unchanged": True,
        "helpers_from": str(moved / "botkit" / "helpers.py"),
        "toolchain": [],
    }


def test_a_missing_helper_is_a_clear_error(tmp_path):
    source = _project(tmp_path / "p")
    with isolated_imports():  # optimizing imports the helpers in this process
        build(source, log=lambda line: None)
    shutil.rmtree(source.parent / "botkit")
    with isolated_imports(), pytest.raises(dsx.DsxError) as info:
        load_module(source.parent / "build" / "bot.py")
    message = str(info.value)
    assert "cannot import `botkit.helpers` (declared with `use python`)" in message
    assert "the .dsx file's folder" in message


def test_layout_keeps_what_fits_and_splits_the_rest():
    from dsx.compiler._pyfmt import layout, py_str

    assert layout("x = f(a, b)") == ["x = f(a, b)"]
    assert layout("return (await self.p.acall(q=q))") == ["return await self.p.acall(q=q)"]
    long = "y = function_name(" + ", ".join(f"argument_{i}=value_{i}" for i in range(6)) + ")"
    assert layout(long, "    ") == [
        "    y = function_name(",
        *[f"        argument_{i}=value_{i}," for i in range(6)],
        "    )",
    ]
    # A comprehension is split before `for`/`if` only when it does not fit in its brackets.
    comp = "v1 = lower(question) not in [upper(w) for w in [question, query] if len(w) > count]"
    assert layout(comp, " " * 8) == [
        "        v1 = lower(question) not in [",
        "            upper(w) for w in [question, query] if len(w) > count",
        "        ]",
    ]
    for text in ["plain", "it's", 'say "hi"', "both ' and \"", "back\\slash\n", ""]:
        assert eval(py_str(text)) == text
    assert py_str("plain") == '"plain"' and py_str('say "hi"') == "'say \"hi\"'"


def test_codegen_of_a_keyword_heavy_source_is_formatted(tmp_path):
    text = (
        "signature S {\n    in from: str\n    out class: str\n}\n"
        'module M {\n    p = Predict(S)\n    forward(import: str) {\n        lambda = "v={import} {{x}}"\n'
        "        return p(from = lambda)\n    }\n}\nprogram m = M()\n"
    )
    analysis = analyze_source(text, str(tmp_path / "kw.dsx"))
    out = tmp_path / "kw.py"
    out.write_text(generate(analysis.unit, "m"))
    assert _ruff_unformatted([out]) is None, _ruff_unformatted([out])


def test_docs_ruff_would_change_are_assigned_exactly_and_formatted(tmp_path):
    text = (
        '/// Two lines\n/// of module doc.\nmodule M {\n    p = Predict("q -> a")\n'
        "    forward(q: str) {\n        return p(q = q)\n    }\n}\n\n"
        '/// A record with "quotes".\ntype R { a: str }\n\n'
        "/// Program doc over\n/// two lines.\nprogram m = M()\n"
    )
    analysis = analyze_source(text, str(tmp_path / "m.dsx"))
    assert analysis.errors == []
    out = tmp_path / "m_module.py"
    out.write_text(generate(analysis.unit, "m"))
    assert _ruff_unformatted([out]) is None, _ruff_unformatted([out])
    module = load_module(out)
    assert module.M.__doc__ == "Two lines\nof module doc."
    assert module.m.__doc__ == "Program doc over\ntwo lines."


# Statements seen to need care (each found by drawing programs with long names): augmented
# assignment, `not in` kept whole, an operand split again at its own operators, a trailing
# subscript (the whole value parenthesized), a parenthesized value that fits on one line.
LONG_STATEMENTS = [
    "total_of_all_the_things_so_far += total_of_all_the_things_so_far * len(['ab', the_value_0])",
    "flag_value = Prediction(answer='', total=1 if some_long_condition_name else 5, flag=q not in [the_first_long_value, the_second_long_value])",
    "result_value = (first_long_value_name if (first_long_value_name != second_long_value_name) == True else 5)",
    "text_value_accumulated += f'<{text_value_accumulated}|{question}|{number + 1}> {{x}}'[:2]",
    "the_accumulated_text_value = the_accumulated_text_value + f'{item};'",
    "return 'a literal string that is long enough to need its own line in parentheses'",
]  # fmt: skip


def test_long_statements_are_laid_out_as_ruff_keeps_them(tmp_path):
    from dsx.compiler._pyfmt import layout

    body = ["async def f(q, number, item, some_long_condition_name):"]
    for statement in LONG_STATEMENTS:
        body += layout(statement, "    ")
    out = tmp_path / "long_statements.py"
    out.write_text("\n".join(body) + "\n")
    compile(out.read_text(), str(out), "exec")
    assert _ruff_unformatted([out]) is None, _ruff_unformatted([out])
    assert all(len(line) <= 88 for line in body), body
