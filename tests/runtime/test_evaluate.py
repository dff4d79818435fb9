"""dsx.Evaluate: scores, failures, max_errors, Ctrl-C, concurrency, export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import threading

import pytest

import dsx
from dsx.runtime.evaluate import Evaluate, EvaluationResult
from dsx.runtime.metrics import exact_match
from dsx.testing import DummyLM, FunctionLM


def question_of(messages):
    return messages[-1]["content"].split("<<< question >>>\n", 1)[1].split("\n\n", 1)[0]


def parity(messages):
    q = question_of(messages)
    if "boom" in q:
        raise ValueError(f"cannot answer {q}")
    return {"answer": "yes" if "even" in q else "no"}


def devset(n=10, boom=()):
    return [
        dsx.Example(
            question=f"{'even' if i % 2 == 0 else 'odd'} {i}" + (" boom" if i in boom else ""),
            answer="yes" if i % 2 == 0 else "no",
        ).with_inputs("question")
        for i in range(n)
    ]


def predict(lm=None):
    return dsx.Predict("question -> answer", lm=lm or FunctionLM(parity))


def test_scores_every_example_in_devset_order():
    dev = devset(10)
    dev[3] = dev[3].copy(answer="maybe")  # a wrong gold label: 9 of 10 right
    result = Evaluate(devset=dev, metric=exact_match(), display_progress=False)(predict())
    assert isinstance(result, EvaluationResult)
    assert result.score == 90.0 and float(result) == 90.0
    assert [ex for ex, _, _ in result.results] == dev
    assert [s for _, _, s in result.results] == [1.0, 1.0, 1.0, 0.0, *[1.0] * 6]
    assert result.results[0][1].answer == "yes"
    assert result.errors == 0 and result.complete and result.stopped is None


def test_a_failing_example_scores_failure_score_and_is_reported():
    lines: list[str] = []
    evaluate = Evaluate(
        devset=devset(6, boom={2}),
        metric=exact_match(),
        failure_score=0.5,
        display_progress=lines.append,
    )
    result = evaluate(predict())
    assert result.errors == 1 and result.complete
    index, example, exc = result.failures[0]
    assert index == 2 and "boom" in example.question and isinstance(exc, ValueError)
    _, pred, score = result.results[2]
    assert score == 0.5 and pred.keys() == []
    assert result.score == round(100 * 5.5 / 6, 2)
    assert any("example #2 failed: ValueError: cannot answer even 2 boom" in line for line in lines)
    assert "Evaluate: 5.5 / 6" in lines[-1]


def test_metric_forms_two_or_three_arguments_async_bool_and_prediction():
    dev = devset(4)
    seen = []

    def with_trace(example, pred, trace):
        seen.append(trace)
        return example.answer == pred.answer

    async def async_metric(example, pred):
        await asyncio.sleep(0)
        return 1 if example.answer == pred.answer else 0

    def as_prediction(example, pred, trace=None):
        return dsx.Prediction(score=0.25)

    for metric, expected in [
        (lambda ex, pred: ex.answer == pred.answer, 100.0),
        (with_trace, 100.0),
        (async_metric, 100.0),
        (as_prediction, 25.0),
    ]:
        assert (
            Evaluate(devset=dev, metric=metric, display_progress=False)(predict()).score == expected
        )
    assert seen == [None] * 4  # Evaluate passes no trace (the DSPy convention)


def test_a_metric_that_raises_or_returns_none_counts_as_a_failure():
    def broken(example, pred):
        return None if example.answer == "yes" else 1.0

    result = Evaluate(devset=devset(4), metric=broken, display_progress=False)(predict())
    assert result.errors == 2 and "returned None" in str(result.failures[0][2])


def test_max_errors_stops_cleanly_and_says_why(capsys):
    dev = devset(20, boom={1, 2, 3})
    result = Evaluate(devset=dev, metric=exact_match(), max_errors=2, num_threads=1)(predict())
    assert not result.complete and result.errors == 2
    assert result.stopped.startswith(
        "max_errors=2 reached (2 failed); the first (#1) failed with ValueError"
    )
    assert result.num_done == 3  # examples 0, 1, 2 ran; nothing after the second failure started
    err = capsys.readouterr().err
    assert "Evaluate stopped after 3 of 20 examples: max_errors=2 reached" in err


def test_max_errors_defaults_to_the_setting():
    dsx.configure(max_errors=1)
    result = Evaluate(devset=devset(5, boom={0}), metric=exact_match(), display_progress=False)(
        predict()
    )
    assert result.num_done == 1 and "max_errors=1" in result.stopped


def test_ctrl_c_returns_the_partial_result():
    class Interrupting(dsx.Module):
        def __init__(self):
            self.p = predict()

        async def aforward(self, question):
            if question.startswith("even 4"):
                os.kill(os.getpid(), signal.SIGINT)
                await asyncio.sleep(10)  # cancelled by the interrupt
            return await self.p.acall(question=question)

    result = Evaluate(
        devset=devset(10), metric=exact_match(), num_threads=1, display_progress=False
    )(Interrupting())
    assert result.stopped == "interrupted" and not result.complete
    assert result.num_done == 4 and result.score == 100.0


def test_ctrl_c_with_a_sync_program_in_the_pool():
    release = threading.Event()

    class SyncInterrupting(dsx.Module):
        def __init__(self):
            self.p = predict()

        def forward(self, question):
            if question.startswith("even 4"):
                os.kill(os.getpid(), signal.SIGINT)
                release.wait(0.2)  # the pool's thread may still be busy when the run stops
            return self.p(question=question)

    result = Evaluate(
        devset=devset(10), metric=exact_match(), num_threads=1, display_progress=False
    )(SyncInterrupting())
    release.set()
    # The interrupt lands while example 4 runs, or just as it finishes.
    assert result.stopped == "interrupted" and result.num_done in (4, 5)


def test_async_programs_run_up_to_num_threads_at_once():
    in_flight = peak = 0

    async def slow(messages):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return parity(messages)

    result = Evaluate(
        devset=devset(40), metric=exact_match(), num_threads=7, display_progress=False
    )(predict(FunctionLM(slow)))
    assert result.score == 100.0 and peak == 7


def test_sync_programs_run_in_a_pool_of_num_threads():
    # 12 sync runs must be in flight together to pass the barrier: asyncio's default pool
    # (min(32, cores + 4) threads) would not be enough on a small machine.
    barrier = threading.Barrier(12, timeout=5)

    class SyncOnly(dsx.Module):
        def __init__(self):
            self.p = predict()

        def forward(self, question):
            barrier.wait()
            return self.p(question=question)

    result = Evaluate(
        devset=devset(24), metric=exact_match(), num_threads=12, display_progress=False
    )(SyncOnly())
    assert result.errors == 0 and result.score == 100.0


def test_plain_functions_and_settings_reach_the_program():
    lm = FunctionLM(parity)

    def program(question):
        assert dsx.settings.lm is lm  # the context follows into the worker thread
        return dsx.Prediction(answer="yes" if "even" in question else "no")

    with dsx.context(lm=lm):
        assert (
            Evaluate(devset=devset(6), metric=exact_match(), display_progress=False)(program).score
            == 100.0
        )


async def test_acall_inside_an_event_loop_and_sync_call_from_one():
    evaluate = Evaluate(devset=devset(6), metric=exact_match(), display_progress=False)
    assert (await evaluate.acall(predict())).score == 100.0
    # the sync form also works with a loop running (it uses a helper thread)
    assert evaluate(predict()).score == 100.0


def test_usage_is_collected():
    lm = DummyLM({"even": {"answer": "yes"}, "odd": {"answer": "no"}})
    result = Evaluate(devset=devset(4), metric=exact_match(), display_progress=False)(predict(lm))
    assert result.usage["dummy"]["total_tokens"] > 0


def test_export_json_csv_pandas_and_table(tmp_path, capsys):
    dev = devset(3, boom={1})
    evaluate = Evaluate(
        devset=dev,
        metric=exact_match(),
        display_progress=False,
        display_table=2,
        save_as_json=tmp_path / "r.json",
        save_as_csv=tmp_path / "r.csv",
    )
    result = evaluate(predict())
    table = capsys.readouterr().out
    assert "example.question" in table and "even 0" in table and "... 1 more" in table
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["score"] == result.score and doc["errors"] == 1 and len(doc["results"]) == 3
    assert doc["results"][1]["error"].startswith("ValueError") and doc["results"][0][
        "prediction"
    ] == {"answer": "yes"}
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert [r["score"] for r in rows] == ["1.0", "0.0", "1.0"] and rows[0]["pred.answer"] == "yes"
    assert json.loads(result.to_json())["num_examples"] == 3
    pd = pytest.importorskip("pandas", reason="pandas is optional: to_pandas() needs it")
    frame = result.to_pandas()
    assert isinstance(frame, pd.DataFrame) and list(frame["score"]) == [1.0, 0.0, 1.0]


def test_to_pandas_without_pandas_says_how_to_get_it(monkeypatch):
    import sys

    result = Evaluate(devset=devset(1), metric=exact_match(), display_progress=False)(predict())
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(dsx.DsxError, match="pip install pandas"):
        result.to_pandas()


def test_bad_devset_and_missing_metric_are_explained():
    with pytest.raises(
        dsx.DsxError, match=r"devset\[0\] is not a dsx.Example with its inputs marked"
    ):
        Evaluate(devset=[dsx.Example(question="q")], metric=exact_match())(predict())
    with pytest.raises(dsx.DsxError, match="needs a metric"):
        Evaluate(devset=devset(1))(predict())


def test_progress_on_a_terminal_redraws_one_line():
    from dsx.runtime._progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = Progress(4, desc="Evaluate", stream=out)
    for done in range(1, 5):
        bar.update(done, score=100.0 * done / 4)
    bar.close("done")
    text = out.getvalue()
    assert (
        "\r\033[K" in text and "4/4" in text and "score 100.00%" in text and text.endswith("done\n")
    )
