"""An ensemble's learned state through the command line (issue 19): `dsx optimize` of an
Ensemble of LabeledFewShot members needs no LM (none of them calls one), and `dsx eval`
with the ensemble state runs every member on every example and scores the reduced answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_ensemble_in_build import expected, reply, write_project

from dsx.runtime.state import read_state
from dsx.testing import OpenAIServer


def _env(cache, **extra: str) -> dict[str, str]:
    # a cache of its own: the LM replies cached here must not answer another test's calls
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env["DSX_CACHE_DIR"] = str(cache)
    env.update(extra)
    return env


def _dsx(*args: str, cwd, env) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsx.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_optimize_and_build_an_ensemble_of_labeled_members_need_no_lm(tmp_path):
    # Ensemble's need of an LM is its base optimizer's: LabeledFewShot calls none, so with
    # no LM at all (no DSX_LM, no --lm) both commands work — they refused with "no LM".
    write_project(tmp_path)
    done = _dsx("optimize", "qa.dsx", cwd=tmp_path, env=_env(tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    state = read_state(tmp_path / "build" / "qa.state.json")
    assert state.selector["kind"] == "ensemble" and len(state.selector["members"]) == 3
    built = _dsx("build", "qa.dsx", "--out", "out", cwd=tmp_path, env=_env(tmp_path / "cache"))
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "out" / "qa.state.json").exists()


def test_an_ensemble_of_bootstrapped_members_still_needs_an_lm(tmp_path):
    write_project(tmp_path, 'Ensemble(members = 2, base = "BootstrapFewShot")')
    done = _dsx("optimize", "qa.dsx", cwd=tmp_path, env=_env(tmp_path / "cache"))
    assert done.returncode != 0
    assert "LM" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "build" / "qa.state.json").exists()


@pytest.mark.integration
def test_eval_with_an_ensemble_state_runs_every_member_and_scores_the_reduced_answer(tmp_path):
    write_project(tmp_path)
    assert _dsx("optimize", "qa.dsx", cwd=tmp_path, env=_env(tmp_path / "cache")).returncode == 0
    selector = read_state(tmp_path / "build" / "qa.state.json").selector
    answer = expected(selector)  # the same for every question (the demos decide it)
    rows = [
        {"question": q, "answer": answer if i % 2 == 0 else "nope"} for i, q in enumerate("xyzw")
    ]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with OpenAIServer(reply) as server:
        env = _env(
            tmp_path / "cache",
            DSX_LM="openai/test-model",
            DSX_API_BASE=server.api_base,
            DSX_API_KEY="x",
        )
        done = _dsx(
            "eval",
            "qa.dsx",
            "--data",
            "dev.jsonl",
            "--metric",
            "em",
            "--json",
            cwd=tmp_path,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        sent = [r for r in server.requests if r.body]
    assert len(sent) == 3 * len(rows)  # every member, on every example
    assert report["score"] == pytest.approx(50.0)
