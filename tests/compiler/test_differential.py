"""Differential testing (hypothesis): random well-typed programs — a signature, a module whose
forward mixes arithmetic, comparisons (`(a == b) == c` included), `in`/`not in`, string
operations, interpolation, if/for and predictor calls — run through the interpreter and
through the module `dsx build` writes, with the same scripted LM: the same outputs (or the
same error) and the same prompts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _codegen_kit import isolated_imports, run_both
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from dsx.compiler.analysis import analyze_source

HEADER = """/// Answer with a short text and a number.
signature Step {
    in  q: str
    in  n: int
    out answer: str
    out score: int
}

module Prog {
    p = PREDICTOR(Step)

    forward(q: str, n: int) {
"""
FOOTER = """    }
}

program prog = Prog()
"""
# A module that uses the drawn one as a sub-module (called with acall in the built module).
OUTER = """
module Outer {
    inner = Prog()

    forward(q: str, n: int) {
        first = inner(q = q, n = n)
        return inner(q = q + "!", n = n + 1)
    }
}

program prog = Outer()
"""

RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
STRINGS = ['"x"', '"ab"', '"Ab c"', '""', '"it\'s"', '"{{braces}}"']


class Body:
    """Draws statements and expressions, keeping track of the variables and their types."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.vars: dict[str, str] = {"q": "str", "n": "int"}
        self.lines: list[str] = []
        self.count = 0

    def locals(self, *kinds: str) -> list[str]:
        """Variables a statement may assign (the forward's inputs may not be)."""
        return [n for n, k in self.vars.items() if k in kinds and n.startswith("v")]

    def names(self, kind: str) -> list[str]:
        return [n for n, k in self.vars.items() if k == kind]

    def expr(self, kind: str, depth: int = 0) -> str:
        draw = self.draw
        leaf = depth >= 2 or draw(st.booleans())
        if kind == "int":
            if leaf:
                return draw(st.sampled_from([*self.names("int"), "0", "1", "2", "7"]))
            return draw(
                st.sampled_from(
                    [
                        f"{self.expr('int', depth + 1)} + {self.expr('int', depth + 1)}",
                        f"{self.expr('int', depth + 1)} - {self.expr('int', depth + 1)}",
                        f"({self.expr('int', depth + 1)}) * {self.expr('int', depth + 1)}",
                        f"{self.expr('int', depth + 1)} % 3",
                        f"len({self.expr('str', depth + 1)})",
                        f"-{self.expr('int', depth + 1)}",
                        f"({self.expr('int', depth + 1)} if {self.expr('bool', depth + 1)} else 5)",
                        f"len({self.expr('list', depth + 1)})",
                    ]
                )
            )
        if kind == "str":
            if leaf:
                return draw(st.sampled_from([*self.names("str"), *STRINGS]))
            return draw(
                st.sampled_from(
                    [
                        f"{self.expr('str', depth + 1)} + {self.expr('str', depth + 1)}",
                        f"lower({self.expr('str', depth + 1)})",
                        f"upper({self.expr('str', depth + 1)})",
                        f"strip({self.expr('str', depth + 1)})",
                        f"str({self.expr('int', depth + 1)})",
                        f"{self.expr('str', depth + 1)}[1:]",
                        f"({self.expr('str', depth + 1)})[:2]",
                        self.interpolated(),
                    ]
                )
            )
        if kind == "list":
            items = f"[{self.expr('str', depth + 1)}, {self.expr('str', depth + 1)}]"
            if depth < 2 and draw(st.booleans()):  # a comprehension over them
                if draw(st.booleans()):  # two `for` clauses, the second over the first's
                    return (
                        f"[w + c for w in {items} if len(w) > {self.expr('int', 2)}"
                        f" for c in w if c != {self.expr('str', 2)}]"
                    )
                return f"[upper(w) for w in {items} if len(w) > {self.expr('int', 2)}]"
            return items
        # bool
        if leaf:
            return draw(st.sampled_from([*self.names("bool"), "true", "false"]))
        a, b = self.expr("int", depth + 1), self.expr("int", depth + 1)
        s, t = self.expr("str", depth + 1), self.expr("str", depth + 1)
        x, y, z = (self.expr("bool", depth + 1) for _ in range(3))
        return draw(
            st.sampled_from(
                [
                    f"{a} < {b}",
                    f"{a} == {b}",
                    f"({a} == {b}) == {x}",
                    f"{x} == ({y} == {z})",
                    f"({x} != {y}) == {z}",
                    f"{s} in {t}",
                    f"{s} not in {self.expr('list', depth + 1)}",
                    f"({s} in {t}) == {x}",
                    f"{x} and not {y}",
                    f"{x} or {y}",
                    f"{s} == {t}",
                ]
            )
        )

    def interpolated(self) -> str:
        """A string with `{...}` parts (names and lengths: no quotes inside the braces)."""
        parts = [
            self.draw(st.sampled_from([*self.vars, "len(q)", "n + 1", "[n, n]"]))
            for _ in range(self.draw(st.integers(1, 3)))
        ]
        return '"<' + "|".join("{" + p + "}" for p in parts) + '> {{x}}"'

    def fresh(self, kind: str, value: str, indent: str) -> None:
        name = f"v{self.count}"
        self.count += 1
        self.lines.append(f"{indent}{name} = {value}")
        self.vars[name] = kind

    def call(self) -> str:
        return f"p(q = {self.expr('str', 1)}, n = {self.expr('int', 1)})"

    def statements(self, indent: str, budget: int) -> None:
        draw = self.draw
        for _ in range(budget):
            choice = draw(
                st.sampled_from(["assign", "assign", "call", "if", "for", "augment", "while"])
            )
            if choice == "call":
                self.fresh("str", f"{self.call()}.answer", indent)
                self.fresh("int", f"{self.call()}.score + 1", indent)
            elif choice == "if" and self.locals("str", "int"):
                target = draw(st.sampled_from(self.locals("str", "int")))
                kind = self.vars[target]
                self.lines.append(f"{indent}if {self.expr('bool')} {{")
                self.lines.append(f"{indent}    {target} = {self.expr(kind)}")
                if draw(st.booleans()):
                    self.lines.append(f"{indent}}} else {{")
                    self.lines.append(f"{indent}    {target} = {self.expr(kind)}")
                self.lines.append(f"{indent}}}")
            elif choice == "for" and self.locals("str"):
                target = draw(st.sampled_from(self.locals("str")))
                self.lines.append(f"{indent}for item in {self.expr('list')} {{")
                self.lines.append(f'{indent}    {target} = {target} + "{{item}};"')
                if draw(st.booleans()):
                    self.lines.append(f"{indent}    {target} = {target} + {self.call()}.answer")
                self.lines.append(f"{indent}}}")
            elif choice == "augment" and self.locals("str", "int"):
                target = draw(st.sampled_from(self.locals("str", "int")))
                self.lines.append(f"{indent}{target} += {self.expr(self.vars[target])}")
            elif choice == "while" and self.locals("int"):
                target = draw(st.sampled_from(self.locals("int")))
                bound = draw(st.sampled_from(["3", "20"]))  # 3 may run out: an error, alike
                self.lines.append(f"{indent}while {target} < 6 max {bound} {{")
                self.lines.append(f"{indent}    {target} += 1")
                self.lines.append(f"{indent}}}")
            else:  # an assignment (also an if/for with nothing to assign to yet)
                kind = draw(st.sampled_from(["int", "str", "bool"]))
                self.fresh(kind, self.expr(kind), indent)


@st.composite
def programs(draw: st.DrawFn) -> str:
    body = Body(draw)
    body.statements("        ", draw(st.integers(1, 6)))
    if draw(st.booleans()):
        ret = f"        return {body.call()}"
    else:
        ret = (
            f"        return Prediction(answer = {body.expr('str')}, "
            f"total = {body.expr('int')}, flag = {body.expr('bool')})"
        )
    if draw(st.booleans()):  # long names: statements the layout has to split
        body.lines = [
            re.sub(r"\bv(\d+)\b", r"a_rather_long_variable_name_number_\1", line)
            for line in body.lines
        ]
        ret = re.sub(r"\bv(\d+)\b", r"a_rather_long_variable_name_number_\1", ret)
    predictor = draw(st.sampled_from(["Predict", "ChainOfThought"]))
    footer = FOOTER.replace("program prog = Prog()\n", OUTER) if draw(st.booleans()) else FOOTER
    return HEADER.replace("PREDICTOR", predictor) + "\n".join([*body.lines, ret]) + "\n" + footer


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # No shrinking: on these machines it ran for minutes; a drawn program is short anyway.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(source=programs(), q=st.sampled_from(["What is it?", "ab", ""]), n=st.integers(0, 3))
def test_interpreter_and_generated_module_agree(source, q, n):
    with tempfile.TemporaryDirectory(prefix="dsx-diff-") as tmp, isolated_imports():
        analysis = analyze_source(source, str(Path(tmp) / "prog.dsx"))
        assert analysis.errors == [], (source, analysis.errors)
        for mode in ("sync", "async"):
            interpreted, built = run_both(
                analysis.unit, "prog", Path(tmp) / f"build-{mode}", {"q": q, "n": n}, mode=mode
            )
            assert built.error == interpreted.error, source
            assert built.output == interpreted.output, source
            assert built.prompts == interpreted.prompts, source
        # ...and the module is formatted as ruff would format it.
        code = (Path(tmp) / "build-sync" / "prog.py").read_text()
        if RUFF is not None:
            done = subprocess.run(
                [RUFF, "format", "--isolated", "-"], input=code, capture_output=True, text=True
            )
            assert done.returncode == 0 and done.stdout == code, (source, code, done.stdout)
