"""`make demo`: optimize a program on a real model, then use it — from the command line.

Which LM:
* DSX_LM when set (any litellm model string, e.g. `openai/gpt-4o-mini`; DSX_API_BASE /
  DSX_API_KEY for the endpoint);
* otherwise the local model on this machine — SmolLM2-135M-Instruct served by llama.cpp's
  OpenAI-compatible server, which dsx starts and stops itself (`dsx model check`);
* and when that is not installed, dsx's local OpenAI-compatible server with a deterministic
  offline responder that knows the example data — saying why.
Either way requests go over HTTP through the normal LM client.

What it shows: the review classifier (examples/sentiment.dsx) scored on held-out data
before optimizing, `dsx build` optimizing it (BootstrapFewShot) with what it learned
(`--explain`), the score after, its tests; then the RAG and ticket-classifier examples built
and run; then retrieval over the standard library's own docstrings (examples/docs_qa.dsx:
an embeddings index with the offline MiniLM model, its recall on a question set, and the
program's score before and after optimizing). Set DSX_DEMO_LM=scripted to force the offline
responder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from search_tools import CORPUS, search  # noqa: E402

import dsx  # noqa: E402

TRAIN = [
    json.loads(line)
    for line in (HERE / "data" / "train.jsonl").read_text().splitlines()
    if line.strip()
]


def offline_answer(request: dict[str, Any]) -> str:
    """Answer a dsx prompt for the example programs without a model (deterministic)."""
    messages = request.get("messages", [])
    user = str(messages[-1].get("content", "")) if messages else ""
    wanted = re.findall(r"<<< (\w+) >>>", user.split("Reply with", 1)[-1]) or re.findall(
        r'"(\w+)"', user.split("keys", 1)[-1]
    )
    wanted = [w for w in wanted if w != "end"]
    inputs = dict(re.findall(r"<<< (\w+) >>>\n(.*?)(?=\n\n<<< |\n\nReply|\Z)", user, re.S))
    question = next(
        (inputs[k] for k in ("question", "ticket", "review", "text") if k in inputs), ""
    )
    values: dict[str, Any] = {}
    for name in wanted:
        if name == "search_query" or name == "query":
            values[name] = question
        elif name == "reasoning":
            values[name] = "I matched the question against the passages I was given."
        elif name == "answer":
            hit = next(
                (row["answer"] for row in TRAIN if _overlap(row["question"], question) >= 2), None
            )
            values[name] = hit or "I don't know"
        elif name == "topic":
            q = question.lower()
            values[name] = (
                "billing" if "charge" in q or "refund" in q else "bug" if "crash" in q else "other"
            )
        elif name == "urgency":
            values[name] = "high" if "twice" in question or "crash" in question else "normal"
        elif name == "evidence":
            values[name] = [{"quote": question.split(",")[0][:80], "relevance": 0.9}]
        elif name == "summary":
            values[name] = " ".join(question.split()[:20])
        elif name == "sentiment":
            words = set(re.findall(r"[a-z]+", question.lower()))
            values[name] = "negative" if words & _NEGATIVE else "positive"
        elif name == "supported":
            values[name] = True
        elif name == "function":  # docs_qa: the first retrieved function's name
            found = re.search(r"([a-z_][\w.]*\.\w+)\(", inputs.get("context", ""))
            values[name] = found.group(1) if found else "n/a"
        else:
            values[name] = "n/a"
    if "response_format" in request:
        return json.dumps(values)
    parts = [
        f"<<< {k} >>>\n{v if isinstance(v, str) else json.dumps(v)}" for k, v in values.items()
    ]
    return "\n\n".join([*parts, "<<< end >>>"])


# The scripted responder's whole idea of sentiment: a few words (it learns nothing).
_NEGATIVE = {"terrible", "broken", "broke", "awful", "bad", "worst", "rude", "dirty", "boring"}

_STOPWORDS = {"the", "of", "is", "what", "who", "how", "when", "a"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) - _STOPWORDS


def _overlap(a: str, b: str) -> int:
    return len(_words(a) & _words(b))


def load_module(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dsx_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `dsx ARGS` as a user would, printing the command and its output."""
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ dsx {shown}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "dsx.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    print(textwrap_indent(done.stderr + done.stdout), flush=True)
    return done


def choose_lm() -> tuple[dict[str, str], Any, str]:
    """The environment for dsx commands, the server to stop afterwards, and what it is."""
    env = dict(os.environ)
    model = os.environ.get("DSX_LM")
    if model:
        api_base = os.environ.get("DSX_API_BASE")
        return env, None, f"the LM from DSX_LM: {model}" + (f" at {api_base}" if api_base else "")
    forced = os.environ.get("DSX_DEMO_LM") == "scripted"
    reason = "DSX_DEMO_LM=scripted" if forced else None
    if not forced:
        from dsx.local import unavailable_reason

        reason = unavailable_reason()
        if reason is None:
            # `DSX_LM=local`: each dsx command starts the local model (llama.cpp's OpenAI-
            # compatible server, about a second) and stops it when it is done.
            env["DSX_LM"] = "local"
            what = (
                "the local model SmolLM2-135M-Instruct (DSX_LM=local: each dsx command starts "
                "llama.cpp's OpenAI-compatible server on 127.0.0.1 and stops it)"
            )
            return env, None, what
    from dsx.testing import OpenAIServer

    server = OpenAIServer(offline_answer).start()
    env.update(DSX_LM="openai/dsx-offline-demo", DSX_API_BASE=server.api_base, DSX_API_KEY="x")
    what = (
        f"dsx's local OpenAI-compatible server ({server.api_base}) with a deterministic offline "
        f"responder for the example data, because the real local model is unavailable: {reason}"
    )
    return env, server, what


def score_of(done: subprocess.CompletedProcess[str]) -> str:
    match = re.search(r"score: ([\d.]+%)", done.stdout)
    return match.group(1) if match else "n/a"


def main() -> None:
    started = time.perf_counter()
    env, server, what = choose_lm()
    print(f"dsx demo — using {what}.")
    print("Set DSX_LM (e.g. DSX_LM=openai/gpt-4o-mini) to use another model.\n", flush=True)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    sentiment = "examples/sentiment.dsx"
    try:
        print("1. The review classifier, unoptimized, on its held-out reviews:\n")
        before = dsx_command("eval", sentiment, "--data", "dev", "--no-state", env=env)
        print("2. Optimize it and compile it into a Python module (build/ next to the file):\n")
        built = dsx_command("build", sentiment, "--explain", env=env)
        if built.returncode:
            raise SystemExit(built.returncode)
        print("3. The same held-out reviews, now with the learned state:\n")
        after = dsx_command("eval", sentiment, "--data", "dev", env=env)
        dsx_command("test", sentiment, env=env)
        print(
            f"review classifier on held-out data: {score_of(before)} before optimizing, "
            f"{score_of(after)} after\n",
            flush=True,
        )
        print("4. The other examples, built into Python modules and imported:\n")
        run_other_examples(env)
        print(f"corpus used by Retrieve: {len(CORPUS)} passages (examples/search_tools.py)")
        print(
            "5. Retrieval over the standard library's own documentation (examples/docs_qa.dsx):\n"
        )
        run_docs_qa(env)
        print(f"demo finished in {time.perf_counter() - started:.0f} s")
    finally:
        if server is not None:
            server.stop()


def run_other_examples(env: dict[str, str]) -> None:
    for name in ("rag", "classifier"):
        done = dsx_command("build", f"examples/{name}.dsx", env=env)
        if done.returncode:
            raise SystemExit(done.returncode)
    out = HERE / "build"
    if env["DSX_LM"] == "local":
        from dsx.local import settings_for

        dsx.configure(rm=search, **settings_for("local"))  # stopped when the demo exits
    else:
        lm = dsx.LM(env["DSX_LM"], api_base=env.get("DSX_API_BASE"), api_key=env.get("DSX_API_KEY"))
        dsx.configure(rm=search, lm=lm)
    print("$ python -c 'import rag; rag.program()(question=...)'   # the built module")
    rag = load_module(out / "rag.py").program()
    print(
        f"  rag: {len(rag.answer.predict.demos)} demos on `answer` from BootstrapFewShot "
        "(see examples/build/rag.state.json)"
    )
    for q in (
        "What is the capital of France?",
        "Who created Python?",
        "When was the Eiffel Tower completed?",
    ):
        pred = rag(question=q)
        print(f"  Q: {q}\n  A: {pred.answer}")
    classify = load_module(out / "classify.py").program()
    ticket = "I was charged twice this month, please refund one payment."
    pred = classify(ticket=ticket)
    quote = pred.evidence[0].quote if pred.evidence else "(none)"
    print(
        f"\n  classify: {ticket!r}\n  topic={pred.topic} urgency={pred.urgency} "
        f"evidence={quote!r}\n",
        flush=True,
    )
    dsx_command("test", "examples/classifier.dsx", env=env)


def run_docs_qa(env: dict[str, str]) -> None:
    """Recall of the embeddings index on the question set, then the program's score."""
    import stdlib_docs

    questions = [
        json.loads(line)
        for line in (HERE / "data" / "stdlib_qa.jsonl").read_text().splitlines()
        if line.strip()
    ]
    started = time.perf_counter()
    index = stdlib_docs.index()
    print(
        f"  {len(stdlib_docs.corpus())} passages, {index.describe()} "
        f"({time.perf_counter() - started:.0f} s; the vectors are cached for the next run)"
    )
    for k in (1, 3):
        hits = sum(
            q["function"] in [p.id for p in index.search(q["question"], k=k)] for q in questions
        )
        print(f"  retrieval recall@{k}: {hits}/{len(questions)} questions find their function")
    print(flush=True)
    program = "examples/docs_qa.dsx"
    before = dsx_command(
        "eval", program, "--data", "questions", "--metric", "same", "--no-state", env=env
    )
    built = dsx_command("build", program, "--explain", env=env)
    if built.returncode:
        raise SystemExit(built.returncode)
    after = dsx_command("eval", program, "--data", "questions", "--metric", "same", env=env)
    print(
        f"docs_qa, questions answered with the right function: {score_of(before)} before "
        f"optimizing, {score_of(after)} after\n",
        flush=True,
    )


def textwrap_indent(text: str) -> str:
    return "\n".join("  " + line for line in text.strip().splitlines()) + "\n"


if __name__ == "__main__":
    main()
