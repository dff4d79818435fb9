from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dsx
from dsx.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _demo(**extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DSX_LM", "DSX_API_BASE", "DSX_API_KEY", "DSX_DEMO_LM", "DSX_ADAPTER")
    }
    env.update(extra)
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        env=env,
    )


def test_demo_builds_and_runs_the_examples_on_the_scripted_server():
    done = _demo(DSX_DEMO_LM="scripted")
    out = done.stdout
    assert done.returncode == 0, done.stderr + out
    assert "dsx's local OpenAI-compatible server" in out and "DSX_DEMO_LM=scripted" in out
    assert "$ dsx eval examples/sentiment.dsx --data dev --no-state" in out
    assert "using learned state examples/build/sentiment.state.json" in out
    assert re.search(r"review classifier on held-out data: [\d.]+% before optimizing", out)
    assert "A: Paris" in out and "A: Guido van Rossum" in out
    assert "topic=billing" in out and "2 passed, 0 failed" in out


@pytest.mark.slow
@pytest.mark.integration
def test_demo_on_the_real_local_model_shows_scores_before_and_after():
    from dsx.local import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"the local model is unavailable: {reason}")
    done = _demo()
    out = done.stdout
    assert done.returncode == 0, done.stderr + out
    assert "using the local model SmolLM2-135M-Instruct" in out
    scores = re.search(
        r"review classifier on held-out data: ([\d.]+)% before optimizing, ([\d.]+)% after", out
    )
    assert scores, out
    assert "score: " in out and "demos: 4" in out
    # Real numbers, whatever they are; both runs scored every held-out example.
    assert "0 error(s)" in out


def test_cli_version_and_help(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert dsx.__version__ in capsys.readouterr().out
    # No command: usage on stderr, exit 2 (like any usage error).
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: dsx") and "a command is needed" in err


def test_cli_inspect_shows_saved_state(tmp_path, capsys):
    program = dsx.Predict("question -> answer")
    program.demos = [dsx.Example(question="q1", answer="a1")]
    program.signature = program.signature.with_instructions("Be brief.")
    program.save(tmp_path / "p.json")
    assert main(["inspect", str(tmp_path / "p.json"), "--demos"]) == 0
    out = capsys.readouterr().out
    assert "1 predictor(s)" in out and "Be brief." in out and '"q1"' in out
    assert main(["inspect", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["inspect", str(tmp_path / "bad.json")]) == 2


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "dsx"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"dsx {dsx.__version__}"
