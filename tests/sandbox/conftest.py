"""Sandbox fixtures: real Wasmtime always; real Docker where an engine and image exist.

The compiled CPython-WASI module is built once per test session (in the session's
DSX_CACHE_DIR, see tests/conftest.py); each test then gets a fresh session (~70 ms).
Docker tests skip, saying exactly why, when no engine answers or the image is missing;
CI starts an engine and builds the image first (.ci/run), and tells us if that failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dsx.sandbox import Sandbox, SandboxUnavailable, create_sandbox

BACKENDS = [
    pytest.param("wasmtime", marks=pytest.mark.sandbox, id="wasmtime"),
    pytest.param("docker", marks=[pytest.mark.sandbox, pytest.mark.docker], id="docker"),
]


@pytest.fixture(scope="session")
def wasm_module() -> None:
    """Compile (or load) the CPython-WASI module once for the whole test session."""
    from dsx.sandbox._wasm_runtime import compiled_module_path

    compiled_module_path()


@pytest.fixture(scope="session")
def docker_ready() -> str | None:
    """``None`` when Docker sandboxes can run, else why not."""
    from dsx.sandbox._docker import DEFAULT_IMAGE, docker_client, missing_image_message

    ci_note = os.environ.get("DSX_DOCKER_UNAVAILABLE")
    try:
        client = docker_client()
    except SandboxUnavailable as exc:
        return f"{ci_note} — {exc}" if ci_note else str(exc)
    try:
        client.images.get(DEFAULT_IMAGE)
    except Exception:
        reason = missing_image_message(DEFAULT_IMAGE)
        return f"{ci_note} — {reason}" if ci_note else reason
    return None


@pytest.fixture
def make_sandbox(request: pytest.FixtureRequest, backend: str) -> Iterator[Callable[..., Sandbox]]:
    """A factory for started sessions of the test's ``backend``, all closed afterwards."""
    if backend == "docker":
        why = request.getfixturevalue("docker_ready")
        if why is not None:
            pytest.skip(f"Docker sandbox tests skipped: {why}")
    else:
        request.getfixturevalue("wasm_module")
    made: list[Sandbox] = []

    def make(**options: Any) -> Sandbox:
        sb = create_sandbox(backend, **options)
        made.append(sb)
        return sb.start()

    yield make
    for sb in made:
        sb.close()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
