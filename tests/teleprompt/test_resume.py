"""An interrupted MIPROv2, COPRO, SIMBA or GEPA run resumes from its run directory when run again with the
same inputs: finished work is not repeated (fewer LM calls) and the result is the one an
uninterrupted run gives."""

from __future__ import annotations

import json

import pytest
from tests.teleprompt.instruction_task import (
    PROPOSALS,
    dataset,
    echo_program,
    exact,
    prompt_lm,
    reflection_lm,
    task_lm,
)
from tests.teleprompt.test_gepa import feedback_metric
from tests.teleprompt.test_simba import advisor
from tests.teleprompt.test_simba import task_lm as simba_task_lm

import dsx
from dsx import BatchError
from dsx.teleprompt import COPRO, GEPA, SIMBA, MIPROv2
from dsx.testing import FunctionLM


def mipro_run(run_dir, calls, **kwargs):
    dsx.configure(lm=task_lm(calls))
    prompt, _ = prompt_lm()
    opt = MIPROv2(
        metric=exact,
        prompt_model=prompt,
        auto=None,
        num_candidates=5,
        num_trials=8,
        minibatch=True,
        minibatch_size=4,
        minibatch_full_eval_steps=3,
        seed=3,
        display_progress=False,
        run_dir=None if run_dir is None else str(run_dir),
        **kwargs,
    )
    best = opt.compile(echo_program(), trainset=dataset(4), valset=dataset(8, start=4))
    table = [(t.kind, t.instructions, t.demos, t.score, t.examples) for t in opt.trials]
    return opt, best, table


def test_mipro_resumes_after_a_budget_stop(tmp_path):
    full_calls: list[str] = []
    _, whole, whole_table = mipro_run(None, full_calls)

    first: list[str] = []
    stopped, _, _ = mipro_run(tmp_path, first, max_lm_calls=40, num_threads=1)
    assert stopped.stopped is not None
    second: list[str] = []
    opt, best, table = mipro_run(tmp_path, second)
    assert opt.stopped is None
    assert table == whole_table and opt.best_score is not None
    assert best.signature.instructions == whole.signature.instructions
    assert best.demos == whole.demos
    # the finished trials were not run again: the two runs together cost about one
    # uninterrupted run (the evaluation in flight at the stop is redone, at most 8 calls)
    assert len(second) < len(full_calls)
    assert len(first) + len(second) <= len(full_calls) + 8
    # a third run finds everything done
    third: list[str] = []
    mipro_run(tmp_path, third)
    assert third == []


def test_mipro_resumes_after_a_crash(tmp_path):
    """A task LM that dies mid-run (every call fails after a point) stops the run with an
    error; the next run with the same inputs goes on from the last finished evaluation."""
    full_calls: list[str] = []
    _, _, whole_table = mipro_run(None, full_calls)
    seen: list[str] = []
    broken = task_lm(seen)
    original = broken.func

    def dying(messages):
        if len(seen) >= 30:
            raise ConnectionError("the provider went away")
        return original(messages)

    broken.func = dying
    dsx.configure(lm=broken)
    prompt, _ = prompt_lm()
    opt = MIPROv2(
        metric=exact,
        prompt_model=prompt,
        auto=None,
        num_candidates=5,
        num_trials=8,
        minibatch=True,
        minibatch_size=4,
        minibatch_full_eval_steps=3,
        seed=3,
        display_progress=False,
        run_dir=str(tmp_path),
        max_errors=1,
        num_threads=1,
    )
    with pytest.raises(BatchError):
        opt.compile(echo_program(), trainset=dataset(4), valset=dataset(8, start=4))
    again: list[str] = []
    _, _, table = mipro_run(tmp_path, again)
    assert table == whole_table
    assert len(again) < len(full_calls)


def test_changed_inputs_start_afresh(tmp_path):
    mipro_run(tmp_path, [])
    calls: list[str] = []
    mipro_run(tmp_path, calls, init_temperature=0.5)  # another setting: another run key
    assert calls
    assert len(list(tmp_path.iterdir())) == 2


def gepa_run(run_dir, **kwargs):
    dsx.configure(lm=task_lm())
    prompts: list[str] = []
    opt = GEPA(
        metric=feedback_metric,
        max_metric_calls=40,
        reflection_lm=reflection_lm(prompts),
        use_merge=False,
        display_progress=False,
        run_dir=None if run_dir is None else str(run_dir),
        seed=2,
        skip_perfect_score=False,  # a long run, so that the budget stops it midway
        **kwargs,
    )
    best = opt.compile(echo_program(), trainset=dataset(8), valset=dataset(4, start=8))
    return opt, best


def test_gepa_resumes_from_its_run_dir(tmp_path):
    whole, whole_best = gepa_run(None)
    stopped, _ = gepa_run(tmp_path, max_lm_calls=20, num_threads=1)
    assert stopped.stopped is not None
    assert len(list(tmp_path.glob("gepa-*/gepa_state.bin"))) == 1
    opt, best = gepa_run(tmp_path)
    assert best.signature.instructions == whole_best.signature.instructions
    assert opt.best_score == whole.best_score
    done, ref = opt.detailed_results, whole.detailed_results
    assert done.instructions == ref.instructions
    assert done.total_metric_calls == ref.total_metric_calls
    # the resumed run re-scores the student (4 runs) but not the finished iterations
    assert opt.lm_calls < whole.lm_calls


def seeded_proposer(prompts: list[str]) -> FunctionLM:
    """Proposals drawn by the call's rollout id (as a real model's sample would be by its
    prompt and seed), never by the order of the calls."""

    def respond(messages, **kwargs):
        prompts.append(messages[-1]["content"])
        rid, n = int(kwargs.get("rollout_id") or 0), int(kwargs.get("n") or 1)
        out = [{"proposed_instruction": PROPOSALS[(rid + i) % len(PROPOSALS)]} for i in range(n)]
        return out if n > 1 else out[0]

    return FunctionLM(respond, model="seeded-prompt-model")


def copro_run(run_dir, calls, prompts, **kwargs):
    dsx.configure(lm=task_lm(calls))
    opt = COPRO(
        metric=exact,
        prompt_model=seeded_proposer(prompts),
        breadth=3,
        depth=3,
        seed=4,
        display_progress=False,
        run_dir=None if run_dir is None else str(run_dir),
        **kwargs,
    )
    best = opt.compile(echo_program(), trainset=dataset(6))
    table = [(a.predictor, a.instruction, a.depth, a.score) for a in opt.candidates]
    return opt, best, table


def test_copro_resumes_after_a_budget_stop(tmp_path):
    whole_calls: list[str] = []
    whole_prompts: list[str] = []
    whole, whole_best, whole_table = copro_run(None, whole_calls, whole_prompts)

    first: list[str] = []
    stopped, _, _ = copro_run(tmp_path, first, [], max_lm_calls=14, num_threads=1)
    assert stopped.stopped is not None
    assert len(list(tmp_path.glob("copro-*/scores.jsonl"))) == 1
    second: list[str] = []
    second_prompts: list[str] = []
    opt, best, table = copro_run(tmp_path, second, second_prompts)
    assert opt.stopped is None
    assert table == whole_table and opt.best_score == whole.best_score
    assert best.signature.instructions == whole_best.signature.instructions
    # finished scoring and proposals are not repeated
    assert len(second) < len(whole_calls) and len(second_prompts) < len(whole_prompts)
    assert len(first) + len(second) <= len(whole_calls) + 6
    third: list[str] = []
    third_prompts: list[str] = []
    copro_run(tmp_path, third, third_prompts)
    assert third == [] and third_prompts == []


def simba_run(run_dir, calls, **kwargs):
    dsx.configure(lm=simba_task_lm(calls))
    opt = SIMBA(
        metric=exact,
        bsize=4,
        num_candidates=3,
        max_steps=4,
        prompt_model=advisor(),
        seed=5,
        display_progress=False,
        run_dir=None if run_dir is None else str(run_dir),
        **kwargs,
    )
    best = opt.compile(echo_program(), trainset=dataset(8))
    table = [(c.index, c.step, c.source, c.strategy, c.applied, c.scores) for c in opt.candidates]
    return opt, best, table


def test_simba_resumes_from_its_last_finished_step(tmp_path):
    whole_calls: list = []
    whole, whole_best, whole_table = simba_run(None, whole_calls)

    first: list = []
    stopped, _, _ = simba_run(tmp_path, first, max_lm_calls=60, num_threads=1)
    assert stopped.stopped is not None
    checkpoint = next(tmp_path.glob("simba-*/checkpoint.json"))
    assert json.loads(checkpoint.read_text())["next_step"] >= 1
    second: list = []
    opt, best, table = simba_run(tmp_path, second)
    assert opt.stopped is None
    assert table == whole_table and opt.best_score == whole.best_score
    assert opt.trial_logs == whole.trial_logs
    assert best.signature.instructions == whole_best.signature.instructions
    assert best.demos == whole_best.demos
    # the finished steps were not sampled again
    assert len(second) < len(whole_calls)


def test_simba_starts_afresh_from_a_damaged_checkpoint(tmp_path):
    whole_calls: list = []
    _, whole_best, whole_table = simba_run(None, whole_calls)
    simba_run(tmp_path, [], max_lm_calls=60, num_threads=1)
    checkpoint = next(tmp_path.glob("simba-*/checkpoint.json"))
    checkpoint.write_text('{"next_step": 2, "pool": [{"index": ')
    again: list = []
    _, best, table = simba_run(tmp_path, again)
    assert table == whole_table and len(again) == len(whole_calls)
    assert best.signature.instructions == whole_best.signature.instructions
