"""Callbacks: DSPy's hook names, order, call ids, isolation of failures, concurrency."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import dsx
from dsx.runtime.callbacks import BaseCallback, active_call_id
from dsx.testing import DummyLM, FunctionLM


class Recorder(BaseCallback):
    """Records (hook, call_id, parent id, payload) for every hook."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def _add(self, **entry: Any) -> None:
        with self._lock:
            self.calls.append(entry)

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_") and name.endswith("_start"):
            return lambda call_id, instance, inputs: self._add(
                hook=name,
                call_id=call_id,
                parent=active_call_id(),
                instance=instance,
                inputs=inputs,
            )
        if name.startswith("on_") and name.endswith("_end"):
            return lambda call_id, outputs, exception=None: self._add(
                hook=name, call_id=call_id, outputs=outputs, exception=exception
            )
        return super().__getattribute__(name)

    def hooks(self) -> list[str]:
        return [c["hook"] for c in self.calls]


COT_ORDER = [
    "on_module_start",
    "on_module_start",
    "on_adapter_format_start",
    "on_adapter_format_end",
    "on_lm_start",
    "on_lm_end",
    "on_adapter_parse_start",
    "on_adapter_parse_end",
    "on_module_end",
    "on_module_end",
]


def _lm() -> DummyLM:
    return DummyLM([{"reasoning": "r", "answer": "42"}] * 10)


def test_chain_of_thought_fires_dspys_hooks_in_order():
    rec = Recorder()
    dsx.configure(lm=_lm(), callbacks=[rec])
    cot = dsx.ChainOfThought("question -> answer")
    assert cot(question="q").answer == "42"
    assert rec.hooks() == COT_ORDER
    start = rec.calls[0]
    assert start["instance"] is cot
    assert start["inputs"] == {"args": (), "kwargs": {"question": "q"}}
    assert rec.calls[2]["inputs"]["inputs"] == {"question": "q"}
    assert rec.calls[4]["inputs"]["messages"][0]["role"] == "system"
    assert rec.calls[5]["outputs"] == [rec.calls[6]["inputs"]["completion"]]
    assert rec.calls[7]["outputs"] == {"reasoning": "r", "answer": "42"}
    assert rec.calls[-1]["outputs"].answer == "42"


def test_async_path_fires_the_same_hooks():
    rec = Recorder()

    async def main() -> Any:
        with dsx.context(lm=_lm(), callbacks=[rec]):
            return await dsx.ChainOfThought("question -> answer").acall(question="q")

    assert asyncio.run(main()).answer == "42"
    assert rec.hooks() == COT_ORDER


def test_call_ids_pair_up_and_children_see_their_parent():
    rec = Recorder()
    dsx.configure(lm=_lm(), callbacks=[rec])
    dsx.ChainOfThought("question -> answer")(question="q")
    starts = [c for c in rec.calls if c["hook"].endswith("_start")]
    ends = [c for c in rec.calls if c["hook"].endswith("_end")]
    assert sorted(c["call_id"] for c in starts) == sorted(c["call_id"] for c in ends)
    outer, inner, fmt, lm, parse = starts
    assert outer["parent"] is None
    assert inner["parent"] == outer["call_id"]
    assert fmt["parent"] == lm["parent"] == parse["parent"] == inner["call_id"]
    assert active_call_id() is None


def test_instance_callbacks_only_fire_for_that_instance():
    rec = Recorder()
    dsx.configure(lm=_lm())
    mine = dsx.Predict("question -> answer", callbacks=[rec])
    other = dsx.Predict("question -> answer")
    other(question="q")
    assert rec.calls == []
    mine(question="q")
    assert rec.hooks()[0] == "on_module_start" and rec.hooks()[-1] == "on_module_end"
    # the module's own callbacks see only the module (the LM and adapter have their own)
    assert set(rec.hooks()) == {"on_module_start", "on_module_end"}


def test_lm_callbacks_and_appending_to_the_attribute():
    rec = Recorder()
    lm = FunctionLM(lambda messages: "<<< answer >>>\nok\n\n<<< end >>>", callbacks=[rec])
    dsx.Predict("question -> answer", lm=lm)(question="q")
    assert rec.hooks() == ["on_lm_start", "on_lm_end"]
    rec2 = Recorder()
    program = dsx.Predict("question -> answer", lm=lm)
    program.callbacks.append(rec2)
    program(question="q")
    assert rec2.hooks() == ["on_module_start", "on_module_end"]
    assert "callbacks" not in lm.kwargs  # not sent to the provider as a parameter


def test_a_failing_callback_is_logged_and_never_breaks_the_program(caplog):
    class Broken(BaseCallback):
        def on_module_start(self, call_id, instance, inputs):
            raise RuntimeError("start broke")

        def on_lm_end(self, call_id, outputs, exception=None):
            raise ValueError("end broke")

    rec = Recorder()
    dsx.configure(lm=_lm(), callbacks=[Broken(), rec])
    with caplog.at_level(logging.WARNING, logger="dsx.callbacks"):
        assert dsx.ChainOfThought("question -> answer")(question="q").answer == "42"
    assert rec.hooks() == COT_ORDER  # the later callback still ran every time
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "on_module_start" in messages and "on_lm_end" in messages
    assert any(r.exc_info and "start broke" in str(r.exc_info[1]) for r in caplog.records)


def test_callback_without_some_hooks_is_fine():
    class OnlyLM:
        def __init__(self) -> None:
            self.n = 0

        def on_lm_start(self, call_id, instance, inputs):
            self.n += 1

    cb = OnlyLM()
    dsx.configure(lm=_lm(), callbacks=[cb])
    dsx.ChainOfThought("question -> answer")(question="q")
    assert cb.n == 1


def test_the_programs_exception_reaches_the_end_hook_and_is_raised():
    rec = Recorder()

    class Boom(dsx.Module):
        def forward(self, x: int) -> int:
            raise KeyError("no")

    program = Boom(callbacks=[rec])
    with pytest.raises(KeyError) as info:
        program(x=1)
    assert rec.hooks() == ["on_module_start", "on_module_end"]
    assert rec.calls[0]["inputs"] == {"args": (), "kwargs": {"x": 1}}
    assert rec.calls[1]["exception"] is info.value
    assert rec.calls[1]["outputs"] is None


def test_cancellation_reaches_the_end_hook():
    rec = Recorder()
    started = asyncio.Event()

    class Waits(dsx.Module):
        async def aforward(self) -> None:
            started.set()
            await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(Waits(callbacks=[rec]).acall())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert rec.hooks() == ["on_module_start", "on_module_end"]
    assert isinstance(rec.calls[1]["exception"], asyncio.CancelledError)


def test_tools_fire_tool_hooks_sync_and_async():
    rec = Recorder()

    def search(query: str) -> str:
        """Look it up."""
        return f"found {query}"

    async def asearch(query: str) -> str:
        return f"async {query}"

    dsx.configure(callbacks=[rec])
    tool = dsx.Tool(search)
    assert tool(query="a") == "found a"
    assert asyncio.run(dsx.Tool(asearch).acall(query="b")) == "async b"
    assert rec.hooks() == ["on_tool_start", "on_tool_end"] * 2
    assert rec.calls[0]["instance"] is tool
    assert rec.calls[0]["inputs"] == {"kwargs": {"query": "a"}}
    assert rec.calls[1]["outputs"] == "found a"


def test_react_reports_its_tool_calls():
    rec = Recorder()

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    lm = DummyLM(
        [
            {"next_thought": "add", "next_tool_name": "add", "next_tool_args": {"a": 1, "b": 2}},
            {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "3", "answer": "3"},
        ]
    )
    dsx.configure(lm=lm, callbacks=[rec])
    assert dsx.ReAct("question -> answer", tools=[add])(question="1+2?").answer == "3"
    tools = [c for c in rec.calls if c["hook"] == "on_tool_start"]
    assert [c["instance"].name for c in tools] == ["add"]
    assert [c["outputs"] for c in rec.calls if c["hook"] == "on_tool_end"] == [3]


def test_evaluate_fires_evaluate_hooks_around_the_programs():
    rec = Recorder()
    dsx.configure(lm=DummyLM([{"answer": "42"}] * 10), callbacks=[rec])
    dev = [dsx.Example(question=f"q{i}", answer="42").with_inputs("question") for i in range(3)]
    evaluate = dsx.Evaluate(devset=dev, metric=dsx.exact_match(), display_progress=False)
    result = evaluate(dsx.Predict("question -> answer"))
    assert rec.hooks()[0] == "on_evaluate_start" and rec.hooks()[-1] == "on_evaluate_end"
    assert rec.calls[-1]["outputs"] is result
    evaluate_id = rec.calls[0]["call_id"]
    modules = [c for c in rec.calls if c["hook"] == "on_module_start"]
    assert len(modules) == 3
    # the examples ran on the Evaluate engine; their calls are still children of it
    assert all(c["parent"] == evaluate_id for c in modules)


def _check_trees(rec: Recorder, roots: int) -> None:
    starts = {c["call_id"]: c for c in rec.calls if c["hook"].endswith("_start")}
    ends = {c["call_id"]: c for c in rec.calls if c["hook"].endswith("_end")}
    assert starts.keys() == ends.keys()
    top = [c for c in starts.values() if c["parent"] is None]
    assert len(top) == roots
    for root in top:
        # each root's subtree is one whole ChainOfThought call: 5 starts, and its own question
        subtree = [root]
        frontier = [root["call_id"]]
        while frontier:
            kids = [c for c in starts.values() if c["parent"] in frontier]
            subtree += kids
            frontier = [c["call_id"] for c in kids]
        assert len(subtree) == 5
        question = root["inputs"]["kwargs"]["question"]
        lm_call = next(c for c in subtree if c["hook"] == "on_lm_start")
        assert question in lm_call["inputs"]["messages"][-1]["content"]
        assert ends[root["call_id"]]["outputs"].answer == f"a-{question}"


def _echo_lm() -> FunctionLM:
    def reply(messages: list[dict[str, Any]]) -> str:
        question = messages[-1]["content"].split("<<< question >>>\n")[1].split("\n")[0]
        return f"<<< reasoning >>>\nr\n\n<<< answer >>>\na-{question}\n\n<<< end >>>"

    return FunctionLM(reply)


def test_concurrent_tasks_keep_their_call_trees_apart():
    rec = Recorder()
    cot = dsx.ChainOfThought("question -> answer")

    async def one(i: int) -> Any:
        await asyncio.sleep(0.001 * (i % 3))
        return await cot.acall(question=f"q{i}")

    async def main() -> list[Any]:
        with dsx.context(lm=_echo_lm(), callbacks=[rec]):
            return await asyncio.gather(*(one(i) for i in range(20)))

    results = asyncio.run(main())
    assert [r.answer for r in results] == [f"a-q{i}" for i in range(20)]
    _check_trees(rec, roots=20)


def test_threads_keep_their_call_trees_apart():
    rec = Recorder()
    dsx.configure(lm=_echo_lm(), callbacks=[rec])
    cot = dsx.ChainOfThought("question -> answer")
    out = cot.batch([{"question": f"q{i}"} for i in range(12)], num_threads=4)
    assert [r.answer for r in out] == [f"a-q{i}" for i in range(12)]
    _check_trees(rec, roots=12)


def test_copies_of_a_program_share_its_callbacks():
    rec = Recorder()  # holds a lock: it could not be deep-copied
    dsx.configure(lm=_lm())
    program = dsx.ChainOfThought("question -> answer", callbacks=[rec])
    copy = program.deepcopy()
    copy.reset_copy()
    copy(question="q")
    assert rec.hooks() == ["on_module_start", "on_module_end"]
    assert (
        copy.predict.callbacks == [rec] and copy.predict.callbacks is not program.predict.callbacks
    )


def test_code_agents_fire_interpreter_execute_hooks():
    from dsx.testing.fake_sandbox import FakeSandbox, fake_result

    rec = Recorder()
    dsx.configure(lm=DummyLM([{"reasoning": "r", "code": "SUBMIT(answer=7)"}]), callbacks=[rec])
    program = dsx.ProgramOfThought(
        "question -> answer: int",
        sandbox=lambda **o: FakeSandbox([fake_result(final={"answer": 7})], **o),
    )
    assert program(question="q").answer == 7
    runs = [c for c in rec.calls if c["hook"].startswith("on_interpreter_execute")]
    assert [c["hook"] for c in runs] == [
        "on_interpreter_execute_start",
        "on_interpreter_execute_end",
    ]
    assert runs[0]["inputs"] == {"code": "SUBMIT(answer=7)"}
    assert runs[1]["outputs"].ok
