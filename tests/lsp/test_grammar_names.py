"""The TextMate grammar colors the same module kinds and optimizers the runtime's registries
name (the grammar is static JSON, so this test keeps it from drifting)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dsx.compiler import _env

GRAMMAR = Path(__file__).parents[2] / "vscode-extension" / "syntaxes" / "dsx.tmLanguage.json"


def _names(scope: str) -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("name") == scope and "match" in node:
                m = re.search(r"\\b\(([^)]*)\)", node["match"])
                assert m is not None, node["match"]
                found.update(m.group(1).split("|"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(GRAMMAR.read_text(encoding="utf-8")))
    return found


def test_the_grammar_names_every_optimizer_the_registry_knows():
    assert _names("support.class.optimizer.dsx") == set(_env.KNOWN_OPTIMIZERS)


def test_the_grammar_names_every_module_kind():
    assert _names("support.class.module-kind.dsx") == set(_env.KINDS)
