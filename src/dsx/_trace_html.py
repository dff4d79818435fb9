"""``dsx run --trace-html FILE``: a run's call tree as one self-contained HTML page.

:class:`TraceRecorder` is a callback that records every module, predictor, LM request, tool
call and sandbox execution with its parent, inputs, outputs, timing, tokens and cost;
:func:`render_html` turns the records into a page (inline CSS, no script, nothing fetched)
where each call is a collapsible ``<details>`` node.
"""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from dsx.runtime.callbacks import BaseCallback, active_call_id, raw_result

__all__ = ["Node", "TraceRecorder", "render_eval_html", "render_html"]

_MAX_TEXT = 20_000  # characters of one value shown in the page


@dataclass
class Node:
    """One recorded call."""

    call_id: str
    parent: str | None
    kind: str
    name: str
    start: float
    inputs: Any = None
    end: float | None = None
    outputs: Any = None
    error: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    cost: float | None = None
    model: str = ""
    cached: bool = False
    children: list[Node] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return ((self.end or self.start) - self.start) * 1000


class TraceRecorder(BaseCallback):
    """Records the calls of the runs it is a callback of (thread-safe)."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.roots: list[Node] = []
        self._lock = threading.Lock()

    def _open(self, call_id: str, kind: str, name: str, inputs: Any) -> None:
        node = Node(call_id, active_call_id(), kind, name, time.perf_counter(), inputs)
        with self._lock:
            self.nodes[call_id] = node
            parent = self.nodes.get(node.parent or "")
            (parent.children if parent is not None else self.roots).append(node)

    def _close(self, call_id: str, outputs: Any, exception: BaseException | None) -> None:
        node = self.nodes.get(call_id)
        if node is None:
            return
        node.end = time.perf_counter()
        node.outputs = outputs
        if exception is not None:
            node.error = f"{type(exception).__name__}: {exception}"

    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        from dsx.runtime.predict import Predict

        if isinstance(instance, Predict):
            self._open(call_id, "predictor", instance.signature.signature, inputs.get("kwargs"))
        else:
            self._open(call_id, "module", type(instance).__name__, inputs.get("kwargs"))

    def on_module_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._close(call_id, outputs, exception)

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._open(call_id, "lm", str(getattr(instance, "model", "LM")), inputs.get("messages"))

    def on_lm_end(self, call_id: str, outputs: Any, exception: BaseException | None = None) -> None:
        self._close(call_id, outputs, exception)
        node, response = self.nodes.get(call_id), raw_result()
        if node is not None and response is not None:
            node.usage = dict(getattr(response, "usage", None) or {})
            node.cost = getattr(response, "cost", None)
            node.model = getattr(response, "model", "") or node.name
            node.cached = bool(getattr(response, "cached", False))

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        self._open(call_id, "tool", str(getattr(instance, "name", "tool")), inputs.get("kwargs"))

    def on_tool_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        self._close(call_id, outputs, exception)

    def on_interpreter_execute_start(
        self, call_id: str, instance: Any, inputs: dict[str, Any]
    ) -> None:
        self._open(call_id, "sandbox", type(instance).__name__, inputs.get("code"))

    def on_interpreter_execute_end(
        self, call_id: str, outputs: Any, exception: BaseException | None = None
    ) -> None:
        shown = None
        if outputs is not None:
            shown = {
                k: getattr(outputs, k, None) for k in ("ok", "stdout", "stderr", "value", "error")
            }
        self._close(call_id, shown, exception)


def _text(value: Any) -> str:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        value = to_dict()
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, indent=2, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT] + f"\n… ({len(text) - _MAX_TEXT} more characters)"
    return html.escape(text)


def _messages(messages: Any) -> str:
    if not isinstance(messages, list):
        return f"<pre>{_text(messages)}</pre>"
    parts = []
    for msg in messages:
        role = html.escape(str(msg.get("role", "?"))) if isinstance(msg, dict) else "?"
        content = msg.get("content") if isinstance(msg, dict) else msg
        parts.append(f'<div class="msg"><b>{role}</b><pre>{_text(content)}</pre></div>')
    return "".join(parts)


def _node(node: Node) -> str:
    facts = [f"{node.ms:.1f} ms"]
    tokens = sum(v for k, v in node.usage.items() if k in ("prompt_tokens", "completion_tokens"))
    if tokens:
        facts.append(f"{tokens} tokens")
    if node.cost:
        facts.append(f"${node.cost:.6f}")
    if node.cached:
        facts.append("cached")
    status = "error" if node.error else "ok"
    head = (
        f'<summary><span class="kind {node.kind}">{node.kind}</span> '
        f"<b>{html.escape(node.name)}</b> <span class=facts>{' · '.join(facts)}</span></summary>"
    )
    body = []
    if node.kind == "lm":
        body.append(f"<h4>prompt</h4>{_messages(node.inputs)}")
        body.append(f"<h4>reply</h4><pre>{_text(node.outputs)}</pre>")
        if node.usage:
            body.append(f"<h4>usage</h4><pre>{_text(node.usage)}</pre>")
    else:
        body.append(f"<h4>inputs</h4><pre>{_text(node.inputs)}</pre>")
        if node.outputs is not None:
            body.append(f"<h4>outputs</h4><pre>{_text(node.outputs)}</pre>")
    if node.error:
        body.append(f'<p class="err">{html.escape(node.error)}</p>')
    children = "".join(_node(child) for child in node.children)
    return (
        f'<details open class="node {status}" data-kind="{node.kind}" data-call-id="{node.call_id}">'
        f"{head}<div class=body>{''.join(body)}{children}</div></details>"
    )


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em} .summary{margin-bottom:1em;color:#444}
details.node{border-left:3px solid #8ab;margin:.3em 0 .3em .6em;padding-left:.6em}
details.node.error{border-left-color:#c44} .body{margin-left:.4em}
summary{cursor:pointer} .facts{color:#666;font-size:.9em}
.kind{display:inline-block;min-width:5.5em;font-size:.8em;text-transform:uppercase;color:#fff;
background:#579;border-radius:3px;padding:0 .4em;text-align:center}
.kind.lm{background:#a65} .kind.predictor{background:#596} .kind.tool{background:#869}
.kind.sandbox{background:#777}
pre{background:#f6f6f6;padding:.5em;white-space:pre-wrap;word-break:break-word;margin:.2em 0}
h4{margin:.4em 0 0;font-size:.85em;color:#555} .msg b{font-size:.85em}
.err{color:#b22;font-weight:bold}
"""


def _walk(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    for node in nodes:
        out.append(node)
        out += _walk(node.children)
    return out


def render_html(recorder: TraceRecorder, *, title: str) -> str:
    """The page for everything ``recorder`` saw."""
    every = _walk(recorder.roots)
    lms = [n for n in every if n.kind == "lm"]
    tokens = sum(
        v for n in lms for k, v in n.usage.items() if k in ("prompt_tokens", "completion_tokens")
    )
    cost = sum(n.cost or 0.0 for n in lms)
    total = sum(n.ms for n in recorder.roots)
    summary = (
        f"{len(recorder.roots)} run(s) · {total:.1f} ms · {len(lms)} LM call(s) · "
        f"{tokens} tokens · ${cost:.6f}"
    )
    tree = "".join(_node(n) for n in recorder.roots) or "<p>No calls were recorded.</p>"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><div class=summary id=summary>{html.escape(summary)}</div>"
        f"{tree}</body></html>\n"
    )


def _example_nodes(recorder: TraceRecorder, result: Any) -> list[Node | None]:
    """Each finished example's program call, matched by its inputs (runs are concurrent)."""
    # Evaluate itself is not a node, so each example's program call is a root.
    free = [n for n in recorder.roots if n.kind in ("module", "predictor")]
    found: list[Node | None] = []
    for example, _, _ in result.results:
        inputs = dict(example.inputs().items()) if hasattr(example, "inputs") else {}
        match = next((n for n in free if n.inputs == inputs), None)
        if match is not None:
            free.remove(match)
        found.append(match)
    return found


def _histogram(latencies: list[float], bins: int = 10) -> str:
    if not latencies:
        return "<p>No latencies recorded.</p>"
    low, high = min(latencies), max(latencies)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in latencies:
        counts[min(bins - 1, int((value - low) / width))] += 1
    top = max(counts)
    rows = []
    for i, count in enumerate(counts):
        start = low + i * width
        bar = f'<span class=bar style="width:{count / top * 100:.0f}%"></span>'
        rows.append(
            f"<tr><td>{start:.0f} to {start + width:.0f} ms</td><td class=hist>{bar}</td>"
            f"<td>{count}</td></tr>"
        )
    return f'<table class="histogram" id=histogram>{"".join(rows)}</table>'


def render_eval_html(result: Any, recorder: TraceRecorder, *, title: str) -> str:
    """The page of an evaluation: score, the per-example table, the latency histogram."""
    nodes = _example_nodes(recorder, result)
    latencies = [n.ms for n in nodes if n is not None]
    rows = []
    for i, ((example, prediction, score), node) in enumerate(
        zip(result.results, nodes, strict=True)
    ):
        inputs = dict(example.inputs().items()) if hasattr(example, "inputs") else {}
        labels = dict(example.labels().items()) if hasattr(example, "labels") else {}
        outputs = prediction.to_dict() if hasattr(prediction, "to_dict") else prediction
        latency = f"{node.ms:.1f}" if node is not None else "-"
        tokens = ""
        if node is not None:
            lms = [n for n in _walk([node]) if n.kind == "lm"]
            tokens = str(
                sum(
                    v
                    for n in lms
                    for k, v in n.usage.items()
                    if k in ("prompt_tokens", "completion_tokens")
                )
            )
        rows.append(
            f"<tr><td>{i}</td><td><pre>{_text(inputs)}</pre></td><td><pre>{_text(outputs)}</pre></td>"
            f"<td><pre>{_text(labels)}</pre></td><td class=score>{score:g}</td>"
            f"<td>{latency}</td><td>{tokens}</td></tr>"
        )
    failures = "".join(
        f"<li>example {index}: {html.escape(f'{type(exc).__name__}: {exc}')}</li>"
        for index, _, exc in result.failures
    )
    summary = (
        f"score {result.score:.2f}% over {result.num_done} of {result.num_examples} example(s) · "
        f"{result.errors} error(s) · {result.elapsed:.2f} s · ${result.cost:.6f}"
    )
    table = (
        '<table class="examples" id=examples><tr><th>#</th><th>inputs</th><th>prediction</th>'
        f"<th>expected</th><th>score</th><th>ms</th><th>tokens</th></tr>{''.join(rows)}</table>"
    )
    css = _CSS + (
        "table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;"
        "padding:.2em .5em;vertical-align:top;text-align:left} .hist{width:24em}"
        ".bar{display:inline-block;height:.9em;background:#579} .score{font-weight:bold}"
    )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{css}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><div class=summary id=summary>{html.escape(summary)}</div>"
        f"<h2>Latency per example</h2>{_histogram(latencies)}"
        f"<h2>Examples</h2>{table}"
        + (f"<h2>Failures</h2><ul id=failures>{failures}</ul>" if failures else "")
        + "</body></html>\n"
    )
