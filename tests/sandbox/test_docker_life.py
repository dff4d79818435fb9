"""Issue 15, item 4: Docker containers never outlive their host nor hold up its caller.

Real Docker only; skipped, saying why, where no engine or image is available.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from dsx.sandbox import Sandbox, _docker_life

pytestmark = [pytest.mark.sandbox, pytest.mark.docker]

FLOOD_IGNORING_SIGINT = """
import os, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    os.write(1, b'x' * 65536)
"""


@pytest.fixture
def backend() -> str:
    return "docker"


def _state(client: Any, container_id: str) -> str:
    """ "running", "exited" and so on, or "gone" once the engine removed it."""
    import docker.errors

    try:
        return str(client.api.inspect_container(container_id)["State"]["Status"])
    except docker.errors.NotFound:
        return "gone"


def _until_stopped(client: Any, container_id: str, within: float = 60) -> str:
    give_up = time.monotonic() + within
    state = _state(client, container_id)
    while state == "running" and time.monotonic() < give_up:
        time.sleep(0.2)
        state = _state(client, container_id)
    return state


def test_containers_are_labelled_removed_when_stopped_and_log_nothing(sandbox: Sandbox) -> None:
    box = sandbox._container  # type: ignore[attr-defined]
    info = box.client.api.inspect_container(box.id)
    assert info["Config"]["Labels"]["dsx.pid"] == str(os.getpid())
    assert info["Config"]["Labels"]["dsx.boot_id"] == _docker_life.labels()["dsx.boot_id"]
    assert info["HostConfig"]["AutoRemove"] is True
    assert info["HostConfig"]["LogConfig"]["Type"] == "none"
    r = sandbox.execute("import os\nfor _ in range(64):\n    os.write(1, b'y' * 65536)")
    assert r.ok and r.stdout_truncated
    assert not box.client.api.inspect_container(box.id)["LogPath"]  # no log file at all


def test_a_host_killed_with_sigkill_leaves_no_running_container(docker_ready: str | None) -> None:
    if docker_ready is not None:
        pytest.skip(f"Docker sandbox tests skipped: {docker_ready}")
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        from dsx.sandbox import create_sandbox
        sb = create_sandbox("docker").start()
        print(sb._container.id, flush=True)
        threading.Thread(target=sb.execute, args=("while True: pass",), daemon=True).start()
        time.sleep(1)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    container_id = proc.stdout.split()[0]
    from dsx.sandbox._docker import docker_client

    client = docker_client()
    state = _until_stopped(client, container_id)
    if state == "running":
        with contextlib.suppress(Exception):
            client.api.remove_container(container_id, force=True)
    assert state != "running"  # the driver saw its stdin hang up and exited


def test_a_new_session_reaps_containers_whose_host_died(
    docker_ready: str | None, make_sandbox
) -> None:
    if docker_ready is not None:
        pytest.skip(f"Docker sandbox tests skipped: {docker_ready}")
    from dsx.sandbox._docker import DEFAULT_IMAGE, docker_client

    client = docker_client()
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "600"])
    made = {}
    try:
        for who, pid in (("dead", dead.pid), ("alive", alive.pid)):
            labels = {**_docker_life.labels(), "dsx.pid": str(pid), "dsx.pid_start": ""}
            made[who] = client.api.create_container(
                DEFAULT_IMAGE,
                command=["python3", "-c", "import time; time.sleep(600)"],
                labels=labels,
                host_config=client.api.create_host_config(network_mode="none"),
            )["Id"]
            client.api.start(made[who])
        _docker_life._reaped.clear()  # as in a new host process
        make_sandbox()
        assert _docker_life.wait_for_stops(30)
        assert _state(client, made["dead"]) != "running"
        assert _state(client, made["alive"]) == "running"  # its host still lives
    finally:
        alive.kill()
        alive.wait()
        for container_id in made.values():
            with contextlib.suppress(Exception):  # the reaped one is gone already
                client.api.remove_container(container_id, force=True)


def test_restarting_a_flooding_guest_that_ignores_sigint_does_not_hang(sandbox) -> None:
    old = sandbox._container
    began = time.monotonic()
    r = sandbox.execute(FLOOD_IGNORING_SIGINT, timeout=1)
    assert r.session_reset and time.monotonic() - began < 1 + 10
    assert sandbox.execute("1 + 1").value == 2
    assert _until_stopped(old.client, old.id) != "running"
