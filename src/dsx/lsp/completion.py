"""Completion: keywords in context, types, declared names, predictor kinds and their
settings, the inputs of a predictor call, the outputs of a prediction after `.`, and the
names of `use python` modules.

What is local (the statement being typed) comes from the current text (:mod:`.context`);
what is declared comes from the document's last analysis, which may be a keystroke old —
completion never waits for a full re-check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lsprotocol import types

from dsx.compiler import _env
from dsx.compiler.analysis import Analysis
from dsx.compiler.model import MODULE_OUTPUTS as REPLY_MODULE_OUTPUTS
from dsx.compiler.model import Scope
from dsx.diagnostics import Origin
from dsx.grammar import lexspec
from dsx.grammar.parser import TOP_KEYWORDS, parse_expr_text
from dsx.lsp import pysource
from dsx.lsp.context import Context, Tok, scan
from dsx.lsp.state import Document, Session

__all__ = ["TRIGGER_CHARACTERS", "complete"]

TRIGGER_CHARACTERS = [".", "(", ",", ":", '"', " "]

CIK = types.CompletionItemKind

_TOP_SNIPPETS = {
    "use": 'use python "${1:module}" as ${2:alias}',
    "import": 'import "${1:other.dsx}"',
    "signature": "signature ${1:Name} {\n    in  ${2:question}: ${3:str}\n    out ${4:answer}: ${5:str}\n}",
    "type": "type ${1:Name} { ${2:field}: ${3:str} }",
    "enum": "enum ${1:Name} { ${2:first}, ${3:second} }",
    "module": "module ${1:Name} {\n    ${2:predict} = ${3:Predict}(${4:Signature})\n\n"
    "    forward(${5:question}: str) {\n        return ${2:predict}(${5:question} = ${5:question})\n"
    "    }\n}",
    "program": "program ${1:name} = ${2:Module}()",
    "data": 'data ${1:train} = jsonl("${2:data/train.jsonl}", inputs = [${3:question}])',
    "metric": "metric ${1:name} = ${2:exact_match}",
    "lm": 'lm ${1:fast} = "${2:openai/gpt-4o-mini}" { ${3:temperature} = ${4:0} }',
    "retriever": 'retriever ${1:wiki} = ${2:Embeddings}(${3:corpus} = "${4:corpus.jsonl}")',
    "optimize": "optimize ${1:program} {\n    with   ${2:BootstrapFewShot}(max_bootstrapped_demos = 4)\n"
    "    train  ${3:train}\n    metric ${4:metric}\n}",
    "test": 'test ${1:name} for ${2:program} {\n    given  ${3:question} = "$4"\n'
    '    expect ${5:answer} = "$6"\n}',
}
_TOP_DOCS = {
    "use": "A Python module for tools, metrics and helpers.",
    "import": "Every declaration of another .dsx file.",
    "signature": "Typed inputs and outputs of an LM call; its doc comment is the instructions.",
    "type": "A record (becomes a pydantic model).",
    "enum": "A closed set of values.",
    "module": "Sub-modules and a `forward` body.",
    "program": "A runnable program.",
    "data": "A data set loaded from JSONL, CSV or JSON.",
    "metric": "A built-in metric or a Python function.",
    "lm": "A named LM for predictors (`lm = name`), or a fallback chain of them.",
    "retriever": "A named retriever for `Retrieve(name)`: Embeddings, FAISS, Chroma, Qdrant, ColBERTv2.",
    "optimize": "How to optimize a program: optimizer, data, metric.",
    "test": "Inputs and expected outputs of a program; also training data.",
}
_STATEMENT_KEYWORDS = ("return", "if", "for", "while", "break", "continue", "assert", "suggest")
_PRIMITIVES = ("str", "int", "float", "bool", "any", "Image", "History")
_GENERICS = {"list": "list[${1:str}]", "dict": "dict[${1:str}, ${2:str}]", "tuple": "tuple[$1]"}
_DATA_FORMATS = ("jsonl", "csv", "json")
_OPTIMIZE_DOCS = {
    "with": "the optimizer, e.g. `with BootstrapFewShot(max_bootstrapped_demos = 4)`",
    "train": "the training data (a `data` name, or `tests`)",
    "dev": "the validation data",
    "metric": "the metric to maximize",
    "lm": 'the LM used while optimizing, e.g. `lm "openai/gpt-4o-mini"`',
    "seed": "the random seed",
}
_ASSIGN = re.compile(rf"^[ \t]*({lexspec.NAME})[ \t]*=(?!=)[ \t]*(.+)$", re.M)


class _Builder:
    def __init__(self, snippets: bool) -> None:
        self.snippets = snippets
        self.items: list[types.CompletionItem] = []
        self.seen: set[str] = set()

    def add(
        self,
        label: str,
        kind: types.CompletionItemKind,
        *,
        detail: str = "",
        doc: str = "",
        insert: str | None = None,
        snippet: str | None = None,
        sort: str = "5",
    ) -> None:
        if label in self.seen:
            return
        self.seen.add(label)
        item = types.CompletionItem(
            label=label,
            kind=kind,
            detail=detail or None,
            documentation=types.MarkupContent(kind=types.MarkupKind.Markdown, value=doc)
            if doc
            else None,
            sort_text=f"{sort}_{label}",
        )
        if snippet is not None and self.snippets:
            item.insert_text = snippet
            item.insert_text_format = types.InsertTextFormat.Snippet
        elif insert is not None:
            item.insert_text = insert
        self.items.append(item)


def complete(
    session: Session, doc: Document, position: types.Position, *, snippets: bool = True
) -> types.CompletionList:
    codec = doc.codec(session.encoding)
    offset = codec.offset(position)
    ctx = scan(doc.text, offset)
    out = _Builder(snippets)
    if ctx.in_comment:
        return types.CompletionList(is_incomplete=False, items=[])
    analysis = session.latest(doc)
    _Completer(session, doc, analysis, ctx, out).run()
    return types.CompletionList(is_incomplete=False, items=out.items)


class _Completer:
    def __init__(
        self, session: Session, doc: Document, analysis: Analysis, ctx: Context, out: _Builder
    ) -> None:
        self.session = session
        self.doc = doc
        self.analysis = analysis
        self.model = analysis.model
        self.ctx = ctx
        self.out = out

    # ---- dispatch ---------------------------------------------------------------------
    def run(self) -> None:
        ctx = self.ctx
        if ctx.in_string is not None:
            self._in_string()
            return
        if not ctx.tokens or (ctx.top is None and ctx.at_line_start and ctx.line_column == 0):
            # A new declaration: at the start of the file or of a line after a complete one.
            self._top_keywords()
            return
        if ctx.after_dot:
            self._attribute()
            return
        kind = ctx.block_kind
        handler = getattr(self, f"_in_{kind}", None) if kind else None
        if handler is not None:
            handler()

    # ---- top level --------------------------------------------------------------------
    def _top_keywords(self) -> None:
        for kw in TOP_KEYWORDS:
            self.out.add(
                kw,
                CIK.Keyword,
                detail=f"{kw} declaration",
                doc=_TOP_DOCS.get(kw, ""),
                insert=f"{kw} ",
                snippet=_TOP_SNIPPETS.get(kw),
                sort="1",
            )

    def _in_string(self) -> None:
        ctx = self.ctx
        if ctx.block_kind == "import" and len(ctx.tokens) == 1:
            self._dsx_files()

    def _dsx_files(self) -> None:
        if self.doc.path.startswith("<"):
            return
        base = Path(self.doc.path).parent
        try:
            candidates = sorted(base.rglob("*.dsx"))[:200]
        except OSError:
            return
        for path in candidates:
            if path.resolve() == Path(self.doc.path):
                continue
            rel = path.relative_to(base).as_posix()
            self.out.add(rel, CIK.File, detail="dsx file", sort="1")

    # ---- declarations -----------------------------------------------------------------
    def _in_use(self) -> None:
        toks = self.ctx.tokens
        if len(toks) == 1:
            self.out.add("python", CIK.Keyword, insert="python ")
        elif len(toks) == 3 and toks[2].kind == "str":
            self.out.add("as", CIK.Keyword, insert="as ")

    def _in_import(self) -> None:
        toks = self.ctx.tokens
        if len(toks) == 2 and toks[1].kind == "str":
            self.out.add("as", CIK.Keyword, insert="as ")

    def _in_signature(self) -> None:
        ctx = self.ctx
        top = ctx.top
        if top is None:
            return
        if top.role == "type" or self._after_colon():
            self._types()
            return
        if top.role == "body" and not ctx.segment:
            self.out.add("in", CIK.Keyword, detail="an input field", insert="in  ", sort="1")
            self.out.add("out", CIK.Keyword, detail="an output field", insert="out ", sort="1")
            self.out.add(
                "instructions",
                CIK.Keyword,
                detail="the signature's instructions",
                insert='instructions "',
                sort="2",
            )

    def _in_type(self) -> None:
        if self.ctx.top is not None and (self.ctx.top.role == "type" or self._after_colon()):
            self._types()

    def _in_module(self) -> None:
        ctx = self.ctx
        top = ctx.top
        if top is None:
            return
        if top.role == "params" or top.role == "type":
            if top.role == "type" or self._after_colon():
                self._types()
            elif self._after_equal():
                self._expression(self._scope())
            return
        if top.role == "body":
            seg = ctx.segment
            if not seg:
                self.out.add(
                    "forward",
                    CIK.Keyword,
                    detail="the module's body",
                    insert="forward(",
                    snippet="forward(${1:question}: ${2:str}) {\n    $0\n}",
                    sort="1",
                )
                return
            if len(seg) == 2 and seg[0].kind == "name" and seg[1].text == "=":
                self._module_kinds()
            return
        if top.role == "call" and not ctx.in_role("forward"):
            self._constructor_call(top.callee, self._member_scope())
            return
        if ctx.in_role("forward"):
            self._in_body(self._scope())

    def _in_program(self) -> None:
        ctx = self.ctx
        toks = ctx.tokens
        if ctx.top is None:
            if len(toks) == 3 and toks[2].text == "=":
                self._module_kinds()
            return
        if ctx.top.role == "call":
            self._constructor_call(ctx.top.callee, self._scope())

    def _in_data(self) -> None:
        ctx = self.ctx
        toks = ctx.tokens
        if ctx.top is None and len(toks) == 3 and toks[2].text == "=":
            for fmt in _DATA_FORMATS:
                self.out.add(
                    fmt,
                    CIK.Function,
                    detail=f"load a {fmt.upper()} file",
                    insert=f"{fmt}(",
                    snippet=f'{fmt}("${{1:data/train.{fmt}}}", inputs = [${{2:question}}])',
                    sort="1",
                )
            return
        top = ctx.top
        if (
            top is not None
            and top.role == "call"
            and top.callee in _DATA_FORMATS
            and not ctx.segment
            and "inputs" not in self._given_kwargs(top.index)
        ):
            self.out.add(
                "inputs",
                CIK.Field,
                detail="the input fields of each example",
                insert="inputs = [",
                sort="0",
            )

    def _in_metric(self) -> None:
        ctx = self.ctx
        toks = ctx.tokens
        if ctx.top is None and len(toks) == 3 and toks[2].text == "=":
            for name in sorted(_env.BUILTIN_METRICS):
                self.out.add(name, CIK.Function, detail="built-in metric", sort="1")
            self._python_aliases()

    def _in_optimize(self) -> None:
        ctx = self.ctx
        toks = ctx.tokens
        top = ctx.top
        if top is None:
            if len(toks) == 1:
                self._decl_names("program", CIK.Variable)
            return
        if top.role == "call":
            self._optimizer_settings(top.callee, top.index)
            return
        if top.role != "body":
            return
        seg = ctx.segment
        if not seg:
            present = {t.text for t in toks[top.index + 1 :] if t.line_start}
            for key in ("with", "train", "dev", "metric", "lm", "seed"):
                if key not in present:
                    self.out.add(
                        key, CIK.Keyword, detail=_OPTIMIZE_DOCS[key], insert=f"{key} ", sort="1"
                    )
            return
        if len(seg) != 1:
            return
        head = seg[0].text
        if head == "with":
            for name in sorted(_env.OPTIMIZERS):
                self.out.add(name, CIK.Class, detail="optimizer", insert=f"{name}(", sort="1")
        elif head in ("train", "dev"):
            self._decl_names("data", CIK.Variable)
            self.out.add("tests", CIK.Keyword, detail="the program's test blocks", sort="3")
        elif head == "metric":
            self._decl_names("metric", CIK.Function)

    def _in_lm(self) -> None:
        """``lm name = |``, ``fallback(|``, and the settings block ``{ | }``: declared LMs
        and the settings the runtime's registry knows (``dsx.runtime.resources``)."""
        from dsx.runtime import resources

        toks, top = self.ctx.tokens, self.ctx.top
        if top is None:
            if len(toks) == 3 and toks[2].text == "=":
                self.out.add(
                    "fallback",
                    CIK.Function,
                    detail="try declared LMs in order on retryable errors",
                    insert="fallback(",
                    snippet="fallback(${1:fast}, ${2:backup})",
                    sort="1",
                )
            return
        if top.role == "call" and top.callee == "fallback":
            self._decl_names("lm", CIK.Variable, sort="0")
            return
        # In `{ ... }`, a setting's name starts after `{` or `,` (the body's segment runs
        # over commas, so look at the tokens themselves).
        if top.role == "call" or toks[-1].text not in ("{", ","):
            return
        chain = any(t.text == "fallback" for t in toks[: top.index])
        registry = resources.FALLBACK_SETTINGS if chain else resources.LM_DECL_SETTINGS
        given = {
            t.text
            for i, t in enumerate(toks[top.index + 1 : -1], top.index + 1)
            if t.kind == "name" and toks[i + 1].text == "="
        }
        for key, setting in registry.items():
            if key not in given:
                self.out.add(
                    key,
                    CIK.Property,
                    detail=setting.expected,
                    doc=setting.doc,
                    insert=f"{key} = ",
                    sort="1",
                )

    def _in_retriever(self) -> None:
        """``retriever name = |`` (the kinds) and ``Kind(|`` (its settings)."""
        from dsx.runtime import resources

        ctx, toks, top = self.ctx, self.ctx.tokens, self.ctx.top
        if top is None:
            if len(toks) == 3 and toks[2].text == "=":
                for name, kind in resources.RETRIEVERS.items():
                    self.out.add(name, CIK.Class, detail=kind.doc, insert=f"{name}(", sort="1")
            return
        spec = resources.RETRIEVERS.get(top.callee or "") if top.role == "call" else None
        if spec is None or ctx.segment:
            return
        given = self._given_kwargs(top.index)
        for key, setting in spec.settings.items():
            if key not in given:
                required = " (required)" if key in spec.required else ""
                self.out.add(
                    key,
                    CIK.Property,
                    detail=setting.expected + required,
                    doc=setting.doc,
                    insert=f"{key} = ",
                    sort="0" if required else "1",
                )

    def _optimizer_settings(self, callee: str | None, index: int) -> None:
        """Inside ``with Optimizer(``: the settings the optimizer registry declares."""
        info = _env.optimizer_info(callee or "")
        if info is None or not info.available or self.ctx.segment:
            return
        given = self._given_kwargs(index)
        for name, setting in info.settings.items():
            if not setting.settable or name == "metric" or name in given:
                continue
            default = setting.default
            shown = "" if not _jsonable_default(default) else f" = {_dsx_constant(default)}"
            self.out.add(
                name,
                CIK.Field,
                detail=f"{setting.type_text}{shown}",
                doc=setting.doc,
                insert=f"{name} = ",
                sort="0",
            )

    def _in_test(self) -> None:
        ctx = self.ctx
        toks = ctx.tokens
        top = ctx.top
        if top is None:
            if len(toks) == 2:
                self.out.add("for", CIK.Keyword, insert="for ")
            elif len(toks) == 3 and toks[2].text == "for":
                self._decl_names("program", CIK.Variable)
            return
        program = toks[3].text if len(toks) > 3 and toks[2].text == "for" else None
        scope = self.model.scope(test_program=program) if self.model else Scope.empty()
        if top.role == "body":
            seg = ctx.segment
            if not seg:
                for kw, detail in (
                    ("given", "an input of the program"),
                    ("expect", "an expected output"),
                    ("reply", "the LM's next scripted reply"),
                    ("assert", "a condition on `result`"),
                    ("suggest", "a soft condition"),
                ):
                    self.out.add(kw, CIK.Keyword, detail=detail, insert=f"{kw} ", sort="1")
                return
            head = seg[0].text
            if len(seg) == 1 and head in ("given", "expect") and program:
                self._program_io(program, head, toks[top.index + 1 :])
                return
            if head in ("given", "expect") and len(seg) < 3:
                return
        elif top.role == "dict" and top.index > 0 and toks[top.index - 1].text == "reply":
            seg = ctx.segment
            if not seg:
                self._reply_fields(toks[top.index + 1 :])
                return
            if len(seg) < 2:
                return
        self._expression(scope)

    def _reply_fields(self, body: list[Tok]) -> None:
        """In ``reply { | }``: the outputs a scripted reply may give (every signature's,
        and the fields the runtime's modules add), less those already given."""
        if self.model is None:
            return
        given = {
            body[i].text
            for i in range(len(body) - 1)
            if body[i].kind == "name" and body[i + 1].text == "="
        }
        seen: set[str] = set()
        for sig in self.model.signatures.values():
            for f in sig.outputs:
                if f.name in given or f.name in seen:
                    continue
                seen.add(f.name)
                self.out.add(
                    f.name,
                    CIK.Field,
                    detail=f"output of {sig.name}",
                    insert=f"{f.name} = ",
                    sort="0",
                )
        for name in REPLY_MODULE_OUTPUTS:
            if name not in given and name not in seen:
                self.out.add(
                    name, CIK.Field, detail="added by a module", insert=f"{name} = ", sort="1"
                )

    # ---- forward bodies ---------------------------------------------------------------
    def _in_body(self, scope: Scope) -> None:
        ctx = self.ctx
        top = ctx.top
        assert top is not None
        if top.role == "call":
            self._call_arguments(scope)
            return
        if top.role in ("forward", "stmt"):
            seg = ctx.segment
            if not seg:
                for kw in _STATEMENT_KEYWORDS:
                    self.out.add(kw, CIK.Keyword, insert=f"{kw} ", sort="3")
                if ctx.tokens and ctx.tokens[-1].text == "}":
                    self.out.add("else", CIK.Keyword, insert="else ", sort="3")
                self._expression(scope, keywords=False)
                return
            if seg[0].text == "for" and len(seg) == 2:
                self.out.add("in", CIK.Keyword, insert="in ")
                return
            if seg[-1].kind in ("name", "num", "str") or seg[-1].text in (")", "]"):
                if (
                    len(seg) == 1
                    and seg[0].kind == "name"
                    and seg[0].text not in _STATEMENT_KEYWORDS
                ):
                    return  # `name |`: an assignment target being written
                for kw in ("and", "or", "in", "not"):
                    self.out.add(kw, CIK.Keyword, insert=f"{kw} ", sort="4")
                return
        if top.role == "list" and _in_comprehension_target(ctx.tokens[top.index + 1 :]):
            self.out.add("in", CIK.Keyword, insert="in ")  # `[x for row |`
            return
        self._expression(scope)

    def _call_arguments(self, scope: Scope) -> None:
        ctx = self.ctx
        top = ctx.top
        assert top is not None
        seg = ctx.segment
        if seg and not (len(seg) >= 2 and seg[1].text == "=" and seg[0].kind == "name"):
            if seg[-1].kind in ("name", "num", "str") or seg[-1].text in (")", "]"):
                return
            self._expression(scope)
            return
        if not seg and top.callee and not top.callee_is_attr and self.model is not None:
            inputs = self.model.call_inputs(top.callee, scope)
            if inputs:
                given = self._given_kwargs(top.index)
                for m in inputs:
                    if m.name in given:
                        continue
                    self.out.add(
                        m.name,
                        CIK.Field,
                        detail=m.detail,
                        doc=m.doc,
                        insert=f"{m.name} = ",
                        sort="0",
                    )
                return
        self._expression(scope)

    def _constructor_call(self, callee: str | None, scope: Scope) -> None:
        """Inside `Kind(` / `Module(` of a member or program: settings and signatures."""
        ctx = self.ctx
        top = ctx.top
        assert top is not None
        seg = ctx.segment
        if callee is None:
            return
        given = self._given_kwargs(top.index)
        kind = _env.KINDS.get(callee)
        if seg and len(seg) == 2 and seg[1].text == "=" and seg[0].kind == "name":
            key = seg[0].text
            if key == "signature":
                self._decl_names("signature", CIK.Interface)
            elif key == "lm" and kind is not None and kind.takes_signature:
                self._decl_names("lm", CIK.Variable, sort="0")  # `lm fast = ...` declarations
            elif key == "rm" and callee == "Retrieve":
                self._decl_names("retriever", CIK.Variable, sort="0")
            elif key == "module" and kind is not None and kind.wraps_module:
                for name, binding in scope.items():
                    if binding.kind == "sub":
                        self.out.add(name, CIK.Property, detail="member", sort="0")
            else:
                self._expression(scope)
            return
        if seg:
            return
        if kind is not None:
            first = (
                not any(t.text == "," for t in ctx.tokens[top.index + 1 :])
                and "signature" not in given
            )
            if callee == "Retrieve" and first:
                self._decl_names("retriever", CIK.Variable, sort="0")  # `Retrieve(wiki)`
            if kind.takes_signature and first:
                self._decl_names("signature", CIK.Interface, sort="0")
                if self.out.snippets:
                    self.out.add(
                        '"inputs -> outputs"',
                        CIK.Snippet,
                        detail="an inline signature",
                        snippet='"${1:question} -> ${2:answer}"',
                        sort="1",
                    )
            for setting in sorted(kind.kwargs):
                if setting in given:
                    continue
                self.out.add(
                    setting,
                    CIK.Property,
                    detail=f"setting of {callee}",
                    insert=f"{setting} = ",
                    sort="2",
                )
            lms = self.model is not None and any(d.kind == "lm" for d in self.model.declarations())
            if kind.takes_signature and lms and "lm" not in given:
                self.out.add("lm", CIK.Property, detail="a declared LM", insert="lm = ", sort="2")
            return
        info = self._decl(callee)
        if info is not None and info[0] == "module":
            decl = info[1]
            for p in getattr(decl, "params", ()):
                if p.name.name in given:
                    continue
                ptype = self._source_of(p.type.span) if p.type is not None else "any"
                self.out.add(
                    p.name.name,
                    CIK.Variable,
                    detail=f"{p.name.name}: {ptype}",
                    insert=f"{p.name.name} = ",
                    sort="0",
                )

    # ---- after `.` ---------------------------------------------------------------------
    def _attribute(self) -> None:
        ctx = self.ctx
        toks = ctx.tokens
        start = _operand_start(toks, len(toks) - 1)
        if start is None or self.model is None:
            return
        dot = toks[-1]
        expr_text = self.doc.text[toks[start].start : dot.start]
        node, diag = parse_expr_text(expr_text, Origin(self.doc.path), 0)
        if diag is not None or node is None:
            return
        scope = self._scope()
        from dsx.grammar import ast

        if isinstance(node, ast.NameRef):
            name = node.name.name
            entry = scope.get(name)
            if entry is not None and entry.kind == "python":
                self._python_names(name)
                return
            decl = self._decl(name)
            if decl is not None and decl[0] == "enum":
                for m in decl[1].members:
                    self.out.add(m.name.name, CIK.EnumMember, detail=f"{name}.{m.name.name}")
                return
            if entry is None:
                # A local assigned since the last check: infer from its assignment.
                assigned = self._textual_local(name)
                if assigned is not None:
                    node = assigned
        t = self.model.type_of(node, scope)
        for m in self.model.members_of(t):
            self.out.add(
                m.name,
                CIK.Field,
                detail=m.detail,
                doc=m.doc,
                sort="0" if m.kind == "output" else "1",
            )

    def _textual_local(self, name: str) -> Any:
        block = self.doc.text[self.ctx.block_start : self.ctx.partial_start]
        value = None
        for m in _ASSIGN.finditer(block):
            if m.group(1) == name:
                value = m.group(2)
        if value is None:
            return None
        node, diag = parse_expr_text(value.strip(), Origin(self.doc.path), 0)
        return node if diag is None else None

    def _python_names(self, alias: str) -> None:
        assert self.model is not None
        imp = self.model.python_import(alias)
        if imp is None:
            return
        base = Path(self.doc.path).parent if not self.doc.path.startswith("<") else Path.cwd()
        path = _env.find_python_source(imp.module, base)
        defs = pysource.module_defs(path) if path is not None else None
        if defs is None:
            return
        # What the module defines (not what it imports: `annotations`, `os`, `Any`...).
        kinds = {"function": CIK.Function, "class": CIK.Class, "value": CIK.Variable}
        for name in sorted(defs):
            if name.startswith("_"):
                continue
            d = defs[name]
            self.out.add(name, kinds[d.kind], detail=d.signature, doc=d.doc or "", sort="1")

    # ---- shared pieces ----------------------------------------------------------------
    def _types(self) -> None:
        for name in _PRIMITIVES:
            self.out.add(name, CIK.TypeParameter, detail="built-in type", sort="1")
        for name, snippet in _GENERICS.items():
            self.out.add(name, CIK.TypeParameter, detail="generic type", snippet=snippet, sort="2")
        self._decl_names("type", CIK.Struct, sort="0")
        self._decl_names("enum", CIK.Enum, sort="0")

    def _module_kinds(self) -> None:
        for name, info in _env.KINDS.items():
            self.out.add(
                name,
                CIK.Class,
                detail="built-in module kind",
                doc=info.doc,
                insert=f"{name}(",
                sort="1",
            )
        self._decl_names("module", CIK.Module, sort="0", insert_suffix="(")

    def _expression(self, scope: Scope, *, keywords: bool = True) -> None:
        if self.model is None:
            return
        order = {"local": "0", "param": "1", "sub": "2", "result": "1", "python": "3"}
        for name, binding in scope.items():
            kind, label = binding.kind, binding.label
            if kind == "builtin":
                continue
            self.out.add(
                name,
                {
                    "local": CIK.Variable,
                    "param": CIK.Variable,
                    "sub": CIK.Method,
                    "python": CIK.Module,
                    "result": CIK.Variable,
                }.get(kind, CIK.Variable),
                detail=f"{kind}: {label}" if label else kind,
                sort=order.get(kind, "4"),
            )
        for name in self._textual_locals():
            self.out.add(name, CIK.Variable, detail="local", sort="0")
        for name in sorted(_env.BUILTIN_FUNCTIONS):
            self.out.add(name, CIK.Function, detail="built-in function", sort="8")
        if keywords:
            for lit in ("true", "false", "none", "not"):
                self.out.add(lit, CIK.Keyword, sort="9")

    def _textual_locals(self) -> list[str]:
        if not self.ctx.in_role("forward"):
            return []
        block = self.doc.text[self.ctx.block_start : self.ctx.partial_start]
        return [m.group(1) for m in _ASSIGN.finditer(block) if m.group(1) not in ("forward",)]

    def _python_aliases(self) -> None:
        if self.model is None:
            return
        for alias, imp in self.model.python_imports.items():
            self.out.add(alias, CIK.Module, detail=f'use python "{imp.module}"', sort="2")

    def _program_io(self, program: str, head: str, body: list[Tok]) -> None:
        if self.model is None:
            return
        io = self.model.program_io(program)
        inputs, outputs = (io.inputs, io.outputs) if io is not None else ({}, None)
        given = {
            body[i + 1].text
            for i, t in enumerate(body[:-1])
            if t.line_start and t.text == head and body[i + 1].kind == "name"
        }
        if head == "given":
            for name, item in inputs.items():
                if name not in given:
                    label = getattr(item, "type", None)
                    self.out.add(
                        name,
                        CIK.Field,
                        detail=f"input {name}: {label or 'any'}",
                        insert=f"{name} = ",
                        sort="0",
                    )
        else:
            for m in self.model.members_of(outputs):
                if m.name not in given:
                    self.out.add(
                        m.name,
                        CIK.Field,
                        detail=m.detail,
                        doc=m.doc,
                        insert=f"{m.name} = ",
                        sort="0",
                    )

    def _decl_names(
        self,
        kind: str,
        item_kind: types.CompletionItemKind,
        *,
        sort: str = "1",
        insert_suffix: str = "",
    ) -> None:
        if self.model is None:
            return
        for decl in self.model.declarations():
            name, k = decl.name, decl.kind
            if k != kind:
                continue
            sym = self.analysis.symbols.get(name)
            self.out.add(
                name,
                item_kind,
                detail=sym.detail if sym else kind,
                doc=sym.doc if sym else "",
                insert=name + insert_suffix if insert_suffix else None,
                sort=sort,
            )

    def _decl(self, name: str) -> tuple[str, Any] | None:
        if self.model is None:
            return None
        found = self.model.declaration(name)
        return (found.kind, found.node) if found is not None else None

    def _scope(self) -> Scope:
        ctx = self.ctx
        if self.model is None:
            return Scope.empty()
        if ctx.block_kind == "module" and ctx.block_name and ctx.in_role("forward"):
            return self.model.scope(ctx.block_name)
        if ctx.block_kind == "test":
            toks = ctx.tokens
            program = toks[3].text if len(toks) > 3 and toks[2].text == "for" else None
            return self.model.scope(test_program=program)
        if ctx.block_kind == "module" and ctx.block_name:
            return self._member_scope()
        return self.model.scope()

    def _member_scope(self) -> Scope:
        """Names usable in a member's construction: module parameters, other members."""
        if self.model is None or not self.ctx.block_name:
            return Scope.empty()
        return self.model.scope(self.ctx.block_name).filtered(
            lambda b: (
                b.kind in ("param", "sub", "python", "builtin")
                and not (b.key or "").count(".forward.")
            )
        )

    def _given_kwargs(self, open_index: int) -> set[str]:
        toks = self.ctx.tokens
        given: set[str] = set()
        depth = 0
        for j in range(open_index + 1, len(toks) - 1):
            t = toks[j]
            if t.text in ("(", "[", "{"):
                depth += 1
            elif t.text in (")", "]", "}"):
                depth -= 1
            elif (
                depth == 0
                and t.kind == "name"
                and toks[j + 1].text == "="
                and toks[j - 1].text in ("(", ",")
            ):
                given.add(t.text)
        return given

    def _after_colon(self) -> bool:
        """In a `name: |` type position of the current field / parameter."""
        seg = self.ctx.segment
        for t in reversed(seg):
            if t.text == ":":
                return True
            if t.text in ("=",) or t.kind == "str":
                return False
        return False

    def _after_equal(self) -> bool:
        return any(t.text == "=" for t in self.ctx.segment)

    def _source_of(self, span: Any) -> str:
        text = self.analysis.texts.get(span.file)
        return text[span.start : span.end] if text else ""


def _operand_start(toks: list[Tok], dot: int) -> int | None:
    """Index of the first token of the postfix expression ending just before ``dot``."""
    j = dot - 1
    if j < 0:
        return None
    while j >= 0:
        t = toks[j]
        if t.text in (")", "]"):
            depth = 0
            while j >= 0:
                if toks[j].text in (")", "]"):
                    depth += 1
                elif toks[j].text in ("(", "["):
                    depth -= 1
                    if depth == 0:
                        break
                j -= 1
            j -= 1  # the callee / indexed value before the bracket
            if j < 0 or (toks[j].kind not in ("name",) and toks[j].text not in (")", "]")):
                return None
            continue
        if t.kind in ("name", "str"):
            if j > 0 and toks[j - 1].text == "." and toks[j - 1].kind == "op":
                j -= 2
                continue
            return j
        return None
    return None


def _jsonable_default(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _dsx_constant(value: object) -> str:
    """A default as ``.dsx`` writes it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


_EXPR_KEYWORDS = frozenset({"in", "if", "else", "and", "or", "not", "is"})


def _in_comprehension_target(seg: list[Tok]) -> bool:
    """Whether ``seg`` ends in a comprehension clause's target: ``... for a, b``."""
    for i in range(len(seg) - 1, -1, -1):
        t = seg[i]
        if t.text == "for":
            return i < len(seg) - 1 and seg[-1].kind == "name"
        if (t.kind != "name" and t.text != ",") or t.text in _EXPR_KEYWORDS:
            return False
    return False
