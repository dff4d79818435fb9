"""Issue 15, item 6: writable grants have an optional quota; outputs are read safely.

The guest writes straight into a writable grant's host directory: without a quota it
filled 1 GiB in about a second, and it can plant symlinks (to ``/etc/shadow``), FIFOs
and setuid files there for host code to trip over.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsx.sandbox import Mount, PythonInterpreter, Sandbox, UnsafeOutput, read_output
from dsx.sandbox._quota import usage

QUOTA = 1 << 20

FILL_SLOWLY = """
import time
for i in range(1000):
    with open(f'/out/part{i}', 'wb') as f:
        f.write(b'x' * 65536)
    time.sleep(0.01)
'never stopped'
"""


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # the Docker guest runs as nobody
    return out


def test_a_writable_grant_quota_stops_the_guest(make_sandbox, out_dir: Path) -> None:
    sb: Sandbox = make_sandbox(mounts=[Mount(str(out_dir), "/out", True, quota=QUOTA)])
    r = sb.execute("open('/out/seed', 'wb').write(b'y' * 1000)")
    assert r.ok and r.value == 1000
    r = sb.execute(
        "try:\n    open('/out/big', 'wb').write(b'x' * (3 << 20))\n"
        "except OSError as e:\n    r = type(e).__name__\nelse:\n    r = 'written'\nr"
    )
    assert r.value == "OSError"  # no single file past the quota (EFBIG)
    assert (out_dir / "big").stat().st_size <= QUOTA
    (out_dir / "big").unlink()
    r = sb.execute(FILL_SLOWLY, timeout=60)
    assert not r.ok and r.error is not None and r.error.type == "QuotaExceeded", r.error
    assert r.session_reset
    assert usage(str(out_dir))[0] < 8 * QUOTA  # stopped soon after it went over
    assert sb.execute("1 + 1").value == 2  # a fresh guest, the grant unchanged


def test_quotas_are_for_writable_grants_in_bytes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="quota"):
        Mount(str(tmp_path), "/ro", False, quota=10)
    with pytest.raises(ValueError, match="quota"):
        Mount(str(tmp_path), "/rw", True, quota=-1)


def test_outputs_are_read_without_following_what_the_guest_planted(
    make_sandbox, out_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    grant = Mount(str(out_dir), "/out", True)
    sb = make_sandbox(mounts=[grant])
    r = sb.execute(
        "import os\nopen('/out/ok.txt', 'w').write('fine')\nos.mkdir('/out/sub')\n"
        "open('/out/sub/x.txt', 'w').write('deeper')\n"
        "try:\n    os.symlink('/etc/passwd', '/out/leak')\nexcept OSError:\n    pass"
    )
    assert r.ok, r.error
    (out_dir / "host_leak").symlink_to(secret)  # as a guest could, where it may
    (out_dir / "dir_link").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(out_dir / "fifo")
    assert read_output(grant, "ok.txt") == b"fine"
    assert read_output(str(out_dir), "sub/x.txt") == b"deeper"
    for bad in ("host_leak", "dir_link/secret.txt", "fifo", "../secret.txt", "/etc/passwd"):
        with pytest.raises(UnsafeOutput):
            read_output(grant, bad)
    if (out_dir / "leak").is_symlink():
        with pytest.raises(UnsafeOutput):
            read_output(grant, "leak")
    with pytest.raises(UnsafeOutput, match="max_bytes"):
        read_output(grant, "ok.txt", max_bytes=2)


def test_execution_instructions_say_what_each_backend_allows(
    backend: str, make_sandbox, out_dir: Path
) -> None:
    sb = make_sandbox(mounts=[Mount(str(out_dir), "/out", True, quota=QUOTA)])
    text = PythonInterpreter(sandbox=sb).execution_instructions
    assert f"/out (writable, quota {QUOTA} bytes)" in text
    if backend == "wasmtime":
        assert "no subprocesses" in text and "no threads" in text
    else:
        assert "subprocesses may run" in text and "no subprocesses" not in text
