"""Tool calling as data (issue 21, item 1): dsx.ToolCalls / dsx.ToolCallResults as field
types, native function calling against a real OpenAI-compatible server (and the text
fallback), and Tool's DSPy features: pydantic-model arguments, arg_desc=, callable objects,
format_as_litellm_function_call(), the async-to-sync switch and the schema helpers."""

from __future__ import annotations

import asyncio
import json

import pydantic
import pytest

import dsx
from dsx.errors import AdapterParseError, SignatureError
from dsx.runtime.adapters._native import supports_function_calling
from dsx.runtime.tool import (
    AsyncToolCallError,
    ToolArgumentError,
    convert_input_schema_to_tool_args,
    resolve_json_schema_reference,
)
from dsx.runtime.tool_calls import ToolExecutionError, ToolNotFoundError
from dsx.testing import DummyLM
from dsx.testing.server import OpenAIServer, Reply


def get_weather(city: str, unit: str = "celsius") -> str:
    """Today's weather in a city.

    Args:
        city: the city's name
        unit: celsius or fahrenheit
    """
    return f"sunny in {city} ({unit})"


def search(query: str, k: int = 3) -> list[str]:
    """Search the web."""
    return [f"result about {query}"][:k]


class Plan(dsx.Signature):
    """Pick the tools that answer the question."""

    question: str = dsx.InputField()
    tools: list[dsx.Tool] = dsx.InputField()
    calls: dsx.ToolCalls = dsx.OutputField()


class PlanAndAnswer(dsx.Signature):
    """Answer, calling tools when they help."""

    question: str = dsx.InputField()
    tools: list[dsx.Tool] = dsx.InputField()
    answer: str = dsx.OutputField()
    calls: dsx.ToolCalls = dsx.OutputField()


def server_lm(srv: OpenAIServer, *, native: bool | None = True) -> dsx.LM:
    lm = dsx.LM("openai/dsx-test", api_base=srv.api_base, api_key="k", cache=False)
    if native is not None:
        lm.supports_function_calling = native  # a local server: say what it supports
    return lm


TOOLS = [dsx.Tool(get_weather), dsx.Tool(search)]


# -- native function calling through a real server ------------------------------------------


@pytest.mark.parametrize("adapter", [dsx.ChatAdapter, dsx.JSONAdapter])
def test_native_tool_calls_round_trip_through_the_server(adapter):
    calls = [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}},
        {"id": "call_2", "name": "search", "arguments": '{"query": "louvre", "k": 2}'},
    ]
    with OpenAIServer(script=[Reply(content=None, tool_calls=calls)]) as srv:
        with dsx.context(lm=server_lm(srv), adapter=adapter(use_native_function_calling=True)):
            pred = dsx.Predict(Plan)(question="Weather in Paris?", tools=TOOLS)
        body = srv.requests[-1].body
    # The tools went to the provider in its format, and left the prompt.
    assert body["tools"] == [t.format_as_litellm_function_call() for t in TOOLS]
    assert body["tools"][0]["function"]["parameters"]["required"] == ["city"]
    prompt = json.dumps(body["messages"])
    assert "get_weather" not in prompt and "calls" not in body["messages"][0]["content"]
    assert "response_format" not in body  # only tool calls are wanted
    assert isinstance(pred.calls, dsx.ToolCalls)
    got = [(c.id, c.name, c.args) for c in pred.calls.tool_calls]
    assert got == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "search", {"query": "louvre", "k": 2}),
    ]
    results = [call.execute(functions=TOOLS) for call in pred.calls.tool_calls]
    assert results == ["sunny in Paris (celsius)", ["result about louvre"]]


async def test_native_calls_with_text_outputs_async():
    reply = Reply(
        content="<<< answer >>>\nLet me check.\n\n<<< end >>>",
        tool_calls=[{"id": "c9", "name": "search", "arguments": {"query": "x"}}],
    )
    plain = "<<< answer >>>\nIt is sunny.\n\n<<< end >>>"
    with OpenAIServer(script=[reply, plain]) as srv:
        adapter = dsx.ChatAdapter(use_native_function_calling=True, parallel_tool_calls=False)
        with dsx.context(lm=server_lm(srv), adapter=adapter):
            first = await dsx.Predict(PlanAndAnswer).acall(question="q", tools=TOOLS)
            second = await dsx.Predict(PlanAndAnswer).acall(question="q", tools=TOOLS)
        body = srv.requests[0].body
    assert body["parallel_tool_calls"] is False and body["tool_choice"] == "auto"
    assert "<<< answer >>>" in body["messages"][0]["content"]
    assert first.answer == "Let me check." and first.calls.tool_calls[0].name == "search"
    assert second.answer == "It is sunny." and second.calls is None  # no calls this time


def test_an_lm_without_function_calling_gets_the_tools_as_text():
    text = (
        '<<< calls >>>\n{"tool_calls": [{"name": "search", "args": {"query": "x"}}]}\n<<< end >>>'
    )
    with OpenAIServer(script=[text]) as srv:
        lm = server_lm(srv, native=None)  # a model the catalog does not know
        assert not supports_function_calling(lm)
        with dsx.context(lm=lm, adapter=dsx.ChatAdapter(use_native_function_calling=True)):
            pred = dsx.Predict(Plan)(question="q", tools=TOOLS)
        body = srv.requests[-1].body
    assert "tools" not in body
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    assert '"tool_calls"' in system  # the layout says how to write calls
    assert '"name": "get_weather"' in user and "the city's name" in user
    assert pred.calls.tool_calls[0].args == {"query": "x"}


def test_chat_adapter_does_not_call_natively_unless_asked():
    text = '<<< calls >>>\n[{"name": "search", "args": {"query": "y"}}]\n<<< end >>>'
    with OpenAIServer(script=[text]) as srv:
        with dsx.context(lm=server_lm(srv)):  # the default adapter: DSPy's default, text
            pred = dsx.Predict(Plan)(question="q", tools=TOOLS)
        assert "tools" not in srv.requests[-1].body
    assert [c.name for c in pred.calls.tool_calls] == ["search"]


def test_a_native_reply_with_nothing_in_it_is_a_parse_error():
    with OpenAIServer(script=[Reply(content="")]) as srv:
        adapter = dsx.ChatAdapter(use_native_function_calling=True, use_json_adapter_fallback=False)
        with dsx.context(lm=server_lm(srv), adapter=adapter), pytest.raises(AdapterParseError):
            dsx.Predict(PlanAndAnswer)(question="q", tools=TOOLS)


def test_tool_calls_output_without_tools_input_is_explained():
    sig = dsx.Signature("question -> calls: dsx.ToolCalls")
    with OpenAIServer(script=["x"]) as srv:
        adapter = dsx.JSONAdapter()
        with (
            dsx.context(lm=server_lm(srv), adapter=adapter),
            pytest.raises(SignatureError, match=r"no tools input.*tools: list\[dsx.Tool\]"),
        ):
            dsx.Predict(sig)(question="q")


def test_function_calling_support_comes_from_the_lm_or_the_model_catalog():
    assert supports_function_calling(dsx.LM("openai/gpt-4o-mini"))
    assert not supports_function_calling(dsx.LM("openai/my-local-model"))
    assert not supports_function_calling(DummyLM(["x"]))
    declared = DummyLM(["x"])
    declared.supports_function_calling = True
    assert supports_function_calling(declared)


def test_scripted_lm_tool_call_replies_parse_natively():
    lm = DummyLM(['{"tool_calls": [{"id": "a", "name": "search", "arguments": {"query": "q"}}]}'])
    lm.supports_function_calling = True
    with dsx.context(lm=lm, adapter=dsx.JSONAdapter()):
        pred = dsx.Predict(Plan)(question="q", tools=[search])  # plain functions work too
    assert pred.calls.tool_calls[0].id == "a"
    assert lm.history[-1]["kwargs"]["tools"][0]["function"]["name"] == "search"


# -- ToolCalls / ToolCallResults as data ----------------------------------------------------


def test_tool_calls_accept_dspy_and_provider_shapes():
    shapes = [
        [{"name": "search", "args": {"query": "a"}}],
        {"tool_calls": [{"name": "search", "args": {"query": "a"}}]},
        {"name": "search", "args": {"query": "a"}},
        {"name": "search", "arguments": '{"query": "a"}'},
        [
            {
                "id": "c",
                "type": "function",
                "function": {"name": "search", "arguments": '{"query": "a"}'},
            }
        ],
        '{"tool_calls": [{"name": "search", "args": {"query": "a"}}]}',
    ]
    for shape in shapes:
        calls = dsx.ToolCalls.model_validate(shape)
        assert [(c.name, c.args) for c in calls.tool_calls] == [("search", {"query": "a"})], shape
    assert dsx.ToolCalls.from_dict_list([{"name": "s", "args": {}}]).format() == {
        "tool_calls": [{"name": "s", "args": {}}]
    }
    assert dsx.ToolCalls.ToolCall(name="s", args={"x": 1}).format() == {
        "name": "s",
        "args": {"x": 1},
    }
    with pytest.raises(pydantic.ValidationError):
        dsx.ToolCalls.model_validate({"unrelated": 1})


def test_the_schema_the_lm_sees_has_no_ids_or_results():
    schema = json.dumps(pydantic.TypeAdapter(dsx.ToolCalls).json_schema())
    assert '"name"' in schema and '"args"' in schema
    assert '"id"' not in schema and "tool_call_results" not in schema


def test_execute_finds_tools_by_list_mapping_or_the_callers_names():
    call = dsx.ToolCalls.ToolCall(name="search", args={"query": "q"})
    assert call.execute(functions={"search": search}) == ["result about q"]
    assert call.execute(functions=[search]) == ["result about q"]
    assert call.execute() == ["result about q"]  # module-level name of the caller
    with pytest.raises(ToolNotFoundError, match="no tool named 'nope'"):
        dsx.ToolCalls.ToolCall(name="nope").execute(functions=[search])
    broken = dsx.ToolCalls.ToolCall(name="search", args={"query": "q", "bad": 1})
    with pytest.raises(ToolExecutionError, match="tool 'search' failed") as info:
        broken.execute(functions=[search])
    assert isinstance(info.value.__cause__, TypeError)


async def test_aexecute_awaits_async_tools():
    async def lookup(key: str) -> str:
        await asyncio.sleep(0)
        return key.upper()

    call = dsx.ToolCalls.ToolCall(name="lookup", args={"key": "ab"})
    assert await call.aexecute(functions=[dsx.Tool(lookup)]) == "AB"


def test_tool_call_results_pair_calls_with_values_and_are_an_input_type():
    calls = dsx.ToolCalls.from_dict_list(
        [{"id": "1", "name": "a", "args": {}}, {"id": "2", "name": "b", "args": {}}]
    )
    results = dsx.ToolCallResults.from_tool_calls_and_values(calls, [1, "boom"], [False, True])
    assert [(r.call_id, r.name, r.value, r.is_error) for r in results.tool_call_results] == [
        ("1", "a", 1, False),
        ("2", "b", "boom", True),
    ]
    with pytest.raises(ValueError, match="2 tool calls but 1 values"):
        dsx.ToolCallResults.from_tool_calls_and_values(calls, [1])
    assert (
        dsx.ToolCallResults.model_validate([{"name": "a", "value": 1}]).tool_call_results[0].value
        == 1
    )
    lm = DummyLM([{"answer": "done"}])
    sig = dsx.Signature("results: dsx.ToolCallResults -> answer")
    with dsx.context(lm=lm):
        assert dsx.Predict(sig)(results=results).answer == "done"
    assert '"call_id": "2"' in lm.history[-1]["messages"][-1]["content"]


# -- Tool ---------------------------------------------------------------------------------------


class Address(pydantic.BaseModel):
    street: str
    city: str


class Person(pydantic.BaseModel):
    name: str
    address: Address


def test_pydantic_model_arguments_are_inlined_and_validated():
    def register(person: Person, notify: bool = False) -> str:
        """Register a person."""
        return f"{person.name} in {person.address.city} ({notify})"

    tool = dsx.Tool(register)
    person = tool.args["person"]
    assert "$ref" not in json.dumps(tool.format_as_litellm_function_call())
    assert person["properties"]["address"]["properties"]["city"] == {
        "title": "City",
        "type": "string",
    }
    assert tool(person={"name": "Ann", "address": {"street": "1 Main", "city": "Oslo"}}) == (
        "Ann in Oslo (False)"
    )
    with pytest.raises(ToolArgumentError, match="person.address.city"):
        tool(person={"name": "Ann", "address": {"street": "1 Main"}})


def test_arg_desc_and_litellm_format():
    tool = dsx.Tool(get_weather, arg_desc={"city": "where, e.g. Paris"})
    assert tool.format_as_litellm_function_call() == {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Today's weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"description": "where, e.g. Paris", "type": "string"},
                    "unit": {
                        "default": "celsius",
                        "description": "celsius or fahrenheit",
                        "type": "string",
                    },
                },
                "required": ["city"],
            },
        },
    }
    with pytest.raises(ToolArgumentError, match="arg_desc names \\['town'\\]"):
        dsx.Tool(get_weather, arg_desc={"town": "x"})


def test_arg_types_override_validation():
    def scale(x, factor=2):
        return x * factor

    tool = dsx.Tool(scale, arg_types={"x": int})
    assert tool(x="21") == 42 and tool.args["x"]["type"] == "integer"


class Multiplier:
    """Multiply by a fixed factor."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, value: int) -> int:
        return value * self.factor


def test_callable_objects_are_tools():
    tool = dsx.Tool(Multiplier(3))
    assert tool.name == "Multiplier" and tool.desc == "Multiply by a fixed factor."
    assert tool.args["value"]["type"] == "integer" and tool.required == ["value"]
    assert tool(value="4") == 12  # the hint of __call__ coerces


async def slow_double(x: int) -> int:
    await asyncio.sleep(0)
    return 2 * x


def test_async_tools_called_synchronously_follow_the_switch():
    tool = dsx.Tool(slow_double)
    assert tool(x=2) == 4  # dsx's default: run it to completion
    with dsx.context(allow_tool_async_sync_conversion=False):
        with pytest.raises(AsyncToolCallError, match="await tool.acall"):
            tool(x=2)
        assert asyncio.run(tool.acall(x=2)) == 4  # the async path is always fine


async def test_a_sync_call_inside_a_running_loop_still_finishes():
    assert dsx.Tool(slow_double)(x=5) == 10


def test_convert_input_schema_to_tool_args():
    schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "what to find"},
            "where": {"$ref": "#/$defs/Place"},
            "limit": {"type": "integer"},
        },
        "required": ["query"],
        "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
    args, types, descs = convert_input_schema_to_tool_args(schema)
    assert args["where"] == {"type": "object", "properties": {"city": {"type": "string"}}}
    assert types == {"query": str, "where": dict, "limit": int}
    assert descs == {
        "query": "what to find (Required)",
        "where": "No description provided.",
        "limit": "No description provided.",
    }
    assert resolve_json_schema_reference({"type": "string"}) == {"type": "string"}


class Chat(dsx.Signature):
    """Answer, calling tools when they help."""

    question: str = dsx.InputField()
    history: dsx.History = dsx.InputField()
    tools: list[dsx.Tool] = dsx.InputField()
    answer: str = dsx.OutputField()
    calls: dsx.ToolCalls = dsx.OutputField()


def test_an_agent_loop_replays_tool_calls_and_results_natively():
    first = Reply(
        content=None,
        tool_calls=[{"id": "call_7", "name": "get_weather", "arguments": {"city": "Rome"}}],
    )
    final = "<<< answer >>>\nIt is sunny in Rome.\n\n<<< end >>>"
    adapter = dsx.ChatAdapter(use_native_function_calling=True)
    predict = dsx.Predict(Chat)
    with OpenAIServer(script=[first, final]) as srv:
        with dsx.context(lm=server_lm(srv), adapter=adapter):
            question = "Weather in Rome?"
            history = dsx.History(messages=[])
            step = predict(question=question, history=history, tools=TOOLS)
            values = [call.execute(functions=TOOLS) for call in step.calls.tool_calls]
            results = dsx.ToolCallResults.from_tool_calls_and_values(step.calls, values)
            done = step.calls.model_copy(update={"tool_call_results": results})
            history = dsx.History(messages=[{"question": question, "calls": done}])
            answer = predict(question="So?", history=history, tools=TOOLS)
        sent = srv.requests[-1].body["messages"]
    assert answer.answer == "It is sunny in Rome." and answer.calls is None
    roles = [m["role"] for m in sent]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert sent[2]["content"] is None
    assert sent[2]["tool_calls"] == [
        {
            "id": "call_7",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
        }
    ]
    assert sent[3] == {
        "role": "tool",
        "tool_call_id": "call_7",
        "name": "get_weather",
        "content": "sunny in Rome (celsius)",
    }


def test_history_tool_calls_in_text_mode_show_calls_and_results_in_the_reply():
    calls = dsx.ToolCalls.from_dict_list([{"id": "c1", "name": "search", "args": {"query": "q"}}])
    calls = calls.model_copy(
        update={"tool_call_results": dsx.ToolCallResults.from_tool_calls_and_values(calls, ["r"])}
    )
    lm = DummyLM([{"answer": "done", "calls": {"tool_calls": []}}])
    with dsx.context(lm=lm):
        dsx.Predict(Chat)(
            question="q2",
            history=dsx.History(messages=[{"question": "q1", "calls": calls}]),
            tools=TOOLS,
        )
    assistant = lm.history[-1]["messages"][2]
    assert assistant["role"] == "assistant" and '"tool_call_results"' in assistant["content"]
    assert '"name": "search"' in assistant["content"] and '"value": "r"' in assistant["content"]
