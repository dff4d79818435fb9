from __future__ import annotations

import json
import threading

import pytest

import dsx
from dsx import StateError
from dsx.testing import DummyLM, FunctionLM


class RAG(dsx.Module):
    def __init__(self):
        self.rewrite = dsx.Predict("question -> search_query")
        self.answer = dsx.ChainOfThought("context, question -> answer")
        self.helpers = [dsx.Predict("a -> b")]

    def forward(self, question):
        query = self.rewrite(question=question).search_query
        return self.answer(context=f"ctx for {query}", question=question)


def scripted(n=1):
    return FunctionLM(
        lambda messages: (
            {"reasoning": "r", "answer": "A"}
            if "<<< answer >>>" in messages[0]["content"]
            else {"search_query": "sq"}
        )
    )


def test_named_predictors_and_sub_modules():
    rag = RAG()
    names = [n for n, _ in rag.named_predictors()]
    assert names == ["rewrite", "helpers[0]", "answer.predict"]
    subs = [n for n, _ in rag.named_sub_modules()]
    assert subs[0] == "self" and "answer" in subs and "answer.predict" in subs
    assert dsx.Predict("a -> b").named_predictors()[0][0] == "self"


def test_composite_module_runs_and_sums_usage_across_calls():
    lm = scripted()
    rag = RAG()
    rag.set_lm(lm)
    pred = rag(question="q")
    assert pred.answer == "A" and pred.reasoning == "r"
    assert lm.calls == 2
    total = sum(h["usage"]["total_tokens"] for h in lm.history)
    assert pred.get_lm_usage()["function"]["total_tokens"] == total
    assert rag.get_lm() is lm


def test_get_lm_with_different_lms_is_an_error():
    rag = RAG()
    rag.rewrite.lm = DummyLM([])
    with pytest.raises(dsx.DsxError, match="different LMs"):
        rag.get_lm()


def test_deepcopy_shares_lms_and_reset_copy_clears_state():
    lm = DummyLM([])
    rag = RAG()
    rag.set_lm(lm)
    rag.rewrite.demos = [dsx.Example(question="q", search_query="s")]
    copy = rag.deepcopy()
    assert copy.rewrite is not rag.rewrite and copy.rewrite.lm is lm
    assert copy.rewrite.demos == rag.rewrite.demos and copy.rewrite.demos is not rag.rewrite.demos
    fresh = rag.reset_copy()
    assert fresh.rewrite.demos == [] and fresh.rewrite.lm is None
    assert rag.rewrite.demos  # original untouched


def test_state_round_trip_through_json(tmp_path):
    rag = RAG()
    rag.rewrite.demos = [dsx.Example(question="q1", search_query="s1").with_inputs("question")]
    rag.answer.predict.signature = rag.answer.predict.signature.with_instructions("Be brief.")
    rag.answer.predict.lm = DummyLM([], temperature=0.2)
    path = tmp_path / "rag.json"
    rag.save(path)
    data = json.loads(path.read_text())
    assert data["dsx_version"] == dsx.__version__ and data["schema_version"] == 2
    assert data["format"] == "dsx-state" and data["program"] == "RAG"
    assert data["state"]["answer.predict"]["lm"]["temperature"] == 0.2

    other = RAG()
    other.answer.predict.lm = DummyLM([])
    other.load(path)
    assert other.rewrite.demos[0].search_query == "s1"
    assert other.rewrite.demos[0].input_keys == frozenset({"question"})
    assert other.answer.predict.signature.instructions == "Be brief."
    assert other.answer.predict.lm.kwargs["temperature"] == 0.2
    assert other.dump_state() == rag.dump_state()


def test_loading_state_that_does_not_fit_names_the_predictor(tmp_path):
    state = RAG().dump_state()
    missing = dict(state)
    del missing["rewrite"]
    with pytest.raises(StateError, match="no state for predictor\\(s\\) 'rewrite'"):
        RAG().load_state(missing)
    extra = {**state, "ghost": state["rewrite"]}
    with pytest.raises(StateError, match="unknown predictor\\(s\\) 'ghost'"):
        RAG().load_state(extra)
    changed = json.loads(json.dumps(state))
    changed["rewrite"]["signature"]["fields"][0]["name"] = "query"
    with pytest.raises(StateError, match="Predictor 'rewrite'.*fields"):
        RAG().load_state(changed)


def test_load_rejects_other_schema_versions_and_garbage(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"schema_version": 99, "dsx_version": "9", "state": {}}))
    with pytest.raises(StateError, match="schema version 99"):
        RAG().load(path)
    path.write_text("{not json")
    with pytest.raises(StateError, match="not a readable dsx state file"):
        RAG().load(path)
    with pytest.raises(StateError, match="No saved state"):
        RAG().load(tmp_path / "missing.json")


def test_failed_save_keeps_the_previous_file(tmp_path):
    class Unprintable:
        def __str__(self):
            raise RuntimeError("cannot render")

    path = tmp_path / "rag.json"
    rag = RAG()
    rag.save(path)
    before = path.read_text()
    rag.rewrite.demos = [dsx.Example(question=Unprintable(), search_query="s")]
    with pytest.raises(RuntimeError, match="cannot render"):
        rag.save(path)
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rag.json"]


def test_whole_program_pickle_needs_explicit_opt_in(tmp_path):
    rag = RAG()
    with pytest.raises(dsx.DsxError, match="allow_pickle=True"):
        rag.save(tmp_path / "prog", save_program=True)
    rag.save(tmp_path / "prog", save_program=True, allow_pickle=True)
    with pytest.raises(dsx.DsxError, match="allow_pickle=True"):
        dsx.load(tmp_path / "prog")
    loaded = dsx.load(tmp_path / "prog", allow_pickle=True)
    assert isinstance(loaded, RAG) and [n for n, _ in loaded.named_predictors()] == [
        n for n, _ in rag.named_predictors()
    ]


def test_batch_runs_concurrently_in_order_and_reports_failures():
    # The first two examples wait for each other at a barrier: run one after the other, the
    # barrier breaks (after its timeout) and both fail, so no sleep decides the outcome.
    meet = threading.Barrier(2, timeout=30)

    class Slow(dsx.Module):
        def __init__(self, meet_first_two: bool = False):
            super().__init__()
            self.meet_first_two = meet_first_two

        def forward(self, x):
            if self.meet_first_two and x in (0, 1):
                meet.wait()
            if x == 3:
                raise ValueError("bad three")
            return dsx.Prediction(y=x * 2)

    examples = [dsx.Example(x=i).with_inputs("x") for i in range(8)]
    results, failed, errors = Slow(meet_first_two=True).batch(
        examples, num_threads=4, return_failed_examples=True
    )
    assert [r.y if r else None for r in results] == [0, 2, 4, None, 8, 10, 12, 14]
    assert failed == [examples[3]] and isinstance(errors[0], ValueError)

    with pytest.raises(dsx.BatchError, match="max_errors=1.*bad three"):
        Slow().batch(examples, max_errors=1)


async def test_module_with_only_aforward_runs_sync_and_async():
    class Async(dsx.Module):
        def __init__(self):
            self.p = dsx.Predict("q -> a")

        async def aforward(self, q):
            return await self.p.acall(q=q)

    prog = Async()
    prog.set_lm(DummyLM([{"a": "1"}, {"a": "2"}]))
    assert (await prog.acall(q="x")).a == "1"
    with pytest.raises(dsx.DsxError, match="acall"):
        prog(q="x")  # a running loop: must use acall


def test_module_with_only_aforward_runs_sync_outside_a_loop():
    class Async(dsx.Module):
        async def aforward(self, q):
            return dsx.Prediction(a=q.upper())

    assert Async()(q="x").a == "X"


def test_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="must define forward"):
        dsx.Module()()


def test_a_bare_predictor_saves_and_loads_in_the_program_format(tmp_path):
    predict = dsx.Predict("question -> answer")
    predict.demos = [dsx.Example(question="q", answer="a")]
    predict.save(tmp_path / "p.json")
    assert list(json.loads((tmp_path / "p.json").read_text())["state"]) == ["self"]
    other = dsx.Predict("question -> answer")
    other.load(tmp_path / "p.json")
    assert other.demos[0].answer == "a"
