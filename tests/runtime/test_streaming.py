"""dsx.streamify: fields streamed through the local server's SSE, with both adapters."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dsx
from dsx.errors import AdapterParseError, LMResponseError
from dsx.runtime._stream_parse import fields_so_far
from dsx.runtime.adapters.chat import ChatAdapter
from dsx.runtime.adapters.json_adapter import JSONAdapter
from dsx.runtime.streaming import (
    StatusMessage,
    StatusMessageProvider,
    StreamListener,
    StreamResponse,
    streamify,
)
from dsx.testing import DummyLM, Fault, OpenAIServer

REASONING = "The sky scatters short <<< wavelengths more; so it looks blue."
ANSWER = 'Rayleigh "scattering" — blue\nlight wins'
CHAT_REPLY = f"<<< reasoning >>>\n{REASONING}\n\n<<< answer >>>\n{ANSWER}\n\n<<< end >>>"
JSON_REPLY = json.dumps({"reasoning": REASONING, "answer": ANSWER}, ensure_ascii=True)


def _lm(srv: OpenAIServer, **kwargs: Any) -> dsx.LM:
    kwargs.setdefault("cache", False)
    return dsx.LM("openai/dsx-test", api_base=srv.api_base, api_key="x", **kwargs)


def _collect(stream: Any, **inputs: Any) -> list[Any]:
    async def main() -> list[Any]:
        return [item async for item in stream(**inputs)]

    return asyncio.run(main())


def _pieces(items: list[Any], field: str) -> list[StreamResponse]:
    return [i for i in items if isinstance(i, StreamResponse) and i.signature_field_name == field]


def _check_field(items: list[Any], field: str, value: str, *, min_chunks: int = 2) -> None:
    pieces = _pieces(items, field)
    assert "".join(p.chunk for p in pieces) == value
    assert [p.is_last_chunk for p in pieces] == [False] * (len(pieces) - 1) + [True]
    assert len(pieces) >= min_chunks


@pytest.mark.parametrize(
    ("adapter", "reply"), [(ChatAdapter(), CHAT_REPLY), (JSONAdapter(), JSON_REPLY)]
)
def test_fields_stream_through_sse_with_both_adapters(adapter, reply):
    # The server sends one word per SSE chunk: boundaries fall inside the marker lines
    # ("<<<" / " answer" / " >>>") and inside JSON strings and escapes.
    with OpenAIServer(script=[reply]) as srv:
        dsx.configure(lm=_lm(srv), adapter=adapter)
        program = dsx.ChainOfThought("question -> answer")
        stream = streamify(
            program,
            stream_listeners=[StreamListener("answer"), StreamListener("reasoning")],
        )
        items = _collect(stream, question="Why is the sky blue?")
        assert srv.requests[0].body["stream"] is True
    final = items[-1]
    assert isinstance(final, dsx.Prediction)
    assert final.answer == ANSWER and final.reasoning == REASONING
    _check_field(items, "reasoning", REASONING, min_chunks=5)
    _check_field(items, "answer", ANSWER, min_chunks=3)
    assert {p.predict_name for p in _pieces(items, "answer")} == {"predict"}
    # reasoning comes first in the reply, so it is complete before the answer starts
    kinds = [i.signature_field_name for i in items if isinstance(i, StreamResponse)]
    assert kinds.index("answer") > max(i for i, k in enumerate(kinds) if k == "reasoning")


def test_a_cache_hit_is_replayed_as_one_chunk():
    question = f"cached {uuid.uuid4().hex}"
    with OpenAIServer(script=[CHAT_REPLY]) as srv:
        dsx.configure(lm=_lm(srv, cache=True))
        stream = streamify(
            dsx.ChainOfThought("question -> answer"), stream_listeners=[StreamListener("answer")]
        )
        first = _collect(stream, question=question)
        second = _collect(stream, question=question)  # the script is used up: a hit or a 500
        assert len(srv.requests) == 1
    _check_field(first, "answer", ANSWER, min_chunks=3)
    assert _pieces(second, "answer") == [StreamResponse("predict", "answer", ANSWER, True)]
    assert second[-1].answer == ANSWER


def test_an_lm_that_does_not_stream_gives_each_field_at_once():
    dsx.configure(lm=DummyLM([{"reasoning": "r", "answer": "forty two"}]))
    stream = streamify(
        dsx.ChainOfThought("question -> answer"),
        stream_listeners=[StreamListener("reasoning"), StreamListener("answer")],
        async_streaming=False,
    )
    items = list(stream(question="q"))
    assert [i for i in items if isinstance(i, StreamResponse)] == [
        StreamResponse("predict", "reasoning", "r", True),
        StreamResponse("predict", "answer", "forty two", True),
    ]
    assert items[-1].answer == "forty two"


def test_a_stream_cut_off_midway_raises_and_is_not_retried():
    # The truncated stream echoes the prompt, whose first line is a marker line, so some
    # text reaches the listener before the cut; a retry would show it twice.
    with OpenAIServer(faults=[Fault.truncated_stream(after_chunks=6)]) as srv:
        dsx.configure(lm=_lm(srv, num_retries=3))
        program = dsx.Predict("question -> answer")
        stream = streamify(program, stream_listeners=[StreamListener("answer")])
        seen: list[Any] = []

        async def main() -> None:
            async for item in stream(question="What is the answer?"):
                seen.append(item)

        with pytest.raises(LMResponseError, match="broke off|ended before"):
            asyncio.run(main())
        assert len(srv.requests) == 1
    assert not any(isinstance(i, dsx.Prediction) for i in seen)


def test_the_consumer_stopping_early_cancels_the_program():
    words = " ".join(f"w{i}" for i in range(200))
    reply = f"<<< answer >>>\n{words}\n\n<<< end >>>"
    with OpenAIServer(script=[reply, CHAT_REPLY], chunk_interval=0.02) as srv:
        dsx.configure(lm=_lm(srv))
        program = dsx.Predict("question -> answer")
        stream = streamify(program, stream_listeners=[StreamListener("answer")])

        async def main() -> tuple[list[Any], int]:
            got = []
            agen = stream(question="long")
            async for item in agen:
                got.append(item)
                if len(got) == 3:
                    break
            await agen.aclose()
            return got, len(asyncio.all_tasks())

        got, tasks = asyncio.run(main())
        assert len(got) == 3 and tasks == 1  # only main() itself is left
        # the server is free for the next run, which completes
        assert (
            _collect(
                streamify(
                    dsx.ChainOfThought("question -> answer"),
                    stream_listeners=[StreamListener("answer")],
                ),
                question="again",
            )[-1].answer
            == ANSWER
        )


def test_a_listener_for_a_predictor_that_never_runs_yields_nothing():
    class Branch(dsx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.short = dsx.Predict("question -> answer")
            self.long = dsx.Predict("question -> essay")

        async def aforward(self, question: str) -> Any:
            return await self.short.acall(question=question)

    dsx.configure(lm=DummyLM([{"answer": "yes"}]))
    program = Branch()
    stream = streamify(
        program, stream_listeners=[StreamListener("essay"), StreamListener("answer")]
    )
    items = _collect(stream, question="q")
    assert _pieces(items, "essay") == []
    assert _pieces(items, "answer") == [StreamResponse("short", "answer", "yes", True)]


def test_a_field_missing_from_the_reply_never_streams_and_the_error_arrives():
    reply = "<<< reasoning >>>\nthinking hard\n\n<<< end >>>"
    with OpenAIServer(script=[reply]) as srv:
        dsx.configure(lm=_lm(srv), adapter=ChatAdapter(use_json_adapter_fallback=False))
        stream = streamify(
            dsx.ChainOfThought("question -> answer"),
            stream_listeners=[StreamListener("answer"), StreamListener("reasoning")],
        )
        seen: list[Any] = []

        async def main() -> None:
            async for item in stream(question="q"):
                seen.append(item)

        with pytest.raises(AdapterParseError):
            asyncio.run(main())
    assert _pieces(seen, "answer") == []
    assert "".join(p.chunk for p in _pieces(seen, "reasoning")) == "thinking hard"


def test_unknown_fields_are_refused_up_front():
    with pytest.raises(dsx.DsxError, match="no predictor of ChainOfThought has an output field"):
        streamify(
            dsx.ChainOfThought("question -> answer"), stream_listeners=[StreamListener("anwser")]
        )


def _react_lm() -> DummyLM:
    return DummyLM(
        [
            {
                "next_thought": "add first",
                "next_tool_name": "add",
                "next_tool_args": {"a": 1, "b": 2},
            },
            {
                "next_thought": "add again",
                "next_tool_name": "add",
                "next_tool_args": {"a": 3, "b": 4},
            },
            {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "sum", "answer": "10"},
        ]
    )


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.parametrize("allow_reuse", [True, False])
def test_react_status_messages_and_reused_listeners(allow_reuse):
    dsx.configure(lm=_react_lm())
    agent = dsx.ReAct("question -> answer", tools=[add])
    stream = streamify(
        agent,
        stream_listeners=[StreamListener("next_thought", allow_reuse=allow_reuse)],
    )
    items = _collect(stream, question="1+2+3+4?")
    thoughts = [p.chunk for p in _pieces(items, "next_thought")]
    assert thoughts == (["add first", "add again", "done"] if allow_reuse else ["add first"])
    status = [i.message for i in items if isinstance(i, StatusMessage)]
    assert status.count("Calling tool add...") == 2
    assert items[-1].answer == "10"


def test_a_custom_status_message_provider():
    class Provider(StatusMessageProvider):
        def lm_start_status_message(self, instance: Any, inputs: dict[str, Any]) -> str:
            return f"asking {instance.model}"

        def module_end_status_message(self, outputs: Any) -> str | None:
            return f"done: {outputs.answer}" if isinstance(outputs, dsx.Prediction) else None

    dsx.configure(lm=DummyLM([{"answer": "a"}]))
    items = _collect(streamify(dsx.Predict("q -> answer"), Provider()), q="x")
    assert [i.message for i in items if isinstance(i, StatusMessage)] == [
        "asking dummy",
        "done: a",
    ]


def test_concurrent_predictors_and_concurrent_streams_stay_apart():
    def responder(body: dict[str, Any]) -> str:
        question = body["messages"][-1]["content"].split("<<< question >>>\n")[1].split("\n")[0]
        return f"<<< answer >>>\nanswer to {question} in several words\n\n<<< end >>>"

    class Both(dsx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = dsx.Predict("question -> answer")
            self.b = dsx.Predict("question -> answer")

        async def aforward(self, question: str) -> Any:
            x, y = await asyncio.gather(
                self.a.acall(question=question + "-a"), self.b.acall(question=question + "-b")
            )
            return dsx.Prediction(answer=x.answer + "|" + y.answer)

    with OpenAIServer(responder, chunk_interval=0.001) as srv:
        dsx.configure(lm=_lm(srv))
        program = Both()
        stream = streamify(
            program,
            stream_listeners=[
                StreamListener("answer", predict=program.a),
                StreamListener("answer", predict=program.b),
            ],
        )

        async def main() -> list[list[Any]]:
            runs = [stream(question=f"q{i}") for i in range(3)]

            async def drain(agen: Any) -> list[Any]:
                return [item async for item in agen]

            return await asyncio.gather(*(drain(r) for r in runs))

        results = asyncio.run(main())
    for i, items in enumerate(results):
        for name in ("a", "b"):
            pieces = [p for p in _pieces(items, "answer") if p.predict_name == name]
            assert "".join(p.chunk for p in pieces) == f"answer to q{i}-{name} in several words"
            assert pieces[-1].is_last_chunk and len(pieces) > 2


def test_sync_streaming_refuses_a_running_loop():
    stream = streamify(dsx.Predict("q -> a"), async_streaming=False)

    async def main() -> None:
        next(stream(q="x"))

    with pytest.raises(dsx.DsxError, match="inside an event loop"):
        asyncio.run(main())


# -- the incremental parser, at every chunk boundary ----------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r"), max_size=40
)


def _splits(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def _replay(pieces: list[str]) -> dict[str, str]:
    """Feed pieces one by one; check each field only grows; return the streamed values."""
    sent: dict[str, str] = {}
    done: set[str] = set()
    text = ""
    for k, piece in enumerate(pieces):
        text += piece
        for name, (value, complete) in fields_so_far(text, final=k == len(pieces) - 1).items():
            before = sent.get(name, "")
            assert value.startswith(before)
            assert name not in done or value == before
            sent[name] = value
            if complete:
                done.add(name)
    return sent


@settings(max_examples=150, deadline=None)
@given(reasoning=_TEXT, answer=_TEXT, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_chat_pieces_add_up_to_what_the_adapter_parses(reasoning, answer, cuts):
    sig = dsx.ensure_signature("question -> reasoning, answer")
    adapter = ChatAdapter()
    reply = adapter.format_outputs(adapter.prepare(sig), {"reasoning": reasoning, "answer": answer})
    parsed = adapter.parse(sig, reply)
    assert _replay(_splits(reply, cuts)) == parsed


@settings(max_examples=150, deadline=None)
@given(
    reasoning=_TEXT,
    answer=st.one_of(_TEXT, st.integers(), st.lists(st.integers(), max_size=3)),
    ascii_only=st.booleans(),
    cuts=st.lists(st.integers(0, 200), max_size=12),
)
def test_json_pieces_add_up_to_the_values(reasoning, answer, ascii_only, cuts):
    reply = json.dumps({"reasoning": reasoning, "answer": answer}, ensure_ascii=ascii_only)
    streamed = _replay(_splits(reply, cuts))
    assert streamed["reasoning"] == reasoning
    expected = answer if isinstance(answer, str) else json.dumps(answer)
    assert streamed["answer"] == expected


def test_dsx_run_stream_prints_fields_as_they_come(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "qa.dsx").write_text(
        "signature QA {\n    in  question: str\n    out answer: str\n}\n\n"
        "program qa = ChainOfThought(QA)\n"
    )
    with OpenAIServer(script=[CHAT_REPLY]) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
        env.update(
            DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
            DSX_LM="openai/test-model",
            DSX_API_BASE=srv.api_base,
            DSX_API_KEY="x",
        )
        out = subprocess.run(
            [sys.executable, "-m", "dsx.cli", "run", "qa.dsx", "-i", "question=why?", "--stream"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert srv.requests[0].body["stream"] is True
    assert out.returncode == 0, out.stderr
    # each field once, in reply order, with its whole value
    assert out.stdout == f"reasoning: {REASONING}\nanswer: {ANSWER}\n"


def test_dsx_run_stream_json_writes_one_event_a_line(tmp_path):
    # Issue 18: what the editor's Run view reads: NDJSON chunks as they come, then the result.
    import os
    import subprocess
    import sys

    (tmp_path / "qa.dsx").write_text(
        "signature QA {\n    in  question: str\n    out answer: str\n}\n\n"
        "program qa = ChainOfThought(QA)\n"
    )
    with OpenAIServer(script=[CHAT_REPLY]) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
        env.update(
            DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
            DSX_LM="openai/test-model",
            DSX_API_BASE=srv.api_base,
            DSX_API_KEY="x",
        )
        argv = ["run", "qa.dsx", "-i", "question=why, as JSON?", "--stream", "--json", "--no-state"]
        out = subprocess.run(
            [sys.executable, "-m", "dsx.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert srv.requests[0].body["stream"] is True
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]  # every line is JSON
    assert events[-1] == {"event": "result", "outputs": {"reasoning": REASONING, "answer": ANSWER}}
    chunks = [e for e in events if e["event"] == "chunk"]
    assert {e["predictor"] for e in chunks} == {"predict"}  # ChainOfThought's predictor
    for field, value in (("reasoning", REASONING), ("answer", ANSWER)):
        mine = [e for e in chunks if e["field"] == field]
        assert len(mine) > 1, "streamed in pieces, not as one value"
        assert "".join(e["chunk"] for e in mine) == value
        assert [e["last"] for e in mine] == [False] * (len(mine) - 1) + [True]
    assert all(e["event"] in {"chunk", "status", "result"} for e in events)


@pytest.mark.parametrize("allow_reuse", [False, True])
def test_refine_streams_its_first_attempt_or_every_attempt(allow_reuse):
    def reply(body: dict[str, Any]) -> str:
        attempt = "second" if "<<< hint >>>" in body["messages"][-1]["content"] else "first"
        return f"<<< answer >>>\nthe {attempt} answer\n\n<<< end >>>"

    with OpenAIServer(reply) as srv:
        dsx.configure(lm=_lm(srv))
        inner = dsx.Predict("question -> answer")
        program = dsx.Refine(
            inner, N=2, reward_fn=lambda args, pred: float("second" in pred.answer), threshold=1.0
        )
        stream = streamify(
            program, stream_listeners=[StreamListener("answer", allow_reuse=allow_reuse)]
        )
        items = _collect(stream, question="q")
    texts = [p.chunk for p in _pieces(items, "answer")]
    streamed = "".join(texts)
    assert items[-1].answer == "the second answer"
    if allow_reuse:
        assert streamed == "the first answerthe second answer"
    else:
        assert streamed == "the first answer"
