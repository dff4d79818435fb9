"""Code lenses: "Run" and "Build" above each program, "Run test" above each test,
"Build (optimize)" above each optimize block, and "Prompt" (the prompt preview) above
programs and tests.

The lenses carry client-side commands (``dsx.run``, ``dsx.build``, ``dsx.test``) with
``{uri, program?, test?}`` arguments; the VS Code extension runs the matching ``dsx``
command line in a terminal. The server does not execute them: running a program calls an
LM, which belongs in the user's terminal, not inside the language server.
"""

from __future__ import annotations

from lsprotocol import types

from dsx.grammar import ast
from dsx.lsp.state import Document, Session

__all__ = ["COMMANDS", "code_lenses"]

#: Commands the lenses use, implemented by the client.
COMMANDS = ("dsx.run", "dsx.build", "dsx.test", "dsx.showPrompt")


def code_lenses(session: Session, doc: Document) -> list[types.CodeLens]:
    pf = session.parsed(doc.path)
    if pf is None:
        return []
    codec = doc.codec(session.encoding)
    out = []
    for decl in pf.decls:
        if isinstance(decl, ast.ProgramDecl):
            rng = codec.range(decl.name.span.start, decl.name.span.end)
            args = {"uri": doc.uri, "program": decl.name.name}
            out.append(_lens(rng, "▶ Run", "dsx.run", args))
            out.append(_lens(rng, "Build", "dsx.build", {"uri": doc.uri}))
            out.append(_lens(rng, "Prompt", "dsx.showPrompt", args))
        elif isinstance(decl, ast.TestDecl):
            rng = codec.range(decl.name.span.start, decl.name.span.end)
            args = {"uri": doc.uri, "program": decl.program.name, "test": decl.name.name}
            out.append(_lens(rng, "▶ Run test", "dsx.test", args))
            out.append(_lens(rng, "Prompt", "dsx.showPrompt", args))
        elif isinstance(decl, ast.OptimizeDecl):
            rng = codec.range(decl.target.span.start, decl.target.span.end)
            out.append(_lens(rng, "Build (optimize)", "dsx.build", {"uri": doc.uri}))
    return out


def _lens(rng: types.Range, title: str, command: str, args: dict[str, str]) -> types.CodeLens:
    return types.CodeLens(
        range=rng, command=types.Command(title=title, command=command, arguments=[args])
    )
