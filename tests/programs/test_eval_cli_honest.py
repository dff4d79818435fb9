"""`dsx eval` reports exactly what happened (issue 14): Ctrl-C and max_errors say how many
examples ran of how many, why it stopped, and exit non-zero (130 and 3); a result that
cannot be saved is reported after the score (exit 4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from dsx.testing import Fault, OpenAIServer

pytestmark = pytest.mark.integration

QA = """signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA)

metric em = exact_match
"""

N = 40


@pytest.fixture
def project(tmp_path):
    (tmp_path / "qa.dsx").write_text(QA)
    # Unique questions: the LM cache (shared by the test run) must not answer them.
    rows = [{"question": f"q {i} {uuid.uuid4()}", "answer": "x"} for i in range(N)]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def _env(server):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env.update(
        DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
        DSX_LM="openai/test-model",
        DSX_API_BASE=server.api_base,
        DSX_API_KEY="x",
    )
    return env


def _eval(project, server, *extra):
    cmd = [sys.executable, "-m", "dsx.cli", "eval", str(project / "qa.dsx"), "--data"]
    cmd += [str(project / "dev.jsonl"), "--num-threads", "2", "--no-state", *extra]
    return cmd


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_reports_what_ran_and_exits_130(project, as_json):
    extra = ["--json"] if as_json else []
    with OpenAIServer(lambda r: "<<< answer >>>\nx\n\n<<< end >>>", latency=0.4) as srv:
        proc = subprocess.Popen(
            _eval(project, srv, *extra, "--max-errors", "100"),
            env=_env(srv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while len(srv.requests) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(srv.requests) >= 6, "the evaluation never got going"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    if as_json:
        doc = json.loads(out.strip().splitlines()[-1])
        assert doc["examples"] == N and 0 < doc["done"] < N
        assert doc["stopped"] == "interrupted" and doc["complete"] is False
        assert doc["exit_code"] == 130
    else:
        assert f"of {N} example(s)" in out and f"over {N} example(s)" not in out
        assert "interrupted" in out


def test_max_errors_reports_what_ran_and_exits_3(project):
    faults = [Fault.status(400, "refused")] * 400
    with OpenAIServer(faults=faults) as srv:
        out = subprocess.run(
            _eval(project, srv, "--max-errors", "3", "--json"),
            env=_env(srv),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 3, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["examples"] == N and doc["done"] < N and doc["errors"] == 3
    assert doc["stopped"].startswith("max_errors=3 reached") and doc["exit_code"] == 3


def test_an_unwritable_save_path_reports_after_the_score_and_exits_4(project):
    with OpenAIServer(lambda r: "<<< answer >>>\nx\n\n<<< end >>>") as srv:
        out = subprocess.run(
            _eval(project, srv, "--save-json", str(project / "missing" / "r.json")),
            env=_env(srv),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 4, out.stderr
    assert "Traceback" not in out.stderr
    assert f"score: 100.00% over {N} example(s)" in out.stdout
    assert "could not save" in out.stderr and "missing" in out.stderr
