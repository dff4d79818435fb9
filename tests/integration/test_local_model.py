"""The real local model: SmolLM2-135M-Instruct served by llama.cpp, started by the tests.

These check that dsx's normal path — ``dsx.LM`` + ``dsx.JSONAdapter`` over the OpenAI API —
gets typed outputs out of a real (tiny) model: values in the Literal set, reasoning text,
a bootstrapped program. They never check what the model answers: a 135M model is often
wrong. They skip, saying why, only when llama-cpp-python or the model is not installed
(``make`` installs both when it can; ``dsx model check`` says what is missing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

import dsx
from dsx.local import LocalModelServer, unavailable_reason

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        unavailable_reason() is not None,
        reason=f"the local model is unavailable: {unavailable_reason()}",
    ),
]

SRC = Path(__file__).resolve().parents[2] / "src"

Sentiment = Literal["positive", "negative"]


class ReviewSentiment(dsx.Signature):
    """Classify the sentiment of a product review."""

    review: str = dsx.InputField()
    sentiment: Sentiment = dsx.OutputField()


TRAIN = [
    dsx.Example(review="Absolutely love it, works perfectly.", sentiment="positive"),
    dsx.Example(review="Broke after one day. Waste of money.", sentiment="negative"),
    dsx.Example(review="Great value and fast delivery, very happy.", sentiment="positive"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    with LocalModelServer() as srv:
        yield srv


@pytest.fixture
def local(server: LocalModelServer) -> Iterator[LocalModelServer]:
    with dsx.context(**server.settings(cache=False)):
        yield server


def test_predict_gives_a_typed_literal(local):
    pred = dsx.Predict(ReviewSentiment)(review="I really enjoyed this, it is wonderful!")
    assert pred.sentiment in ("positive", "negative")


def test_predict_async(local):
    import asyncio

    async def run() -> list[str]:
        predict = dsx.Predict(ReviewSentiment)
        preds = await asyncio.gather(
            predict.acall(review="Fantastic, five stars."),
            predict.acall(review="Awful. It never worked."),
        )
        return [p.sentiment for p in preds]

    assert set(asyncio.run(run())) <= {"positive", "negative"}


def test_chain_of_thought_adds_reasoning(local):
    pred = dsx.ChainOfThought(ReviewSentiment)(review="Terrible quality, it fell apart.")
    assert pred.sentiment in ("positive", "negative")
    assert isinstance(pred.reasoning, str)


def test_typed_numbers_and_lists(local):
    sig = dsx.Signature("text -> word_count: int, words: list[str]")
    pred = dsx.Predict(sig)(text="red green blue")
    assert isinstance(pred.word_count, int)
    assert isinstance(pred.words, list) and all(isinstance(w, str) for w in pred.words)


def test_bootstrap_few_shot_compiles_a_working_program(local):
    def metric(example: dsx.Example, pred: dsx.Prediction, trace: object = None) -> bool:
        return bool(example.sentiment == pred.sentiment)

    optimizer = dsx.BootstrapFewShot(metric=metric, max_bootstrapped_demos=2, max_labeled_demos=2)
    trainset = [ex.with_inputs("review") for ex in TRAIN]
    program = optimizer.compile(dsx.Predict(ReviewSentiment), trainset=trainset)
    demos = program.demos
    assert 1 <= len(demos) <= 4
    pred = program(review="Not worth it, it stopped working in a week.")
    assert pred.sentiment in ("positive", "negative")


def test_the_server_is_the_real_one(server):
    with urllib.request.urlopen(f"{server.api_base}/models", timeout=5) as resp:
        ids = [m["id"] for m in json.load(resp)["data"]]
    assert ids == [server.alias]
    assert server.startup_seconds is not None and server.startup_seconds < 60


def test_model_serve_command_prints_its_settings_and_stops_on_ctrl_c():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsx.cli", "model", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Ctrl-C stops it"):
                break
        exports = next(line for line in lines if "export DSX_LM=" in line)
        settings = dict(word.split("=", 1) for word in exports.split() if "=" in word)
        with urllib.request.urlopen(f"{settings['DSX_API_BASE']}/models", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopped" in out
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{settings['DSX_API_BASE']}/models", timeout=2)


def test_structured_output_negotiates_down_on_the_real_server(server):
    """llama.cpp rejects `json_schema` with a 500 validation error: the JSON adapter's calls
    are answered in `json_object` + schema mode, and a bad format is a BadRequestError that is
    not retried. (That the fallback costs one request once is pinned against the mimicking
    server in test_structured_output.py.)"""
    from dsx.errors import BadRequestError

    lm = server.lm(cache=False)
    predict = dsx.Predict(ReviewSentiment)
    with dsx.context(lm=lm, adapter=dsx.JSONAdapter()):
        first = predict(review="Lovely, it works great.")
        second = predict(review="Dreadful, it broke at once.")
    assert {first.sentiment, second.sentiment} <= {"positive", "negative"}
    modes = [entry.get("structured_output") for entry in list(lm.history)[-2:]]
    assert len(modes) == 2 and all(m and "json_object" in m and "schema" in m for m in modes), modes
    with pytest.raises(BadRequestError) as info:
        lm([{"role": "user", "content": "hi"}], response_format={"type": "bogus"})
    assert info.value.attempts == 1 and info.value.status_code in (400, 422, 500)


def test_a_declared_local_lm_serves_its_predictor_with_its_settings(tmp_path: Path) -> None:
    """`lm small = "local" { max_tokens = 24 }` needs no --lm: the predictor that names it
    runs on the local model with those settings, interpreted and in the built module."""
    from dsx.compiler.analysis import analyze_source
    from dsx.compiler.codegen import generate

    text = (
        'lm small = "local" { max_tokens = 24, temperature = 0 }\n\n'
        "signature QA {\n    in  question: str\n    out answer: str\n}\n\n"
        "program qa = Predict(QA, lm = small)\n"
    )
    analysis = analyze_source(text, str(tmp_path / "small.dsx"))
    assert [d.message for d in analysis.diagnostics] == []
    (tmp_path / "small_gen.py").write_text(generate(analysis.unit, "qa"))
    sys.path.insert(0, str(tmp_path))
    try:
        import small_gen  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    assert dsx.settings.lm is None
    for program in (dsx.instantiate(analysis.unit).program("qa"), small_gen.program()):
        pred = program(question="What is the capital of France?")
        assert isinstance(pred.answer, str)
        lm = program.predictors()[0].lm
        assert lm.kwargs["max_tokens"] == 24 and lm.kwargs["temperature"] == 0
        assert lm.history and lm.history[-1]["kwargs"]["max_tokens"] == 24
