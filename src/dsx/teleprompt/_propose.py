"""Grounded instruction proposal: the prompt model writes new instructions for each predictor.

What grounds a proposal (each part can be turned off):

* a **dataset summary** — the prompt model reads the trainset in batches and writes down
  what it observes (one call per batch, at most three batches);
* the **program's structure** — its predictors, their signatures, field descriptions and
  current instructions, written out from the program itself (no LM call);
* **demos** — a few input/output examples of the predictor from one bootstrapped demo set;
* a **tip** — a style hint drawn at random (seeded) from :data:`TIPS`;
* the **history** of the instructions already proposed for that predictor in this run,
  so the next one differs.

Everything is a dsx :class:`~dsx.Signature` called through :class:`~dsx.Predict`, so any dsx
LM works as the prompt model, scripted ones included. Proposals run one after another: each
sees the ones before it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any

from dsx.runtime.example import Example
from dsx.runtime.lm_base import BaseLM
from dsx.runtime.module import Module
from dsx.runtime.parallel import run_coroutine_sync
from dsx.runtime.predict import Predict
from dsx.runtime.signature import InputField, OutputField, Signature

__all__ = [
    "TIPS",
    "as_lm",
    "DescribeDataset",
    "GroundedProposer",
    "ProposeInstruction",
    "program_summary",
]

#: Style hints, one drawn per proposal (``"none"`` adds nothing).
TIPS: dict[str, str] = {
    "none": "",
    "creative": "Feel free to be inventive in how the instruction frames the task.",
    "simple": "Keep the instruction short and plain.",
    "description": "Make the instruction detailed and explicit about what a good answer is.",
    "high_stakes": "Frame the task as one where a wrong answer would be costly.",
    "persona": 'Open the instruction with a persona that fits the task ("You are a ...").',
}

MAX_HISTORY = 5
MAX_DEMOS = 3
MAX_DATA_BATCHES = 3


class DescribeDataset(Signature):
    """Read these examples from a dataset and write down what you notice about it: the kind
    of inputs, what the outputs look like, and any patterns that matter for solving the task.
    Extend the earlier observations if there are any."""

    examples: str = InputField(desc="a batch of examples, one per block")
    prior_observations: str = InputField(desc="what was noticed in earlier batches, if any")
    observations: str = OutputField(desc="a few sentences describing the dataset")


class ProposeInstruction(Signature):
    """You write instructions for one step of a program that calls a language model. Study the
    task described below, then write a new instruction for the named predictor that will make
    the language model solve its part of the task better. Reply with the instruction only."""

    dataset_description: str = InputField(desc="what the training data looks like")
    program_structure: str = InputField(desc="the program's predictors and their signatures")
    predictor: str = InputField(desc="the predictor the instruction is for")
    current_instruction: str = InputField(desc="the predictor's instruction today")
    task_demos: str = InputField(desc="examples of the predictor's inputs and outputs")
    previous_instructions: str = InputField(desc="instructions already proposed; differ from them")
    tip: str = InputField(desc="a hint on the style of the new instruction")
    proposed_instruction: str = OutputField(desc="the new instruction")


def as_lm(value: BaseLM | str | None, name: str) -> BaseLM | None:
    """An LM setting given as an LM or a model string (``"openai/gpt-4o-mini"``)."""
    if value is None or isinstance(value, BaseLM):
        return value
    if isinstance(value, str):
        from dsx.runtime.lm import LM

        return LM(value)
    raise TypeError(f"{name} takes a dsx LM or a model string, not {type(value).__name__}")


def program_summary(program: Module) -> str:
    """The program's structure as text: each predictor with its signature and instructions."""
    lines = [f"program {type(program).__name__}:"]
    for path, predictor in program.named_predictors():
        sig = predictor.signature
        lines.append(f"- predictor `{path}` ({type(predictor).__name__}): {sig.signature}")
        for name, f in sig.fields.items():
            if f.desc:
                lines.append(f"    {f.kind} `{name}`: {f.desc}")
        lines.append(f"    instructions: {sig.instructions}")
    return "\n".join(lines)


def _example_text(example: Example | dict[str, Any], keys: Sequence[str] | None = None) -> str:
    items = dict(example.items()) if isinstance(example, Example) else dict(example)
    shown = [k for k in (keys or items) if k in items and not k.startswith("dsx_")]
    return "\n".join(f"{k}: {_short(items[k])}" for k in shown)


def _short(value: Any, width: int = 300) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def clean_instruction(text: str) -> str:
    """The proposal without quotes or a leading label the model may have added."""
    text = text.strip()
    for label in ("Proposed Instruction:", "Instruction:", "New Instruction:"):
        if text.lower().startswith(label.lower()):
            text = text[len(label) :].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


class GroundedProposer:
    """Proposes instruction candidates for every predictor of a program.

    Args:
        prompt_model: the LM that writes (``None``: ``dsx.settings.lm``).
        trainset: the examples the dataset summary reads.
        rng: the seeded generator for tips and rollout ids.
        init_temperature: the temperature of proposal calls.
        view_data_batch_size: examples per dataset-summary call.
        data_aware, program_aware, tip_aware, fewshot_aware: which grounding to use.
        should_stop: returns a reason (a budget) to stop making calls, or ``None``.
        note: receives one line per failed call (the proposal goes on without it).
    """

    def __init__(
        self,
        *,
        prompt_model: BaseLM | None,
        trainset: Sequence[Example],
        rng: random.Random,
        init_temperature: float = 1.0,
        view_data_batch_size: int = 10,
        data_aware: bool = True,
        program_aware: bool = True,
        tip_aware: bool = True,
        fewshot_aware: bool = True,
        should_stop: Callable[[], str | None] = lambda: None,
        note: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.prompt_model = prompt_model
        self.trainset = list(trainset)
        self.rng = rng
        self.init_temperature = init_temperature
        self.view_data_batch_size = max(1, view_data_batch_size)
        self.data_aware = data_aware
        self.program_aware = program_aware
        self.tip_aware = tip_aware
        self.fewshot_aware = fewshot_aware
        self.should_stop = should_stop
        self.note = note
        self.data_summary = ""
        self._summarized = False
        #: Per proposal: predictor, tip, demo set, the instruction (``None`` if it failed).
        self.records: list[dict[str, Any]] = []

    def _predict(self, signature: type[Signature]) -> Predict:
        return Predict(
            signature,
            lm=self.prompt_model,
            temperature=self.init_temperature,
            rollout_id=self.rng.randrange(10**9),  # a fresh sample, not a cache hit
        )

    def summarize_data(self) -> str:
        """Observe the trainset batch by batch; the last observations are the summary."""
        observations = ""
        size = self.view_data_batch_size
        for start in range(0, min(len(self.trainset), size * MAX_DATA_BATCHES), size):
            if self.should_stop() is not None:
                break
            batch = self.trainset[start : start + size]
            text = "\n\n".join(_example_text(ex) for ex in batch)
            try:
                observations = self._predict(DescribeDataset)(
                    examples=text, prior_observations=observations or "(none yet)"
                ).observations
            except Exception as exc:  # the proposal goes on without a summary, as it must
                self.note(f"dataset summary failed: {type(exc).__name__}: {exc}")
                break
        self.data_summary = str(observations).strip()
        self._summarized = True
        return self.data_summary

    def propose(
        self,
        program: Module,
        demo_sets: Sequence[dict[str, list[Example]]] | None,
        n: int,
    ) -> dict[str, list[str]]:
        """Per predictor path: its current instruction, then up to ``n - 1`` new ones.

        Proposals are made in two waves, each wave's calls at once (for every predictor):
        the second wave sees the first wave's proposals as its history. Every random
        choice is drawn before a wave starts, in order, so the seed fixes the prompts.
        """
        if self.data_aware and not self._summarized:
            self.summarize_data()
        structure = program_summary(program) if self.program_aware else "(not shown)"
        predictors = list(program.named_predictors())
        found = {path: [p.signature.instructions] for path, p in predictors}
        wanted = max(0, n - 1)
        first = (wanted + 1) // 2
        for wave in (range(first), range(first, wanted)):
            if not wave or self.should_stop() is not None:
                continue
            jobs: list[tuple[str, dict[str, Any], Predict, dict[str, Any]]] = []
            for path, predictor in predictors:
                history = "\n".join(f"- {t}" for t in found[path][1:][-MAX_HISTORY:])
                for i in wave:
                    demo_set = demo_sets[i % len(demo_sets)] if demo_sets else None
                    tip_key = self.rng.choice(sorted(TIPS)) if self.tip_aware else "none"
                    demos = (demo_set or {}).get(path, []) if self.fewshot_aware else []
                    inputs = {
                        "dataset_description": self.data_summary or "(not available)",
                        "program_structure": structure,
                        "predictor": f"`{path}`: {predictor.signature.signature}",
                        "current_instruction": found[path][0],
                        "task_demos": "\n\n".join(
                            _example_text(d, list(predictor.signature.fields))
                            for d in demos[:MAX_DEMOS]
                        )
                        or "(none)",
                        "previous_instructions": history or "(none yet)",
                        "tip": TIPS[tip_key] or "(no tip)",
                    }
                    record = {"predictor": path, "tip": tip_key, "demo_set": i}
                    jobs.append((path, record, self._predict(ProposeInstruction), inputs))
            for (path, record, _, _), text in zip(jobs, self._run(jobs), strict=True):
                record["instruction"] = text or None
                self.records.append(record)
                if text and text not in found[path]:
                    found[path].append(text)
        return found

    def _run(self, jobs: list[tuple[str, dict[str, Any], Predict, dict[str, Any]]]) -> list[str]:
        """The proposals of one wave, all calls at once; a failed call proposes nothing."""

        async def one(path: str, predict: Predict, inputs: dict[str, Any]) -> str:
            try:
                pred = await predict.acall(**inputs)
                return clean_instruction(str(pred.proposed_instruction))
            except Exception as exc:  # one failed proposal costs one candidate
                self.note(f"proposal for `{path}` failed: {type(exc).__name__}: {exc}")
                return ""

        async def wave() -> list[str]:
            return list(await asyncio.gather(*(one(p, pr, i) for p, _, pr, i in jobs)))

        return run_coroutine_sync(wave)
