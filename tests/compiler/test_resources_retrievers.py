"""Retriever declarations (issue 19, item 4): `retriever wiki = Embeddings(...)` /
`Chroma(...)` / `FAISS(...)` / `Qdrant(...)` / `ColBERTv2(...)`, checked from the
runtime's registry (DSX141) and used by `Retrieve(wiki)`. A RAG program with a declared
retriever runs under `dsx run` against a real OpenAI-compatible server (chat and
embeddings), and the module `dsx build` writes retrieves and prompts the same."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dsx.compiler.analysis import analyze_source
from dsx.runtime import resources
from dsx.testing import OpenAIServer

QA = "signature QA {\n    in  context: list[str]\n    in  question: str\n    out answer: str\n}\n"
CORPUS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "The Nile is a river in Africa.",
    "Mount Everest is the highest mountain.",
    "Python is a programming language.",
]


def _program(retriever: str, member: str = "    search = Retrieve(wiki)\n") -> str:
    return (
        f"{retriever}\n{QA}\nmodule RAG {{\n{member}    answer = Predict(QA)\n\n"
        "    forward(question: str) {\n        context = search(question).passages\n"
        "        return answer(context = context, question = question)\n    }\n}\n\n"
        "program rag = RAG()\n"
    )


def _codes(text: str, tmp_path) -> list[tuple[str, str, str]]:
    analysis = analyze_source(text, str(tmp_path / "r.dsx"))
    src = analysis.source(analysis.unit.source)
    return [(d.code, d.message, src.text[d.span.start : d.span.end]) for d in analysis.diagnostics]


DSX = (sys.executable, "-m", "dsx")
RUN = (*DSX, "run", "rag.dsx:rag", "--json")
EMB = 'retriever wiki = Embeddings(corpus = "c.txt", embedder = "openai/e"'


@pytest.mark.parametrize(
    ("retriever", "member", "words", "at"),
    [
        ('retriever wiki = Chrome(path = "db")', None, "did you mean `Chroma`", "Chrome"),
        (
            'retriever wiki = Chroma(path = "db", collection = "w")',
            None,
            "needs `embedder = ...`",
            None,
        ),
        (EMB + ", kk = 3)", None, "did you mean `k`", "kk"),
        (EMB + ", k = 0)", None, "whole number >= 1", "0"),
        (EMB + ', k = "3")', None, "whole number >= 1", '"3"'),
        (
            'retriever wiki = Embeddings("c.txt", embedder = "openai/e")',
            None,
            "as keywords",
            '"c.txt"',
        ),
        ('retriever wiki = ColBERTv2(url = "colbert:8893")', None, "http(s) URL", '"colbert:8893"'),
        (
            'retriever wiki = "data/chroma"',
            None,
            "must be built by a retriever kind",
            '"data/chroma"',
        ),
        (EMB + ")", "    search = Retrieve(wkii)\n", "did you mean `wiki`", "wkii"),
    ],
)
def test_located_errors(tmp_path, retriever, member, words, at):
    text = _program(retriever, member or "    search = Retrieve(wiki)\n")
    found = [c for c in _codes(text, tmp_path) if c[0] != "DSX200"]
    assert any(c == "DSX141" and words in m and (at is None or t == at) for c, m, t in found), found


def test_every_registered_kind_checks_clean_with_its_required_settings(tmp_path):
    values = {"url": '"http://127.0.0.1:1"', "k": "2"}
    for name, spec in resources.RETRIEVERS.items():
        args = ", ".join(f"{r} = " + values.get(r, '"x"') for r in spec.required)
        text = _program(f"retriever wiki = {name}({args})")
        assert _codes(text, tmp_path) == [], name


def test_retrieve_takes_the_declared_k_unless_it_gives_one(tmp_path):
    unit = analyze_source(_program(EMB + ", k = 4)"), str(tmp_path / "a.dsx")).unit
    sub = unit.modules[0].submodules[0]
    assert [k for k, _ in sub.kwargs] == ["rm", "k"] and sub.kwargs[1][1].value == 4
    text = _program(EMB + ", k = 4)", "    search = Retrieve(wiki, k = 1)\n")
    unit = analyze_source(text, str(tmp_path / "b.dsx")).unit
    kwargs = dict(unit.modules[0].submodules[0].kwargs)
    assert kwargs["k"].value == 1 and kwargs["rm"].func.name == "wiki"


def test_a_retrieve_with_a_python_function_still_works(tmp_path):
    text = 'use python "tools" as tools\n' + _program(
        "", "    search = Retrieve(rm = tools.search, k = 2)\n"
    )
    (tmp_path / "tools.py").write_text("def search(q, k):\n    return ['a']\n")
    assert [c for c in _codes(text, tmp_path) if c[0] == "DSX141"] == []


# -- end to end -----------------------------------------------------------------------------


def _responder(body) -> str:
    """Answers with the passages the prompt gave it, so retrieval shows in the output."""
    text = json.dumps(body.get("messages", []))
    found = [p for p in CORPUS if p in text]
    return "<<< answer >>>\n" + " | ".join(found) + "\n\n<<< end >>>"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSX_", "OPENAI_"))}
    env.update(DSX_CACHE_DIR=str(tmp_path / "cache"), OPENAI_API_KEY="x")
    return env


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[path.stem]
    return module


def _rag(retriever: str, base: str) -> str:
    lm = f'lm main = "openai/chat" {{ api_base = "{base}", cache = false }}\n'
    return lm + _program(retriever).replace("Predict(QA)", "Predict(QA, lm = main)")


@pytest.mark.integration
def test_dsx_run_and_the_built_module_retrieve_from_a_declared_embeddings_index(
    tmp_path, monkeypatch
):
    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    with OpenAIServer(_responder, embedding_dim=16) as server:
        retriever = (
            'retriever wiki = Embeddings(corpus = "corpus.txt", embedder = "openai/emb", '
            f'embedder_api_base = "{server.api_base}", k = 2)'
        )
        (tmp_path / "rag.dsx").write_text(_rag(retriever, server.api_base))
        # no --lm and no DSX_LM: the only predictor declares its LM
        run = subprocess.run(
            [*RUN, "-i", "question=What is the capital of France?"],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        answer = json.loads(run.stdout.strip().splitlines()[-1])["answer"]
        chosen = answer.split(" | ")
        assert len(chosen) == 2 and set(chosen) <= set(CORPUS)  # k = 2 from the declaration
        embedded = [r for r in server.requests if r.path.endswith("/embeddings")]
        assert embedded  # the corpus and the query went to the declared embedder endpoint

        out = tmp_path / "out"
        build = subprocess.run(
            [sys.executable, "-m", "dsx", "build", "rag.dsx", "--out", str(out)],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            cwd=tmp_path,
        )
        assert build.returncode == 0, build.stderr
        code = (out / "rag.py").read_text()
        assert str(tmp_path) not in code  # the corpus path is relative to the module
        monkeypatch.setenv("OPENAI_API_KEY", "x")
        monkeypatch.chdir(tmp_path.parent)  # the built module finds corpus.txt by itself
        built = _import(out / "rag.py").program()
        assert built(question="What is the capital of France?").answer == answer


@pytest.mark.integration
def test_a_declared_chroma_collection_built_by_dsx_index(tmp_path):
    pytest.importorskip("chromadb")
    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    with OpenAIServer(_responder, embedding_dim=16) as server:
        env = _env(tmp_path) | {"OPENAI_BASE_URL": server.api_base}
        index = subprocess.run(
            [*DSX, "index", "corpus.txt", "--into", "chroma:db/wiki", "--embedder", "openai/emb"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert index.returncode == 0, index.stderr
        retriever = (
            'retriever wiki = Chroma(path = "db", collection = "wiki", embedder = "openai/emb", '
            f'embedder_api_base = "{server.api_base}", k = 3)'
        )
        (tmp_path / "rag.dsx").write_text(_rag(retriever, server.api_base))
        run = subprocess.run(
            [*RUN, "-i", "question=Which river is in Africa?"],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        answer = json.loads(run.stdout.strip().splitlines()[-1])["answer"]
        assert len(answer.split(" | ")) == 3


def test_a_missing_corpus_is_a_clear_error_naming_the_retriever(tmp_path, monkeypatch):
    import dsx
    from dsx.errors import DsxError

    monkeypatch.setenv("OPENAI_API_KEY", "x")
    text = _program('retriever wiki = Embeddings(corpus = "nope.txt", embedder = "openai/e")')
    unit = analyze_source(text, str(tmp_path / "r.dsx")).unit
    with pytest.raises(DsxError, match=r"retriever `wiki` \(Embeddings\): .*nope.txt"):
        dsx.instantiate(unit).program("rag")


def _both(text: str, tmp_path: Path, monkeypatch) -> list:
    """Makers of the program from the interpreter and from the module `dsx build` would
    write (called one after the other: an embedded Qdrant folder takes one client)."""
    import dsx
    from dsx.compiler.codegen import generate

    monkeypatch.setenv("OPENAI_API_KEY", "x")
    analysis = analyze_source(text, str(tmp_path / "rag.dsx"))
    assert [d for d in analysis.diagnostics if d.severity == "error"] == []
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "rag_mod.py").write_text(generate(analysis.unit, "rag", python_root=".."))
    return [
        lambda: dsx.instantiate(analysis.unit).program("rag"),
        lambda: _import(out / "rag_mod.py").program(),
    ]


def _ask(make, question: str) -> str:
    program = make()
    try:
        return program(question=question).answer
    finally:
        close = getattr(program.search.rm, "close", None)
        if close is not None:
            close()


@pytest.mark.integration
def test_a_declared_colbertv2_server(tmp_path, monkeypatch):
    from dsx.testing.colbert_server import ColBERTv2Server

    with ColBERTv2Server(CORPUS) as colbert, OpenAIServer(_responder) as server:
        text = _rag(f'retriever wiki = ColBERTv2(url = "{colbert.url}", k = 1)', server.api_base)
        makers = _both(text, tmp_path, monkeypatch)
        answers = [_ask(make, "Which river is in Africa?") for make in makers]
    assert answers[0] == answers[1] == "The Nile is a river in Africa."


@pytest.mark.integration
@pytest.mark.parametrize("engine", ["faiss", "qdrant"])
def test_a_declared_index_built_by_dsx_index(tmp_path, monkeypatch, engine):
    if engine == "qdrant":
        pytest.importorskip("qdrant_client")
    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS) + "\n")
    with OpenAIServer(_responder, embedding_dim=16) as server:
        into = "faiss:idx" if engine == "faiss" else "qdrant:idx/wiki"
        index = subprocess.run(
            [*DSX, "index", "corpus.txt", "--into", into, "--embedder", "openai/emb"],
            capture_output=True,
            text=True,
            env=_env(tmp_path) | {"OPENAI_BASE_URL": server.api_base},
            cwd=tmp_path,
        )
        assert index.returncode == 0, index.stderr
        settings = f'embedder = "openai/emb", embedder_api_base = "{server.api_base}", k = 2'
        decl = (
            f'retriever wiki = FAISS(path = "idx", {settings})'
            if engine == "faiss"
            else f'retriever wiki = Qdrant(path = "idx", collection = "wiki", {settings})'
        )
        makers = _both(_rag(decl, server.api_base), tmp_path, monkeypatch)
        answers = [_ask(make, "What is the capital of France?") for make in makers]
    assert answers[0] == answers[1] and len(answers[0].split(" | ")) == 2


def test_writing_a_state_file_makes_no_declared_retriever(tmp_path):
    from dsx import ir
    from dsx.compiler.build import state_file

    text = _program('retriever wiki = Embeddings(corpus = "missing.txt", embedder = "openai/e")')
    unit = analyze_source(text, str(tmp_path / "r.dsx")).unit
    learned = ir.Learned(predictors={"answer": ir.LearnedPredictor(instructions="Be brief.")})
    state = state_file(unit, "rag", learned)  # would embed (here: fail on) the corpus
    assert state.predictors["answer"]["signature"]["instructions"] == "Be brief."
