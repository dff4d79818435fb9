"""DSPy's ``DummyLM``: dsx's scripted LM, answering in the active adapter's layout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dsx.runtime.adapters._values import format_output_value
from dsx.runtime.lm_base import LMResponse
from dsx.runtime.settings import settings
from dsx.testing import DummyLM as _DsxDummyLM
from dsx.testing._lms import format_answer

__all__ = ["DummyLM"]


class DummyLM(_DsxDummyLM):
    """A scripted LM (DSPy's ``dspy.utils.dummies.DummyLM``).

    Answers are dicts of output values, rendered in the layout of the adapter configured
    when the request is made: DSPy's ``[[ ## field ## ]]`` markers under
    ``dspy.ChatAdapter()`` (dsx's ``DSPyChatAdapter``), a JSON object when the request
    asks for JSON, dsx's markers otherwise. A string answer is sent as it is.

    Args:
        answers: a list of answers used in order, or a dict from a prompt substring to the
            answer for a request whose last message contains it.
        follow_examples: answer with the demo whose inputs match the request.
        adapter: DSPy's argument; accepted and unused (the active adapter decides).
    """

    def __init__(
        self,
        answers: Any = (),
        follow_examples: bool = False,
        adapter: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(answers, follow_examples=follow_examples, **kwargs)

    def forward(self, messages: list[dict[str, Any]], **kwargs: Any) -> LMResponse:
        from dsx.runtime.adapters.dspy_chat import DSPyChatAdapter

        if not isinstance(settings.adapter, DSPyChatAdapter) or "response_format" in kwargs:
            return super().forward(messages, **kwargs)
        n = int(kwargs.get("n") or 1)
        outputs = [_dspy_layout(self._next(messages)) for _ in range(n)]
        return LMResponse(outputs=outputs, model=self.model)


def _dspy_layout(answer: Any) -> str:
    if not isinstance(answer, Mapping):
        return format_answer(answer)
    parts = [f"[[ ## {name} ## ]]\n{format_output_value(v)}" for name, v in answer.items()]
    parts.append("[[ ## completed ## ]]")
    return "\n\n".join(parts)
