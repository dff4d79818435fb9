"""Inlay hints: the type the checker inferred for each local variable of a ``forward`` body
or test, shown after the name where it is first assigned (``query: str = rewrite(...)``).

A local holding a predictor's result shows ``: Prediction`` (the tooltip names the
predictor); one whose type is not known (``any``, a Python function's result) shows
nothing.
"""

from __future__ import annotations

from lsprotocol import types

from dsx.lsp.state import Document, Session

__all__ = ["inlay_hints"]

#: At most this many characters of a type are shown (the tooltip has it whole).
MAX_LABEL = 40


def inlay_hints(session: Session, doc: Document, rng: types.Range) -> list[types.InlayHint]:
    analysis = session.analyze(doc)
    codec = doc.codec(session.encoding)
    lo, hi = codec.to_offsets(rng)
    text = doc.text
    out: list[tuple[int, types.InlayHint]] = []
    for sym in analysis.symbols.values():
        if sym.kind != "local" or sym.span.file != doc.path:
            continue
        end = sym.span.end
        if not lo <= end <= hi or text[end : end + 1] == ":":  # outside, or typed already
            continue
        _, sep, type_text = sym.detail.partition(": ")
        if not sep or type_text in ("", "any", "unknown"):
            continue
        tooltip = None
        if type_text.startswith("prediction of"):
            label, tooltip = "Prediction", type_text
        elif len(type_text) > MAX_LABEL:
            label, tooltip = type_text[: MAX_LABEL - 1] + "…", type_text
        else:
            label = type_text
        out.append(
            (
                end,
                types.InlayHint(
                    position=codec.position(end),
                    label=f": {label}",
                    kind=types.InlayHintKind.Type,
                    tooltip=tooltip,
                    padding_left=False,
                ),
            )
        )
    out.sort(key=lambda pair: pair[0])
    return [hint for _, hint in out]
