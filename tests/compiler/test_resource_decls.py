"""Named LM declarations (issue 16, item 3): `lm fast = "provider/model" { settings }` and
`lm robust = fallback(a, b) { retries = n }`, used by `Predict(QA, lm = fast)`: parsed,
checked against the runtime's settings registry (located errors with fixes), lowered,
interpreted and generated alike, against real OpenAI-compatible servers."""

from __future__ import annotations

import importlib.util
import json
import sys
from typing import Any

import pytest

import dsx
from dsx.compiler.analysis import analyze_source
from dsx.compiler.codegen import generate
from dsx.compiler.formatter import format_source
from dsx.errors import DsxError
from dsx.runtime.fallback import FallbackLM
from dsx.runtime.instantiate import extract_learned
from dsx.testing import OpenAIServer
from dsx.testing.server import Fault

QA = "signature QA {\n    in  question: str\n    out answer: str\n}\n"


def _check(text: str, tmp_path, name: str = "r"):
    return analyze_source(text, str(tmp_path / f"{name}.dsx"))


def _codes(analysis) -> list[tuple[str, str, str]]:
    """(code, message, the source text the diagnostic points at)"""
    src = analysis.source(analysis.unit.source)
    return [(d.code, d.message, src.text[d.span.start : d.span.end]) for d in analysis.diagnostics]


def _program(lms: str, members: str = "    answer = Predict(QA, lm = fast)\n") -> str:
    return (
        f"{lms}\n{QA}\nmodule M {{\n{members}\n"
        "    forward(question: str) {\n        return answer(question = question)\n    }\n}\n\n"
        "program m = M()\n"
    )


# -- checking ------------------------------------------------------------------------------


def test_declarations_check_clean_and_lower_to_the_ir(tmp_path):
    text = _program(
        'lm fast = "openai/gpt-4o-mini" { temperature = 0, max_tokens = 200 }\n'
        'lm local = "openai/llama" { api_base = "http://127.0.0.1:8000/v1", '
        'headers = {"X-Team": "qa"}, stop = ["\\n\\n"], api_key_env = "LOCAL_KEY" }\n'
        "lm robust = fallback(fast, local) { retries = 2 }\n",
        "    answer = Predict(QA, lm = robust)\n",
    )
    analysis = _check(text, tmp_path)
    assert _codes(analysis) == []
    lms = {d.name: d for d in analysis.unit.lms}
    assert lms["fast"].model == "openai/gpt-4o-mini"
    assert dict(lms["fast"].settings) == {"temperature": 0, "max_tokens": 200}
    assert dict(lms["local"].settings)["headers"] == {"X-Team": "qa"}
    assert lms["robust"].fallback == ("fast", "local")
    assert dict(lms["robust"].settings) == {"retries": 2}
    sub = analysis.unit.modules[0].submodules[0]
    ((key, value),) = sub.kwargs
    assert key == "lm" and value.kind == "call" and value.func.name == "robust"


@pytest.mark.parametrize(
    ("lms", "member", "code", "words", "at"),
    [
        (
            'lm fast = "openai/m" { temprature = 0 }',
            "",
            "DSX140",
            "did you mean `temperature`",
            "temprature",
        ),
        (
            'lm fast = "openai/m" { max_tokens = "lots" }',
            "",
            "DSX140",
            "whole number >= 0, got 'lots'",
            '"lots"',
        ),
        ('lm fast = "openai/m" { temperature = true }', "", "DSX140", "must be a number", "true"),
        (
            'lm fast = "openai/m" { api_key = "sk-1" }',
            "",
            "DSX140",
            "name its environment variable with `api_key_env",
            "api_key",
        ),
        (
            'lm fast = "openai/m" { api_base = "localhost" }',
            "",
            "DSX140",
            "http(s) URL",
            '"localhost"',
        ),
        ('lm fast = "openai/m" { temperature = x }', "", "DSX140", "must be a constant", "x"),
        ('lm fast = "openai/m" { n = 1, n = 2 }', "", "DSX140", "`n` is set twice", "n"),
        ('lm fast = "gpt4"', "", "DSX140", 'write "provider/model"', '"gpt4"'),
        ('lm fast = "gpt4"', "", "DSX140", 'or "local" for the local model', '"gpt4"'),
        ('lm fast = "local" { max_tokens = 512, temperature = 0.2 }', "", None, "", ""),
        ('lm fast = "local:models/tiny.gguf"', "", None, "", ""),
        (
            'lm fast = "local" { api_base = "http://127.0.0.1:9/v1" }',
            "",
            "DSX140",
            "the local model runs on this machine",
            "api_base",
        ),
        ('lm fast = "local" { max_tokenz = 5 }', "", "DSX140", "did you mean `max_tokens`", None),
        ("lm fast = 3", "", "DSX140", "must be a model name", "3"),
        ('lm fast = fallback(fast2) \nlm fast2 = "openai/m"', "", None, "", ""),
        (
            'lm fast = "openai/m"\nlm r = fallback(fast, nope)',
            "",
            "DSX140",
            "unknown lm `nope`",
            "nope",
        ),
        (
            'lm fast = "openai/m"\nlm r = fallback(fast) { temperature = 0 }',
            "",
            "DSX140",
            "a fallback chain takes `retries`",
            "temperature",
        ),
        (
            'lm fast = "openai/m"\nlm r = fallback(fast) { retries = -1 }',
            "",
            "DSX140",
            ">= 0",
            "-1",
        ),
        (
            'lm fast = "openai/m"\nlm r = fallback("openai/x")',
            "",
            "DSX140",
            "names of declared LMs",
            '"openai/x"',
        ),
        ("lm fast = fallback(r)\nlm r = fallback(fast)", "", "DSX140", "circular", None),
        (
            'lm fast = "openai/m"',
            "    other = Predict(QA, lm = fsat)\n",
            "DSX140",
            "did you mean `fast`",
            "fsat",
        ),
        (
            'lm fast = "openai/m"',
            '    other = Predict(QA, lm = "openai/m")\n',
            "DSX140",
            "`lm` names a declared LM",
            '"openai/m"',
        ),
    ],
)
def test_located_errors(tmp_path, lms, member, code, words, at):
    text = _program(lms, "    answer = Predict(QA, lm = fast)\n" + member)
    found = [c for c in _codes(_check(text, tmp_path)) if c[0] != "DSX200"]
    if code is None:
        assert found == []
        return
    assert any(c == code and words in m and (at is None or t == at) for c, m, t in found), found


def test_a_module_parameter_hiding_a_declared_lm_is_an_error(tmp_path):
    text = _program('lm fast = "openai/m"').replace("module M {", 'module M(fast: str = "x") {')
    found = _codes(_check(text, tmp_path))
    assert any(
        c == "DSX140" and "module's param, which hides the lm" in m and t == "fast"
        for c, m, t in found
    ), found


def test_unknown_setting_fix_replaces_the_name(tmp_path):
    text = _program('lm fast = "openai/m" { max_token = 5 }')
    diag = next(d for d in _check(text, tmp_path).diagnostics if d.code == "DSX140")
    assert diag.fix is not None and diag.fix.edits[0].new_text == "max_tokens"


def test_a_never_used_lm_is_a_warning(tmp_path):
    text = _program('lm fast = "openai/m"\nlm spare = "openai/n"')
    assert [(c, t) for c, _, t in _codes(_check(text, tmp_path))] == [("DSX200", "spare")]


def test_lm_and_retriever_stay_usable_as_names(tmp_path):
    text = (
        QA + "module M {\n    answer = Predict(QA)\n    forward(question: str) {\n"
        "        lm = question\n        retriever = lm\n"
        "        return answer(question = retriever)\n    }\n}\nprogram m = M()\n"
    )
    assert _codes(_check(text, tmp_path)) == []


MESSY = """/// The fast one.
lm   fast="openai/fast"{temperature=0,max_tokens=200,}
lm robust = fallback( fast ,local ){retries=1}
lm local = "openai/x" {
    api_base = "http://127.0.0.1:9/v1",   // local
    headers = {"A": "b"}
}
lm bare = "openai/y" {}
retriever  wiki=Embeddings(corpus="c.txt",embedder="openai/e")
"""

FORMATTED = """/// The fast one.
lm fast = "openai/fast" { temperature = 0, max_tokens = 200 }

lm robust = fallback(fast, local) { retries = 1 }

lm local = "openai/x" {
    api_base = "http://127.0.0.1:9/v1",  // local
    headers  = {"A": "b"},
}

lm bare = "openai/y" {}

retriever wiki = Embeddings(corpus = "c.txt", embedder = "openai/e")
"""


def test_formatter_lays_out_declarations_and_is_idempotent():
    assert format_source(MESSY) == FORMATTED
    assert format_source(FORMATTED) == FORMATTED


def test_settings_on_their_own_lines_need_no_commas(tmp_path):
    text = _program('lm fast = "openai/m" {\n    temperature = 0\n    max_tokens = 9\n}')
    analysis = _check(text, tmp_path)
    assert _codes(analysis) == []
    assert dict(analysis.unit.lms[0].settings) == {"temperature": 0, "max_tokens": 9}


def test_ir_json_without_resources_is_unchanged(tmp_path):
    plain = _check(QA + "program m = Predict(QA)\n", tmp_path).unit.to_json()
    assert '"lms"' not in plain and '"retrievers"' not in plain
    declared = _check(_program('lm fast = "openai/m"'), tmp_path)
    data = json.loads(declared.unit.to_json())
    assert data["lms"][0]["name"] == "fast"
    assert type(declared.unit).from_json(declared.unit.to_json()) == declared.unit


# -- running: the interpreter and the built module agree --------------------------------


def _import(code: str, tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _both(text: str, tmp_path):
    analysis = _check(text, tmp_path)
    assert [d for d in analysis.diagnostics if d.severity == "error"] == []
    built = _import(generate(analysis.unit, "m"), tmp_path, "res_gen")
    return [dsx.instantiate(analysis.unit).program("m"), built.program()]


def _reply(field: str, value: str) -> str:
    return f"<<< {field} >>>\n{value}\n\n<<< end >>>"


TWO = (
    QA + "\nmodule M {\n    answer = Predict(QA, lm = fast)\n    plain = Predict(QA)\n\n"
    "    forward(question: str) {\n        a = answer(question = question)\n"
    "        return plain(question = a.answer)\n    }\n}\n\nprogram m = M()\n"
)


@pytest.mark.integration
def test_declared_lm_serves_its_predictor_and_the_configured_lm_the_rest(tmp_path):
    with (
        OpenAIServer(lambda r: _reply("answer", "from-declared")) as declared,
        OpenAIServer(lambda r: _reply("answer", "from-default")) as default,
    ):
        lms = (
            f'lm fast = "openai/fast" {{ api_base = "{declared.api_base}", temperature = 0, '
            "max_tokens = 50, cache = false }\n"
        )
        for program in _both(lms + TWO, tmp_path):
            cli_lm = dsx.LM("openai/default", api_base=default.api_base, api_key="x", cache=False)
            with dsx.context(lm=cli_lm):
                assert program(question="q").answer == "from-default"
        assert len(declared.requests) == 2 and len(default.requests) == 2
        body = declared.requests[0].body
        assert body["model"] == "fast" and body["temperature"] == 0 and body["max_tokens"] == 50
        assert "from-declared" in json.dumps(default.requests[0].body)  # a.answer went on


@pytest.mark.integration
def test_declared_fallback_falls_over_from_a_503_server(tmp_path):
    with (
        OpenAIServer(lambda r: "x", faults=[Fault.status(503)] * 10) as down,
        OpenAIServer(lambda r: _reply("answer", "Paris")) as up,
    ):
        lms = (
            f'lm first = "openai/first" {{ api_base = "{down.api_base}", num_retries = 0, '
            "cache = false }\n"
            f'lm second = "openai/second" {{ api_base = "{up.api_base}", cache = false }}\n'
            "lm fast = fallback(first, second)\n"
        )
        for program in _both(_program(lms), tmp_path):
            assert isinstance(program.answer.lm, FallbackLM)
            assert program(question="Capital of France?").answer == "Paris"
        assert len(down.requests) == 2 and len(up.requests) == 2


def test_learned_state_leaves_a_declared_lm_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    text = _program('lm fast = "openai/m" { api_base = "http://127.0.0.1:1/v1" }')
    program: Any = dsx.instantiate(_check(text, tmp_path).unit).program("m")
    assert program.answer.lm.api_base == "http://127.0.0.1:1/v1"
    learned = extract_learned(program)
    assert learned.predictors["answer"].lm is None  # the program sets it, not the state


def test_api_key_env_reads_the_variable_and_names_it_when_unset(tmp_path, monkeypatch):
    text = _program('lm fast = "openai/m" { api_key_env = "H16C_TEST_KEY" }')
    unit = _check(text, tmp_path).unit
    monkeypatch.delenv("H16C_TEST_KEY", raising=False)
    with pytest.raises(DsxError, match="H16C_TEST_KEY is not set"):
        dsx.instantiate(unit).program("m")
    monkeypatch.setenv("H16C_TEST_KEY", "sk-test")
    program: Any = dsx.instantiate(unit).program("m")
    assert program.answer.lm.api_key == "sk-test"


def test_generated_module_defines_resources_lazily(tmp_path):
    text = _program('lm fast = "openai/m" { temperature = 0 }')
    code = generate(_check(text, tmp_path).unit, "m")
    assert "@_dsx.resource\ndef fast() -> _dsx.Any:" in code
    assert "_dsx.Predict(QA, lm=fast())" in code


def test_dsx_inspect_shows_declared_lms_with_their_endpoints(tmp_path):
    import subprocess

    path = tmp_path / "r.dsx"
    path.write_text(
        _program(
            'lm fast = "openai/m" { api_base = "http://10.9.8.7:8000/v1", '
            'headers = {"X-Team": "qa"} }'
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "dsx", "inspect", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert 'lm fast = "openai/m" { api_base = "http://10.9.8.7:8000/v1"' in out.stdout
    assert "sends prompts (and the key) to http://10.9.8.7:8000/v1" in out.stdout
    assert "adds headers X-Team" in out.stdout and "M.answer uses lm fast" in out.stdout
    path.write_text(
        _program('lm fast = "openai/m"')
        + 'retriever wiki = Embeddings(corpus = "c.txt", embedder = "openai/e", '
        'embedder_api_base = "http://10.0.0.5/v1")\n'
    )
    shown = subprocess.run(
        [sys.executable, "-m", "dsx", "inspect", str(path)], capture_output=True, text=True
    )
    assert "sends passages and queries to http://10.0.0.5/v1" in shown.stdout
    path.write_text(_program('lm fast = "openai/m" { temprature = 1 }'))
    bad = subprocess.run(
        [sys.executable, "-m", "dsx", "inspect", str(path)], capture_output=True, text=True
    )
    assert bad.returncode == 1 and "dsx check" in bad.stderr


def test_incremental_recheck_agrees_with_a_full_check(tmp_path):
    from dsx.compiler.analysis import analyze_source as analyze

    path = str(tmp_path / "inc.dsx")
    base = _program(
        'lm fast = "openai/m" { temperature = 0 }\nlm slow = "openai/n"\n'
        "lm both = fallback(fast, slow)\n",
        "    answer = Predict(QA, lm = both)\n",
    )
    edits = [
        base.replace("temperature = 0", "temperature = true"),  # an lm's setting
        base.replace("lm = both", "lm = fast"),  # a module edit: `both` now unused
        base.replace("lm = both", "lm = bth"),
        base.replace("fallback(fast, slow)", "fallback(fast, slw)"),
        base.replace("lm slow", "lm slower"),
        base,
    ]
    caches: dict = {}
    prev = analyze(base, path, caches=caches)
    for text in edits:
        prev = analyze(text, path, caches=caches, previous=prev)
        full = analyze(text, path)

        def key(a):
            return sorted((d.code, d.span.start, d.message) for d in a.diagnostics)

        assert key(prev) == key(full), text
        assert prev.unit.to_json() == full.unit.to_json()


def test_scripted_replies_replace_a_declared_lm_in_dsx_test(tmp_path):
    import os
    import subprocess

    (tmp_path / "t.dsx").write_text(
        'lm far = "openai/far" { api_base = "http://127.0.0.1:9/v1", num_retries = 0 }\n'
        + QA
        + "program m = Predict(QA, lm = far)\n\n"
        'test t for m {\n    given  question = "q"\n    reply  {answer = "scripted"}\n'
        '    expect answer = "scripted"\n}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env.update(OPENAI_API_KEY="x", DSX_CACHE_DIR=str(tmp_path / "cache"))
    out = subprocess.run(
        [sys.executable, "-m", "dsx", "test", "t.dsx"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 passed" in out.stdout


def test_saved_state_never_changes_a_declared_lm_and_never_sets_an_endpoint(tmp_path, monkeypatch):
    from dsx import ir
    from dsx.errors import StateError
    from dsx.runtime.instantiate import apply_learned

    monkeypatch.setenv("OPENAI_API_KEY", "x")
    text = _program('lm fast = "openai/m" { temperature = 0 }')
    ns = dsx.instantiate(_check(text, tmp_path).unit)
    program: Any = ns.program("m")
    declared = program.answer.lm

    def state(lm: dict) -> ir.Learned:
        return ir.Learned(predictors={"answer": ir.LearnedPredictor(lm=lm, demos=({"q": 1},))})

    apply_learned(program, state({"model": "openai/other", "temperature": 0.9}), "m")
    assert program.answer.lm is declared and program.answer.lm.kwargs["temperature"] == 0
    assert len(program.answer.demos) == 1  # the rest of the state applies
    evil = state({"model": "openai/m", "api_base": "http://203.0.113.9/v1"})
    with pytest.raises(StateError, match="api_base"):
        apply_learned(program, evil, "m")
    assert program.answer.lm is declared


@pytest.mark.integration
def test_the_command_lm_serves_the_rest_and_lm_override_replaces_a_declared_one(tmp_path):
    import os
    import subprocess

    with (
        OpenAIServer(lambda r: _reply("answer", "declared")) as declared,
        OpenAIServer(lambda r: _reply("answer", "command")) as command,
    ):
        (tmp_path / "p.dsx").write_text(
            f'lm fast = "openai/fast" {{ api_base = "{declared.api_base}", cache = false }}\n'
            + QA
            + "program m = Predict(QA, lm = fast)\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DSX_", "OPENAI_"))}
        env.update(
            OPENAI_API_KEY="x",
            DSX_CACHE_DIR=str(tmp_path / "cache"),
            DSX_API_BASE=command.api_base,
        )

        def run(*extra: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "dsx", "run", "p.dsx", "--json", "-i", "question=q", *extra],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
            )

        def answer(out: subprocess.CompletedProcess) -> str:
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout.strip().splitlines()[-1])["answer"]

        assert answer(run("--lm", "openai/cmd")) == "declared"  # a declared LM wins
        assert answer(run("--lm", "openai/cmd", "--lm-override")) == "command"
        missing = run("--lm-override")
        assert missing.returncode != 0 and "--lm-override needs the LM" in missing.stderr
    assert len(declared.requests) == 1 and len(command.requests) == 1


def test_a_saved_program_carries_no_declared_lm(tmp_path, monkeypatch):
    from dsx.runtime.state import read_state

    monkeypatch.setenv("OPENAI_API_KEY", "x")
    text = _program('lm fast = "openai/m" { temperature = 0 }')
    program: Any = dsx.instantiate(_check(text, tmp_path).unit).program("m")
    program.save(tmp_path / "s.json")
    assert read_state(tmp_path / "s.json").predictors["answer"]["lm"] is None


def test_a_program_that_is_a_predictor_with_a_declared_lm_builds(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    text = (
        'lm fast = "openai/m" { temperature = 0.5 }\n' + QA + "program m = Predict(QA, lm = fast)\n"
    )
    unit = _check(text, tmp_path).unit
    built: Any = _import(generate(unit, "m"), tmp_path, "root_gen").program()
    interpreted: Any = dsx.instantiate(unit).program("m")
    for program in (built, interpreted):
        assert program.lm.model == "openai/m" and program.lm.kwargs["temperature"] == 0.5
        assert hasattr(program.lm, "_dsx_declared")


def test_a_declared_local_lm_that_cannot_start_says_which_declaration(tmp_path):
    from dsx.runtime.resources import make_lm

    with pytest.raises(DsxError, match=r"lm `small` = 'local:.*missing\.gguf'"):
        make_lm("small", model=f"local:{tmp_path / 'missing.gguf'}", settings={"max_tokens": 9})
