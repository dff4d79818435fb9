"""`dsx inspect` shows a state file's selector (issue 19): a KNN selector's kind, k, embedder
model and number of examples; an ensemble's members and reducer; and what loading would
refuse in it."""

from __future__ import annotations

import argparse
import base64
import json

import pytest

from dsx.cli import inspect as inspect_cli

pytest.importorskip("numpy")


def write(tmp_path, selector):
    doc = {
        "format": "dsx-state",
        "schema_version": 2,
        "program": "qa",
        "state": {"self": {"demos": []}},
        "selector": selector,
    }
    path = tmp_path / "qa.state.json"
    path.write_text(json.dumps(doc))
    return path


def show(path, capsys, demos=False):
    code = inspect_cli.run(argparse.Namespace(file=str(path), demos=demos))
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


def knn(**changes):
    data = {
        "kind": "knn",
        "k": 2,
        "embedder": {"model": "local:all-MiniLM-L6-v2"},
        "input_keys": ["question"],
        "examples": [
            {"values": {"question": q, "answer": q}, "inputs": ["question"]} for q in "abc"
        ],
        "demos": [{"self": [{"question": q, "answer": q}]} for q in "abc"],
        "vectors": {
            "dtype": "float32",
            "shape": [3, 1],
            "data": base64.b64encode(b"\0\0\x80?" * 3).decode(),
        },
    }
    return data | changes


def ensemble(**changes):
    def member(answer, n):
        return {"self": {"demos": [{"question": "q", "answer": answer}] * n, "lm": None}}

    data = {
        "kind": "ensemble",
        "reducer": "majority",
        "size": None,
        "seed": 7,
        "members": [member("1", 1), member("2", 2)],
    }
    return data | changes


def test_inspect_shows_a_knn_selector(tmp_path, capsys):
    out = show(write(tmp_path, knn()), capsys)
    assert (
        "selector: knn (KNNFewShot), k=2, embedder local:all-MiniLM-L6-v2, 3 example(s), "
        "vectors 3x1 stored" in out
    )
    assert "loading refuses" not in out


def test_inspect_shows_an_ensemble_with_its_members_and_reducer(tmp_path, capsys):
    out = show(write(tmp_path, ensemble()), capsys)
    assert "selector: ensemble (Ensemble), 2 member(s), reducer majority" in out
    assert "every member per call, seed 7" in out
    assert "member 1 ■ self: 1 demo(s)" in out and "member 2 ■ self: 2 demo(s)" in out
    assert '"answer": "2"' not in out and "loading refuses" not in out
    assert '"answer": "2"' in show(write(tmp_path, ensemble()), capsys, demos=True)


@pytest.mark.parametrize(
    ("selector", "note"),
    [
        (ensemble(reducer="os:system"), "unknown reducer 'os:system'"),
        (
            knn(embedder={"model": "openai/e", "api_base": "http://evil.example"}),
            "embedder.api_base, which decides where texts",
        ),
        ({"kind": "tree"}, "unknown selector kind 'tree'"),
    ],
)
def test_inspect_notes_what_loading_would_refuse(tmp_path, capsys, selector, note):
    out = show(write(tmp_path, selector), capsys)
    assert "note: loading refuses this selector:" in out and note in out
