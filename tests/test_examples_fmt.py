"""The shipped examples are formatted canonically: ``dsx fmt --check examples`` passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_examples_are_formatted():
    proc = subprocess.run(
        [sys.executable, "-m", "dsx.cli", "fmt", "--check", "examples"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"run `dsx fmt examples` to fix:\n{proc.stdout}{proc.stderr}"
