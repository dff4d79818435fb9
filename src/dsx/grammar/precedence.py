"""Operator precedence of .dsx, declared once: the parser builds operator trees with it, and
the formatter and codegen parenthesize with it, so that what they print parses (in .dsx,
and in Python) to the tree they were given.

Levels, loosest first: a conditional expression, ``or``, ``and``, ``not``, the comparisons
(which do not chain: ``a == b == c`` is ``(a == b) == c``, so a comparison operand of a
comparison is always parenthesized, since Python would chain it), ``+ -``, ``* / %``, unary
``-``, postfix (attribute, index, slice, call) and atoms.
"""

from __future__ import annotations

__all__ = [
    "ATOM",
    "COMPARISON",
    "IFEXP",
    "NEG",
    "NOT",
    "POSTFIX",
    "PRECEDENCE",
    "operand_precedence",
]

#: A conditional expression ``a if c else b``: the loosest.
IFEXP = 0
#: Binding power of each binary operator (higher binds tighter).
PRECEDENCE = {
    "or": 1,
    "and": 2,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "in": 4,
    "not in": 4,
    "is": 4,
    "is not": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "%": 6,
}
#: Prefix ``not``: between ``and`` and the comparisons.
NOT = 3
#: The comparisons' level (non-chaining, see :func:`operand_precedence`).
COMPARISON = 4
#: Prefix ``-``.
NEG = 7
#: ``x.name``, ``x[i]``, ``x[a:b]``, ``f(...)``: their object is an operand of this level.
POSTFIX = 8
#: Names, literals, brackets and parenthesized expressions.
ATOM = 9


def operand_precedence(op: str) -> tuple[int, int]:
    """The lowest precedence the left and right operands of ``op`` may have unparenthesized.

    Binary operators are left-associative; comparisons are non-chaining.
    """
    p = PRECEDENCE[op]
    if p == COMPARISON:
        return (p + 1, p + 1)
    return (p, p + 1)
