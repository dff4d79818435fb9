"""``n`` choices from an endpoint that answers one (llama.cpp's server does): dsx asks
again for the rest, so that an optimizer sampling several candidates at once gets them."""

from __future__ import annotations

import itertools

import pytest

import dsx
from dsx.testing import Fault, OpenAIServer

pytestmark = pytest.mark.integration


def _one_choice_server(**kwargs) -> OpenAIServer:
    counter = itertools.count(1)
    # a list of texts sets the number of choices: one, whatever `n` asks
    return OpenAIServer(lambda request: [f"<<< answer >>>\nidea {next(counter)}"], **kwargs)


def _lm(server: OpenAIServer, **kwargs) -> dsx.LM:
    return dsx.LM("openai/test", api_base=server.api_base, api_key="x", num_retries=0, **kwargs)


@pytest.mark.parametrize("use_async", [False, True])
def test_missing_choices_are_asked_for_again(use_async):
    with _one_choice_server() as server:
        lm = _lm(server, cache=False)
        messages = [{"role": "user", "content": "ideas?"}]
        if use_async:
            import asyncio

            response = asyncio.run(lm.aforward(messages, n=3, temperature=1.0))
        else:
            response = lm.forward(messages, n=3, temperature=1.0)
        assert [o.rsplit(" ", 1)[1] for o in response.outputs] == ["1", "2", "3"]
        assert [r.body["n"] for r in server.requests] == [3, 2, 1]  # each asks for the rest
        # each top-up samples with a seed of its own (llama.cpp repeats itself without one)
        assert [r.body.get("seed") for r in server.requests] == [None, 1, 2]
        assert response.usage["total_tokens"] > 0
        assert len(response.finish_reasons) == 3


def test_a_predictor_with_n_gets_n_completions():
    with _one_choice_server() as server:
        predict = dsx.Predict("question -> answer", n=4)
        with dsx.context(lm=_lm(server, cache=False)):
            result = predict(question="Name an idea.")
        assert [c.answer for c in result.completions] == [f"idea {i}" for i in range(1, 5)]


def test_a_failed_top_up_keeps_the_choices_already_made():
    calls = itertools.count()

    def respond(request):
        return ["<<< answer >>>\nfirst"] if next(calls) == 0 else Fault.server_error()

    with OpenAIServer(respond) as server:
        response = _lm(server, cache=False).forward([{"role": "user", "content": "x"}], n=3)
        assert response.outputs == ["<<< answer >>>\nfirst"]
        assert server.request_count == 2  # one top-up, failed: no retry loop


def test_the_filled_answer_is_cached_whole(tmp_path):
    dsx.configure_cache(disk_dir=tmp_path / "cache")
    try:
        with _one_choice_server() as server:
            lm = _lm(server)
            first = lm.forward([{"role": "user", "content": "cache me"}], n=2, temperature=1.0)
            again = lm.forward([{"role": "user", "content": "cache me"}], n=2, temperature=1.0)
            assert again.cached and again.outputs == first.outputs and len(first.outputs) == 2
            assert server.request_count == 2
    finally:
        dsx.configure_cache()


def test_a_short_answer_cached_before_filling_is_filled_on_its_next_use(tmp_path, monkeypatch):
    dsx.configure_cache(disk_dir=tmp_path / "cache")
    try:
        with _one_choice_server() as server:
            lm = _lm(server)
            messages = [{"role": "user", "content": "old cache"}]
            with monkeypatch.context() as m:  # as dsx cached it before: one choice for n=2
                m.setattr(dsx.LM, "_short", staticmethod(lambda call, response: False))
                assert len(lm.forward(messages, n=2).outputs) == 1
            filled = lm.forward(messages, n=2)
            assert [o.rsplit(" ", 1)[1] for o in filled.outputs] == ["1", "2"]
            assert [r.body["n"] for r in server.requests] == [2, 1]  # only the missing one
            assert lm.forward(messages, n=2).outputs == filled.outputs  # and cached whole
            assert server.request_count == 2
    finally:
        dsx.configure_cache()
