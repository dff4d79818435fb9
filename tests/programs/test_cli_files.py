"""No traceback and no lost work from hostile files and outputs (issue 14, item 4):
non-UTF-8 .dsx and data files, and `--out` paths that cannot be written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dsx.runtime.state import read_state

pytestmark = pytest.mark.integration

QA = """signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA)

data dev = jsonl("DATA", inputs = [question])
metric em = exact_match

optimize qa {
    with   LabeledFewShot(k = 1)
    train  dev
    metric em
}
"""

BAD_DSX = b'signature QA {\n    in  question: str  "caf\xe9"\n    out answer: str\n}\nprogram qa = Predict(QA)\n'


@pytest.fixture
def project(tmp_path):
    (tmp_path / "qa.dsx").write_text(QA.replace("DATA", "dev.jsonl"))
    (tmp_path / "dev.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    (tmp_path / "bad.dsx").write_bytes(BAD_DSX)
    (tmp_path / "bad.jsonl").write_bytes(b'{"question": "caf\xe9", "answer": "a"}\n')
    (tmp_path / "badata.dsx").write_text(QA.replace("DATA", "bad.jsonl"))
    return tmp_path


def cli(*args, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env.update(
        DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
        DSX_LM="openai/x",
        DSX_API_BASE="http://127.0.0.1:9/v1",
        DSX_API_KEY="x",
    )
    return subprocess.run(
        [sys.executable, "-m", "dsx.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def _clean_failure(out):
    assert out.returncode not in (0, None), out
    assert "Traceback" not in out.stderr, out.stderr
    assert "bug in dsx" not in out.stderr and "raised by Python code" not in out.stderr, out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("check", "bad.dsx"),
        ("build", "bad.dsx"),
        ("run", "bad.dsx", "-i", "question=x"),
        ("eval", "bad.dsx", "--data", "dev.jsonl"),
        ("optimize", "bad.dsx"),
        ("test", "bad.dsx"),
    ],
)
def test_a_non_utf8_dsx_file_is_a_message(project, args):
    out = cli(*args, cwd=project)
    _clean_failure(out)
    assert "bad.dsx" in out.stderr and "UTF-8" in out.stderr and "line 2" in out.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("eval", "qa.dsx", "--data", "bad.jsonl"),
        ("eval", "badata.dsx", "--data", "dev"),
        ("build", "badata.dsx"),
        ("optimize", "badata.dsx"),
    ],
)
def test_a_non_utf8_data_file_is_a_message(project, args):
    out = cli(*args, cwd=project)
    _clean_failure(out)
    assert "bad.jsonl" in out.stderr and "UTF-8" in out.stderr


def test_build_to_an_unwritable_out_fails_before_any_work(project):
    (project / "afile").write_text("x")
    out = cli("build", "qa.dsx", "--out", "afile", cwd=project)
    _clean_failure(out)
    assert "afile" in out.stderr and "optimize qa: running" not in out.stderr
    out = cli("build", "qa.dsx", "--out", "afile/sub", cwd=project)
    _clean_failure(out)


def test_optimize_to_an_unwritable_out_keeps_the_learned_state(project):
    (project / "afile").write_text("x")
    out = cli("optimize", "qa.dsx", "--out", "afile/qa.json", cwd=project)
    _clean_failure(out)
    assert "afile/qa.json" in out.stderr
    saved = project / "build" / "qa.state.json"
    assert f"saved the learned state to {saved}" in out.stderr.replace("\n", " ") or (
        "saved the learned state to build/qa.state.json" in out.stderr
    )
    assert read_state(saved).optimizer == "LabeledFewShot"
    again = cli("build", "qa.dsx", cwd=project)
    assert again.returncode == 0 and "reusing the cached result" in again.stderr


def test_a_non_utf8_import_is_a_diagnostic_at_the_import(project):
    (project / "main.dsx").write_text('import "bad.dsx"\n\nsignature S = "q -> a"\n')
    (project / "ok.dsx").write_text('signature T = "q -> a"\n')
    out = cli("check", "main.dsx", "ok.dsx", "bad.dsx", cwd=project)
    _clean_failure(out)
    assert "DSX120" in out.stdout and "main.dsx:1" in out.stdout and "UTF-8" in out.stdout
    assert "1 unreadable" in out.stdout  # bad.dsx itself; ok.dsx is still checked
