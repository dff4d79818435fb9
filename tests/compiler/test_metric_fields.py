"""A built-in metric that reads a prediction field the optimized program does not output
scores 0 on every example (the metric reads `pred.answer` as ""): the checker reports it
where the optimize block names the metric, and says how to point the metric at an output."""

from __future__ import annotations

import pytest

from dsx.compiler.analysis import analyze_source

PROGRAM = """\
enum Topic { billing bug other }

signature Classify {
    in  text: str
    out topic: Topic
}

signature QA {
    in  question: str
    out answer: str
}

program classify = ChainOfThought(Classify)
program qa = Predict(QA)

data train = jsonl("train.jsonl", inputs = [text])
metric m = METRIC

optimize PROG {
    with   LabeledFewShot(k = 2)
    train  train
    metric m
}
"""


def _errors(tmp_path, metric: str, program: str) -> list[tuple[str, str, str]]:
    (tmp_path / "train.jsonl").write_text('{"text": "x", "topic": "bug"}\n')
    text = PROGRAM.replace("METRIC", metric).replace("PROG", program)
    analysis = analyze_source(text, str(tmp_path / "m.dsx"))
    src = analysis.source(analysis.unit.source).text
    return [(d.code, d.message, src[d.span.start : d.span.end]) for d in analysis.errors]


def test_default_field_missing_from_the_program_is_located_with_the_fix(tmp_path):
    [(code, message, at)] = _errors(tmp_path, "exact_match", "classify")
    assert code == "DSX123" and at == "m"
    assert "reads the output `answer`, which program `classify` does not have" in message
    assert "(its outputs: `reasoning`, `topic`)" in message and "score 0" in message
    assert 'declare the metric as `exact_match(field = "topic")`' in message


@pytest.mark.parametrize(
    ("metric", "program"),
    [
        ('exact_match(field = "topic")', "classify"),
        ('f1(field = "reasoning")', "classify"),
        ("exact_match", "qa"),
        ("f1", "qa"),
        ("answer_in_context", "qa"),
    ],
)
def test_metrics_that_read_an_output_the_program_has_are_clean(tmp_path, metric, program):
    assert _errors(tmp_path, metric, program) == []


@pytest.mark.parametrize(
    ("metric", "program", "missing"),
    [
        ('exact_match(field = "topc")', "classify", "topc"),
        ('f1(field = "topic")', "qa", "topic"),
        ("passage_match", "qa", "context"),
        ('answer_in_context(field = "reply")', "qa", "reply"),
    ],
)
def test_metrics_that_read_a_missing_output_are_errors(tmp_path, metric, program, missing):
    [(code, message, _)] = _errors(tmp_path, metric, program)
    assert code == "DSX123" and f"reads the output `{missing}`" in message


@pytest.mark.parametrize("metric", ["exact_match", 'exact_match(field = "answer")'])
def test_the_quick_fix_points_the_metric_at_the_output_and_checks_clean(tmp_path, metric):
    (tmp_path / "train.jsonl").write_text('{"text": "x", "topic": "bug"}\n')
    text = PROGRAM.replace("METRIC", metric).replace("PROG", "classify")
    path = str(tmp_path / "m.dsx")
    [diag] = analyze_source(text, path).errors
    assert diag.fix is not None and diag.fix.title.startswith("score `topic`")
    [edit] = diag.fix.edits
    assert text[edit.span.start : edit.span.end] == metric  # the declaration's value
    fixed = text[: edit.span.start] + edit.new_text + text[edit.span.end :]
    assert 'metric m = exact_match(field = "topic")' in fixed
    assert analyze_source(fixed, path).errors == []


def test_no_quick_fix_when_there_are_several_outputs_to_choose_from(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "x", "topic": "bug"}\n')
    path = str(tmp_path / "m.dsx")
    # two outputs to choose from (`answer` is not one): no single fix
    many = PROGRAM.replace("out topic: Topic", "out topic: Topic\n    out note: str")
    [diag] = analyze_source(many.replace("METRIC", "f1").replace("PROG", "classify"), path).errors
    assert diag.fix is None
