"""``python -m dsx``: the command line without its console script (what the VS Code
extension runs when it finds an interpreter with dsx but no ``dsx`` script)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pytest_lsp.client import make_test_lsp_client

from dsx._version import __version__

from ._helpers import initialize, open_doc, wait_diagnostics

pytestmark = [pytest.mark.lsp]


def test_python_m_dsx_is_the_cli(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "dsx", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"dsx {__version__}"
    bad = tmp_path / "bad.dsx"
    bad.write_text("program p = Predict(Nope)\n")
    out = subprocess.run(
        [sys.executable, "-m", "dsx", "check", str(bad)], capture_output=True, text=True
    )
    assert out.returncode == 1 and "DSX104" in out.stdout + out.stderr


@pytest.mark.asyncio
async def test_python_m_dsx_lsp_serves(tmp_path: Path):
    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-m", "dsx", "lsp")
    try:
        await initialize(client, tmp_path)
        uri = open_doc(client, tmp_path / "x.dsx", "program p = Predict(Nope)\n")
        diags = await wait_diagnostics(client, uri, lambda d: len(d) > 0)
        assert diags[0].code == "DSX104"
        await client.shutdown_session()
    finally:
        await client.stop()
