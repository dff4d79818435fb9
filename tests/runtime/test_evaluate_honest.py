"""Evaluate never loses or misreports a run (issue 14): cancellation returns what finished,
and a failed save is reported while the result is still returned."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

import dsx
from dsx.runtime.evaluate import Evaluate
from dsx.runtime.metrics import exact_match
from dsx.testing import FunctionLM


def answer(messages):
    q = messages[-1]["content"].split("<<< question >>>\n", 1)[1].split("\n\n", 1)[0]
    return {"answer": f"a{q.split()[-1]}"}


def devset(n):
    return [
        dsx.Example(question=f"q {i}", answer=f"a{i}").with_inputs("question") for i in range(n)
    ]


async def test_acall_returns_the_partial_result_when_cancelled():
    predict = dsx.Predict("question -> answer", lm=FunctionLM(answer))
    four_done = asyncio.Event()
    done = 0

    class Slow(dsx.Module):
        async def aforward(self, question):
            nonlocal done
            if done >= 4:
                four_done.set()
                await asyncio.sleep(30)  # cancelled
            pred = await predict.acall(question=question)
            done += 1
            return pred

    evaluate = Evaluate(devset=devset(10), metric=exact_match(), num_threads=1)
    task = asyncio.create_task(evaluate.acall(Slow(), display_progress=False))
    await asyncio.wait_for(four_done.wait(), 5)
    task.cancel()
    result = await asyncio.wait_for(task, 5)
    assert result.stopped == "interrupted" and not result.complete
    assert result.num_done == 4 and result.num_examples == 10 and result.score == 100.0
    # the task is not left half-cancelled: a later await in it works
    assert asyncio.current_task().cancelling() == 0


@pytest.fixture
def readonly_dir(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o500)
    probe = d / "probe"
    try:
        probe.write_text("x")
    except OSError:
        yield d
    else:  # root ignores permissions
        probe.unlink()
        pytest.skip("running as root: a read-only directory is still writable")
    finally:
        d.chmod(0o700)


def _predict_with(reply):
    return dsx.Predict("question -> answer", lm=FunctionLM(lambda m: {"answer": reply}))


def test_a_failed_save_is_reported_after_the_score_and_the_result_kept(tmp_path, capsys):
    missing = tmp_path / "no" / "such" / "dir" / "r.json"
    result = Evaluate(
        devset=devset(3),
        metric=exact_match(),
        save_as_json=missing,
        save_as_csv=tmp_path / "is-a-dir",
    )
    (tmp_path / "is-a-dir").mkdir()
    out = result(_predict_with("a0"))
    assert out.num_done == 3 and out.score == pytest.approx(33.33)
    assert len(out.save_errors) == 2
    assert str(missing) in out.save_errors[0] and "is-a-dir" in out.save_errors[1]
    err = capsys.readouterr().err
    assert err.index("33.33%") < err.index("could not save")


def test_a_read_only_directory_does_not_lose_the_result(readonly_dir):
    out = Evaluate(devset=devset(2), metric=exact_match(), save_as_json=readonly_dir / "r.json")(
        _predict_with("a1")
    )
    assert out.num_done == 2 and len(out.save_errors) == 1


def test_a_lone_surrogate_in_a_reply_still_saves(tmp_path):
    out = Evaluate(
        devset=devset(2),
        metric=exact_match(),
        save_as_json=tmp_path / "r.json",
        save_as_csv=tmp_path / "r.csv",
        display_progress=False,
    )(_predict_with("bad \ud800 text"))
    assert out.save_errors == []
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert doc["results"][0]["prediction"]["answer"] == "bad \ud800 text"
    assert os.path.getsize(tmp_path / "r.csv") > 0
