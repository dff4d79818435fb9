"""What a new user hits first: the CLI's messages, help texts and progress lines.

Each test here is a regression test for something found by walking through the README,
the examples and every ``--help`` as a user would.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import dsx
from dsx._load import load_namespace
from dsx.cli import build_parser, main
from dsx.runtime._progress import Progress
from dsx.testing import FunctionLM

ROOT = Path(__file__).resolve().parents[1]


def test_inspect_on_a_missing_file_names_it_once_and_says_where_state_comes_from(capsys):
    assert main(["inspect", "build/nowhere.state.json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("build/nowhere.state.json") == 1, err
    assert err.startswith("dsx inspect: build/nowhere.state.json: no such file.")
    assert "`dsx optimize FILE.dsx`" in err


def test_inspect_on_a_missing_dsx_file_is_one_line_without_a_traceback(capsys):
    assert main(["inspect", "nowhere.dsx"]) == 2
    err = capsys.readouterr().err
    assert err == "dsx inspect: nowhere.dsx: no such file.\n"


def test_inspect_on_a_file_that_is_not_state_names_it_once(tmp_path: Path, capsys):
    bad = tmp_path / "notes.json"
    bad.write_text("[1, 2]")
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count(str(bad)) == 1 and "expected a JSON object, got list" in err


def test_progress_reports_every_item_of_a_small_batch():
    lines: list[str] = []
    bar = Progress(12, desc="Bootstrap", display=lines.append)
    for done in range(1, 13):
        bar.update(done)
    bar.close("finished")
    assert lines == [f"Bootstrap: {n}/12" for n in range(1, 12)] + ["finished"]


def test_progress_reports_a_large_batch_at_even_steps():
    lines: list[str] = []
    bar = Progress(45, desc="Evaluate", display=lines.append)
    for done in (1, 2, 4, 5, 9, 10, 11, 20, 44, 45):  # updates may jump (concurrent runs)
        bar.update(done)
    assert lines == ["Evaluate: 5/45", "Evaluate: 10/45", "Evaluate: 20/45", "Evaluate: 44/45"]


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_the_readme_names_exactly_the_commands_that_take_lm():
    # The README said "every command takes --lm"; dsx from-dspy (and check, fmt, ...) do not.
    text = (ROOT / "README.md").read_text()
    match = re.search(r"The commands that call an LM — (.*?) — take\s+`--lm MODEL`", text, re.S)
    assert match, "the README's sentence about --lm moved; keep this test in step"
    named = set(re.findall(r"`([a-z-]+)`", match.group(1)))
    with_lm = {
        name
        for name, cmd in _subcommands().items()
        if any("--lm" in a.option_strings for a in cmd._actions)
    }
    assert named == with_lm


def test_every_lm_option_says_local_is_a_model():
    for name, cmd in _subcommands().items():
        for action in cmd._actions:
            if "--lm" in action.option_strings:
                assert "`local`" in (action.help or ""), name


def test_dsx_test_refuses_a_misspelt_program_instead_of_finding_no_tests(capsys):
    # It printed "no test blocks in examples/qa.dsx" and exited 0: a typo passed silently.
    assert main(["test", str(ROOT / "examples" / "qa.dsx"), "--program", "qaa"]) == 2
    err = capsys.readouterr().err
    assert "no program `qaa`" in err and "programs: qa" in err


def test_the_readme_python_quick_start_prints_its_answer_as_a_script(tmp_path: Path):
    # Pasted into a file and run, it printed nothing: its last line was a REPL expression.
    text = (ROOT / "README.md").read_text()
    section = text.split("## A program in Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("\n```", 1)[0]
    script = tmp_path / "quickstart.py"
    script.write_text(code + "\n")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["Frank Herbert high", "The passage names him."]
    assert "'prompt_tokens'" in lines[2]


def test_the_classifier_example_metric_compares_a_field_the_program_outputs():
    # `metric em = exact_match` compared `answer`, which Classify does not have: every
    # example of `dsx eval examples/classifier.dsx` failed with "the example has no `answer`".
    ns = load_namespace(ROOT / "examples" / "classifier.dsx")
    metric = ns.metric("em")
    gold = dsx.Example(ticket="The app crashes on start.", topic="bug").with_inputs("ticket")
    assert metric(gold, dsx.Prediction(topic="bug", urgency="high", evidence=[])) == 1.0
    assert metric(gold, dsx.Prediction(topic="billing", urgency="high", evidence=[])) == 0.0


def test_dsx_eval_says_how_to_add_a_metric_when_the_file_declares_none(tmp_path, capsys):
    data = tmp_path / "q.jsonl"
    data.write_text('{"question": "Who wrote Dune?", "answer": "Frank Herbert"}\n')
    source = str(ROOT / "examples" / "qa.dsx")
    assert main(["eval", source, "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "declares no `metric`" in err and "metric em = exact_match" in err
    assert main(["eval", source, "--data", str(data), "--metric", "em"]) == 2
    assert "declares no `metric`" in capsys.readouterr().err


def test_dsx_eval_names_the_declared_metrics_for_a_misspelt_one(capsys):
    source = str(ROOT / "examples" / "sentiment.dsx")
    assert main(["eval", source, "--data", "dev", "--metric", "same"]) == 2
    assert "--metric same: no such metric; the file declares same_label" in capsys.readouterr().err


def test_run_jsonl_on_a_data_file_leaves_out_its_labels(tmp_path, capsys):
    # `dsx run --jsonl examples/data/reviews_dev.jsonl` refused the data file the README's
    # `dsx eval --data dev` reads: "`sentiment` has no input `sentiment`".
    rows = (ROOT / "examples" / "data" / "reviews_dev.jsonl").read_text().splitlines()[:2]
    data = tmp_path / "two.jsonl"
    data.write_text("\n".join(rows) + "\n")
    lm = FunctionLM(lambda messages, **kw: {"sentiment": "positive"})
    source = str(ROOT / "examples" / "sentiment.dsx")
    with dsx.context(lm=lm):
        assert main(["run", source, "--jsonl", str(data), "--no-state", "--json"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines() if line] == [
        {"sentiment": "positive"}
    ] * 2
    assert "not inputs of `sentiment`, left out: sentiment" in err
    assert lm.calls == 2


def test_run_jsonl_still_catches_a_misspelt_input(tmp_path, capsys):
    data = tmp_path / "typo.jsonl"
    data.write_text('{"reviw": "Broke after a day.", "sentiment": "negative"}\n')
    source = str(ROOT / "examples" / "sentiment.dsx")
    assert main(["run", source, "--jsonl", str(data), "--no-state"]) == 2
    assert "has no input `reviw`. Did you mean `review`?" in capsys.readouterr().err


DSPY_RAG = '''import dspy


def search(query: str) -> list[str]:
    return ["Dune is a 1965 novel by Frank Herbert."]


class Answer(dspy.Signature):
    """Answer with a short factoid."""

    context: list[str] = dspy.InputField()
    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class RAG(dspy.Module):
    def __init__(self):
        self.answer = dspy.ChainOfThought(Answer)

    def forward(self, question):
        return self.answer(context=search(question), question=question)


rag = RAG()
'''


def test_from_dspy_says_the_dsx_imports_the_dspy_file(tmp_path, capsys):
    # The translation reaches `search` through `use python "app"`; `dsx run app.dsx` then
    # failed with "cannot import `app`: No module named 'dspy'" and nothing had said why.
    (tmp_path / "app.py").write_text(DSPY_RAG)
    assert main(["from-dspy", str(tmp_path / "app.py")]) == 0
    assert 'use python "app" as py' in (tmp_path / "app.dsx").read_text()
    err = capsys.readouterr().err
    assert "running it imports" in err and "imports dspy" in err
    assert "move those functions into a module of their own" in err


def test_from_dspy_adds_no_note_when_the_dsx_needs_nothing_from_the_file(tmp_path, capsys):
    (tmp_path / "qa.py").write_text("import dspy\nqa = dspy.Predict('question -> answer')\n")
    assert main(["from-dspy", str(tmp_path / "qa.py")]) == 0
    assert "use python" not in (tmp_path / "qa.dsx").read_text()
    assert "note:" not in capsys.readouterr().err
