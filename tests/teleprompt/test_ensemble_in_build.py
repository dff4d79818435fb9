"""Ensemble in the learned state (issue 19, item 5): an optimize block makes the members of one
program (``Ensemble(members = N, base = ..., reducer = "majority")``), `dsx build` bakes them
into the state as data (each member's predictor state and the reducer's registered name), and
`dsx run`, the built module and `Module.load` run every member and reduce their answers. A
state file can name a registered reducer only and its members pass the state trust checks."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

import dsx
from dsx.compiler.build import BuildError, build
from dsx.errors import StateError
from dsx.runtime.state import load_into, make_state, parse_state, read_state
from dsx.teleprompt import Ensemble
from dsx.teleprompt.knn import dump_selector, prepare_selector
from dsx.testing import FunctionLM, OpenAIServer

QA = """signature QA = "question -> answer"
program qa = Predict(QA)
data train = jsonl("train.jsonl", inputs = [question])
metric em = exact_match
optimize qa {
    with   OPTIMIZER
    train  train
    metric em
}
"""
ROWS = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")]
MEMBERS = 'Ensemble(members = 3, base = "LabeledFewShot", k = 1, reducer = "majority")'


def write_project(tmp_path, optimizer=MEMBERS):
    rows = [{"question": q, "answer": a} for q, a in ROWS]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "qa.dsx").write_text(QA.replace("OPTIMIZER", optimizer))
    return tmp_path / "qa.dsx"


def parity(messages):
    """The server's answer: the parity of the demo answer the prompt shows (one per member)."""
    shown = [
        m["content"].split("<<< answer >>>\n", 1)[1].split("\n", 1)[0]
        for m in messages[1:-1]
        if m["role"] == "assistant"
    ]
    return "even" if int(shown[0]) % 2 == 0 else "odd"


def reply(request):
    return f"<<< answer >>>\n{parity(request['messages'])}\n\n<<< end >>>"


def member_demos(selector):
    return [m["self"]["demos"][0]["answer"] for m in selector["members"]]


def expected(selector):
    """What majority() over the members' answers gives (ties: the first member's)."""
    votes = ["even" if int(a) % 2 == 0 else "odd" for a in member_demos(selector)]
    return max(votes, key=lambda v: (votes.count(v), -votes.index(v)))


def cli(*args, server, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env["DSX_CACHE_DIR"] = os.environ["DSX_CACHE_DIR"]
    env.update(DSX_LM="openai/test-model", DSX_API_BASE=server.api_base, DSX_API_KEY="x")
    return subprocess.run(
        [sys.executable, "-m", "dsx.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


@pytest.mark.integration
def test_build_bakes_the_members_in_and_run_and_the_built_module_reduce_them(tmp_path):
    source = write_project(tmp_path)
    with OpenAIServer(reply) as server:
        built = cli("build", str(source), server=server, cwd=tmp_path)
        assert built.returncode == 0, built.stderr
        assert "Ensemble: member 3/3 with LabeledFewShot" in built.stderr + built.stdout
        state = read_state(tmp_path / "build" / "qa.state.json")
        selector = state.selector
        assert selector["kind"] == "ensemble" and selector["reducer"] == "majority"
        assert len(selector["members"]) == 3 and selector["size"] is None
        demos = member_demos(selector)
        assert len(set(demos)) > 1  # seeds seed, seed+1, ...: the members differ
        # the program's own predictors hold the first member (a reader ignoring the selector)
        assert state.predictors["self"]["demos"] == selector["members"][0]["self"]["demos"]

        before = len(server.requests)
        run = cli(
            "run",
            "qa.dsx",
            "-i",
            "question=z",
            "--state",
            "build/qa.state.json",
            server=server,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        assert expected(selector) in run.stdout
        sent = [r.body["messages"] for r in server.requests[before:] if r.body]
        assert len(sent) == 3  # every member ran, each with its own demos
        assert [parity(m) for m in sent] == ["even" if int(a) % 2 == 0 else "odd" for a in demos]

        lm = dsx.LM("openai/test", api_base=server.api_base, api_key="x", cache=False)
        spec = importlib.util.spec_from_file_location("qa_ens", tmp_path / "build" / "qa.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        program = module.program()
        program.set_lm(lm)  # the members' predictors too
        assert program(question="y").answer == expected(selector)

        fresh = dsx.Predict("question -> answer")
        fresh.load(tmp_path / "build" / "qa.state.json")
        assert type(fresh).__name__ == "EnsemblePredict"
        members = fresh._dsx_ensemble.ensembled.programs
        assert [m.demos[0]["answer"] for m in members] == demos
        # saving the loaded program writes the same selector back
        assert make_state(fresh).selector == selector


def test_ensemble_without_members_in_a_build_says_how_to_name_them(tmp_path):
    dsx.configure(lm=FunctionLM(lambda messages: {"answer": "x"}))
    with pytest.raises(BuildError, match=re.escape("members of one: Ensemble(members = 3")):
        build(write_project(tmp_path, "Ensemble()"), log=lambda m: None)


def test_a_reducer_must_be_registered_and_a_function_is_not_state():
    with pytest.raises(ValueError, match="unknown reducer 'os:system'; the registered reducers"):
        Ensemble(members=2, reducer="os:system")
    train = [dsx.Example(question=q, answer=a).with_inputs("question") for q, a in ROWS]
    with pytest.raises(dsx.DsxError, match="needs reducer = a registered reducer's name"):
        Ensemble(members=2, reduce_fn=dsx.majority).compile(
            dsx.Predict("question -> answer"), trainset=train
        )
    # the Python form (a list of programs) is not learned state
    listed = Ensemble(reduce_fn=dsx.majority).compile([dsx.Predict("question -> answer")] * 2)
    assert dump_selector(listed) is None


def saved(**changes):
    member = {"self": {"demos": [{"question": "a", "answer": "1"}], "lm": None}}
    data = {"kind": "ensemble", "reducer": "majority", "size": None, "seed": 0}
    data["members"] = [member, member]
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reducer": "os:system"}, "unknown reducer 'os:system'; this dsx has 'majority'"),
        ({"reduce_fn": "os:system"}, "'reduce_fn' is not part of an ensemble selector"),
        ({"members": []}, "members must be a non-empty list"),
        ({"size": 0}, "size must be null or a whole number >= 1"),
        (
            {"members": [{"self": {"demos": [], "lm": {"model": "m", "api_base": "http://e"}}}]},
            "members[0].self",
        ),
        ({"members": [{"other.predict": {"demos": []}}]}, "members[0]: The saved state does"),
    ],
)
def test_a_tampered_ensemble_is_refused_and_changes_nothing(change, message):
    program = dsx.Predict("question -> answer")
    with pytest.raises(StateError, match=re.escape(message)):
        prepare_selector(program, saved(**change), "qa")
    assert type(program) is dsx.Predict
    state = parse_state(
        {"format": "dsx-state", "schema_version": 2, "state": {"self": {"demos": [{"q": 1}]}}}
        | {"selector": saved(**change)}
    )
    with pytest.raises(StateError, match=re.escape(message)):
        load_into(program, state)
    assert type(program) is dsx.Predict and program.demos == []


def test_a_build_cache_entry_with_a_redirected_member_lm_is_rejected(tmp_path):
    from dsx import ir
    from dsx.compiler.build import CacheEntryRejected, read_cache_entry, write_cache_entry

    write_cache_entry(tmp_path / "good.json", "k1", ir.Learned(selector=saved()))
    assert read_cache_entry(tmp_path / "good.json", "k1").selector == saved()
    evil = {"self": {"demos": [], "lm": {"model": "m", "api_base": "http://evil.example"}}}
    write_cache_entry(tmp_path / "bad.json", "k1", ir.Learned(selector=saved(members=[evil])))
    with pytest.raises(CacheEntryRejected, match=r"members\[0\]\.self"):
        read_cache_entry(tmp_path / "bad.json", "k1")
