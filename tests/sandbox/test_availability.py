"""When a backend cannot run it says what is missing and how to get it; the CLI commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dsx.sandbox import DockerSandbox, SandboxUnavailable, create_sandbox
from dsx.sandbox import image as image_mod
from dsx.sandbox.cli import add_sandbox_command, main


def test_no_docker_engine_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    sb = DockerSandbox()
    with pytest.raises(SandboxUnavailable) as info:
        sb.start()
    text = str(info.value)
    assert "no Docker engine answered at unix:///nonexistent/docker.sock" in text
    assert "dockerd" in text and "DOCKER_HOST" in text
    assert not sb.started


def test_missing_image_is_explained(docker_ready: str | None) -> None:
    if docker_ready is not None and "no Docker engine" in docker_ready:
        pytest.skip(f"needs a Docker engine: {docker_ready}")
    sb = DockerSandbox(image="dsx-no-such-image:never")
    with pytest.raises(SandboxUnavailable) as info:
        sb.start()
    text = str(info.value)
    assert "'dsx-no-such-image:never' is not in the engine" in text
    assert "dsx sandbox build-image --name dsx-no-such-image:never" in text


def test_unknown_backend() -> None:
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        create_sandbox("firecracker")  # type: ignore[arg-type]


def test_build_image_explains_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(image_mod.os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxUnavailable, match="needs root"):
        image_mod._bootstrap(tmp_path / "r", mirror=None, log=lambda s: None)
    monkeypatch.setattr(image_mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(image_mod.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install -y debootstrap"):
        image_mod._bootstrap(tmp_path / "r", mirror=None, log=lambda s: None)


def test_existing_root_file_system_is_reused_and_trimmed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/python3").write_text("")
    (root / "usr/share/doc/pkg").mkdir(parents=True)
    (root / "usr/share/doc/pkg/README").write_text("x")
    seen: list[str] = []
    image_mod._bootstrap(root, mirror=None, log=seen.append)
    image_mod._trim(root)
    assert "reusing" in seen[0]
    assert (root / "usr/share/doc").is_dir() and not any((root / "usr/share/doc").iterdir())


def test_cli_parser_wiring() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="dsx")
    add_sandbox_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sandbox", "build-image", "--name", "x:y", "--dir", "/tmp/r"])
    assert (args.name, args.dir) == ("x:y", "/tmp/r") and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["sandbox"])


@pytest.mark.sandbox
def test_cli_check_reports_each_backend(wasm_module: None) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dsx.sandbox.cli", "check", "--image", "dsx-no-such-image:never"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "wasmtime: ok"
    assert lines[1].startswith("docker: unavailable: ")


def test_cli_build_image_failure_is_a_clean_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(*args: object, **kwargs: object) -> str:
        raise SandboxUnavailable("debootstrap is not installed; apt-get install -y debootstrap")

    monkeypatch.setattr(image_mod, "build_image", fail)
    assert main(["build-image"]) == 1
    assert "error: debootstrap is not installed" in capsys.readouterr().err
