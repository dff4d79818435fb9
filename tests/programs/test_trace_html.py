"""dsx run --trace-html: the call tree as a self-contained page, read back and in Chromium."""

from __future__ import annotations

import html.parser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dsx.testing import OpenAIServer

REPLY = "<<< reasoning >>>\nIt is <b>bold</b> & old.\n\n<<< answer >>>\nParis\n\n<<< end >>>"
QA = "signature QA {\n    in  question: str\n    out answer: str\n}\n\nprogram qa = ChainOfThought(QA)\n"


class _Page(html.parser.HTMLParser):
    """Collects the tree's nodes (kind, depth) and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[tuple[str, int]] = []
        self.depth = 0
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "details":
            self.nodes.append((dict(attrs).get("data-kind") or "", self.depth))
            self.depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], OpenAIServer]:
    (tmp_path / "qa.dsx").write_text(QA)
    with OpenAIServer(script=[REPLY]) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
        env.update(
            DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
            DSX_LM="openai/test-model",
            DSX_API_BASE=srv.api_base,
            DSX_API_KEY="x",
        )
        out = subprocess.run(
            [sys.executable, "-m", "dsx.cli", "run", "qa.dsx", "-i", "question=capital?", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
    return out, srv


def test_the_page_holds_the_call_tree_with_prompts_outputs_and_tokens(tmp_path):
    out, _ = _run(tmp_path, "--trace-html", "trace.html")
    assert out.returncode == 0, out.stderr
    assert "answer: Paris" in out.stdout
    page = (tmp_path / "trace.html").read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(page)
    assert parsed.nodes == [("module", 0), ("predictor", 1), ("lm", 2)]
    text = "".join(parsed.text)
    assert "capital?" in text  # the prompt
    assert "<b>bold</b> & old." in text  # the reply, escaped in the page, intact as text
    assert "<b>bold</b>" not in page  # never markup
    assert "1 LM call(s)" in text and "tokens" in text
    assert not parsed.tags & {"script", "link", "img", "iframe"}  # self-contained, static


def test_an_unwritable_page_is_a_message(tmp_path):
    (tmp_path / "dir").mkdir()
    out, _ = _run(tmp_path, "--trace-html", "dir")
    assert out.returncode != 0
    assert "cannot write the trace page dir" in out.stderr
    assert "Traceback" not in out.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    _chromium() is None, reason="Chromium is not installed (apt-get install chromium)"
)
def test_chromium_renders_the_page(tmp_path):
    out, _ = _run(tmp_path, "--trace-html", "trace.html")
    assert out.returncode == 0, out.stderr
    dom = _rendered(tmp_path / "trace.html", tmp_path)
    assert dom.nodes == [("module", 0), ("predictor", 1), ("lm", 2)]
    text = "".join(dom.text)
    assert "Paris" in text and "capital?" in text and "1 LM call(s)" in text


def _rendered(page: Path, home: Path) -> _Page:
    """The page's DOM after headless Chromium loaded and laid it out."""
    browser = subprocess.run(
        [
            str(_chromium()),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},
    )
    assert browser.returncode == 0, browser.stderr[-2000:]
    dom = _Page()
    dom.feed(browser.stdout)
    return dom


def _eval_report(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "qa.dsx").write_text(QA + "metric em = exact_match\n")
    (tmp_path / "dev.jsonl").write_text(
        "".join(
            f'{{"question": "q{i}", "answer": "{"Paris" if i % 2 else "Rome"}"}}\n'
            for i in range(4)
        )
    )
    with OpenAIServer(lambda body: REPLY) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
        env.update(
            DSX_CACHE_DIR=os.environ["DSX_CACHE_DIR"],
            DSX_LM="openai/test-model",
            DSX_API_BASE=srv.api_base,
            DSX_API_KEY="x",
        )
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "dsx.cli",
                "eval",
                "qa.dsx",
                "--data",
                "dev.jsonl",
                "--metric",
                "em",
                "--report",
                "report.html",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
    return out


def test_dsx_eval_report_has_the_score_the_examples_and_a_histogram(tmp_path):
    out = _eval_report(tmp_path)
    assert "score: 50.00%" in out.stdout, out.stdout + out.stderr
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    parsed = _Page()
    parsed.feed(page)
    text = "".join(parsed.text)
    assert "score 50.00% over 4 of 4 example(s)" in text
    for i in range(4):
        assert f"q{i}" in text
    assert "id=histogram" in page and page.count("<tr>") >= 4 + 1 + 1
    assert not parsed.tags & {"script", "link", "img", "iframe"}


@pytest.mark.skipif(
    _chromium() is None, reason="Chromium is not installed (apt-get install chromium)"
)
def test_chromium_renders_the_eval_report(tmp_path):
    out = _eval_report(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    dom = _rendered(tmp_path / "report.html", tmp_path)
    text = " ".join(" ".join(dom.text).split())
    assert "score 50.00% over 4 of 4 example(s)" in text
    assert all(f"q{i}" in text for i in range(4))
    assert "svg" in dom.tags or "table" in dom.tags
