"""``dsx/renderPrompt`` (issue 18, item 1): the exact messages a program would send, from
a test's ``given`` or typed-in inputs, with the learned state while it matches, following
unsaved edits; refusals are error answers that say why. Over stdio, as an editor sends it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

import dsx
from dsx import ir
from dsx.compiler.analysis import analyze_path
from dsx.compiler.build import state_file
from dsx.runtime.state import write_state

from ._raw import RawClient, error_code

pytestmark = [pytest.mark.lsp, pytest.mark.asyncio(loop_scope="module")]

QA = """/// Answer questions briefly.
signature QA {
    in  question: str
    in  context: list[str] "facts"
    out answer: str "a few words"
}

program qa = ChainOfThought(QA)

test capital for qa {
    given question = "Capital of France?"
    given context = ["Paris is in France."]
    expect answer = "Paris"
}
"""

PIPELINE = """signature Rewrite { in question: str out query: str }
signature Answer { in question: str in passages: list[str] out answer: str }

module Pipeline {
    rewrite = Predict(Rewrite)
    answer = Predict(Answer)

    forward(question: str) {
        q = rewrite(question = question).query
        return answer(question = question, passages = [q])
    }
}

program pipe = Pipeline()
"""

REFUSED = -32099


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("preview")
    raw = await RawClient.start()
    await raw.initialize(root)
    yield raw, root
    try:
        await raw.call(types.SHUTDOWN)
        raw.notify(types.EXIT)
        assert await raw.wait() == 0
    finally:
        await raw.kill()


def _open(raw: RawClient, path: Path, text: str, version: int = 1) -> str:
    path.write_text(text)
    uri = path.as_uri()
    raw.notify(
        types.TEXT_DOCUMENT_DID_OPEN,
        {"textDocument": {"uri": uri, "languageId": "dsx", "version": version, "text": text}},
    )
    return uri


def _replace(raw: RawClient, uri: str, version: int, text: str) -> None:
    raw.notify(
        types.TEXT_DOCUMENT_DID_CHANGE,
        {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
    )


async def _render(raw: RawClient, **params: Any) -> dict[str, Any]:
    answer = await raw.call("dsx/renderPrompt", params)
    assert "result" in answer, answer
    return answer["result"]


async def _refusal(raw: RawClient, **params: Any) -> str:
    answer = await raw.call("dsx/renderPrompt", params)
    assert error_code(answer) == REFUSED, answer
    return answer["error"]["message"]


async def test_a_tests_given_renders_the_exact_messages(session: tuple[RawClient, Path]):
    raw, root = session
    path = root / "qa.dsx"
    uri = _open(raw, path, QA)
    result = await _render(raw, uri=uri, test="capital")
    assert result["program"] == "qa" and result["tests"] == ["capital"]
    assert result["programInputs"] == [
        {"name": "question", "type": "str", "required": True},
        {"name": "context", "type": "list[str]", "required": True},
    ]
    assert result["inputs"] == {
        "question": "Capital of France?",
        "context": ["Paris is in France."],
    }
    assert result["state"]["used"] is False and "not optimized" in result["state"]["note"]
    [pred] = result["predictors"]
    assert pred["name"] == "predict" and pred["signature"] == "QA" and pred["placeholders"] == []
    # Exactly what the runtime renders for the same program and inputs.
    program = dsx.load_program(path, "qa")
    expected = program.render(**result["inputs"])
    assert pred["messages"] == expected
    assert "Capital of France?" in pred["messages"][-1]["content"]


async def test_typed_inputs_and_placeholders(session: tuple[RawClient, Path]):
    raw, root = session
    uri = _open(raw, root / "qa2.dsx", QA)
    result = await _render(raw, uri=uri, program="qa", inputs={"question": "Who?"})
    [pred] = result["predictors"]
    assert pred["placeholders"] == ["context"]
    user = pred["messages"][-1]["content"]
    assert "Who?" in user and "{{context}}" in user
    # Typed-in inputs override a test's given ones.
    result = await _render(raw, uri=uri, test="capital", inputs={"question": "Capital of Peru?"})
    assert result["inputs"]["question"] == "Capital of Peru?"
    assert result["inputs"]["context"] == ["Paris is in France."]
    # A wrongly typed input is refused with the runtime's reason.
    message = await _refusal(raw, uri=uri, inputs={"question": "q", "context": 5})
    assert "context" in message


async def test_learned_state_while_it_matches_and_edits_are_followed(
    session: tuple[RawClient, Path],
):
    raw, root = session
    folder = root / "optimized"
    folder.mkdir()
    path = folder / "qa.dsx"
    uri = _open(raw, path, QA)
    unit = analyze_path(path).unit
    learned = ir.Learned(
        optimizer="BootstrapFewShot",
        score=91.0,
        predictors={
            "predict": ir.LearnedPredictor(
                instructions="Answer with the city name only.",
                demos=(
                    {
                        "question": "Capital of Italy?",
                        "context": ["Rome is in Italy."],
                        "reasoning": "Rome is the capital.",
                        "answer": "Rome",
                    },
                ),
            )
        },
    )
    (folder / "build").mkdir()
    write_state(folder / "build" / "qa.state.json", state_file(unit, "qa", learned))
    result = await _render(raw, uri=uri, test="capital")
    assert result["state"]["used"] is True
    assert "BootstrapFewShot" in result["state"]["note"]
    [pred] = result["predictors"]
    assert pred["demos"] == 1
    text = "\n".join(m["content"] for m in pred["messages"])
    assert "Answer with the city name only." in text and "Capital of Italy?" in text
    # Exactly what `dsx run` would send with that state.
    program = dsx.load_program(path, "qa", state=folder / "build" / "qa.state.json")
    assert pred["messages"] == program.render(**result["inputs"])
    # An unsaved edit that changes the program: the preview follows it, and the state
    # (learned for the old program) is no longer applied.
    _replace(raw, uri, 2, QA.replace('"a few words"', '"one word"'))
    result = await _render(raw, uri=uri, test="capital")
    assert result["state"]["used"] is False
    assert "another version" in result["state"]["note"]
    text = "\n".join(m["content"] for m in result["predictors"][0]["messages"])
    assert "one word" in text and "Capital of Italy?" not in text
    # Asked not to use the state.
    _replace(raw, uri, 3, QA)
    result = await _render(raw, uri=uri, test="capital", useState=False)
    assert result["state"]["used"] is False and result["predictors"][0]["demos"] == 0


async def test_programs_with_several_predictors(session: tuple[RawClient, Path]):
    raw, root = session
    uri = _open(raw, root / "pipe.dsx", PIPELINE)
    result = await _render(raw, uri=uri, inputs={"question": "Why?"})
    names = [p["name"] for p in result["predictors"]]
    assert names == ["rewrite", "answer"]
    rewrite, answer = result["predictors"]
    assert rewrite["placeholders"] == [] and answer["placeholders"] == ["passages"]
    only = await _render(raw, uri=uri, predictor="answer", inputs={"question": "Why?"})
    assert [p["name"] for p in only["predictors"]] == ["answer"]


async def test_refusals_say_why(session: tuple[RawClient, Path]):
    raw, root = session
    uri = _open(raw, root / "r.dsx", QA)
    assert "no program `nope`" in await _refusal(raw, uri=uri, program="nope")
    assert "no test `nope`" in await _refusal(raw, uri=uri, test="nope")
    assert "no predictor `x`" in await _refusal(raw, uri=uri, predictor="x")
    assert "`inputs` must be an object" in await _refusal(raw, uri=uri, inputs=[1])
    _replace(raw, uri, 2, QA.replace("ChainOfThought(QA)", "ChainOfThought(Nope)"))
    assert "error(s)" in await _refusal(raw, uri=uri)
    bare = _open(raw, root / "bare.dsx", "signature S { in a: str out b: str }\n")
    assert "declares no `program`" in await _refusal(raw, uri=bare)
    # Bad params are invalid params, not refusals.
    answer = await raw.call("dsx/renderPrompt", {"program": "qa"})
    assert error_code(answer) == -32602


async def test_python_modules_run_only_when_allowed(session: tuple[RawClient, Path]):
    raw, root = session
    folder = root / "withpy"
    folder.mkdir()
    (folder / "helpers.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('imported.txt').write_text('yes')\n"
        "def lookup(query: str) -> str:\n    '''Look a fact up.'''\n    return query\n"
    )
    text = 'use python "helpers" as h\n' + QA
    uri = _open(raw, folder / "qa.dsx", text)
    message = await _refusal(raw, uri=uri, test="capital")
    assert "helpers" in message and "trusted" in message
    assert not (folder / "imported.txt").exists()  # nothing of the workspace ran
    result = await _render(raw, uri=uri, test="capital", allowPython=True)
    assert "Capital of France?" in result["predictors"][0]["messages"][-1]["content"]
    assert (folder / "imported.txt").exists()  # in a child process, not the server


async def test_code_lenses_open_the_preview(session: tuple[RawClient, Path]):
    raw, root = session
    uri = _open(raw, root / "lens.dsx", QA)
    lenses = (await raw.call(types.TEXT_DOCUMENT_CODE_LENS, {"textDocument": {"uri": uri}}))[
        "result"
    ]
    prompts = [lens["command"] for lens in lenses if lens["command"]["command"] == "dsx.showPrompt"]
    assert [c["arguments"][0] for c in prompts] == [
        {"uri": uri, "program": "qa"},
        {"uri": uri, "program": "qa", "test": "capital"},
    ]


async def test_only_what_the_program_reaches_is_instantiated_and_the_prompt_is_unchanged(
    tmp_path: Path,
):
    from dsx.lsp import preview

    text = (
        "enum Tone { formal, casual }\n"
        "type Source { title: str, tone: Tone }\n"
        "signature Cite { in question: str out sources: list[Source] }\n"
        + QA.replace("program qa", "program qa2 = Predict(Cite)\nprogram qa")
        + PIPELINE
    )
    path = tmp_path / "many.dsx"
    path.write_text(text)
    unit = analyze_path(path).unit
    assert not analyze_path(path).errors
    pruned = preview._prune(unit, "qa2", None)
    assert [s.name for s in pruned.signatures] == ["Cite"]
    assert [r.name for r in pruned.records] == ["Source"] and [e.name for e in pruned.enums] == [
        "Tone"
    ]
    assert [m.name for m in preview._prune(unit, "pipe", None).modules] == ["Pipeline"]
    inputs = {"question": "q", "context": ["c"], "passages": ["p"]}
    for name in ("qa", "qa2", "pipe"):
        program = dsx.load_program(path, name)
        result = preview.render_prompt(unit, program=name, inputs=inputs)
        for rendered, (pname, predictor) in zip(
            result["predictors"], program.named_predictors(), strict=True
        ):
            assert rendered["name"] == pname
            fields = predictor.signature.input_fields
            assert rendered["messages"] == predictor.render(**{f: inputs[f] for f in fields})
