"""Predictors reach the LM through an LM subclass's own ``__call__``/``acall`` (issue 21,
item 5): DSPy users customise an LM by overriding them."""

from __future__ import annotations

import asyncio

import pytest

import dsx
from dsx.errors import AdapterParseError
from dsx.runtime.lm_base import BaseLM
from dsx.testing.server import OpenAIServer


class Audited(dsx.LM):
    """An LM that logs every request and tags every reply."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen: list[str] = []

    def __call__(self, prompt=None, messages=None, **kwargs):
        self.seen.append(messages[-1]["content"])
        return [
            text.replace("Paris", "Paris (checked)")
            for text in super().__call__(prompt, messages, **kwargs)
        ]


def test_an_overridden_call_is_used_sync_and_async():
    reply = "<<< answer >>>\nParis\n\n<<< end >>>"
    with OpenAIServer(script=[reply, reply]) as srv:
        lm = Audited("openai/dsx-test", api_base=srv.api_base, api_key="k", cache=False)
        predict = dsx.Predict("question -> answer")
        with dsx.context(lm=lm):
            first = predict(question="Capital of France?")

            async def ask():
                return await predict.acall(question="Again?")

            second = asyncio.run(ask())
    assert first.answer == second.answer == "Paris (checked)"
    assert "Capital of France?" in lm.seen[0] and "Again?" in lm.seen[1]
    assert len(lm.history) == 2  # the base class's request still recorded them


class Scripted(BaseLM):
    """A DSPy-style LM: __call__ returns output dicts (text and tool calls)."""

    supports_function_calling = True

    def __init__(self, outputs):
        super().__init__("scripted")
        self.outputs = outputs
        self.kwargs_seen: list[dict] = []

    def __call__(self, prompt=None, messages=None, **kwargs):
        self.kwargs_seen.append(kwargs)
        return self.outputs

    async def acall(self, prompt=None, messages=None, **kwargs):
        return [{"text": "<<< answer >>>\nfrom acall\n\n<<< end >>>"}]


def test_dspy_style_output_dicts_with_tool_calls():
    def search(query: str) -> str:
        """Search."""
        return query

    lm = Scripted(
        [
            {
                "text": "",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "search", "arguments": '{"query": "x"}'},
                    }
                ],
            }
        ]
    )
    sig = dsx.Signature("question, tools: list[dsx.Tool] -> calls: dsx.ToolCalls")
    with dsx.context(lm=lm, adapter=dsx.JSONAdapter()):
        pred = dsx.Predict(sig)(question="q", tools=[search])
    assert pred.calls.tool_calls[0].id == "t1" and pred.calls.tool_calls[0].args == {"query": "x"}
    assert lm.kwargs_seen[0]["tools"][0]["function"]["name"] == "search"


async def test_an_overridden_acall_is_used_on_the_async_path():
    lm = Scripted(["unused"])
    with dsx.context(lm=lm):
        pred = await dsx.Predict("question -> answer").acall(question="q")
    assert pred.answer == "from acall"


def test_no_outputs_is_a_parse_error():
    adapter = dsx.ChatAdapter(use_json_adapter_fallback=False)
    context = dsx.context(lm=Scripted([]), adapter=adapter)
    with context, pytest.raises(AdapterParseError, match="returned no outputs"):
        dsx.Predict("question -> answer")(question="q")
