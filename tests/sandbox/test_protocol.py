"""The host side of the protocol, without a guest: framing, limits, tool specs, results."""

from __future__ import annotations

import json

import pytest

from dsx.sandbox import Limits, Mount
from dsx.sandbox._protocol import FrameReader, ProtocolViolation, assemble_result, new_token
from dsx.sandbox._tools import Tool, dumps, normalize_tools

TOKEN = new_token()


def frame(obj: object) -> bytes:
    return TOKEN.encode() + b" " + json.dumps(obj).encode() + b"\n"


def reader(**kw: int) -> FrameReader:
    return FrameReader(
        TOKEN, max_message=kw.get("max_message", 1 << 20), max_output=kw.get("max_output", 100)
    )


def test_messages_split_across_chunks_and_raw_output_kept() -> None:
    r = reader()
    data = b"stray line\n" + b"partial " + frame({"type": "ready"}) + frame({"type": "x", "n": 1})
    messages = []
    for i in range(0, len(data), 7):
        messages += r.feed(data[i : i + 7])
    assert messages == [{"type": "ready"}, {"type": "x", "n": 1}]
    assert r.raw.take() == ("stray line\npartial ", False)


def test_lines_without_the_token_are_never_messages() -> None:
    r = reader()
    assert r.feed(b'{"type": "result", "id": 1}\n' + b'\x1edsx-guess\x1e {"type":"x"}\n') == []
    assert '"result"' in r.raw.take()[0]


def test_malformed_or_untyped_messages_are_violations() -> None:
    for bad in (TOKEN.encode() + b" {nope\n", frame([1, 2]), frame({"no": "type"})):
        with pytest.raises(ProtocolViolation):
            reader().feed(bad)


def test_oversized_messages_are_violations_but_long_raw_output_is_not() -> None:
    r = reader(max_message=1000)
    with pytest.raises(ProtocolViolation, match="over the 1000-byte limit"):
        r.feed(TOKEN.encode() + b" " + b"x" * 2000)
    r = reader(max_message=1000, max_output=10)
    assert r.feed(b"y" * 5000) == []
    assert r.raw.take() == ("y" * 10, True)


def test_result_fields_are_checked() -> None:
    r = reader()
    msg = {
        "type": "result",
        "ok": True,
        "stdout": "a" * 500,
        "stderr": 5,
        "has_value": True,
        "value_json": "[1, 2]",
        "value_repr": "(1, 2)",
        "submitted": "yes",  # not a bool: ignored
        "error": None,
    }
    res = assemble_result(msg, reader=r, tool_calls=[], duration=0.1, max_output=100)
    assert res.ok and res.value == [1, 2] and res.value_repr == "(1, 2)"
    assert len(res.stdout) == 100 and res.stderr == "" and not res.submitted
    bad = {"type": "result", "ok": True, "error": {"type": "E", "message": "m", "line": "x"}}
    res = assemble_result(bad, reader=r, tool_calls=[], duration=0, max_output=100)
    assert not res.ok and res.error is not None and res.error.line is None


def test_tool_specs_describe_real_signatures() -> None:
    def f(a, /, b: int, c=object(), *args, d: str = "x", **kw) -> None:
        """Doc."""

    spec = Tool.create("f", f).spec
    assert [(p["name"], p["kind"]) for p in spec["params"]] == [
        ("a", "po"),
        ("b", "pk"),
        ("c", "pk"),
        ("args", "var"),
        ("d", "kw"),
        ("kw", "varkw"),
    ]
    c = spec["params"][2]
    assert c["has_default"] and "default" not in c  # not JSON: the host fills it in
    assert spec["params"][4]["default"] == "x"
    assert spec["doc"] == "Doc." and spec["annotations"]["b"] == "int"


def test_tools_by_mapping_or_by_name() -> None:
    def search() -> None: ...

    assert list(normalize_tools([search])) == ["search"]
    assert list(normalize_tools({"s": search})) == ["s"]
    with pytest.raises(ValueError):
        normalize_tools({"class": search})
    with pytest.raises(ValueError):
        normalize_tools({"__dsx_call": search})


def test_json_encoding_for_tool_results() -> None:
    import datetime
    import enum
    import pathlib

    class Color(enum.Enum):
        RED = "red"

    value = {"t": (1, 2), "s": frozenset([3]), "e": Color.RED, "p": pathlib.Path("/x")}
    value["d"] = datetime.date(2024, 1, 2)
    assert json.loads(dumps(value)) == {
        "t": [1, 2],
        "s": [3],
        "e": "red",
        "p": "/x",
        "d": "2024-01-02",
    }
    with pytest.raises(TypeError):
        dumps(object())
    assert "\n" not in dumps({"text": "a\nb"})


def test_limits_and_mounts_are_validated(tmp_path) -> None:
    assert Limits().timeout == 10 and Limits().memory == 256 * 1024 * 1024
    assert Limits().max_output == 64 * 1024 and Limits().max_tool_calls == 100
    assert Limits().max_message_size == 16 * 1024 * 1024
    with pytest.raises(ValueError):
        Limits(timeout=0)
    with pytest.raises(ValueError):
        Limits(memory=1024)
    m = Mount(str(tmp_path))
    assert m.guest_path == f"/mnt/{tmp_path.name}" and not m.writable
    with pytest.raises(ValueError, match="not an existing directory"):
        Mount(str(tmp_path / "missing"))
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ValueError):
        Mount(str(f))
    with pytest.raises(ValueError):
        Mount(str(tmp_path), "/a/../b")


def test_sandbox_layering_and_lazy_imports() -> None:
    import ast
    import pathlib
    import subprocess
    import sys

    import dsx.sandbox

    # The sandbox library imports nothing of dsx but the import-free exception base (so that a
    # sandbox failure is a dsx.DsxError) and the stdlib-only atomic write. sandbox/cli.py is not library code: it is the old
    # name of the `dsx sandbox` command (dsx.cli.sandbox), kept for `python -m dsx.sandbox.cli`.
    allowed = {"dsx._errors_base", "dsx._files"}
    offenders = []
    for path in pathlib.Path(dsx.sandbox.__file__).parent.glob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.startswith("dsx") and not n.startswith("dsx.sandbox") and n not in allowed
            ]
    assert offenders == [], "dsx.sandbox must import nothing else of dsx"
    probe = (
        "import sys, dsx.sandbox, dsx.testing.fake_sandbox\n"
        "from dsx.sandbox import create_sandbox, PythonInterpreter, DockerSandbox\n"
        "create_sandbox('wasmtime'); create_sandbox('docker')\n"
        "print(sorted(m for m in ('wasmtime', 'docker') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
