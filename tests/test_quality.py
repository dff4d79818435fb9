"""House style holds: ruff lint and format are clean (mypy runs with `make typecheck`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).parent / "ruff"


@pytest.mark.skipif(
    not RUFF.exists(), reason="ruff is not installed in this environment (pip install -e '.[dev]')"
)
@pytest.mark.parametrize("args", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff_is_clean(args):
    out = subprocess.run(
        [str(RUFF), *args, "src", "tests", "bench", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-1000:]
