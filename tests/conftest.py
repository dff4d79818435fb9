"""Test-suite wiring: real LM requests are forbidden, settings reset between tests, and the
LM disk cache lives in a temp dir."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The LM disk cache of the test run lives in a temp dir, never in ~/.cache/dsx
# (subprocesses inherit it).
_CACHE_DIR = tempfile.mkdtemp(prefix="dsx-test-cache-")
os.environ["DSX_CACHE_DIR"] = _CACHE_DIR
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
# Every unit the checker builds is validated against the IR's models (off in production:
# it costs as much as a third of checking; see dsx.compiler.lower).
os.environ.setdefault("DSX_VALIDATE_IR", "1")

import dsx  # noqa: E402
from dsx.testing import forbid_real_lm_requests  # noqa: E402

forbid_real_lm_requests()


@pytest.fixture(autouse=True)
def _fresh_settings():
    dsx.settings.reset()
    yield
    dsx.settings.reset()
