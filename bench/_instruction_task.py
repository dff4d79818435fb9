"""The scripted prompt-sensitive task shared by both sides of bench/instruction_optimizers.py.

Plain data, no framework import: the dsx worker and the DSPy worker each load it in their
own interpreter. See bench/instruction_optimizers.py for what the task LM and the prompt
LM answer.
"""

from __future__ import annotations

#: The prompt model's fixed cycle of proposals; only the third makes the task LM answer.
PROPOSALS = [
    "Echo the text back exactly.",
    "Answer carefully and concisely.",
    "Write the text in UPPERCASE letters.",
    "Repeat the input word.",
    "Think about the word first.",
]
WORDS = [f"word{i}" for i in range(40)]
#: trainset = WORDS[:10], valset = WORDS[10:30], held-out = WORDS[30:].
TRAIN, VAL, HELD_OUT = slice(0, 10), slice(10, 30), slice(30, 40)
START_INSTRUCTION = "Repeat the text."

#: Each row: the optimizer and the settings both sides use (same names in dsx and DSPy).
ROWS: dict[str, dict[str, object]] = {
    "MIPROv2": {"auto": None, "num_candidates": 5, "num_trials": 10, "minibatch": False},
    "MIPROv2-minibatch": {
        "auto": None,
        "num_candidates": 5,
        "num_trials": 10,
        "minibatch": True,
        "minibatch_size": 8,
    },
    "COPRO": {"breadth": 4, "depth": 3},
    "GEPA": {"max_metric_calls": 150, "use_merge": False},
    "SIMBA": {"bsize": 8, "num_candidates": 4, "max_steps": 4},
}


def works(instruction: str, n_messages: int, temperature: object, rollout_id: object) -> bool:
    """Whether the scripted task LM answers correctly (the same rule on both sides)."""
    lucky = temperature == 1.0 and isinstance(rollout_id, int) and rollout_id % 2 == 1
    return "uppercase" in instruction.lower() or n_messages > 2 or lucky


def lm_rounds(starts: list[float], latency: float) -> int:
    """Sequential LM round-trips in a run: calls that start within half a latency of a
    round's first call belong to it (each scripted call sleeps ``latency``, so a call that
    waited for another's answer starts at least a latency later). Counted the same way on
    both sides; unlike the wall time it barely moves with the machine's load."""
    rounds, first = 0, None
    for start in sorted(starts):
        if first is None or start - first > latency / 2:
            rounds, first = rounds + 1, start
    return rounds
