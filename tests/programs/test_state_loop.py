"""Optimize, then use: one learned-state file from `dsx optimize`/`dsx build`/`Module.save`,
read by `dsx inspect`, `Module.load`, `load_program(state=)` and applied by `dsx run|eval|test`.

The local server answers correctly only when the prompt carries demos, so a run with the
learned state and one without score differently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import dsx
from dsx.errors import StateError
from dsx.testing import OpenAIServer

pytestmark = pytest.mark.integration

ANSWERS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid"}

QA = """signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA)

data dev = jsonl("dev.jsonl", inputs = [question])
metric em = exact_match

test italy for qa {
    given  question = "capital of Italy?"
    expect answer = "Rome"
}

optimize qa {
    with   LabeledFewShot(k = 1)
    train  dev
    metric em
}
"""


def responder(request):
    messages = request["messages"]
    question = str(messages[-1]["content"])
    if len(messages) > 2:  # demos present: the "optimized" program knows the answers
        answer = next((a for c, a in ANSWERS.items() if c in question), "unknown")
    else:
        answer = "I am not sure"
    return f"<<< answer >>>\n{answer}\n\n<<< end >>>"


@pytest.fixture(scope="module")
def server():
    with OpenAIServer(responder) as srv:
        yield srv


@pytest.fixture
def project(tmp_path):
    (tmp_path / "qa.dsx").write_text(QA)
    rows = [{"question": f"capital of {c}?", "answer": a} for c, a in ANSWERS.items()]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def cli(*args, server=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env["DSX_CACHE_DIR"] = os.environ["DSX_CACHE_DIR"]
    if server is not None:
        env.update(DSX_LM="openai/test-model", DSX_API_BASE=server.api_base, DSX_API_KEY="x")
    return subprocess.run(
        [sys.executable, "-m", "dsx.cli", *args], capture_output=True, text=True, env=env, cwd=cwd
    )


def score(out: subprocess.CompletedProcess) -> float:
    assert out.returncode == 0, out.stderr
    return float(json.loads(out.stdout.strip().splitlines()[-1])["score"])


def test_optimize_inspect_then_run_eval_test_use_the_state(project, server):
    qa = str(project / "qa.dsx")
    before = cli("eval", qa, "--data", "dev", "--json", server=server)
    assert score(before) == 0.0
    assert "`qa` is not optimized" in before.stderr and "dsx optimize" in before.stderr

    opt = cli("optimize", qa, server=server, cwd=project)
    assert opt.returncode == 0, opt.stderr
    state_path = project / "build" / "qa.state.json"
    assert "wrote build/qa.state.json" in opt.stdout
    doc = json.loads(state_path.read_text())
    assert doc["format"] == "dsx-state" and doc["schema_version"] == 2
    assert doc["program"] == "qa" and doc["optimizer"] == "LabeledFewShot" and doc["fingerprint"]

    shown = cli("inspect", str(state_path), "--demos")
    assert shown.returncode == 0, shown.stderr
    assert "program qa" in shown.stdout and "LabeledFewShot" in shown.stdout
    assert "demos: 1" in shown.stdout

    after = cli("eval", qa, "--data", "dev", "--json", server=server, cwd=project)
    # k=1 demo makes every answer right here (the responder needs any demo).
    assert score(after) == 100.0
    assert "using learned state build/qa.state.json (LabeledFewShot" in after.stderr

    bare = cli("eval", qa, "--data", "dev", "--json", "--no-state", server=server)
    assert score(bare) == 0.0 and "without learned state (--no-state)" in bare.stderr

    run = cli("run", qa, "-i", "question=capital of Spain?", server=server)
    assert run.returncode == 0 and run.stdout.strip() == "answer: Madrid", run.stderr
    bare_run = cli("run", qa, "-i", "question=capital of Spain?", "--no-state", server=server)
    assert bare_run.stdout.strip() == "answer: I am not sure"

    test = cli("test", qa, server=server)
    assert test.returncode == 0 and "1 passed, 0 failed" in test.stdout, test.stdout
    assert cli("test", qa, "--no-state", server=server).returncode == 1

    # `dsx build` reuses what `dsx optimize` learned and writes the same format.
    built = cli("build", qa, server=server)
    assert built.returncode == 0 and "reusing the cached result" in built.stderr, built.stderr
    rebuilt = json.loads(state_path.read_text())
    assert rebuilt["state"] == doc["state"] and rebuilt["fingerprint"] == doc["fingerprint"]


def test_a_changed_program_ignores_the_old_state_until_asked(project, server):
    qa = project / "qa.dsx"
    assert cli("optimize", str(qa), server=server).returncode == 0
    qa.write_text(QA.replace("signature QA {", "/// Answer briefly.\nsignature QA {"))
    stale = cli("eval", str(qa), "--data", "dev", "--json", server=server)
    assert score(stale) == 0.0
    assert "ignoring" in stale.stderr and "changed since that state was learned" in stale.stderr
    forced = cli(
        "eval",
        str(qa),
        "--data",
        "dev",
        "--json",
        "--state",
        str(project / "build" / "qa.state.json"),
        server=server,
    )
    assert score(forced) == 100.0
    assert "learned for another version" in forced.stderr


def test_a_state_that_does_not_fit_is_a_clear_error(project, server):
    other = dsx.Predict("question -> answer")
    rag = dsx.Module()
    rag.first, rag.second = other, dsx.Predict("a -> b")
    rag.save(project / "other.json")
    out = cli(
        "run",
        str(project / "qa.dsx"),
        "-i",
        "question=x",
        "--state",
        "other.json",
        server=server,
        cwd=project,
    )
    assert out.returncode == 2
    assert "other.json does not fit program `qa`" in out.stderr
    assert "'first'" in out.stderr or "'self'" in out.stderr
    (project / "junk.json").write_text('{"hello": 1}')
    junk = cli(
        "eval",
        str(project / "qa.dsx"),
        "--data",
        "dev",
        "--state",
        "junk.json",
        server=server,
        cwd=project,
    )
    assert junk.returncode == 2 and "not a dsx state file" in junk.stderr


def test_module_load_and_load_program_read_toolchain_state(project, server):
    assert cli("optimize", str(project / "qa.dsx"), server=server).returncode == 0
    state = project / "build" / "qa.state.json"
    program = dsx.load_program(project / "qa.dsx")
    assert program.demos == []
    program.load(state)
    assert len(program.demos) == 1 and program.demos[0].answer in ANSWERS.values()
    loaded = dsx.load_program(project / "qa.dsx", state=state)
    assert len(loaded.demos) == 1
    dsx.Predict("query -> answer").save(project / "m.json")
    with pytest.raises(StateError, match="does not fit program `qa`.*fields"):
        dsx.load_program(project / "qa.dsx", state=project / "m.json")


def test_older_optimize_output_is_still_read(project):
    old = {
        "optimizer": "LabeledFewShot",
        "score": None,
        "predictors": {
            "self": {"instructions": "Be brief.", "demos": [{"question": "q", "answer": "a"}]}
        },
    }
    (project / "old.json").write_text(json.dumps(old))
    program = dsx.load_program(project / "qa.dsx", state=project / "old.json")
    assert program.signature.instructions == "Be brief." and program.demos[0].answer == "a"


def test_build_without_program_and_commands_without_lm_fail_before_work(tmp_path):
    (tmp_path / "sig.dsx").write_text('signature S = "q -> a"\n')
    out = cli("build", str(tmp_path / "sig.dsx"))
    assert out.returncode == 1 and "declares no `program`" in out.stderr
    assert not (tmp_path / "build").exists()
    boot = QA.replace("LabeledFewShot(k = 1)", "BootstrapFewShot(max_bootstrapped_demos = 1)")
    (tmp_path / "qa.dsx").write_text(boot)
    (tmp_path / "dev.jsonl").write_text('{"question": "q", "answer": "a"}\n')
    for args in (
        ("build", str(tmp_path / "qa.dsx")),
        ("optimize", str(tmp_path / "qa.dsx")),
        ("run", str(tmp_path / "qa.dsx"), "-i", "question=x"),
        ("eval", str(tmp_path / "qa.dsx"), "--data", "dev"),
        ("test", str(tmp_path / "qa.dsx")),
    ):
        out = cli(*args)
        assert out.returncode in (1, 2), (args, out.stderr)
        assert "no LM: pass --lm MODEL" in out.stderr and "DSX_LM" in out.stderr, args
        assert "optimize qa: running" not in out.stderr, args  # failed before any work
        assert "dsx.configure" not in out.stderr


def test_run_inputs_are_checked_against_their_types(tmp_path, server):
    (tmp_path / "n.dsx").write_text(
        "signature Add {\n    in  a: int\n    in  tags: list[str]\n    out total: int\n}\n"
        "program add = Predict(Add)\n"
    )
    bad = cli("run", str(tmp_path / "n.dsx"), "-i", "a=three", "-i", 'tags=["x"]', server=server)
    assert bad.returncode == 2 and "--input a='three': not a valid int" in bad.stderr
    missing = cli("run", str(tmp_path / "n.dsx"), "-i", "a=3", server=server)
    assert missing.returncode == 2 and "needs the input(s) tags" in missing.stderr


TOOL = """def search(query, k):
    return ["a", "b", "c"][k:]
"""

TOOL_DSX = """use python "brokentool" as tools

signature S = "q -> a"

module M {
    p = Predict(S)

    forward(q: str) {
        found = tools.search(q, "2")
        return p(q = q)
    }
}

program m = M()
"""


def test_cli_errors_show_type_dsx_location_hint_and_traceback(tmp_path, server):
    (tmp_path / "brokentool.py").write_text(TOOL)
    (tmp_path / "m.dsx").write_text(TOOL_DSX)
    out = cli("run", str(tmp_path / "m.dsx"), "-i", "q=x", server=server)
    assert out.returncode == 1
    err = out.stderr
    assert "error: TypeError: slice indices must be integers" in err
    assert "m.dsx:9:" in err and 'found = tools.search(q, "2")' in err
    assert "raised by Python code the program calls" in err and "--traceback" in err
    assert "Traceback (most recent call last)" not in err
    full = cli("run", str(tmp_path / "m.dsx"), "-i", "q=x", "--traceback", server=server)
    assert "Traceback (most recent call last)" in full.stderr and "brokentool.py" in full.stderr
    test_dsx = TOOL_DSX + 'test t for m {\n    given q = "x"\n    expect a = "y"\n}\n'
    (tmp_path / "m.dsx").write_text(test_dsx)
    tested = cli("test", str(tmp_path / "m.dsx"), server=server)
    assert tested.returncode == 1 and "TypeError: slice indices" in tested.stdout
    assert "m.dsx:9:" in tested.stdout
