"""Test-suite wiring: real LM requests are forbidden, settings reset between tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dsx  # noqa: E402
from dsx.testing import forbid_real_lm_requests  # noqa: E402

forbid_real_lm_requests()


@pytest.fixture(autouse=True)
def _fresh_settings():
    dsx.settings.reset()
    yield
    dsx.settings.reset()
