"""Every `dsx` command, driven with hostile paths and bytes, answers with a message and an
exit status, never a Python traceback and never a hang (issue 14, item 4).

Hostile inputs: directories (also one named `x.dsx`), missing files, binary and non-UTF-8
files, NUL bytes, a 1 MB line, a symbolic link to itself, a FIFO no program writes to or
reads from, a device node, and valid files whose names hold a newline, a byte that is not
UTF-8, a leading dash, a colon, spaces and shell characters. The table is fixed (no
randomness) so that a failure names its case and reruns the same way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dsx.testing import OpenAIServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="FIFOs, device nodes, POSIX file names"),
]

QA = """signature QA {
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

test answers for qa {
    given  question = "q"
    expect answer = "x"
}
"""

ANSWER = "<<< answer >>>\nx\n\n<<< end >>>"
BINARY = bytes(range(256)) * 8
HUGE_LINE = "a" * 1_000_000

#: Valid programs under names a shell, a terminal or a generated comment may choke on.
ODD_NAMES = [
    "new\nline.dsx",
    os.fsdecode(b"caf\xe9-not-utf8.dsx"),
    "-dash.dsx",
    "co:lon.dsx",
    "sp ace.dsx",
    "quo\"te'$(x);.dsx",
    "ünï ✓.dsx",
]


def _fill(root: Path) -> None:
    (root / "qa.dsx").write_text(QA)
    (root / "dev.jsonl").write_text(json.dumps({"question": "q", "answer": "x"}) + "\n")
    (root / "adir" / "x.dsx").mkdir(parents=True)  # a directory named like a source
    (root / "binary.dsx").write_bytes(BINARY)
    (root / "latin1.dsx").write_bytes(b'signature S = "q -> a" // caf\xe9\n')
    (root / "nul.dsx").write_bytes(b'signature S = "q -> a"\x00\nprogram p = Predict(S)\n')
    (root / "huge.dsx").write_text(f'signature S = "{HUGE_LINE}"\n')
    (root / "binary.jsonl").write_bytes(BINARY)
    (root / "latin1.jsonl").write_bytes(b'{"question": "caf\xe9", "answer": "x"}\n')
    (root / "huge.jsonl").write_text('{"question": "' + HUGE_LINE + "\n")
    (root / "empty.jsonl").write_text("")
    (root / "ragged.csv").write_text("question,answer\nq\nq,x,extra\n")
    (root / "binary.json").write_bytes(BINARY)
    (root / "binary.csv").write_bytes(BINARY)
    (root / "list.json").write_text("[1, 2, 3]")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "notgguf.gguf").write_bytes(BINARY)
    os.symlink("loop.dsx", root / "loop.dsx")
    os.symlink("loop.jsonl", root / "loop.jsonl")
    os.mkfifo(root / "fifo.dsx")
    os.mkfifo(root / "fifo.jsonl")
    os.mkfifo(root / "fifo.json")
    for name in ODD_NAMES:
        (root / name).write_text(QA)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    _fill(root)
    with OpenAIServer(lambda r: ANSWER) as server:
        yield root, server


def _dsx(project, *args: str, timeout: float = 60):
    root, server = project
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env.update(
        DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
        DSX_LM="openai/test-model",
        DSX_API_BASE=server.api_base,
        DSX_API_KEY="x",
        # A strict output encoding, as under a UTF-8 locale: a file name that is not UTF-8
        # must still print.
        PYTHONIOENCODING="utf-8:strict",
    )
    try:
        return subprocess.run(
            [sys.executable, "-m", "dsx.cli", *args],
            capture_output=True,
            env=env,
            cwd=root,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"dsx {' '.join(map(repr, args))} hung (no answer in {timeout} s)")


def _check(out, expect: str) -> str:
    text = out.stderr.decode("utf-8", "replace") + out.stdout.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    # The catch-all reporter's hints mean an exception nobody turned into a message.
    assert "bug in dsx" not in text and "raised by Python code" not in text, text
    if expect == "fail":
        assert out.returncode not in (0, None), text
        assert out.stderr.strip() or out.stdout.strip(), "failed without a word"
    elif expect == "ok":
        assert out.returncode == 0, text
    return text


# (arguments, what is expected): "fail" = a non-zero exit with a message, "ok" = exit 0,
# "any" = either (an empty FIFO is an empty file), but never a traceback or a hang.
SOURCES = {
    "adir": "fail",
    "adir/x.dsx": "fail",
    "missing.dsx": "fail",
    "binary.dsx": "fail",
    "latin1.dsx": "fail",
    "nul.dsx": "fail",
    "huge.dsx": "any",
    "loop.dsx": "fail",
    "fifo.dsx": "any",
}


def _source_cases():
    for path, expect in SOURCES.items():
        yield ("check", path), expect
        # fmt, like black: a directory without .dsx files is nothing to do.
        yield ("fmt", "--check", path), "any" if path in ("adir", "adir/x.dsx") else expect
        yield ("build", path, "--out", "out-src"), expect
        yield ("run", path, "-i", "question=x"), expect
        yield ("test", path), expect
        yield ("eval", path, "--data", "dev.jsonl"), expect
        yield ("optimize", path, "--out", "out-src/s.json"), expect


DATA = ["adir", "missing.jsonl", "binary.jsonl", "latin1.jsonl", "huge.jsonl", "empty.jsonl"]
DATA += ["ragged.csv", "binary.csv", "binary.json", "deep.json", "loop.jsonl", "fifo.jsonl"]
DATA += ["qa.dsx"]


def _data_cases():
    for path in DATA:
        yield ("eval", "qa.dsx", "--data", path, "--no-state"), "fail"
        yield ("run", "qa.dsx", "--jsonl", path, "--no-state"), "fail"


STATES = ["adir", "missing.json", "binary.json", "list.json", "deep.json", "loop.dsx"]
STATES += ["fifo.json", "qa.dsx"]


def _state_cases():
    for path in STATES:
        # ``dsx inspect FILE.dsx`` describes a program's declared resources: not a failure.
        yield ("inspect", path), "ok" if path == "qa.dsx" else "fail"
        yield ("run", "qa.dsx", "--state", path, "-i", "question=x"), "fail"
        yield ("eval", "qa.dsx", "--data", "dev.jsonl", "--state", path), "fail"
        yield ("test", "qa.dsx", "--state", path), "fail"


OUTPUTS = ["qa.dsx/sub", "adir", "fifo.jsonl"]


def _output_cases():
    for path in OUTPUTS:
        yield ("build", "qa.dsx", "--out", path), "any" if path == "adir" else "fail"
        yield ("optimize", "qa.dsx", "--out", path), "fail"
        for flag in ("--save-json", "--save-csv"):
            yield ("eval", "qa.dsx", "--data", "dev.jsonl", "--no-state", flag, path), "fail"
        yield ("lsp", "--log-file", path), "fail"
    yield ("optimize", "qa.dsx", "--out", "qa.dsx"), "fail"  # never over the source


IR_FILES = ["binary.json", "list.json", "deep.json", "fifo.json", "missing.json", "adir"]


def _ir_cases():
    # FILE.json targets are read as IR files.
    for path in IR_FILES:
        target = path if path.endswith(".json") else f"{path}/x.ir.json"
        yield ("run", target, "-i", "question=x"), "fail"
        yield ("eval", target, "--data", "dev.jsonl"), "fail"


def _other_cases():
    for path in ("adir", "missing.gguf", "notgguf.gguf", "fifo.json", "loop.dsx"):
        yield ("model", "check", "--model", path), "fail"
    for path in ("qa.dsx", "qa.dsx/sub"):
        yield ("sandbox", "build-image", "--dir", path), "fail"


CASES = [
    *_source_cases(),
    *_data_cases(),
    *_state_cases(),
    *_output_cases(),
    *_ir_cases(),
    *_other_cases(),
]


@pytest.mark.parametrize(("args", "expect"), CASES, ids=lambda v: repr(v)[:60])
def test_hostile_paths_get_a_message_never_a_traceback(project, args, expect):
    text = _check(_dsx(project, *args), expect)
    root = project[0]
    # Nothing hostile was replaced: the FIFOs are FIFOs, the source is the source.
    assert stat.S_ISFIFO(os.lstat(root / "fifo.jsonl").st_mode)
    assert (root / "qa.dsx").read_text() == QA
    if "fifo" in " ".join(args) and expect == "fail" and "--log-file" not in args:
        assert "fifo" in text


@pytest.mark.parametrize("name", ODD_NAMES, ids=repr)
def test_odd_file_names_work_in_every_command(project, name):
    root = project[0]
    out_dir = f"out-{abs(hash(name))}"
    name = f"./{name}"  # `-dash.dsx` alone is an option, as for any command
    for args in (
        ("check", name),
        ("fmt", name),
        ("optimize", name, "--out", f"{out_dir}/qa.state.json"),
        ("inspect", f"{out_dir}/qa.state.json"),
        ("build", name, "--out", out_dir),
        ("run", name, "-i", "question=x", "--state", f"{out_dir}/qa.state.json"),
        ("test", name, "--no-state"),
        ("eval", name, "--data", "dev.jsonl", "--no-state"),
    ):
        text = _check(_dsx(project, *args), "ok")
        if args[0] == "run":
            assert "answer: x" in text, text
    # The generated module imports: the odd name sits in its comments and docstring.
    spec = importlib.util.spec_from_file_location("odd_qa", root / out_dir / "qa.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.qa() is not None


def test_a_device_node_is_written_into_never_replaced(project, tmp_path):
    """`--out /dev/null` as root would replace the device with a plain file if dsx renamed
    its temporary file over it. A private node (same major/minor) stands in for it."""
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root (mknod)")
    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"mknod is not allowed here: {exc}")
    for args in (
        ("optimize", "qa.dsx", "--out", str(null)),
        ("eval", "qa.dsx", "--data", "dev.jsonl", "--no-state", "--save-json", str(null)),
        ("eval", "qa.dsx", "--data", "dev.jsonl", "--no-state", "--save-csv", str(null)),
    ):
        _check(_dsx(project, *args), "ok")
        assert stat.S_ISCHR(os.lstat(null).st_mode), f"dsx {args} replaced the device node"
