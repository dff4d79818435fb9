"""One registry of optimizers and their settings, read by the checker, completion and build."""

from __future__ import annotations

import json

import pytest
from tests.teleprompt.instruction_task import both_lm, dataset

import dsx
from dsx.compiler.analysis import analyze_source
from dsx.compiler.build import _settings_for, build, explain
from dsx.teleprompt import (
    OPTIMIZERS,
    PLANNED_OPTIMIZERS,
    MIPROv2,
    optimizer_info,
    optimizer_names,
)
from dsx.teleprompt._registry import REQUIRED

QA = """/// Repeat the text.
signature Echo {
    in  text: str
    out answer: str
}
program echo = Predict(Echo)
metric em = exact_match
optimize echo {
    with   OPTIMIZER
    train  tests
    metric em
}
"""


def test_settings_are_read_off_the_constructors():
    info = optimizer_info("MIPROv2")
    assert info is not None and info.available and "Bayesian" in info.doc
    auto = info.settings["auto"]
    assert (
        auto.choices == ("light", "medium", "heavy") and auto.optional and auto.default == "light"
    )
    assert info.settings["prompt_model"].kinds == ("model",)
    assert info.settings["minibatch_size"].kinds == ("int",)
    assert info.settings["minibatch_size"].default == 35
    assert info.settings["init_temperature"].kinds == ("float",)
    assert not info.settings["metric"].settable
    assert info.settings["seed"].default == 0  # the shared options come from Teleprompter
    assert "minibatch trials between full-valset evaluations" in (
        info.settings["minibatch_full_eval_steps"].doc
    )
    # the constructor is the declaration: every registry default is the constructor's
    import inspect

    params = inspect.signature(MIPROv2.__init__).parameters
    for name, setting in info.settings.items():
        if name in params:
            default = params[name].default
            assert setting.default == (REQUIRED if default is inspect.Parameter.empty else default)
    # forwarded settings (KNNFewShot passes bootstrap settings on)
    assert "max_rounds" in optimizer_info("KNNFewShot").settings


def test_planned_optimizers_are_known_but_not_available():
    assert set(optimizer_names()) == set(OPTIMIZERS)
    assert "BetterTogether" in PLANNED_OPTIMIZERS
    assert not set(OPTIMIZERS) & set(PLANNED_OPTIMIZERS)
    finetune = optimizer_info("BetterTogether")
    assert finetune is not None and not finetune.available and finetune.settings == {}
    assert optimizer_info("Nope") is None


def diagnostics(optimizer: str) -> list[str]:
    analysis = analyze_source(QA.replace("OPTIMIZER", optimizer) + TESTS, "x.dsx")
    return [f"{d.code} {d.message}" for d in analysis.diagnostics]


TESTS = 'test t for echo {\n    given text = "a"\n    expect answer = "A"\n}\n'


@pytest.mark.parametrize(
    ("optimizer", "expected"),
    [
        ('MIPROv2(auto = "light", prompt_model = "openai/gpt-4o-mini")', []),
        ("COPRO(breadth = 4, depth = 2, init_temperature = 1)", []),
        (
            "MIPROv2(max_bootstrapped_demo = 2)",
            [
                "DSX123 unknown MIPROv2 setting `max_bootstrapped_demo`; did you mean "
                "`max_bootstrapped_demos`?"
            ],
        ),
        ('COPRO(breadth = "wide")', ['DSX123 `breadth` takes an int, not "wide"']),
        (
            "MIPROv2(auto = 3)",
            ['DSX123 `auto` takes one of "light" | "medium" | "heavy" | none, not 3'],
        ),
        ("MIPROv2(auto = none, num_candidates = 4, num_trials = 8)", []),
        ('GEPA(auto = "light", reflection_lm = "openai/gpt-4o-mini", use_merge = false)', []),
        (
            'GEPA(max_metric_calls = "many")',
            ['DSX123 `max_metric_calls` takes an int | none, not "many"'],
        ),
        (
            'GEPA(candidate_selection_strategy = "best")',
            ['takes one of "pareto" | "current_best", not "best"'],
        ),
        ("SIMBA(bsize = 8, num_candidates = 4, temperature_for_sampling = 0.5)", []),
        ("SIMBA(bsz = 8)", ["DSX123 unknown SIMBA setting `bsz`; did you mean `bsize`?"]),
        ("BetterTogether()", ["not available in this version of dsx"]),
        ("COPR()", ["DSX123 unknown optimizer `COPR`; did you mean `COPRO`?"]),
    ],
)
def test_checker_reads_the_registry(optimizer, expected):
    found = diagnostics(optimizer)
    assert len(found) == len(expected), found
    for message, words in zip(found, expected, strict=True):
        assert words in message


def test_completion_offers_the_registry(tmp_path):
    from dsx.lsp import completion
    from dsx.lsp.state import Session

    def complete(text: str) -> dict[str, object]:
        offset = text.index("|")
        session = Session()
        doc = session.open((tmp_path / "x.dsx").as_uri(), text.replace("|", "", 1), 1)
        session.analyze(doc)
        position = doc.codec("utf-16").position(offset)
        return {i.label: i for i in completion.complete(session, doc, position).items}

    names = complete(QA.replace("OPTIMIZER", "|"))
    assert {"MIPROv2", "COPRO", "GEPA", "SIMBA", "BootstrapFewShot"} <= set(names)
    assert "BetterTogether" not in names
    assert "BootstrapFinetune" in names
    settings = complete(QA.replace("OPTIMIZER", 'MIPROv2(auto = "light", |)'))
    assert {"prompt_model", "max_bootstrapped_demos", "minibatch_size"} <= set(settings)
    assert "auto" not in settings and "metric" not in settings
    assert settings["minibatch_size"].detail == "an int = 35"


def test_a_model_string_setting_becomes_an_lm_in_build():
    unit = analyze_source(
        QA.replace("OPTIMIZER", 'MIPROv2(prompt_model = "openai/gpt-4o-mini", num_threads = 2)')
        + TESTS,
        "x.dsx",
    ).unit
    settings = _settings_for(unit.optimizes[0])
    assert isinstance(settings["prompt_model"], dsx.LM)
    assert settings["prompt_model"].model == "openai/gpt-4o-mini" and settings["num_threads"] == 2
    unit = analyze_source(
        QA.replace("OPTIMIZER", 'GEPA(auto = "light", reflection_lm = "openai/gpt-4o")') + TESTS,
        "x.dsx",
    ).unit
    settings = _settings_for(unit.optimizes[0])
    assert isinstance(settings["reflection_lm"], dsx.LM)
    assert settings["reflection_lm"].model == "openai/gpt-4o"


@pytest.mark.parametrize(
    "optimizer",
    [
        'MIPROv2(auto = "light", seed = 2)',
        "MIPROv2(auto = none, num_candidates = 4, num_trials = 5, minibatch = false)",
        "COPRO(breadth = 3, depth = 2)",
        "GEPA(max_metric_calls = 40, use_merge = false)",
    ],
)
def test_dsx_build_optimizes_instructions_and_explains_them(tmp_path, optimizer):
    rows = [{"text": ex.text, "answer": ex.answer} for ex in dataset(10)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    source = QA.replace("OPTIMIZER", optimizer).replace("train  tests", "train  train")
    source += 'data train = jsonl("train.jsonl", inputs = [text])\n'
    (tmp_path / "echo.dsx").write_text(source)
    dsx.configure(lm=both_lm())
    logs: list[str] = []
    result = build(tmp_path / "echo.dsx", log=logs.append)
    learned = result.unit.learned["echo"]
    assert learned.score == 100.0
    assert "uppercase" in (learned.predictors["self"].instructions or "").lower()
    text = explain(result.unit)
    assert "- instructions before: Repeat the text." in text
    assert "+ instructions after:  " in text and "(score 100.00%)" in text
    # the score trajectory: the best so far after each fully scored candidate
    assert learned.trajectory and learned.trajectory[-1] == 100.0
    assert list(learned.trajectory) == sorted(learned.trajectory)
    assert "score trajectory: " in text and "→ 100.00% (at " in text
    assert any("best" in line for line in logs)
    # the built module carries the learned instruction
    state = json.loads((tmp_path / "build" / "echo.state.json").read_text())
    assert "uppercase" in json.dumps(state).lower()
    again = build(tmp_path / "echo.dsx", log=logs.append)
    assert again.reused == ["echo"]
