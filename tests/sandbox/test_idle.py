"""Issue 15: a guest gets no CPU between executions.

Code can leave work running after its execution returns: replace the driver's reader
with a spin loop (both backends), or leave a busy process behind (Docker). The idle
watchdog stops a guest that uses CPU while idle, and the Docker driver kills every other
process after each execution.
"""

from __future__ import annotations

import time

import pytest

from dsx.sandbox import Sandbox

SPIN_WHEN_IDLE = """
import sys
main = sys.modules['__main__']

class Spin:
    def readline(self):
        while True:
            pass

main._IN = Spin()
'armed'
"""

LEFT_BEHIND = """
import subprocess, sys
subprocess.Popen([sys.executable, '-c', 'while True: pass'])
'spawned'
"""

OTHERS = """
import os
[p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid())]
"""


def test_a_guest_busy_between_executions_is_stopped(sandbox: Sandbox) -> None:
    assert sandbox.execute("x = 1").ok
    assert sandbox.execute(SPIN_WHEN_IDLE).value == "armed"
    give_up = time.monotonic() + 60
    while sandbox.started and time.monotonic() < give_up:
        time.sleep(0.2)
    assert not sandbox.started, "the guest kept spinning between executions"
    r = sandbox.execute("'x' in globals()")
    assert r.ok and r.value is False and r.session_reset
    assert "between executions" in r.stderr


@pytest.mark.parametrize("backend", ["docker"])
def test_processes_left_behind_are_killed_after_each_execution(sandbox: Sandbox) -> None:
    assert sandbox.execute(LEFT_BEHIND).value == "spawned"
    r = sandbox.execute(OTHERS)
    assert r.ok and r.value == [], r.value
