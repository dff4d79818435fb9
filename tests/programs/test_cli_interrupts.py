"""`dsx optimize` and `dsx build` stopped mid-run (issue 14): Ctrl-C exits 130 with a
message and no traceback; SIGKILL leaves every earlier output, learned state and cache
entry as it was, and the next run works. (`dsx eval` has the same in
test_eval_cli_honest.py.)

The optimization is made slow by the server (each answer waits, and every answer is
wrong, so BootstrapFewShot tries every training example); the signal is sent once the
server has seen a few of the run's requests, never after a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dsx.runtime.state import read_state
from dsx.testing import OpenAIServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

QA = """/// Answer the question. VERSION
signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA)

data train = jsonl("train.jsonl", inputs = [question])
metric em = exact_match

optimize qa {
    with   BootstrapFewShot(max_bootstrapped_demos = 2, max_labeled_demos = 0)
    train  train
    metric em
}
"""

N_TRAIN = 12
WRONG = "<<< answer >>>\nwrong\n\n<<< end >>>"


@pytest.fixture
def project(tmp_path):
    (tmp_path / "qa.dsx").write_text(QA.replace("VERSION", "v1"))
    # Unique questions: the LM cache of the test run must not answer them.
    rows = [{"question": f"q{i} {uuid.uuid4()}", "answer": "x"} for i in range(N_TRAIN)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with OpenAIServer(lambda r: WRONG, latency=0.2) as server:
        yield tmp_path, server


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dsx.cli", *args]


def _env(server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env.update(
        DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
        DSX_LM="openai/test-model",
        DSX_API_BASE=server.api_base,
        DSX_API_KEY="x",
    )
    return env


def _run(project, *args: str) -> subprocess.CompletedProcess[str]:
    root, server = project
    out = subprocess.run(
        _cmd(*args), cwd=root, env=_env(server), capture_output=True, text=True, timeout=180
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def _stop_mid_run(project, sig: int, *args: str) -> tuple[int, str]:
    """Start ``dsx ARGS``, send ``sig`` once it has made 3 LM requests; (status, stderr)."""
    root, server = project
    seen = len(server.requests)
    proc = subprocess.Popen(
        _cmd(*args),
        cwd=root,
        env=_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(server.requests) < seen + 3 and proc.poll() is None:
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be stopped"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(server.requests) < seen + N_TRAIN, "stopped too late to test anything"
    return proc.returncode, err


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but temporary ones (a killed write may leave one)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith(".tmp")
    }


def _edit(project, version: str) -> None:
    (project[0] / "qa.dsx").write_text(QA.replace("VERSION", version))


@pytest.mark.parametrize("command", ["optimize", "build"])
def test_sigkill_mid_run_keeps_earlier_outputs_and_the_next_run_works(project, command):
    root = project[0]
    first = _run(project, command, "qa.dsx")
    assert first.returncode == 0, first.stderr
    before = _files(root / "build")
    assert "qa.state.json" in before and any(k.startswith(".cache/") for k in before)
    _edit(project, "v2")  # a new optimization: new prompts, a new cache key

    status, _ = _stop_mid_run(project, signal.SIGKILL, command, "qa.dsx")

    assert status == -signal.SIGKILL
    assert _files(root / "build") == before  # nothing earlier lost, nothing half-written
    read_state(root / "build" / "qa.state.json")  # still a whole, valid state file
    again = _run(project, command, "qa.dsx")
    assert again.returncode == 0, again.stderr
    after = _files(root / "build")
    assert after["qa.state.json"] != before["qa.state.json"]  # learned for v2
    assert (
        "v2"
        in read_state(root / "build" / "qa.state.json").predictors["self"]["signature"][
            "instructions"
        ]
    )


@pytest.mark.parametrize("command", ["optimize", "build"])
def test_ctrl_c_mid_run_exits_130_with_a_message(project, command):
    root = project[0]
    first = _run(project, command, "qa.dsx")
    assert first.returncode == 0, first.stderr
    before = _files(root / "build")
    _edit(project, "v2")

    status, err = _stop_mid_run(project, signal.SIGINT, command, "qa.dsx")

    assert status == 130, err
    assert "interrupted" in err and "Traceback" not in err, err
    assert _files(root / "build") == before


def test_sigkill_mid_eval_keeps_saved_results_and_the_cache_serves_the_next_run(project):
    """`dsx eval` has Ctrl-C tests in test_eval_cli_honest.py; this is the SIGKILL one."""
    root, server = project
    (root / "dev.jsonl").write_text((root / "train.jsonl").read_text())
    args = ("eval", "qa.dsx", "--data", "dev.jsonl", "--no-state", "--num-threads", "1")
    first = _run(project, *args, "--save-json", "r.json")
    assert first.returncode == 0, first.stderr
    saved = (root / "r.json").read_bytes()
    rows = [{"question": f"new {i} {uuid.uuid4()}", "answer": "x"} for i in range(N_TRAIN)]
    (root / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    status, _ = _stop_mid_run(project, signal.SIGKILL, *args, "--save-json", "r.json")

    assert status == -signal.SIGKILL
    assert (root / "r.json").read_bytes() == saved
    done_before = len(server.requests)
    again = _run(project, *args, "--save-json", "r.json", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["done"] == N_TRAIN
    # The answers the killed run got are in the LM disk cache and are not asked again.
    assert len(server.requests) - done_before < N_TRAIN
    assert json.loads((root / "r.json").read_text())["num_done"] == N_TRAIN
