"""Streaming with ``DSPyChatAdapter`` (issue 21): ``dsx.streamify`` listeners read DSPy's
``[[ ## field ## ]]`` markers as they arrive, with chunk boundaries inside the markers."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import dsx
from dsx.runtime._stream_parse import fields_so_far
from dsx.streaming import StreamListener, StreamResponse, streamify
from dsx.testing import OpenAIServer

REASONING = "The sky scatters short <<< wavelengths >>> more;\n[1] so it looks blue."
ANSWER = 'Rayleigh "scattering" — blue\nlight wins'
DSPY_REPLY = (
    f"[[ ## reasoning ## ]]\n{REASONING}\n\n[[ ## answer ## ]]\n{ANSWER}\n\n[[ ## completed ## ]]\n"
)


def _collect(stream: Any, **inputs: Any) -> list[Any]:
    async def main() -> list[Any]:
        return [item async for item in stream(**inputs)]

    return asyncio.run(main())


def _pieces(items: list[Any], field: str) -> list[StreamResponse]:
    return [i for i in items if isinstance(i, StreamResponse) and i.signature_field_name == field]


def test_fields_stream_through_sse_with_dspy_s_markers():
    # One word per SSE chunk: boundaries fall inside "[[ ## answer ## ]]" ("[[" / " ##" / ...).
    with OpenAIServer(script=[DSPY_REPLY]) as srv:
        lm = dsx.LM("openai/dsx-test", api_base=srv.api_base, api_key="x", cache=False)
        program = dsx.ChainOfThought("question -> answer")
        stream = streamify(
            program, stream_listeners=[StreamListener("answer"), StreamListener("reasoning")]
        )
        with dsx.context(lm=lm, adapter=dsx.DSPyChatAdapter()):
            items = _collect(stream, question="Why is the sky blue?")
        assert srv.requests[0].body["stream"] is True
        assert "[[ ## reasoning ## ]]" in srv.requests[0].body["messages"][0]["content"]
    final = items[-1]
    assert isinstance(final, dsx.Prediction)
    assert final.answer == ANSWER and final.reasoning == REASONING
    for field, value, least in (("reasoning", REASONING, 5), ("answer", ANSWER, 3)):
        pieces = _pieces(items, field)
        assert "".join(p.chunk for p in pieces) == value
        assert [p.is_last_chunk for p in pieces] == [False] * (len(pieces) - 1) + [True]
        assert len(pieces) >= least
        # no piece carries part of a marker
        assert not any("[[" in p.chunk or "##" in p.chunk for p in pieces)
    kinds = [i.signature_field_name for i in items if isinstance(i, StreamResponse)]
    assert kinds.index("answer") > max(i for i, k in enumerate(kinds) if k == "reasoning")


def test_a_partial_marker_is_held_back_until_it_is_whole():
    text = "[[ ## reasoning ## ]]\nthinking\n[[ ## ans"
    assert fields_so_far(text, final=False) == {"reasoning": ("thinking", False)}
    text += "wer ## ]] Paris"  # DSPy keeps text on the marker's line
    assert fields_so_far(text, final=False) == {
        "reasoning": ("thinking", True),
        "answer": ("Paris", False),
    }
    # a dsx-layout marker quoted inside a DSPy reply stays text, as DSPy's parse reads it
    assert fields_so_far("[[ ## a ## ]]\nx\n<<< b >>>\ny\n", final=True) == {
        "a": ("x\n<<< b >>>\ny", True)
    }


_TEXT = st.text(
    alphabet=st.sampled_from(list("ab [#]<>\n ")) | st.characters(blacklist_categories=["Cs"]),
    max_size=40,
).filter(lambda t: "\r" not in t)


def _replay(text: str, cuts: list[int]) -> dict[str, str]:
    points = sorted({min(c, len(text)) for c in cuts} | {len(text)})
    sent: dict[str, str] = {}
    done: set[str] = set()
    for point in points:
        final = point == len(text)
        for name, (value, complete) in fields_so_far(text[:point], final=final).items():
            before = sent.get(name, "")
            assert value.startswith(before)
            assert name not in done or value == before
            sent[name] = value
            if complete:
                done.add(name)
    return sent


@settings(max_examples=200, deadline=None)
@given(reasoning=_TEXT, answer=_TEXT, cuts=st.lists(st.integers(0, 200), max_size=12))
def test_dspy_pieces_add_up_to_what_the_adapter_parses(reasoning, answer, cuts):
    sig = dsx.ensure_signature("question -> reasoning, answer")
    adapter = dsx.DSPyChatAdapter()
    reply = adapter.format_outputs(adapter.prepare(sig), {"reasoning": reasoning, "answer": answer})
    parsed = adapter.parse(sig, reply)
    streamed = _replay(reply, cuts)
    assert {k: streamed[k] for k in parsed} == parsed
