"""Fine-tuning data from a program's traces, with DSPy's ``BootstrapFinetune`` semantics.

A *trace record* is one run of the teacher on one trainset example: the score the metric
gave it and, per predictor call, ``(predictor path, inputs, outputs)``. From the records
that pass the metric, :func:`build_finetune_data` turns every call into one chat example in
the OpenAI fine-tuning format::

    {"messages": [{"role": "system", ...}, <demo turns>, {"role": "user", ...},
                  {"role": "assistant", "content": <the outputs as the adapter writes them>}]}

The messages are exactly what the *student's* predictor sends at inference (same adapter,
same instructions, same demos unless ``exclude_demos``), so the model learns the prompt it
will be asked with. ``multitask=True`` gives one data set per LM (every predictor that shares
it); ``False`` one per predictor. The order is shuffled with a fixed seed, as DSPy does.

Differences from DSPy 3.4.1, on purpose: a call is matched to its predictor by the
predictor's path (DSPy compares the call's position in the trace with the predictor's
index, so per-predictor data can pick the wrong calls when a predictor runs twice or out of
order), and the student's predictor renders the prompt (DSPy renders the teacher's).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsx.runtime.adapters.base import Adapter
from dsx.runtime.finetune.base import data_hash, example_line
from dsx.runtime.module import Module
from dsx.runtime.predict import Predict, default_adapter
from dsx.runtime.settings import settings

__all__ = [
    "FinetuneData",
    "TraceRecord",
    "build_finetune_data",
    "call_messages",
    "data_hash",
    "read_jsonl",
    "EXPORT_FORMATS",
    "convert_example",
    "write_jsonl",
]

#: One chat training example: ``{"messages": [...]}``.
ChatExample = dict[str, Any]


@dataclass
class TraceRecord:
    """One run of a program on one example.

    Attributes:
        example_index: the example's position in the trainset.
        score: the metric's score (``None``: no metric).
        passed: whether the run counts as successful (see ``BootstrapFinetune``).
        steps: per predictor call, ``(predictor path, inputs, outputs)`` in call order.
    """

    example_index: int
    score: float | None
    passed: bool
    steps: list[tuple[str, Mapping[str, Any], Any]] = field(default_factory=list)


@dataclass
class FinetuneData:
    """The training set of one fine-tuning job.

    Attributes:
        lm_key: which LM it trains (its index among the program's distinct LMs).
        predictors: the predictor paths whose calls it holds (and that get the result).
        examples: chat examples in the OpenAI fine-tuning format.
    """

    lm_key: int
    predictors: list[str]
    examples: list[ChatExample]

    @property
    def hash(self) -> str:
        return data_hash(self.examples)


def call_messages(
    predictor: Predict,
    inputs: Mapping[str, Any],
    outputs: Any,
    *,
    adapter: Adapter | None = None,
    exclude_demos: bool = False,
) -> ChatExample:
    """One predictor call as a chat example: the prompt ``predictor`` would send for
    ``inputs`` (through ``adapter``, default the one used at inference) and the answer."""
    adapter = adapter or settings.adapter or default_adapter()
    signature = predictor.signature
    demos = [] if exclude_demos else predictor.demos
    messages = adapter.format(signature, demos, inputs)
    values = outputs.to_dict() if hasattr(outputs, "to_dict") else dict(outputs)
    answer = adapter.format_outputs(adapter.prepare(signature), values)
    messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


def build_finetune_data(
    program: Module,
    records: Iterable[TraceRecord],
    *,
    multitask: bool = True,
    adapter: Adapter | Callable[[Predict], Adapter | None] | None = None,
    exclude_demos: bool = False,
    seed: int = 0,
) -> list[FinetuneData]:
    """The training sets for ``program``'s predictors from passing ``records``.

    Args:
        program: the student; its predictors render the prompts. Each needs its own LM
            when there is more than one LM (predictors without one use ``dsx.settings.lm``).
        records: trace records; those with ``passed=False`` are left out.
        multitask: one set per distinct LM (``True``) or one per predictor.
        adapter: the adapter to render with, or a function choosing one per predictor
            (``None``: ``dsx.settings.adapter``, else the default adapter).
        exclude_demos: render prompts without the predictors' demos.
        seed: seeds the shuffle of each set.
    """
    named = program.named_predictors()
    by_path = dict(named)
    lm_ids: dict[int, int] = {}
    groups: dict[tuple[int, str | None], list[str]] = {}
    for path, pred in named:
        lm = pred.lm if pred.lm is not None else settings.lm
        lm_key = lm_ids.setdefault(id(lm), len(lm_ids))
        groups.setdefault((lm_key, None if multitask else path), []).append(path)
    group_of = {path: key for key, paths in groups.items() for path in paths}
    out = {key: FinetuneData(key[0], paths, []) for key, paths in groups.items()}
    adapters: dict[str, Adapter | None] = {}
    for record in records:
        if not record.passed:
            continue
        for path, inputs, outputs in record.steps:
            found = by_path.get(path)
            if found is None:  # a predictor outside the program (an LM judge, a sub-program)
                continue
            pred = found
            if path not in adapters:
                adapters[path] = _adapter_for(adapter, pred)
            example = call_messages(
                pred, inputs, outputs, adapter=adapters[path], exclude_demos=exclude_demos
            )
            out[group_of[path]].examples.append(example)
    for key, data in out.items():
        random.Random(f"dsx-finetune:{seed}:{key[0]}:{key[1]}").shuffle(data.examples)
    return list(out.values())


def _adapter_for(choice: Any, pred: Predict) -> Adapter | None:
    if choice is None or isinstance(choice, Adapter):
        return choice
    return choice(pred)


#: The JSONL layouts :func:`write_jsonl` writes, by name.
EXPORT_FORMATS = ("openai", "gemini", "anthropic", "prompt_completion")


def write_jsonl(
    examples: Sequence[ChatExample], path: str | os.PathLike[str], format: str = "openai"
) -> Path:
    """Write a training set as JSONL for a fine-tuning provider; returns the path.

    ``format``: ``"openai"`` (``{"messages": [...]}``: OpenAI and the many services that
    take its chat format — Together, Fireworks, Azure OpenAI, Mistral), ``"gemini"``
    (Vertex AI / Gemini tuning: ``systemInstruction`` and ``contents`` with ``user`` and
    ``model`` parts), ``"anthropic"`` (Claude on Amazon Bedrock: ``system`` and
    ``messages``), ``"prompt_completion"`` (``{"prompt", "completion"}``, the chat turns
    before the last reply as text, as Hugging Face TRL's SFT takes it).
    Export-only users stop here.
    """
    from dsx.runtime._files import atomic_write

    if format not in EXPORT_FORMATS:
        raise ValueError(f"write_jsonl(format={format!r}): use one of {', '.join(EXPORT_FORMATS)}")
    path = Path(path)
    lines = (example_line(convert_example(e, format)) + "\n" for e in examples)
    atomic_write(path, "".join(lines))
    return path


def convert_example(example: ChatExample, format: str) -> dict[str, Any]:
    """One OpenAI-chat training example in another provider's layout (see
    :func:`write_jsonl`)."""
    messages = list(example["messages"])
    if format == "openai":
        return {"messages": messages}
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    if format == "gemini":
        out: dict[str, Any] = {
            "contents": [
                {
                    "role": "model" if m["role"] == "assistant" else "user",
                    "parts": [{"text": m["content"]}],
                }
                for m in turns
            ]
        }
        if system:
            out["systemInstruction"] = {"role": "system", "parts": [{"text": system}]}
        return out
    if format == "anthropic":
        out = {"messages": [{"role": m["role"], "content": m["content"]} for m in turns]}
        if system:
            out["system"] = system
        return out
    # prompt_completion: everything before the last reply is the prompt
    if not turns or turns[-1]["role"] != "assistant":
        raise ValueError("a training example must end with the assistant's reply")
    shown = ([f"system: {system}"] if system else []) + [
        f"{m['role']}: {m['content']}" for m in turns[:-1]
    ]
    return {"prompt": "\n\n".join(shown) + "\n\nassistant: ", "completion": turns[-1]["content"]}


def read_jsonl(path: str | os.PathLike[str]) -> list[ChatExample]:
    """Read a training set written by :func:`write_jsonl`."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
