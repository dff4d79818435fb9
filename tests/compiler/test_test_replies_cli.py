"""`dsx test` on scripted test blocks (issue 16, item 2): with `reply` lines it runs with no
LM configured, fails on a wrong expectation, and names the test that ran out of replies."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_test_replies import PASSING, PROGRAM, SHORT, WRONG


def _dsx_test(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "tickets.dsx"
    path.write_text(source)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DSX_LM", "DSX_API_BASE", "DSX_API_KEY", "DSX_ADAPTER")
    }
    return subprocess.run(
        [sys.executable, "-m", "dsx", "test", str(path), "--no-state"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_scripted_tests_pass_with_no_lm_configured(tmp_path):
    done = _dsx_test(tmp_path, PROGRAM + PASSING)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   refund (classify)" in done.stdout
    assert "ok   raw (classify)" in done.stdout
    assert "2 passed, 0 failed" in done.stdout


def test_a_wrong_expectation_fails_against_the_scripted_reply(tmp_path):
    done = _dsx_test(tmp_path, PROGRAM + WRONG)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL refund (classify)" in done.stdout
    assert "expected urgency = 'high', got" in done.stdout and "low" in done.stdout


def test_running_out_of_replies_fails_with_a_clear_message(tmp_path):
    done = _dsx_test(tmp_path, PROGRAM + SHORT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL short (twice)" in done.stdout
    assert "test `short` scripts 1 reply and the program asked the LM for reply 2" in done.stdout
    assert "add a `reply` line" in done.stdout
