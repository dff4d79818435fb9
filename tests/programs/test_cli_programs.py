"""`dsx run` and `dsx test` end to end: real LM client, local OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsx.testing import OpenAIServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

QA = """signature QA {
    in  question: str
    out answer: str
    out confidence: float
}

program qa = Predict(QA)

test paris for qa {
    given  question = "capital of France?"
    expect answer = "Paris"
    assert result.confidence > 0.5, "should be confident"
}

test rome for qa {
    given  question = "capital of Italy?"
    expect answer = "Rome"
}
"""


def responder(request):
    user = request["messages"][-1]["content"]
    answer = "Paris" if "France" in user else "Lyon"
    return f"<<< answer >>>\n{answer}\n\n<<< confidence >>>\n0.9\n\n<<< end >>>"


@pytest.fixture(scope="module")
def server():
    with OpenAIServer(responder) as srv:
        yield srv


def dsx_cli(*args, server=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_LM")}
    if server is not None:
        env.update(DSX_LM="openai/test-model", DSX_API_BASE=server.api_base, DSX_API_KEY="x")
    return subprocess.run(
        [sys.executable, "-m", "dsx.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_run_prints_outputs_and_json(tmp_path, server):
    (tmp_path / "qa.dsx").write_text(QA)
    out = dsx_cli(
        "run",
        str(tmp_path / "qa.dsx"),
        "--input",
        "question=What is the capital of France?",
        server=server,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["answer: Paris", "confidence: 0.9"]
    out = dsx_cli(
        "run", f"{tmp_path / 'qa.dsx'}:qa", "-i", "question=France?", "--json", server=server
    )
    assert json.loads(out.stdout) == {"answer": "Paris", "confidence": 0.9}


def test_run_jsonl_trace_and_inspect(tmp_path, server):
    (tmp_path / "qa.dsx").write_text(QA)
    (tmp_path / "in.jsonl").write_text('{"question": "France?"}\n{"question": "Spain?"}\n')
    out = dsx_cli(
        "run",
        str(tmp_path / "qa.dsx"),
        "--jsonl",
        str(tmp_path / "in.jsonl"),
        "--json",
        "--trace",
        "--inspect",
        server=server,
    )
    assert out.returncode == 0, out.stderr
    lines = [
        json.loads(line)
        for line in out.stdout.split("\n===")[0].splitlines()
        if line.startswith('{"')
    ]
    assert [row["answer"] for row in lines] == ["Paris", "Lyon"]
    assert out.stderr.count("[trace] self:") == 2
    assert "--- system ---" in out.stdout and "Spain?" in out.stdout


def test_run_errors_are_clear(tmp_path, server):
    (tmp_path / "qa.dsx").write_text(QA)
    no_lm = dsx_cli("run", str(tmp_path / "qa.dsx"), "-i", "question=x")
    assert no_lm.returncode == 2 and "no LM: pass --lm MODEL" in no_lm.stderr
    bad_input = dsx_cli("run", str(tmp_path / "qa.dsx"), "-i", "questoin=x", server=server)
    # Input names are checked before anything runs (exit 2, like any usage error).
    assert bad_input.returncode == 2 and "Did you mean `question`" in bad_input.stderr
    (tmp_path / "bad.dsx").write_text('signature S = "q -> a"\nprogram p = Predict(T)\n')
    broken = dsx_cli("run", str(tmp_path / "bad.dsx"), "-i", "q=x", server=server)
    assert broken.returncode == 1 and "DSX104" in broken.stderr
    missing = dsx_cli("run", str(tmp_path / "nope.dsx"), server=server)
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_test_command_reports_each_test(tmp_path, server):
    (tmp_path / "qa.dsx").write_text(QA)
    out = dsx_cli("test", str(tmp_path / "qa.dsx"), server=server)
    assert out.returncode == 1
    assert "ok   paris (qa)" in out.stdout
    assert "FAIL rome (qa)" in out.stdout and "expected answer = 'Rome', got 'Lyon'" in out.stdout
    assert out.stdout.strip().endswith("1 passed, 1 failed")
    one = dsx_cli("test", str(tmp_path / "qa.dsx"), "--test", "paris", server=server)
    assert one.returncode == 0 and one.stdout.strip().endswith("1 passed, 0 failed")
    bad = dsx_cli("test", str(tmp_path / "qa.dsx"), "--test", "nope", server=server)
    assert bad.returncode == 2 and "no test named nope" in bad.stderr


def test_build_cli_emits_and_explains(tmp_path):
    (tmp_path / "qa.dsx").write_text(
        QA
        + "metric em = exact_match\noptimize qa {\n    with LabeledFewShot(k = 1)\n    train tests\n    metric em\n}\n"
    )
    out = dsx_cli("build", str(tmp_path / "qa.dsx"), "--explain")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "build" / "qa.py").is_file() and (
        tmp_path / "build" / "qa.state.json"
    ).is_file()
    assert "program qa: optimized with LabeledFewShot" in out.stdout and "demos: 1" in out.stdout
    again = dsx_cli("build", str(tmp_path / "qa.dsx"))
    assert "nothing to optimize" in again.stdout and "reusing the cached result" in again.stderr
    ir_out = dsx_cli(
        "build", str(tmp_path / "qa.dsx"), "--emit", "ir", "--out", str(tmp_path / "o")
    )
    assert (
        json.loads((tmp_path / "o" / "qa.ir.json").read_text())["learned"]["qa"]["optimizer"]
        == "LabeledFewShot"
    )
    assert ir_out.returncode == 0
    assert (
        dsx_cli(
            "build", str(tmp_path / "qa.dsx"), "--emit", "ast", "--out", str(tmp_path / "o")
        ).returncode
        == 0
    )
    assert "SignatureDecl" in (tmp_path / "o" / "qa.ast.txt").read_text()


def test_eval_and_optimize_commands(tmp_path, server):
    (tmp_path / "qa.dsx").write_text(
        QA + 'data dev = jsonl("dev.jsonl", inputs = [question])\nmetric em = exact_match\n'
        "optimize qa {\n    with LabeledFewShot(k = 1)\n    train dev\n    metric em\n}\n"
    )
    rows = [
        {"question": "capital of France?", "answer": "Paris"},
        {"question": "capital of Italy?", "answer": "Rome"},
    ]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = dsx_cli("eval", f"{tmp_path / 'qa.dsx'}:qa", "--data", "dev", "--json", server=server)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "score": 50.0,
        "examples": 2,
        "done": 2,
        "errors": 0,
        "complete": True,
        "stopped": None,
        "save_errors": [],
        "exit_code": 0,
    }
    (tmp_path / "other.jsonl").write_text(json.dumps(rows[0]) + "\n")
    out2 = dsx_cli(
        "eval",
        str(tmp_path / "qa.dsx"),
        "--data",
        str(tmp_path / "other.jsonl"),
        "--metric",
        "em",
        server=server,
    )
    assert out2.returncode == 0 and "score: 100.00% over 1 example(s)" in out2.stdout
    opt = dsx_cli("optimize", str(tmp_path / "qa.dsx"), server=server)
    assert opt.returncode == 0, opt.stderr
    state = json.loads((tmp_path / "build" / "qa.state.json").read_text())
    assert state["optimizer"] == "LabeledFewShot" and len(state["state"]["self"]["demos"]) == 1
