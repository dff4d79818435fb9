"""Training data for fine-tuning from traces: per predictor, multitask, demos, adapters."""

from __future__ import annotations

import json
from typing import Any

import pytest
from teleprompt_helpers import field_of

import dsx
from dsx.teleprompt import BootstrapFinetune, OptimizerSettingError
from dsx.teleprompt.finetune_data import (
    EXPORT_FORMATS,
    TraceRecord,
    build_finetune_data,
    call_messages,
    data_hash,
    read_jsonl,
    write_jsonl,
)
from dsx.testing import FunctionLM


class TwoStep(dsx.Module):
    def __init__(self, lm_a: Any = None, lm_b: Any = None) -> None:
        super().__init__()
        self.draft = dsx.Predict("question -> draft", lm=lm_a)
        self.answer = dsx.Predict("question, draft -> answer", lm=lm_b)

    def forward(self, question: str) -> dsx.Prediction:
        draft = self.draft(question=question).draft
        return self.answer(question=question, draft=draft)


def _records(program: TwoStep, questions: list[str], passed: list[bool]) -> list[TraceRecord]:
    names = {id(p): n for n, p in program.named_predictors()}
    out = []
    for i, (q, ok) in enumerate(zip(questions, passed, strict=True)):
        trace: list[Any] = []
        with dsx.context(trace=trace):
            program(question=q)
        steps = [(names[id(p)], dict(inputs), outputs) for p, inputs, outputs in trace]
        out.append(TraceRecord(i, 1.0 if ok else 0.0, ok, steps))
    return out


def _lm() -> FunctionLM:
    def respond(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        return {"answer": "A"} if field_of(messages, "draft") else {"draft": "D"}

    return FunctionLM(respond)


def test_multitask_one_set_per_lm_and_failed_runs_left_out() -> None:
    lm = _lm()
    program = TwoStep(lm, lm)
    records = _records(program, ["q1", "q2", "q3"], [True, False, True])
    [data] = build_finetune_data(program, records)
    assert data.predictors == ["draft", "answer"]
    assert len(data.examples) == 4  # two passing runs, two calls each
    users = [m["messages"][-2]["content"] for m in data.examples]
    assert not any("q2" in u for u in users)
    for example in data.examples:
        assert example["messages"][0]["role"] == "system"
        assert example["messages"][-1]["role"] == "assistant"


def test_per_predictor_sets_match_calls_by_predictor_path() -> None:
    lm = _lm()
    program = TwoStep(lm, lm)
    records = _records(program, ["q1", "q2"], [True, True])
    sets = build_finetune_data(program, records, multitask=False)
    assert [d.predictors for d in sets] == [["draft"], ["answer"]]
    draft, answer = sets
    assert all("<<< draft >>>" in e["messages"][-1]["content"] for e in draft.examples)
    assert all("<<< answer >>>" in e["messages"][-1]["content"] for e in answer.examples)


def test_distinct_lms_get_distinct_sets_even_in_multitask() -> None:
    program = TwoStep(_lm(), _lm())
    records = _records(program, ["q1"], [True])
    sets = build_finetune_data(program, records, multitask=True)
    assert [d.lm_key for d in sets] == [0, 1]
    assert [len(d.examples) for d in sets] == [1, 1]


def test_messages_are_what_the_predictor_sends_at_inference() -> None:
    lm = _lm()
    program = TwoStep(lm, lm)
    program.draft.demos = [dsx.Example(question="q0", draft="D0").with_inputs("question")]
    records = _records(program, ["q1"], [True])
    [data] = build_finetune_data(program, records, multitask=False)[:1]
    [example] = data.examples
    sent = program.draft.render(question="q1")
    assert example["messages"][:-1] == sent
    assert len(sent) == 4  # system, the demo's two turns, the request
    [bare] = build_finetune_data(program, records, multitask=False, exclude_demos=True)[0].examples
    assert len(bare["messages"]) == 3
    assert bare["messages"][-1] == example["messages"][-1]


def test_adapter_formats() -> None:
    lm = _lm()
    program = TwoStep(lm, lm)
    records = _records(program, ["q1"], [True])
    [chat] = build_finetune_data(program, records, multitask=False)[:1]
    [json_data] = build_finetune_data(program, records, multitask=False, adapter=dsx.JSONAdapter())[
        :1
    ]
    assert chat.examples[0]["messages"][-1]["content"].startswith("<<< draft >>>")
    assert json.loads(json_data.examples[0]["messages"][-1]["content"]) == {"draft": "D"}
    with dsx.context(adapter=dsx.JSONAdapter()):  # the adapter configured for inference
        [ctx] = build_finetune_data(program, records, multitask=False)[:1]
    assert ctx.examples == json_data.examples
    per = build_finetune_data(
        program,
        records,
        multitask=False,
        adapter=lambda pred: dsx.JSONAdapter() if pred is program.answer else None,
    )
    assert per[0].examples == chat.examples
    assert json.loads(per[1].examples[0]["messages"][-1]["content"]) == {"answer": "A"}


def test_deterministic_order_hash_and_jsonl_round_trip(tmp_path) -> None:
    lm = _lm()
    program = TwoStep(lm, lm)
    records = _records(program, [f"q{i}" for i in range(12)], [True] * 12)
    a = build_finetune_data(program, records, seed=3)[0]
    b = build_finetune_data(program, records, seed=3)[0]
    c = build_finetune_data(program, records, seed=4)[0]
    assert a.examples == b.examples and a.hash == b.hash
    assert sorted(map(json.dumps, a.examples)) == sorted(map(json.dumps, c.examples))
    assert a.examples != c.examples  # shuffled with the seed
    path = write_jsonl(a.examples, tmp_path / "train.jsonl")
    lines = path.read_text().splitlines()
    assert len(lines) == len(a.examples)
    assert all(set(json.loads(line)) == {"messages"} for line in lines)
    assert read_jsonl(path) == a.examples
    assert data_hash(read_jsonl(path)) == a.hash


def test_calls_of_predictors_outside_the_program_are_ignored() -> None:
    lm = _lm()
    program = TwoStep(lm, lm)
    judge = dsx.Predict("question -> draft", lm=lm)
    records = _records(program, ["q1"], [True])
    records[0].steps.append(("judge", {"question": "q1"}, judge(question="q1")))
    [data] = build_finetune_data(program, records)
    assert len(data.examples) == 2


def test_call_messages_takes_prediction_or_mapping() -> None:
    pred = dsx.Predict("question -> answer", lm=_lm())
    a = call_messages(pred, {"question": "x"}, dsx.Prediction(answer="y"))
    b = call_messages(pred, {"question": "x"}, {"answer": "y"})
    assert a == b


def test_export_in_each_provider_layout(tmp_path) -> None:
    example = {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
        ]
    }
    rows = {}
    for fmt in EXPORT_FORMATS:
        path = write_jsonl([example], tmp_path / f"{fmt}.jsonl", fmt)
        [line] = path.read_text().splitlines()
        rows[fmt] = json.loads(line)
    assert rows["openai"] == example
    assert rows["gemini"] == {
        "systemInstruction": {"role": "system", "parts": [{"text": "Answer briefly."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "q1"}]},
            {"role": "model", "parts": [{"text": "a1"}]},
        ],
    }
    assert rows["anthropic"] == {
        "system": "Answer briefly.",
        "messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}],
    }
    assert rows["prompt_completion"] == {
        "prompt": "system: Answer briefly.\n\nuser: q1\n\nassistant: ",
        "completion": "a1",
    }
    with pytest.raises(ValueError, match="use one of openai, gemini"):
        write_jsonl([example], tmp_path / "x.jsonl", "csv")
    with pytest.raises(OptimizerSettingError, match="export_format='csv'"):
        BootstrapFinetune(export_format="csv")
