"""DSPy's runtime surface on dsx (issue 21, items 5 and 6): ``parameters()`` /
``named_parameters()``, ``dsx.cache`` and ``configure_cache`` with DSPy's keyword names,
``Parallel(timeout=, straggler_limit=)`` and nested ``Parallel``."""

from __future__ import annotations

import asyncio
import threading

import pytest

import dsx
import dsx.compat.dspy as dspy
from dsx.runtime import cache as cache_mod


class Pipeline(dsx.Module):
    def __init__(self) -> None:
        self.first = dsx.Predict("question -> query")
        self.steps = [dsx.ChainOfThought("query -> answer"), dsx.Predict("answer -> check")]

    def forward(self, question: str) -> dsx.Prediction:
        return self.first(question=question)


def test_parameters_are_the_predictors_under_dspy_s_names():
    program = Pipeline()
    # DSPy's names in DSPy's order (attribute by attribute); named_predictors: breadth first
    assert [n for n, _ in program.named_parameters()] == [
        "first",
        "steps[0].predict",
        "steps[1]",
    ]
    assert dict(program.named_parameters()) == dict(program.named_predictors())
    assert program.parameters() == [p for _, p in program.named_parameters()]
    assert all(isinstance(p, dsx.Predict) for p in program.parameters())
    bare = dsx.Predict("q -> a")
    assert bare.named_parameters() == [("self", bare)]  # as DSPy gives for a bare Predict


@pytest.fixture
def restore_cache():
    before = cache_mod._cache
    yield
    cache_mod._cache = before


def test_configure_cache_takes_dspy_s_names_and_dsx_cache_is_the_one_in_use(
    tmp_path, restore_cache
):
    made = dsx.configure_cache(
        enable_memory_cache=True,
        enable_disk_cache=True,
        disk_cache_dir=str(tmp_path / "c"),
        disk_size_limit_bytes=10_000_000,
        memory_max_entries=7,
    )
    assert dsx.cache is made and dspy.cache is made
    assert repr(made) == f"<dsx Cache memory=0/7 disk={tmp_path / 'c'}>"
    memory_only = dspy.configure_cache(enable_disk_cache=False)
    assert dsx.cache is memory_only and "disk=off" in repr(memory_only)
    with pytest.raises(ValueError, match="enable_disk=False and enable_disk_cache=True"):
        dsx.configure_cache(enable_disk=False, enable_disk_cache=True)


class _Stuck(dsx.Module):
    """Input 1's first attempt hangs until the test releases it."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()
        self.lock = threading.Lock()

    def forward(self, x: int) -> str:
        with self.lock:
            self.calls.append(x)
            attempt = self.calls.count(x)
        if x == 1 and attempt == 1:
            self.release.wait(30)  # a bound for a broken build, not a timing assertion
            return "first attempt"
        return f"ok {x}"


def test_a_straggler_is_started_again_and_the_faster_attempt_wins():
    program = _Stuck()
    try:
        results = dsx.Parallel(num_threads=4, timeout=0.1, straggler_limit=3)(
            [(program, {"x": i}) for i in range(3)]
        )
    finally:
        program.release.set()
    assert results == ["ok 0", "ok 1", "ok 2"]
    assert sorted(program.calls) == [0, 1, 1, 2]


def test_no_restart_with_timeout_0_or_while_more_than_the_limit_is_left():
    program = _Stuck()
    program.release.set()  # the first attempt does not hang
    assert dsx.Parallel(num_threads=2, timeout=0)([(program, {"x": i}) for i in range(3)]) == [
        "ok 0",
        "first attempt",
        "ok 2",
    ]
    assert sorted(program.calls) == [0, 1, 2]
    with pytest.raises(ValueError, match="timeout=-1"):
        dsx.Parallel(timeout=-1)


def test_nested_parallel():
    class Inner(dsx.Module):
        def forward(self, x: int) -> int:
            return x * 10

    class Outer(dsx.Module):
        def forward(self, xs: list[int]) -> list[int]:
            return dsx.Parallel(num_threads=2)([(Inner(), {"x": x}) for x in xs])

    results = dspy.Parallel(num_threads=2)([(Outer(), {"xs": [i, i + 1]}) for i in range(3)])
    assert results == [[0, 10], [10, 20], [20, 30]]


def test_deepcopy_copies_demos_and_shares_the_lm():
    lm = dsx.LM("openai/dsx-test", api_base="http://127.0.0.1:9/v1", api_key="x")
    program = Pipeline()
    program.set_lm(lm)
    program.first.demos = [dsx.Example(question="q", query="x")]
    copy = program.deepcopy()
    assert copy.first.lm is lm and copy.steps[0].predict.lm is lm
    copy.first.demos.append(dsx.Example(question="q2", query="y"))
    assert len(program.first.demos) == 1


class _TwoSteps(dsx.Module):
    def __init__(self) -> None:
        self.rewrite = dsx.Predict("question -> query")
        self.answer = dsx.Predict("query -> answer")

    def forward(self, question: str) -> dsx.Prediction:
        return self.answer(query=self.rewrite(question=question).query)


def _lm():
    from dsx.testing import DummyLM

    return DummyLM([{"query": "q", "answer": "a"}] * 10)


def test_each_module_keeps_the_lm_calls_made_inside_it():
    program = _TwoSteps()
    with dsx.context(lm=_lm()):
        program(question="one")
        program(question="two")
    assert len(program.history) == 4  # both predictors, both calls
    assert len(program.rewrite.history) == 2 and len(program.answer.history) == 2
    assert program.rewrite.history[0] is program.history[0]
    assert "one" in str(program.rewrite.history[0]["messages"])
    assert "--- response ---" in program.answer.inspect_history(1)
    with dsx.context(lm=_lm(), max_history_size=3):
        program(question="three")
    assert len(program.history) == 3 and len(program.answer.history) == 3
    assert "three" in str(program.history[-2]["messages"])


def test_disable_history_and_a_size_of_0():
    program = _TwoSteps()
    lm = _lm()
    with dsx.context(lm=lm, disable_history=True):
        program(question="q")
    assert program.history == [] and len(lm.history) == 0
    with dsx.context(lm=lm, max_history_size=0):
        program(question="q")
    assert program.history == [] and len(lm.history) == 2  # the LM keeps its own


def test_a_member_named_history_is_a_member():
    class Chat(dsx.Module):
        def __init__(self) -> None:
            self.history = dsx.Predict("turns -> summary")

        def forward(self, turns: str) -> dsx.Prediction:
            return self.history(turns=turns)

    chat = Chat()
    assert [n for n, _ in chat.named_predictors()] == ["history"]
    from dsx.testing import DummyLM

    with dsx.context(lm=DummyLM([{"summary": "s"}])):
        chat(turns="t")
    assert len(chat.history.history) == 1


def test_configure_from_another_thread_than_the_first_is_an_error():
    from dsx.runtime.settings import ConfigureOwnerError

    dsx.configure(num_threads=3)
    errors: list[BaseException] = []
    seen: list[int] = []

    def worker() -> None:
        try:
            dsx.configure(num_threads=5)
        except ConfigureOwnerError as exc:
            errors.append(exc)
        with dsx.context(num_threads=7):  # what other threads use instead
            seen.append(dsx.settings.num_threads)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "use `with dsx.context(...)`" in str(errors[0])
    assert isinstance(errors[0], RuntimeError) and isinstance(errors[0], dsx.DsxError)
    assert seen == [7] and dsx.settings.num_threads == 3
    dsx.configure(num_threads=4)  # the owner still may
    assert dsx.settings.num_threads == 4


def test_configure_from_another_asyncio_task_is_an_error():
    from dsx.runtime.settings import ConfigureOwnerError

    async def main() -> None:
        dsx.configure(num_threads=2)  # this task owns the defaults

        async def other() -> None:
            dsx.configure(num_threads=9)

        with pytest.raises(ConfigureOwnerError, match="asyncio task that called it first"):
            await asyncio.create_task(other())
        dsx.configure(num_threads=6)

    asyncio.run(main())
    assert dsx.settings.num_threads == 6


def test_settings_save_and_load_settings(tmp_path):
    from dsx.errors import DsxError

    lm = dsx.LM("openai/dsx-test", api_base="http://127.0.0.1:9/v1", api_key="sk-secret")
    dsx.configure(lm=lm, adapter=dsx.DSPyChatAdapter(), num_threads=5)
    path = tmp_path / "settings.pkl"
    with pytest.raises(DsxError, match="allow_pickle=True"):
        dsx.settings.save(path)
    with pytest.warns(UserWarning, match=r"without the secrets of lm \(api_key\)"):
        dsx.settings.save(path, exclude_keys=["callbacks"], allow_pickle=True)
    assert b"sk-secret" not in path.read_bytes()
    assert lm.api_key == "sk-secret"  # the LM in use keeps its key
    with pytest.raises(DsxError, match="loading one runs code"):
        dsx.load_settings(path)
    loaded = dspy.load_settings(str(path), allow_pickle=True)
    assert "callbacks" not in loaded and loaded["num_threads"] == 5
    assert loaded["lm"].model == "openai/dsx-test" and loaded["lm"].api_key is None
    assert loaded["lm"].api_base == "http://127.0.0.1:9/v1"
    assert isinstance(loaded["adapter"], dsx.DSPyChatAdapter)
    dsx.settings.reset()
    dsx.configure(**loaded)
    assert dsx.settings.num_threads == 5
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DsxError, match="is not settings saved by dsx.settings.save"):
        dsx.load_settings(tmp_path / "bad.pkl", allow_pickle=True)
