"""`dsx run --usage`: one `usage: {JSON}` line on stderr with the tokens per model (what the
VS Code extension's Run shows next to the outputs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dsx.testing import OpenAIServer

pytestmark = pytest.mark.integration

QA = "signature QA { in question: str out answer: str }\nprogram qa = Predict(QA)\n"


def test_run_reports_usage(tmp_path):
    (tmp_path / "qa.dsx").write_text(QA)
    with OpenAIServer(lambda request: "<<< answer >>>\nParis\n\n<<< end >>>") as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
        env.update(
            DSX_CACHE_DIR=str(tmp_path / "cache"),
            DSX_LM="openai/test-model",
            DSX_API_BASE=server.api_base,
            DSX_API_KEY="x",
        )
        out = subprocess.run(
            [
                *(sys.executable, "-m", "dsx", "run", "qa.dsx:qa", "--json", "--usage"),
                *("-i", "question=Capital of France?"),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"answer": "Paris"}
    [line] = [x for x in out.stderr.splitlines() if x.startswith("usage: ")]
    usage = json.loads(line.removeprefix("usage: "))
    assert usage["total_tokens"] > 0
    [(model, tokens)] = usage["models"].items()
    assert "test-model" in model and tokens["total_tokens"] == usage["total_tokens"]
    assert "cost" in usage
