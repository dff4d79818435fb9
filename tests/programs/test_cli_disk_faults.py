"""A full disk or a read-only file system loses nothing (issue 14, item 4): `dsx build --out`,
`dsx optimize --out` and `dsx eval --save-json` fail with a message, keep what was saved
before byte for byte, leave no temporary files, and eval still prints the score.

The faults are real: a small tmpfs, filled up or remounted read-only. Mounting needs root;
elsewhere the tests skip and say so (a read-only directory is emulated with its mode bits,
which root ignores, where that is the only way).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dsx.testing import OpenAIServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(sys.platform != "linux", reason="tmpfs mounts are Linux"),
]

QA = """/// Answer the question. VERSION
signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA)

data dev = jsonl("dev.jsonl", inputs = [question])
metric em = exact_match

optimize qa {
    with   LabeledFewShot(k = 1)
    train  dev
    metric em
}
"""

ANSWER = "<<< answer >>>\nx\n\n<<< end >>>"


def _mount(point: Path, *options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (run the suite as root to test this)")
    point.mkdir(exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(("size=256k", *options)), "tmpfs", str(point)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip() or out.returncode}")


@pytest.fixture
def disk(tmp_path):
    """A 256 KiB tmpfs, unmounted afterwards."""
    point = tmp_path / "disk"
    _mount(point)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _fill(disk: Path) -> Path:
    """Fill ``disk`` up; returns the filler file (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    with pytest.raises(OSError):  # really full
        (disk / "probe").write_bytes(b"x" * 8192)
    (disk / "probe").unlink(missing_ok=True)
    return filler


def _read_only(disk: Path) -> None:
    out = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only: {out.stderr.strip()}")


@pytest.fixture
def project(tmp_path):
    (tmp_path / "qa.dsx").write_text(QA.replace("VERSION", "v1"))
    rows = [{"question": f"q{i} {uuid.uuid4()}", "answer": "x"} for i in range(3)]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with OpenAIServer(lambda r: ANSWER) as server:
        yield tmp_path, server


def dsx(project, *args: str):
    root, server = project
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env.update(
        DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
        DSX_LM="openai/test-model",
        DSX_API_BASE=server.api_base,
        DSX_API_KEY="x",
    )
    out = subprocess.run(
        [sys.executable, "-m", "dsx.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=120,
    )
    assert "Traceback" not in out.stderr, out.stderr
    assert "bug in dsx" not in out.stderr, out.stderr
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _no_temp_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def _edit(project, version: str) -> None:
    qa = project[0] / "qa.dsx"
    qa.write_text(QA.replace("VERSION", version))


def test_build_on_a_full_disk_keeps_the_previous_build(project, disk):
    out_dir = disk / "out"
    assert dsx(project, "build", "qa.dsx", "--out", str(out_dir)).returncode == 0
    before = _snapshot(out_dir)
    assert {"qa.py", "qa.state.json"} <= set(before)
    _edit(project, "v2")  # new outputs to write
    filler = _fill(disk)
    out = dsx(project, "build", "qa.dsx", "--out", str(out_dir))
    assert out.returncode != 0
    assert str(out_dir) in out.stderr and "No space left" in out.stderr, out.stderr
    assert _snapshot(out_dir) == before
    _no_temp_files(out_dir)
    filler.unlink()
    again = dsx(project, "build", "qa.dsx", "--out", str(out_dir))
    assert again.returncode == 0, again.stderr
    assert "v2" in (out_dir / "qa.py").read_text()


def test_optimize_on_a_full_disk_keeps_the_old_state_and_saves_the_new_one(project, disk):
    target = disk / "qa.state.json"
    assert dsx(project, "optimize", "qa.dsx", "--out", str(target)).returncode == 0
    before = target.read_bytes()
    _edit(project, "v2")
    _fill(disk)
    out = dsx(project, "optimize", "qa.dsx", "--out", str(target))
    assert out.returncode == 1
    assert f"cannot write {target}" in out.stderr and "No space left" in out.stderr
    assert target.read_bytes() == before  # the previous state, whole
    _no_temp_files(disk)
    kept = project[0] / "build" / "qa.state.json"  # the work is not lost
    assert "saved the learned state to" in out.stderr and kept.is_file()
    assert json.loads(kept.read_text())["program"] == "qa"


def test_eval_on_a_full_disk_prints_the_score_and_keeps_the_old_results(project, disk):
    results = disk / "r.json"
    first = dsx(
        project, "eval", "qa.dsx", "--data", "dev", "--no-state", "--save-json", str(results)
    )
    assert first.returncode == 0, first.stderr
    before = results.read_bytes()
    json.loads(before)
    _fill(disk)
    # More rows make a bigger result than the space the old file's blocks would free.
    rows = [{"question": f"more {i} {uuid.uuid4()}", "answer": "x"} for i in range(200)]
    (project[0] / "more.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = dsx(
        project, "eval", "qa.dsx", "--data", "more.jsonl", "--no-state", "--save-json", str(results)
    )
    assert out.returncode == 4, out.stderr
    assert "score: 100.00% over 200 example(s)" in out.stdout
    assert "could not save" in out.stderr and "No space left" in out.stderr
    assert results.read_bytes() == before  # not truncated, not half-written
    _no_temp_files(disk)


def test_eval_into_a_read_only_file_system_prints_the_score(project, disk):
    results = disk / "r.json"
    results.write_text('{"old": true}\n')
    _read_only(disk)
    out = dsx(project, "eval", "qa.dsx", "--data", "dev", "--no-state", "--save-json", str(results))
    assert out.returncode == 4, out.stderr
    assert "score: 100.00% over 3 example(s)" in out.stdout
    assert "could not save" in out.stderr and "Read-only file system" in out.stderr
    assert results.read_text() == '{"old": true}\n'


UGLY = 'signature   S =   "q -> a"\n'


def test_fmt_in_a_read_only_directory_is_a_message(project, tmp_path):
    if os.geteuid() == 0:
        folder = tmp_path / "ro"
        _mount(folder)
        try:
            (folder / "x.dsx").write_text(UGLY)
            _read_only(folder)
            _fmt_refused(project, folder)
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        (folder / "x.dsx").write_text(UGLY)
        folder.chmod(0o555)
        try:
            _fmt_refused(project, folder)
        finally:
            folder.chmod(0o755)


def _fmt_refused(project, folder: Path) -> None:
    out = dsx(project, "fmt", str(folder / "x.dsx"))
    assert out.returncode == 2, out.stderr
    assert "cannot write" in out.stderr and "x.dsx" in out.stderr and "unchanged" in out.stderr
    assert (folder / "x.dsx").read_text() == UGLY
