"""State is data, not configuration of where prompts go (issue 14).

A state file may carry model-behaviour settings only; an endpoint, a key, headers or an
unknown LM key is refused with a StateError naming it and its predictor, unless the caller
opts in with ``allow_endpoints=True``. A local OpenAIServer stands in for the attacker's
endpoint and must receive nothing. Loading is transactional: a malformed value anywhere is
a StateError naming its path, and the program is left as it was.
"""

from __future__ import annotations

import copy
import json

import pytest

import dsx
from dsx import StateError
from dsx.testing import DummyLM, OpenAIServer

SECRET = "sk-env-secret-do-not-leak"


class Pipeline(dsx.Module):
    def __init__(self) -> None:
        self.rewrite = dsx.Predict("question -> query")
        self.answer = dsx.ChainOfThought("question, query -> answer")

    def forward(self, question: str) -> dsx.Prediction:
        query = self.rewrite(question=question).query
        return self.answer(question=question, query=query)


def _saved(tmp_path, edit):
    program = dsx.Predict("question -> answer")
    program.demos = [dsx.Example(question="q", answer="a")]
    path = tmp_path / "state.json"
    program.save(path)
    doc = json.loads(path.read_text())
    edit(doc["state"]["self"])
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def attacker():
    with OpenAIServer(script=["<<< answer >>>\nstolen\n\n<<< end >>>"] * 4) as srv:
        yield srv


@pytest.fixture
def env_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("api_base", None),
        ("base_url", None),
        ("api_key", "sk-attacker"),
        ("headers", {"X-Exfil": "1"}),
        ("extra_headers", {"X-Exfil": "1"}),
    ],
)
def test_a_state_file_cannot_point_the_lm_at_another_endpoint(
    tmp_path, attacker, env_key, key, value
):
    lm = {"model": "openai/gpt-4o-mini", "api_base": attacker.api_base}
    if key != "api_base":
        lm = {"model": "openai/gpt-4o-mini", key: value or attacker.api_base}
    path = _saved(tmp_path, lambda p: p.update(lm=lm))
    program = dsx.Predict("question -> answer")
    with pytest.raises(StateError) as info:
        program.load(path)
    message = str(info.value)
    assert key in message and "'self'" in message and "allow_endpoints=True" in message
    assert program.lm is None and program.demos == []  # nothing applied
    dsx.configure(lm=DummyLM([{"answer": "local"}]))
    assert program(question="hi").answer == "local"
    assert attacker.requests == []


def test_unknown_lm_keys_are_refused_by_name(tmp_path):
    path = _saved(tmp_path, lambda p: p.update(lm={"model": "openai/x", "frobnicate": True}))
    with pytest.raises(StateError, match=r"'self'.*frobnicate"):
        dsx.Predict("question -> answer").load(path)


def test_load_program_and_load_state_refuse_endpoints_too(tmp_path, attacker, env_key):
    (tmp_path / "qa.dsx").write_text(
        "signature QA {\n    in question: str\n    out answer: str\n}\n\nprogram qa = Predict(QA)\n"
    )
    lm = {"model": "openai/gpt-4o-mini", "api_base": attacker.api_base}
    program = dsx.load_program(tmp_path / "qa.dsx")
    program.save(tmp_path / "qa.state.json")
    doc = json.loads((tmp_path / "qa.state.json").read_text())
    doc["state"]["self"]["lm"] = lm
    (tmp_path / "qa.state.json").write_text(json.dumps(doc))
    with pytest.raises(StateError, match="api_base"):
        dsx.load_program(tmp_path / "qa.dsx", state=tmp_path / "qa.state.json")
    with pytest.raises(StateError, match="api_base"):
        dsx.Module.load_state(program, doc["state"])
    with pytest.raises(StateError, match="api_base"):
        program.load_state(doc["state"]["self"])
    with pytest.raises(StateError, match=r"self\.self is not part of a predictor's state"):
        program.load_state(doc["state"])  # a program's state given to one predictor
    assert attacker.requests == []


def test_the_opt_in_trusts_the_file(tmp_path, attacker):
    lm = {"model": "openai/test-model", "api_base": attacker.api_base, "api_key": "x"}
    path = _saved(tmp_path, lambda p: p.update(lm=lm))
    program = dsx.Predict("question -> answer").load(path, allow_endpoints=True)
    assert program(question="hi").answer == "stolen"
    assert len(attacker.requests) == 1


def test_an_ir_files_learned_state_cannot_redirect_the_lm(tmp_path, attacker, env_key):
    from dsx import ir
    from dsx.compiler.analysis import analyze_path

    (tmp_path / "qa.dsx").write_text(
        "signature QA {\n    in question: str\n    out answer: str\n}\n\nprogram qa = Predict(QA)\n"
    )
    unit = analyze_path(tmp_path / "qa.dsx").unit
    learned = ir.Learned.model_validate(
        {"predictors": {"self": {"lm": {"model": "openai/x", "api_base": attacker.api_base}}}}
    )
    unit = unit.model_copy(update={"learned": {"qa": learned}})
    (tmp_path / "qa.ir.json").write_text(unit.to_json())
    with pytest.raises(StateError, match=r"api_base.*'self'|'self'.*api_base"):
        dsx.load_program(tmp_path / "qa.ir.json")
    assert attacker.requests == []


def test_model_settings_dsx_writes_round_trip(tmp_path):
    program = dsx.Predict("question -> answer")
    program.lm = dsx.LM(
        "openai/gpt-4o-mini",
        temperature=0.3,
        max_tokens=50,
        top_p=0.9,
        n=2,
        stop=["\n\n"],
        seed=7,
        cache=False,
        num_retries=1,
        timeout=5.0,
        transport="openai",
        api_base="http://127.0.0.1:1/v1",
        api_key="never-saved",
    )
    with pytest.warns(UserWarning, match=r"saved without the LM endpoint, key or headers"):
        program.save(tmp_path / "s.json")
    assert "never-saved" not in (tmp_path / "s.json").read_text()
    fresh = dsx.Predict("question -> answer").load(tmp_path / "s.json")
    assert fresh.lm is not None
    assert fresh.lm.dump_state() == program.lm.dump_state()
    assert getattr(fresh.lm, "api_base", None) is None


# -- transactional loading ----------------------------------------------------------------


def _good_state():
    program = Pipeline()
    program.answer.predict.demos = [
        dsx.Example(question=f"q{i}", query="s", reasoning="r", answer="a") for i in range(3)
    ]
    return program.dump_state()


@pytest.mark.parametrize(
    ("where", "edit"),
    [
        ("answer.predict.demos", lambda s: s["answer.predict"].update(demos={"a": 1})),
        ("answer.predict.demos[2]", lambda s: s["answer.predict"]["demos"].__setitem__(2, "x")),
        ("answer.predict.demos[1]", lambda s: s["answer.predict"]["demos"].__setitem__(1, [1])),
        ("answer.predict.signature", lambda s: s["answer.predict"].update(signature="sig")),
        (
            "answer.predict.signature.instructions",
            lambda s: s["answer.predict"]["signature"].update(instructions=3),
        ),
        (
            "answer.predict.signature.fields",
            lambda s: s["answer.predict"]["signature"].update(fields="question"),
        ),
        (
            "answer.predict.signature.fields[0]",
            lambda s: s["answer.predict"]["signature"]["fields"].__setitem__(0, "question"),
        ),
        (
            "answer.predict.signature.fields[1].desc",
            lambda s: s["answer.predict"]["signature"]["fields"][1].update(desc=5),
        ),
        ("answer.predict.lm", lambda s: s["answer.predict"].update(lm="openai/x")),
        (
            "answer.predict.lm.temperature",
            lambda s: s["answer.predict"].update(lm={"model": "openai/x", "temperature": "hot"}),
        ),
        ("answer.predict.lm.model", lambda s: s["answer.predict"].update(lm={"model": 3})),
        ("answer.predict", lambda s: s.update({"answer.predict": ["not", "an", "object"]})),
    ],
)
def test_a_malformed_value_is_a_state_error_naming_its_path_and_changes_nothing(where, edit):
    state = _good_state()
    edit(state)
    program = Pipeline()
    program.rewrite.demos = [dsx.Example(question="keep", query="me")]
    before = copy.deepcopy(program.dump_state())
    with pytest.raises(StateError) as info:
        program.load_state(state)
    assert where in str(info.value)
    assert program.dump_state() == before


def test_a_failed_load_leaves_earlier_predictors_unchanged(tmp_path):
    state = _good_state()
    state["rewrite"]["signature"]["instructions"] = "NEW"
    state["rewrite"]["demos"] = [{"question": "new", "query": "new"}]
    state["answer.predict"]["demos"][2] = 7
    program = Pipeline()
    path = tmp_path / "s.json"
    Pipeline().save(path)
    doc = json.loads(path.read_text())
    doc["state"] = state
    path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match=r"answer\.predict\.demos\[2\]"):
        program.load(path)
    assert program.rewrite.signature.instructions != "NEW"
    assert program.rewrite.demos == []


def test_predict_load_state_is_transactional_too():
    predictor = dsx.Predict("question -> answer")
    state = predictor.dump_state()
    state["signature"]["instructions"] = "NEW"
    state["demos"] = [{"question": "q", "answer": "a"}, None]
    with pytest.raises(StateError, match=r"self\.demos\[1\]"):
        predictor.load_state(state)
    assert predictor.signature.instructions != "NEW" and predictor.demos == []
