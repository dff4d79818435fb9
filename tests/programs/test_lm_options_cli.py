"""`--lm-option KEY=VALUE`: the command's LM with settings (max_tokens, temperature, ...),
for `dsx run|eval|test|optimize|build`, checked like an `lm` declaration's settings; what
reaches the server is what was asked, and an optimize block's cached result is reused only
for the same options."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dsx.testing import OpenAIServer

pytestmark = pytest.mark.integration

QA = """signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA)

data dev = jsonl("dev.jsonl", inputs = [question])
metric em = exact_match

test italy for qa {
    given  question = "capital of Italy?"
    expect answer = "Rome"
}

optimize qa {
    with   BootstrapFewShot(max_bootstrapped_demos = 1, max_labeled_demos = 0)
    train  dev
    metric em
}
"""


@pytest.fixture(scope="module")
def server():
    with OpenAIServer(lambda request: "<<< answer >>>\nRome\n\n<<< end >>>") as srv:
        yield srv


@pytest.fixture
def project(tmp_path):
    (tmp_path / "qa.dsx").write_text(QA)
    rows = [{"question": "capital of Italy?", "answer": "Rome"}]
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def _dsx(project, server, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env.update(
        DSX_CACHE_DIR=str(project / "cache"),
        DSX_LM="openai/test-model",
        DSX_API_BASE=server.api_base,
        DSX_API_KEY="x",
    )
    return subprocess.run(
        [sys.executable, "-m", "dsx", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=300,
    )


def _sent(server, since: int) -> list[dict]:
    return [r.body for r in server.requests[since:]]


@pytest.mark.parametrize(
    "command",
    [
        ["run", "qa.dsx:qa", "-i", "question=capital of Italy?", "--no-state"],
        ["eval", "qa.dsx:qa", "--data", "dev", "--no-state"],
        ["test", "qa.dsx", "--no-state"],
    ],
)
def test_options_reach_the_server(project, server, command):
    since = len(server.requests)
    out = _dsx(
        project,
        server,
        *command,
        *("--lm-option", "max_tokens=77", "--lm-option", "temperature=0.5"),
        *("--lm-option", 'stop=["\\n\\n\\n"]'),
    )
    assert out.returncode == 0, out.stderr
    bodies = _sent(server, since)
    assert bodies, out.stderr
    for body in bodies:
        assert (body["max_tokens"], body["temperature"]) == (77, 0.5)
        assert body["stop"] == ["\n\n\n"]


def test_build_optimizes_with_the_options_and_reuses_only_for_the_same_ones(project, server):
    since = len(server.requests)
    out = _dsx(project, server, "build", "qa.dsx", "--lm-option", "max_tokens=33")
    assert out.returncode == 0, out.stderr
    assert "running BootstrapFewShot" in out.stderr
    bodies = _sent(server, since)
    assert bodies and all(b["max_tokens"] == 33 for b in bodies)
    again = _dsx(project, server, "build", "qa.dsx", "--lm-option", "max_tokens=33")
    assert "reusing the cached result" in again.stderr, again.stderr
    other = _dsx(project, server, "build", "qa.dsx", "--lm-option", "max_tokens=34")
    assert other.returncode == 0, other.stderr
    assert "running BootstrapFewShot" in other.stderr
    plain = _dsx(project, server, "build", "qa.dsx")
    assert "running BootstrapFewShot" in plain.stderr


def test_optimize_command_uses_the_options(project, server):
    since = len(server.requests)
    out = _dsx(project, server, "optimize", "qa.dsx:qa", "--lm-option", "max_tokens=41")
    assert out.returncode == 0, out.stderr
    bodies = _sent(server, since)
    assert bodies and all(b["max_tokens"] == 41 for b in bodies)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--lm-option", "max_tokens=lots"], "`max_tokens` must be"),
        (["--lm-option", "colour=red"], "no such LM option"),
        (["--lm-option", "max_tokens"], "write KEY=VALUE"),
        (["--lm-option", "api_key_env=KEY"], "no such LM option"),
        (["--lm", "local", "--lm-option", "api_base=http://127.0.0.1:9/v1"], "own endpoint"),
    ],
)
@pytest.mark.parametrize("command", [["run", "qa.dsx:qa", "-i", "question=q"], ["build", "qa.dsx"]])
def test_bad_options_are_clear_errors_before_any_request(project, server, command, args, words):
    since = len(server.requests)
    out = _dsx(project, server, *command, *args)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert words in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert server.requests[since:] == []
    assert not (project / "build").exists()
