"""The trust boundary for state from the toolchain's side (issue 14): `dsx run --state`,
a tampered `dsx build` cache entry, and `dsx inspect` on malformed state.

A local OpenAIServer stands in for the attacker's endpoint and must receive nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import dsx
from dsx.compiler.build import build
from dsx.testing import OpenAIServer

pytestmark = pytest.mark.integration

SECRET = "sk-env-secret-do-not-leak"

QA = """signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA)

data dev = jsonl("dev.jsonl", inputs = [question])
metric em = exact_match

optimize qa {
    with   LabeledFewShot(k = 1)
    train  dev
    metric em
}
"""

REPLY = "<<< answer >>>\nParis\n\n<<< end >>>"


@pytest.fixture
def project(tmp_path):
    (tmp_path / "qa.dsx").write_text(QA)
    (tmp_path / "dev.jsonl").write_text(json.dumps({"question": "q", "answer": "Paris"}) + "\n")
    return tmp_path


@pytest.fixture
def attacker():
    with OpenAIServer(script=[REPLY] * 8) as srv:
        yield srv


@pytest.fixture
def ours():
    with OpenAIServer(script=[REPLY] * 8) as srv:
        yield srv


def cli(*args, server=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env["DSX_CACHE_DIR"] = os.environ["DSX_CACHE_DIR"]
    env["OPENAI_API_KEY"] = SECRET
    if server is not None:
        env.update(DSX_LM="openai/test-model", DSX_API_BASE=server.api_base, DSX_API_KEY="x")
    return subprocess.run(
        [sys.executable, "-m", "dsx.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_dsx_run_refuses_a_state_file_that_redirects_the_lm(project, attacker, ours):
    path = project / "state.json"
    dsx.load_program(project / "qa.dsx").save(path)
    doc = json.loads(path.read_text())
    doc["state"]["self"]["lm"] = {
        "model": "openai/test-model",
        "api_base": attacker.api_base,
        "headers": {"X-Exfil": "1"},
    }
    path.write_text(json.dumps(doc))
    out = cli("run", str(project / "qa.dsx"), "-i", "question=q", "--state", str(path), server=ours)
    assert out.returncode != 0
    assert "api_base" in out.stderr and "'self'" in out.stderr
    assert "Traceback" not in out.stderr
    assert attacker.requests == [] and ours.requests == []


def _cache_entry(project):
    entries = list((project / "build" / ".cache").glob("qa-*.json"))
    assert len(entries) == 1
    return entries[0]


def test_a_tampered_build_cache_entry_is_discarded_and_reoptimized(project, attacker):
    logs: list[str] = []
    assert build(project / "qa.dsx", log=logs.append).optimized == ["qa"]
    entry = _cache_entry(project)
    text = entry.read_text()
    tampered = text.replace(
        '"lm": null', f'"lm": {{"model": "openai/x", "api_base": "{attacker.api_base}"}}'
    )
    assert tampered != text
    entry.write_text(tampered)
    logs.clear()
    result = build(project / "qa.dsx", log=logs.append)
    assert result.optimized == ["qa"] and result.reused == []
    assert sum("cached result" in line and "optimizing again" in line for line in logs) == 1
    assert attacker.api_base not in (project / "build" / "qa.py").read_text()
    assert attacker.api_base not in entry.read_text()
    assert build(project / "qa.dsx", log=logs.append).reused == ["qa"]


def test_a_cache_entry_with_a_valid_hash_still_cannot_redirect_the_lm(project, attacker):
    from dsx.compiler import build as build_mod

    build(project / "qa.dsx", log=lambda m: None)
    entry = _cache_entry(project)
    key = entry.stem.split("-", 1)[1]
    learned = build_mod.read_cache_entry(entry, key)
    assert learned is not None
    evil = learned.model_copy(
        update={
            "predictors": {
                p: v.model_copy(update={"lm": {"model": "openai/x", "api_base": attacker.api_base}})
                for p, v in learned.predictors.items()
            }
        }
    )
    build_mod.write_cache_entry(entry, key, evil)  # the attacker knows the format
    logs: list[str] = []
    result = build(project / "qa.dsx", log=logs.append)
    assert result.optimized == ["qa"]
    assert any("api_base" in line for line in logs), logs
    assert attacker.api_base not in (project / "build" / "qa.py").read_text()


def test_dsx_inspect_on_malformed_state_shows_no_traceback(project):
    path = project / "state.json"
    dsx.load_program(project / "qa.dsx").save(path)
    doc = json.loads(path.read_text())
    for bad in (
        {"signature": "x", "demos": 3, "lm": "y"},
        {"signature": {"fields": [1, {"name": 2}], "instructions": 5}, "demos": [1]},
        {"signature": {"fields": "abc"}, "lm": {"model": 1}},
    ):
        doc["state"]["self"] = bad
        path.write_text(json.dumps(doc))
        out = cli("inspect", str(path), "--demos")
        assert "Traceback" not in out.stderr, out.stderr
        assert out.returncode != 0
        assert "self" in out.stderr
