"""BootstrapFinetune end to end against dsx.testing's OpenAI-compatible server (chat and
fine-tuning endpoints): data, jobs, the result's learned state, failures, budget, .dsx build."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

import dsx
from dsx.compiler.build import BuildError, build, explain
from dsx.errors import StateError
from dsx.runtime.finetune import FinetuneError, FinetuneFailed, FinetuneTimeout
from dsx.teleprompt import BootstrapFinetune, optimizer_info
from dsx.testing import format_answer
from dsx.testing.server import OpenAIServer

pytestmark = pytest.mark.integration


def _question(body: dict[str, Any]) -> str:
    text = body["messages"][-1]["content"]
    match = re.search(r"<<< question >>>\n(.*?)\n", text)
    return match.group(1) if match else ""


def _respond(body: dict[str, Any]) -> str:
    q = _question(body)
    if "<<< draft >>>" in body["messages"][-1]["content"].split("Reply with")[0]:
        return format_answer({"answer": "yes" if "even" in q else "no"})
    if "hard" in q:
        return format_answer({"answer": "maybe", "draft": "maybe"})
    return format_answer({"answer": "yes" if "even" in q else "no", "draft": "d"})


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(_respond) as srv:
        yield srv


def _lm(server: OpenAIServer, model: str = "openai/gpt-4o-mini") -> dsx.LM:
    return dsx.LM(model, api_base=server.api_base, api_key="sk-test", cache=False)


def _trainset() -> list[dsx.Example]:
    qs = ["even 0", "odd 1", "hard 2", "even 4", "odd 5"]
    return [
        dsx.Example(question=q, answer="yes" if "even" in q else "no").with_inputs("question")
        for q in qs
    ]


def em(example: dsx.Example, pred: dsx.Prediction, trace: Any = None) -> bool:
    return example.answer == pred.answer


FAST = {"poll_interval": 0.001, "display_progress": False}


def test_compile_fine_tunes_and_the_result_uses_the_model(server: OpenAIServer) -> None:
    student = dsx.Predict("question -> answer", lm=_lm(server))
    opt = BootstrapFinetune(metric=em, train_kwargs={"n_epochs": 1}, **FAST)
    tuned = opt.compile(student, trainset=_trainset())
    assert student.lm.model == "openai/gpt-4o-mini"  # the student is untouched
    [job] = opt.jobs
    assert tuned.lm.model == f"openai/ft:gpt-4o-mini:dsx::{job.id.split('-')[1]}"
    [data] = opt.data
    assert len(data.examples) == 4  # "hard 2" failed the metric
    [uploaded] = server.fine_tuning.files.values()
    lines = [json.loads(line) for line in uploaded.decode().splitlines()]
    assert not any("hard 2" in json.dumps(line) for line in lines)
    assert server.fine_tuning.jobs[job.id].hyperparameters == {"n_epochs": 1}
    ref = tuned.lm.finetuned
    assert (ref.provider, ref.base_model, ref.data_hash, ref.job_id) == (
        "openai",
        "openai/gpt-4o-mini",
        data.hash,
        job.id,
    )
    assert [e["event"] for e in opt.log].count("run") == 5
    # the fine-tuned model is called at inference
    tuned(question="even 8")
    assert server.requests[-1].body["model"].startswith("ft:gpt-4o-mini:dsx::")


def test_learned_state_keeps_the_reference_and_passes_the_trust_boundary(
    server: OpenAIServer, tmp_path
) -> None:
    tuned = BootstrapFinetune(metric=em, **FAST).compile(
        dsx.Predict("question -> answer", lm=_lm(server)), trainset=_trainset()
    )
    path = tmp_path / "state.json"
    tuned.save(path)
    saved = json.loads(path.read_text())["state"]["self"]["lm"]
    assert saved["finetuned"]["model"] == tuned.lm.model
    assert "api_base" not in saved and "api_key" not in saved
    fresh = dsx.Predict("question -> answer", lm=_lm(server))
    fresh.load(path)
    assert fresh.lm.model == tuned.lm.model and fresh.lm.finetuned == tuned.lm.finetuned
    assert fresh.lm.api_base == server.api_base  # the endpoint comes from code
    doc = json.loads(path.read_text())
    doc["state"]["self"]["lm"]["finetuned"]["model"] = "http://attacker.example/v1"
    path.write_text(json.dumps(doc))
    with pytest.raises(StateError, match="never endpoints"):
        dsx.Predict("question -> answer", lm=_lm(server)).load(path)


class TwoStep(dsx.Module):
    def __init__(self, a: Any, b: Any) -> None:
        super().__init__()
        self.draft = dsx.Predict("question -> draft", lm=a)
        self.answer = dsx.Predict("question, draft -> answer", lm=b)

    def forward(self, question: str) -> dsx.Prediction:
        return self.answer(question=question, draft=self.draft(question=question).draft)


def test_multitask_and_per_predictor_jobs(server: OpenAIServer) -> None:
    lm = _lm(server)
    opt = BootstrapFinetune(metric=em, **FAST)
    tuned = opt.compile(TwoStep(lm, lm), trainset=_trainset())
    assert len(opt.jobs) == 1 and tuned.draft.lm.model == tuned.answer.lm.model
    opt = BootstrapFinetune(metric=em, multitask=False, exclude_demos=True, **FAST)
    student = TwoStep(lm, lm)
    student.draft.demos = [dsx.Example(question="q", draft="d").with_inputs("question")]
    tuned = opt.compile(student, trainset=_trainset())
    assert len(opt.jobs) == 2 and tuned.draft.lm.model != tuned.answer.lm.model
    assert tuned.draft.demos == [] and len(student.draft.demos) == 1
    assert [d.predictors for d in opt.data] == [["draft"], ["answer"]]


def test_failed_job_leaves_the_program_and_says_why(server: OpenAIServer) -> None:
    server.fine_tuning.plan = "fail"
    student = dsx.Predict("question -> answer", lm=_lm(server))
    opt = BootstrapFinetune(metric=em, **FAST)
    with pytest.raises(FinetuneFailed, match="Training loss diverged"):
        opt.compile(student, trainset=_trainset())
    assert student.lm.model == "openai/gpt-4o-mini" and student.lm.finetuned is None
    assert opt.log[-1]["event"] == "failed"


def test_a_timed_out_job_is_cancelled(server: OpenAIServer) -> None:
    server.fine_tuning.plan = "hang"
    opt = BootstrapFinetune(metric=em, timeout=0.05, **FAST)
    with pytest.raises(FinetuneTimeout):
        opt.compile(dsx.Predict("question -> answer", lm=_lm(server)), trainset=_trainset())
    assert server.fine_tuning.cancelled == [opt.jobs[0].id]


def test_no_passing_run_is_an_error_before_any_job(server: OpenAIServer) -> None:
    opt = BootstrapFinetune(metric=lambda ex, pred, trace=None: False, **FAST)
    with pytest.raises(FinetuneError, match="no run passed the metric"):
        opt.compile(dsx.Predict("question -> answer", lm=_lm(server)), trainset=_trainset())
    assert server.fine_tuning.jobs == {}


def test_budget_and_seed_apply(server: OpenAIServer, tmp_path) -> None:
    opt = BootstrapFinetune(max_lm_calls=2, num_threads=1, export_dir=str(tmp_path), **FAST)
    opt.compile(dsx.Predict("question -> answer", lm=_lm(server)), trainset=_trainset())
    assert len(opt.data[0].examples) == 2 and opt.stopped and "budget" in opt.stopped
    assert (tmp_path / "multitask-lm0.jsonl").is_file()
    a = BootstrapFinetune(seed=1, **FAST)
    b = BootstrapFinetune(seed=1, **FAST)
    c = BootstrapFinetune(seed=2, **FAST)
    for opt in (a, b, c):
        opt.compile(dsx.Predict("question -> answer", lm=_lm(server)), trainset=_trainset())
    assert a.data[0].examples == b.data[0].examples != c.data[0].examples


def test_registry_describes_it() -> None:
    info = optimizer_info("BootstrapFinetune")
    assert info is not None and info.available
    assert info.settings["multitask"].default is True
    assert info.settings["adapter"].choices == ("chat", "json")
    assert info.settings["train_kwargs"].kinds == ("dict",)
    assert not info.settings["metric"].settable


QA = """signature QA = "question -> answer"
program qa = Predict(QA)
data train = jsonl("train.jsonl", inputs = [question])
metric em = exact_match
optimize qa {
    with   BootstrapFinetune(train_kwargs = {"n_epochs": 2}, adapter = "chat", poll_interval = 0.001)
    train  train
    metric em
    seed   3
}
"""


def test_dsx_build_runs_caches_and_explains(server: OpenAIServer, tmp_path) -> None:
    rows = [{"question": ex.question, "answer": ex.answer} for ex in _trainset()]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "qa.dsx").write_text(QA)
    dsx.configure(lm=_lm(server))
    logs: list[str] = []
    result = build(tmp_path / "qa.dsx", log=logs.append)
    lm_state = result.unit.learned["qa"].predictors["self"].lm
    assert lm_state is not None and lm_state["model"].startswith("openai/ft:gpt-4o-mini:dsx::")
    assert lm_state["finetuned"]["base_model"] == "openai/gpt-4o-mini"
    assert any("BootstrapFinetune: openai job ftjob-" in line for line in logs)
    text = explain(result.unit)
    assert "fine-tuned: openai/ft:gpt-4o-mini:dsx::" in text and "data sha256 " in text
    jobs = len(server.fine_tuning.jobs)
    again = build(tmp_path / "qa.dsx", log=logs.append)
    assert again.reused == ["qa"] and len(server.fine_tuning.jobs) == jobs  # never re-trained
    # the generated module loads the state with the fine-tuned model (names, no endpoint)
    state = json.loads((tmp_path / "build" / "qa.state.json").read_text())
    assert state["state"]["self"]["lm"]["finetuned"]["provider"] == "openai"


def test_a_failed_job_in_dsx_build_keeps_the_previous_build(server: OpenAIServer, tmp_path) -> None:
    rows = [{"question": ex.question, "answer": ex.answer} for ex in _trainset()]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "qa.dsx").write_text(QA)
    dsx.configure(lm=_lm(server))
    build(tmp_path / "qa.dsx", log=lambda line: None)
    state_file = tmp_path / "build" / "qa.state.json"
    before = state_file.read_bytes()
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [*rows, {"question": "even 10", "answer": "yes"}])
    )
    server.fine_tuning.plan = "fail"
    with pytest.raises(BuildError, match="BootstrapFinetune failed: .*Training loss diverged"):
        build(tmp_path / "qa.dsx", log=lambda line: None)
    assert state_file.read_bytes() == before


def test_a_list_of_teachers_pools_their_passing_runs(server: OpenAIServer) -> None:
    lm = _lm(server)
    opt = BootstrapFinetune(metric=em, **FAST)
    student = dsx.Predict("question -> answer", lm=lm)
    teachers = [dsx.Predict("question -> answer", lm=lm), dsx.Predict("question -> answer", lm=lm)]
    opt.compile(student, trainset=_trainset(), teacher=teachers)
    assert len(opt.data[0].examples) == 8  # 4 passing runs from each teacher
    assert [e["event"] for e in opt.log].count("run") == 10
