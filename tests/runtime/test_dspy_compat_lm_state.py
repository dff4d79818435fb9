"""Saving LMs safely (issue 21, item 7): a predictor's LM is saved without its endpoint, key
or headers (with a warning naming what was left out) unless ``allow_unsafe_lm_state=True``
keeps the endpoint; a state naming an LM class is refused, trusted or not, except DSPy's
own ``dspy.LM``."""

from __future__ import annotations

import json
import warnings

import pytest

import dsx
import dsx.compat.dspy as dspy
from dsx.errors import StateError


def _program() -> dsx.ChainOfThought:
    program = dsx.ChainOfThought("question -> answer")
    program.predict.lm = dsx.LM(
        "openai/gpt-4o-mini",
        api_base="https://proxy.example/v1",
        api_key="sk-secret",
        headers={"X-Team": "t"},
        temperature=0.3,
    )
    return program


def test_save_leaves_endpoints_and_keys_out_and_says_so(tmp_path):
    path = tmp_path / "s.json"
    with pytest.warns(UserWarning, match=r"predict \(api_base, api_key, headers\)"):
        _program().save(path)
    text = path.read_text("utf-8")
    assert "sk-secret" not in text and "proxy.example" not in text and "X-Team" not in text
    lm = json.loads(text)["state"]["predict"]["lm"]
    assert lm["model"] == "openai/gpt-4o-mini" and lm["temperature"] == 0.3
    fresh = dsx.ChainOfThought("question -> answer")
    fresh.load(path)  # loads without trusting anything
    assert fresh.predict.lm.kwargs["temperature"] == 0.3 and fresh.predict.lm.api_base is None


def test_allow_unsafe_lm_state_keeps_the_endpoint_never_the_key(tmp_path):
    path = tmp_path / "s.json"
    with pytest.warns(UserWarning, match=r"predict \(api_key, headers\)"):
        _program().save(path, allow_unsafe_lm_state=True)
    lm = json.loads(path.read_text("utf-8"))["state"]["predict"]["lm"]
    assert lm["api_base"] == "https://proxy.example/v1"
    assert "api_key" not in lm and "headers" not in lm
    with pytest.raises(StateError, match="predict.lm.api_base"):
        dsx.ChainOfThought("question -> answer").load(path)
    trusted = dsx.ChainOfThought("question -> answer").load(path, allow_unsafe_lm_state=True)
    assert trusted.predict.lm.api_base == "https://proxy.example/v1"


def test_nothing_to_leave_out_means_no_warning(tmp_path):
    program = dsx.ChainOfThought("question -> answer")
    program.predict.lm = dsx.LM("openai/gpt-4o-mini", temperature=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        program.save(tmp_path / "s.json")


def _state_with_class(tmp_path, marker):
    program = dsx.ChainOfThought("question -> answer")
    program.predict.lm = dsx.LM("openai/gpt-4o-mini")
    path = tmp_path / "s.json"
    program.save(path)
    doc = json.loads(path.read_text("utf-8"))
    doc["state"]["predict"]["lm"]["_dspy_lm_class"] = marker
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_a_state_naming_an_lm_class_is_refused_even_when_trusted(tmp_path):
    path = _state_with_class(tmp_path, "evil_pkg.lm.Backdoor")
    for trust in (False, True):
        program = dsx.ChainOfThought("question -> answer")
        with pytest.raises(StateError, match="names the LM class 'evil_pkg.lm.Backdoor'"):
            program.load(path, allow_endpoints=trust)
        assert program.predict.lm is None
    # DSPy's own LM class is dsx.LM: the marker is dropped, never sent as a request setting
    program = dsx.ChainOfThought("question -> answer")
    program.load(_state_with_class(tmp_path, "dspy.clients.lm.LM"), allow_endpoints=True)
    assert "_dspy_lm_class" not in program.predict.lm.kwargs


class RAG(dspy.Module):
    def __init__(self):
        self.rewrite = dspy.Predict("question -> query")
        self.respond = dspy.ChainOfThought("context, question -> response")


def test_a_dspy_file_with_a_custom_lm_class_is_refused(tmp_path):
    from pathlib import Path

    data = Path(__file__).parent / "data" / "dspy_saved_rag.json"
    state = json.loads(data.read_text("utf-8"))
    state["respond.predict"]["lm"]["_dspy_lm_class"] = "my_team.MyLM"
    path = tmp_path / "dspy.json"
    path.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(StateError, match="names the LM class 'my_team.MyLM'"):
        RAG().load(path, allow_unsafe_lm_state=True)
    assert RAG().load(data).respond.predict.lm.model == "openai/gpt-4o-mini"
