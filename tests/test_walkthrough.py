"""What a new user hits first: the CLI's messages, help texts and progress lines.

Each test here is a regression test for something found by walking through the README,
the examples and every ``--help`` as a user would.
"""

from __future__ import annotations

from pathlib import Path

from dsx.cli import main
from dsx.runtime._progress import Progress


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
