"""`dsx build` runs the optimizers with the optimize block's settings and prints progress."""

from __future__ import annotations

import json

import pytest

import dsx
from dsx.compiler.build import BuildError, build
from dsx.testing import FunctionLM

QA = """signature QA = "question -> answer"
program qa = Predict(QA)
data train = jsonl("train.jsonl", inputs = [question])
metric em = exact_match
optimize qa {
    with   OPTIMIZER
    train  train
    dev    train
    metric em
    seed   3
}
"""


def respond(messages):
    q = messages[-1]["content"].split("<<< question >>>\n", 1)[1].split("\n\n", 1)[0]
    return {"answer": "yes" if "even" in q else "no"}


@pytest.fixture
def project(tmp_path):
    rows = [
        {
            "question": f"{'even' if i % 2 == 0 else 'odd'} {i}",
            "answer": "yes" if i % 2 == 0 else "no",
        }
        for i in range(6)
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def build_with(project, optimizer):
    (project / "qa.dsx").write_text(QA.replace("OPTIMIZER", optimizer))
    logs: list[str] = []
    dsx.configure(lm=FunctionLM(respond))
    result = build(project / "qa.dsx", log=logs.append)
    return result, logs


def test_bootstrap_in_build_prints_progress_and_exports_demos(project):
    result, logs = build_with(
        project, "BootstrapFewShot(max_bootstrapped_demos = 2, max_labeled_demos = 3)"
    )
    learned = result.unit.learned["qa"]
    assert [d["question"] for d in learned.predictors["self"].demos[:2]] == ["even 0", "odd 1"]
    assert len(learned.predictors["self"].demos) == 3
    assert (
        "optimize qa: Bootstrap round 1: ran 2 of 6 examples, 0 failed, 2/2 demos "
        "(stopped: enough demos, 4 not run)"
    ) in logs
    assert "optimize qa: BootstrapFewShot: done · 2 LM calls" in logs


def test_random_search_in_build_records_the_score(project):
    result, logs = build_with(
        project,
        "BootstrapFewShotWithRandomSearch(num_candidate_programs = 2, max_bootstrapped_demos = 1)",
    )
    assert result.unit.learned["qa"].score == 100.0
    assert any(
        line.startswith("optimize qa: candidate 5/5 (bootstrap-shuffled, seed 1): 100.00%")
        for line in logs
    )


def test_build_refuses_an_ensemble_that_names_no_members(project):
    # KNNFewShot's index and Ensemble's members are learned state now
    # (tests/teleprompt/test_knn_in_build.py, test_ensemble_in_build.py)
    with pytest.raises(BuildError, match=r"members of one: Ensemble\(members = 3"):
        build_with(project, "Ensemble(size = 2)")


def test_build_reports_an_optimizer_failure(project):
    (project / "qa.dsx").write_text(QA.replace("OPTIMIZER", "BootstrapFewShot(max_errors = 1)"))

    def broken(messages):
        raise ValueError("no model here")

    dsx.configure(lm=FunctionLM(broken))
    with pytest.raises(BuildError, match=r"optimize qa: BootstrapFewShot failed: .*no model here"):
        build(project / "qa.dsx", log=lambda m: None)


def respond_or_propose(messages, **kwargs):
    """The task as `respond`; COPRO's proposals: `n` instructions named by the rollout id."""
    if "proposed_instruction" in messages[0]["content"]:
        n = int(kwargs.get("n") or 1)
        rid = kwargs.get("rollout_id")
        out = [
            {"proposed_instruction": f"Answer yes for even numbers ({rid}/{i})."} for i in range(n)
        ]
        return out if n > 1 else out[0]
    return respond(messages)


def test_an_interrupted_optimization_resumes_in_the_next_build(project):
    calls: list[int] = []

    def lm(messages, **kwargs):
        calls.append(1)
        return respond_or_propose(messages, **kwargs)

    def build_copro(settings):
        (project / "qa.dsx").write_text(QA.replace("OPTIMIZER", f"COPRO({settings})"))
        dsx.configure(lm=FunctionLM(lm))
        logs: list[str] = []
        result = build(project / "qa.dsx", log=logs.append)
        count = len(calls)
        calls.clear()
        return result, logs, count

    # a budget stops the first build midway; its run state stays in build/.runs
    _, logs, first = build_copro("breadth = 3, depth = 2, max_lm_calls = 8, num_threads = 1")
    assert any("stopped early" in line for line in logs)
    assert len(list((project / "build" / ".runs").glob("copro-*"))) == 1
    # without the budget (another build, as the settings changed) it goes on from there
    resumed, logs, second = build_copro("breadth = 3, depth = 2")
    assert any("run state in" in line for line in logs)
    # from scratch, for comparison
    import shutil

    shutil.rmtree(project / "build")
    scratch, _, whole = build_copro("breadth = 3, depth = 2")
    assert second < whole and first + second <= whole + 6
    assert resumed.unit.learned["qa"] == scratch.unit.learned["qa"]
