"""Pipes, devices, loops and odd names in the helpers every command reads and writes
through (issue 14, item 4); the CLI-wide table is tests/programs/test_cli_fuzz.py."""

from __future__ import annotations

import errno
import os
import stat
import sys

import pytest

from dsx import cli
from dsx._textfile import TextFileError, read_text
from dsx.compiler.analysis import analyze_source
from dsx.compiler.codegen import generate
from dsx.errors import LMConnectionError, StateError
from dsx.runtime._files import atomic_write
from dsx.runtime.lm import map_error
from dsx.runtime.state import read_state

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, POSIX file names")


def test_writing_to_a_fifo_nobody_reads_fails_at_once_and_keeps_the_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as info:
        atomic_write(fifo, "data")
    assert info.value.errno == errno.ENXIO and "no program reads" in str(info.value)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["pipe"]  # no temporary file either


def test_writing_to_a_fifo_with_a_reader_writes_into_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic_write(fifo, "through the pipe\n")
        assert os.read(reader, 100) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_writing_over_a_directory_is_an_error(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path / "d", "x")


def test_reading_a_fifo_nobody_writes_is_empty(tmp_path):
    fifo = tmp_path / "pipe.dsx"
    os.mkfifo(fifo)
    assert read_text(fifo) == ""  # before: open() waited for a writer forever


def test_a_symlink_loop_is_named(tmp_path):
    os.symlink("loop.jsonl", tmp_path / "loop.jsonl")
    with pytest.raises(TextFileError, match="points .in a loop. to itself"):
        read_text(tmp_path / "loop.jsonl")
    with pytest.raises(StateError, match="in a loop"):
        read_state(tmp_path / "loop.jsonl")


def test_deeply_nested_state_is_a_state_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(StateError, match="not a readable dsx state file"):
        read_state(path)


def test_a_provider_error_is_described_by_its_cause_not_by_an_unrelated_context():
    # In an evaluation's worker thread, asyncio's "no running event loop" was the context
    # of the connection error and stood in for it in the message.
    try:
        try:
            raise RuntimeError("no running event loop")
        except RuntimeError:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)") from None
    except ConnectionRefusedError as exc:
        exc.__context__ = RuntimeError("no running event loop")  # as asyncio leaves it
        exc.__suppress_context__ = False
        err = map_error(exc, "openai/x")
    assert isinstance(err, LMConnectionError)
    assert "Connect call failed" in str(err) and "event loop" not in str(err)


def test_check_skips_a_directory_named_like_a_source(tmp_path, monkeypatch, capsys):
    (tmp_path / "x.dsx").mkdir()
    (tmp_path / "ok.dsx").write_text('signature S = "q -> a"\n')
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "."]) == 0
    assert "1 file(s) checked: 0 error(s)" in capsys.readouterr().out
    (tmp_path / "ok.dsx").unlink()
    assert cli.main(["check", "."]) == 2
    assert "no .dsx files" in capsys.readouterr().err


SOURCE = """/// First line of the doc.
/// print("this must stay a comment")
enum Mood { happy, sad }

signature S {
    in  text: str
    out mood: Mood
}

program p = Predict(S)
"""


@pytest.mark.parametrize("name", ["ok.dsx", "new\nline.dsx", "caf\udce9.dsx", 'q"""q.dsx'])
def test_generated_modules_compile_whatever_the_file_name_and_doc(name):
    analysis = analyze_source(SOURCE, name)
    assert not analysis.errors
    code = generate(analysis.unit, "p")
    compile(code, "p.py", "exec")
    code.encode("utf-8")  # writable as UTF-8 (a lone surrogate was not)
    assert not any(line.startswith("print(") for line in code.splitlines())


def test_a_lone_surrogate_in_a_prompt_is_sent_and_cached(tmp_path):
    """An escaped lone surrogate in an earlier reply (or a file name that is not UTF-8)
    flows into the next prompt: the cache key, the request body and the disk entry must
    not fail on it (before: UnicodeEncodeError from the cache key)."""
    from dsx.runtime.cache import configure_cache
    from dsx.runtime.lm import LM
    from dsx.testing import OpenAIServer

    configure_cache(disk_dir=tmp_path / "cache")
    try:
        with OpenAIServer() as srv:  # echoes the last user message
            lm = LM("openai/t", api_base=srv.api_base, api_key="k", transport="openai")
            prompt = [{"role": "user", "content": "caf\udce9 \ud800"}]
            first = lm.forward(prompt)
            assert first.outputs == ["caf\udce9 \ud800"] and not first.cached
            configure_cache(disk_dir=tmp_path / "cache", enable_memory=False)
            again = lm.forward(prompt)  # from the disk layer
            assert again.cached and again.outputs == first.outputs
            assert len(srv.requests) == 1
    finally:
        configure_cache()


def test_a_command_line_input_that_is_not_utf8_is_a_message(tmp_path, monkeypatch, capsys):
    (tmp_path / "qa.dsx").write_text(
        'signature QA = "question -> answer"\n\nprogram qa = Predict(QA)\n'
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DSX_LM", "openai/t")
    monkeypatch.setenv("DSX_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("DSX_API_KEY", "k")
    value = os.fsdecode(b"question=caf\xe9")
    assert cli.main(["run", "qa.dsx", "--no-state", "-i", value]) == 2
    err = capsys.readouterr().err
    assert "--input question: the value is not UTF-8 text" in err, err
