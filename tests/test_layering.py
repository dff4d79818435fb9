"""The package layering of shared DESIGN.md, checked over every module's imports (ast).

runtime ↛ compiler, grammar, lsp, cli; sandbox ↛ the rest of dsx (but the import-free
exception base); grammar ↛ compiler; compiler ↛ cli; ir ↛ runtime. Every import counts,
including those inside functions. A planted violation shows the checker catches it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: package -> the dsx packages it must not import
FORBIDDEN = {
    "runtime": {"compiler", "grammar", "lsp", "cli"},
    "grammar": {"compiler", "cli", "lsp"},
    "compiler": {"cli"},
    "ir": {"runtime"},
}
#: the sandbox imports nothing of dsx but these (stdlib-only modules; checked below)
SANDBOX_ALLOWED = {"dsx._errors_base", "dsx._files"}
#: compatibility names of CLI commands, not library code
SHIMS = {"dsx.sandbox.cli", "dsx.lsp.cli"}


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [n for n in found if n == "dsx" or n.startswith("dsx.")]


def violations(src: Path) -> list[str]:
    out = []
    for path in sorted((src / "dsx").rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        parts = module.split(".")
        if len(parts) < 3 or module in SHIMS:
            continue
        package = parts[1]
        for target in _imports(path):
            tparts = target.split(".")
            tpackage = tparts[1] if len(tparts) > 1 else ""
            if package == "sandbox":
                if tpackage != "sandbox" and target not in SANDBOX_ALLOWED:
                    out.append(f"{module} imports {target}")
            elif tpackage in FORBIDDEN.get(package, ()):
                out.append(f"{module} imports {target}")
    return out


def test_every_layering_rule_holds():
    assert violations(SRC) == []


def test_what_the_sandbox_may_import_imports_no_dsx():
    # The sandbox's exceptions to "nothing of dsx" must not bring the rest of dsx along.
    for module in sorted(SANDBOX_ALLOWED):
        path = SRC / Path(*module.split(".")).with_suffix(".py")
        assert _imports(path) == [], f"{module} imports {_imports(path)}"


def test_a_planted_violation_is_caught(tmp_path):
    for package, body in (
        ("runtime", "from dsx.compiler import analysis\n"),
        ("sandbox", "def f():\n    import dsx.runtime.lm\n"),
        ("grammar", "import dsx.compiler.codegen\n"),
        ("compiler", "from dsx.cli import main\n"),
        ("ir", "from dsx.runtime.module import Module\n"),
    ):
        where = tmp_path / package / "dsx" / package
        where.mkdir(parents=True)
        (where / "__init__.py").write_text("")
        (where / "planted.py").write_text(body)
        assert violations(tmp_path / package) == [
            f"dsx.{package}.planted imports {_imports(where / 'planted.py')[0]}"
        ]
    # and what is allowed stays allowed
    ok = tmp_path / "ok" / "dsx" / "sandbox"
    ok.mkdir(parents=True)
    (ok / "fine.py").write_text(
        "from dsx._errors_base import DsxError\nimport dsx.sandbox._types\n"
    )
    assert violations(tmp_path / "ok") == []
