"""`make demo`: build the example programs with `dsx build` and run them.

The LM is the one named by DSX_LM (any litellm model string, e.g. `ollama/llama3.2` or
`openai/gpt-4o-mini`; DSX_API_BASE / DSX_API_KEY for the endpoint). When DSX_LM is not set,
the demo starts dsx's local OpenAI-compatible server (dsx.testing.OpenAIServer) with a
deterministic offline responder that knows the example data — and says so. Either way the
requests go through the real LM client (litellm over HTTP).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
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
    question = inputs.get("question", inputs.get("ticket", inputs.get("text", "")))
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
        elif name == "supported":
            values[name] = True
        else:
            values[name] = "n/a"
    if "response_format" in request:
        return json.dumps(values)
    parts = [
        f"<<< {k} >>>\n{v if isinstance(v, str) else json.dumps(v)}" for k, v in values.items()
    ]
    return "\n\n".join([*parts, "<<< end >>>"])


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


def main() -> None:
    model = os.environ.get("DSX_LM")
    server = None
    if model:
        api_base = os.environ.get("DSX_API_BASE")
        print(
            f"dsx demo — using the LM from DSX_LM: {model}"
            + (f" at {api_base}" if api_base else "")
        )
    else:
        from dsx.testing import OpenAIServer

        server = OpenAIServer(offline_answer).start()
        model = "openai/dsx-offline-demo"
        os.environ["DSX_API_BASE"] = server.api_base
        os.environ["DSX_API_KEY"] = "dsx-local"
        print(
            "dsx demo — DSX_LM is not set, so this runs against dsx's local OpenAI-compatible server"
        )
        print(f"({server.api_base}) with a deterministic offline responder for the example data.")
        print("Set DSX_LM (e.g. DSX_LM=openai/gpt-4o-mini) to use a real model.\n")
    os.environ["DSX_LM"] = model
    try:
        dsx.configure(
            lm=dsx.LM(
                model,
                api_base=os.environ.get("DSX_API_BASE"),
                api_key=os.environ.get("DSX_API_KEY"),
                cache=False,
            ),
            rm=search,
        )
        with tempfile.TemporaryDirectory() as out:
            for name in ("rag", "classifier"):
                print(f"$ dsx build examples/{name}.dsx --out {out}")
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "dsx.cli",
                        "build",
                        str(HERE / f"{name}.dsx"),
                        "--out",
                        out,
                    ],
                    capture_output=True,
                    text=True,
                )
                print(textwrap_indent(done.stderr + done.stdout))
                if done.returncode:
                    raise SystemExit(done.returncode)
            rag = load_module(Path(out) / "rag.py").program()
            print(
                f"rag: {len(rag.answer.predict.demos)} demos on `answer` from BootstrapFewShot (see rag.state.json)"
            )
            for q in (
                "What is the capital of France?",
                "Who created Python?",
                "When was the Eiffel Tower completed?",
            ):
                pred = rag(question=q)
                print(f"  Q: {q}\n  A: {pred.answer}")
            classify = load_module(Path(out) / "classify.py").program()
            ticket = "I was charged twice this month, please refund one payment."
            pred = classify(ticket=ticket)
            print(
                f"\nclassify: {ticket!r}\n  topic={pred.topic} urgency={pred.urgency} evidence={pred.evidence[0].quote!r}"
            )
        print("\n$ dsx test examples/classifier.dsx")
        done = subprocess.run(
            [sys.executable, "-m", "dsx.cli", "test", str(HERE / "classifier.dsx")],
            capture_output=True,
            text=True,
        )
        print(textwrap_indent(done.stderr + done.stdout))
        print(f"corpus used by Retrieve: {len(CORPUS)} passages (examples/search_tools.py)")
    finally:
        if server is not None:
            server.stop()


def textwrap_indent(text: str) -> str:
    return "\n".join("  " + line for line in text.strip().splitlines()) + "\n"


if __name__ == "__main__":
    main()
