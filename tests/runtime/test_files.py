"""Files dsx writes (issue 14, item 7): atomic, with the umask's or the existing mode, and
stale temporary files of killed writes cleaned up by the next write."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import dsx
from dsx.runtime._files import STALE_TEMP_SECONDS, atomic_write
from dsx.runtime.state import make_state, write_state

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")

SOURCE = """signature QA = "question -> answer"

program qa = Predict(QA)

data train = jsonl("train.jsonl", inputs = [question])
metric em = exact_match

optimize qa {
    with   LabeledFewShot(k = 1)
    train  train
    metric em
    seed   1
}
"""


@pytest.fixture
def umask022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def program() -> dsx.Module:
    return dsx.Predict("question -> answer")


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def fmt(*argv: str) -> int:
    from dsx.cli.fmt import add_parser as add_fmt_command

    parser = argparse.ArgumentParser(prog="dsx")
    add_fmt_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fmt", *argv])
    result: int = args.func(args)
    return result


# -- the helper --------------------------------------------------------------------------------


def test_a_new_file_gets_the_umask_default_mode(tmp_path: Path, umask022: None) -> None:
    atomic_write(tmp_path / "a.txt", "hi")
    assert mode(tmp_path / "a.txt") == 0o644
    os.umask(0o027)
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    assert mode(tmp_path / "b.bin") == 0o640
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert temps(tmp_path) == []


@pytest.mark.parametrize("existing", [0o644, 0o640, 0o600, 0o664])
def test_an_overwritten_file_keeps_its_mode(tmp_path: Path, umask022: None, existing: int) -> None:
    target = tmp_path / "kept.txt"
    target.write_text("old")
    target.chmod(existing)
    atomic_write(target, "new\r\nline")  # line endings are written as given
    assert mode(target) == existing
    assert target.read_bytes() == b"new\r\nline"


def test_stale_temp_files_are_removed_and_fresh_ones_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    stale = tmp_path / ".out.json.abcd1234.tmp"  # a killed run's (dsx's own names)
    stale_old_style = tmp_path / ".out.json.k2_x9q0z.tmp"  # mkstemp's names
    fresh = tmp_path / ".out.json.ffff0000.tmp"  # another writer still at work
    other = tmp_path / ".out.json.bak.1234abcd.tmp"  # the temp file of "out.json.bak"
    for p in (stale, stale_old_style, fresh, other):
        p.write_text("partial")
    old = time.time() - STALE_TEMP_SECONDS - 60
    for p in (stale, stale_old_style, other):
        os.utime(p, (old, old))
    atomic_write(target, "{}")
    assert target.read_text() == "{}"
    assert not stale.exists() and not stale_old_style.exists()
    assert fresh.exists(), "a young temp file may belong to a writer in progress"
    assert other.exists(), "only the temp files of this path are touched"


def test_a_failed_write_leaves_the_target_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "x.txt"
    target.write_text("before")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, "after")
    monkeypatch.undo()
    assert target.read_text() == "before"
    assert temps(tmp_path) == []


def test_a_private_write_is_owner_only_from_the_first_byte(
    tmp_path: Path, umask022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The temporary file is created 0600 (not chmod-ed afterwards): watch os.open's mode.
    opened: list[int] = []
    real_open = os.open

    def watch(path: object, flags: int, mode: int = 0o777, *a: object, **k: object) -> int:
        if str(path).endswith(".tmp"):
            opened.append(mode)
        return real_open(path, flags, mode, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", watch)
    target = tmp_path / "key"
    target.write_bytes(b"old")
    target.chmod(0o644)  # a readable old file does not keep its mode
    atomic_write(target, (b"ab", bytearray(b"cd")), private=True)
    assert opened == [0o600]
    assert mode(target) == 0o600 and target.read_bytes() == b"abcd"


def test_a_private_write_replaces_a_pipe_instead_of_writing_into_it(tmp_path: Path) -> None:
    fifo = tmp_path / "planted"
    os.mkfifo(fifo)
    atomic_write(fifo, b"secret", private=True)  # a plain write would fail: nobody reads it
    assert stat.S_ISREG(os.lstat(fifo).st_mode) and fifo.read_bytes() == b"secret"
    assert mode(fifo) == 0o600


def test_the_sandbox_and_the_embeddings_index_write_through_atomic_write() -> None:
    # One atomic write (issue 17): neither keeps its own temp-file-and-rename.
    import inspect

    import dsx.retrievers.embeddings as embeddings
    import dsx.sandbox._wasm_runtime as wasm_runtime

    for module in (embeddings, wasm_runtime):
        text = inspect.getsource(module)
        assert "atomic_write(" in text and "os.replace(" not in text, module.__name__


# -- every writer uses it ----------------------------------------------------------------------


def test_module_save_and_write_state_use_the_umask_and_keep_modes(
    tmp_path: Path, umask022: None
) -> None:
    saved = tmp_path / "prog.json"
    program().save(saved)
    assert mode(saved) == 0o644
    saved.chmod(0o640)
    program().save(saved)
    assert mode(saved) == 0o640

    state = tmp_path / "state.json"
    write_state(state, make_state(program()))
    assert mode(state) == 0o644

    whole = tmp_path / "whole"
    program().save(whole, save_program=True, allow_pickle=True)
    assert mode(whole / "program.pkl") == 0o644
    assert mode(whole / "metadata.json") == 0o644


def test_module_save_cleans_a_stale_temp_file(tmp_path: Path) -> None:
    saved = tmp_path / "prog.json"
    stale = tmp_path / ".prog.json.u1v2w3x4.tmp"
    stale.write_text("{")
    old = time.time() - STALE_TEMP_SECONDS - 1
    os.utime(stale, (old, old))
    program().save(saved)
    assert temps(tmp_path) == []


def test_dsx_build_outputs_use_the_umask_and_keep_modes(tmp_path: Path, umask022: None) -> None:
    from dsx.compiler.build import build

    (tmp_path / "qa.dsx").write_text(SOURCE)
    (tmp_path / "train.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    out = tmp_path / "build"
    stale = out / ".qa.py.zz99yy88.tmp"
    out.mkdir()
    stale.write_text("partial")
    old = time.time() - STALE_TEMP_SECONDS - 1
    os.utime(stale, (old, old))

    result = build(tmp_path / "qa.dsx", out=out, log=lambda m: None)
    cache_files = [p for p in (out / ".cache").rglob("*") if p.is_file()]
    assert result.written and cache_files
    for path in [*result.written, *cache_files]:
        assert mode(path) == 0o644, path
    assert not stale.exists()

    generated = out / "qa.py"
    generated.chmod(0o640)
    (tmp_path / "qa.dsx").write_text("// changed\n" + SOURCE)
    build(tmp_path / "qa.dsx", out=out, log=lambda m: None)
    assert mode(generated) == 0o640
    assert temps(out) == []


def test_dsx_fmt_keeps_the_mode_and_cleans_stale_temps(tmp_path: Path, umask022: None) -> None:
    src = tmp_path / "ugly.dsx"
    src.write_text("program   qa=RAG( k=3 )\n")
    src.chmod(0o640)
    stale = tmp_path / ".ugly.dsx.a1b2c3d4.tmp"
    stale.write_text("partial")
    old = time.time() - STALE_TEMP_SECONDS - 1
    os.utime(stale, (old, old))
    assert fmt(str(src)) == 0
    assert src.read_text() == "program qa = RAG(k = 3)\n"
    assert mode(src) == 0o640
    assert temps(tmp_path) == []
