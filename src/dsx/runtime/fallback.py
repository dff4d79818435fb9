"""A fallback policy over LMs: try each in order until one answers.

``FallbackLM([primary, backup], retries=1)`` is an LM (a :class:`BaseLM`), so a predictor,
``dsx.configure`` or ``dsx.context`` take it like any other. A request goes to the first LM;
when it fails with a *retryable* error (a rate limit, a 5xx, a timeout, a dropped
connection — :attr:`dsx.errors.LMError.retryable`, after that LM's own ``num_retries``),
the same request goes to the next. A non-retryable failure (a bad request, a missing key,
a refused prompt) is raised at once: another model would fail the same way or mask a bug.
When every LM failed, the whole chain is tried again up to ``retries`` more times; then
:class:`AllLMsFailedError` says what each LM answered.

The ``.dsx`` form is ``lm robust = fallback(fast, local) { retries = 2 }`` (see
docs/language.md, "Resources").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsx.errors import LMError
from dsx.runtime.lm_base import BaseLM, LMResponse

__all__ = ["AllLMsFailedError", "FallbackLM"]

Message = dict[str, Any]


class AllLMsFailedError(LMError):
    """Every LM of a fallback chain failed with a retryable error.

    Attributes:
        failures: ``(model, error)`` for each attempt, in order.
    """

    default_retryable = True
    default_code = "all_lms_failed"

    def __init__(self, message: str = "", *, failures: Sequence[tuple[str, LMError]] = ()) -> None:
        last = failures[-1][1] if failures else None
        super().__init__(
            message,
            model=last.model if last is not None else None,
            status_code=last.status_code if last is not None else None,
            attempts=sum(e.attempts for _, e in failures) or 1,
        )
        self.failures = list(failures)


class FallbackLM(BaseLM):
    """Tries ``lms`` in order on retryable errors; see the module docstring.

    Args:
        lms: the LMs, first choice first (at least one; each keeps its own settings,
            endpoint and ``num_retries``).
        retries: how many more times to go through the whole chain after every LM
            failed with a retryable error (``0``: once through).
        name: how the chain is named in history and errors (default ``fallback(a, b)``).

    Example:
        >>> lm = dsx.FallbackLM([dsx.LM("openai/gpt-4o-mini"), dsx.LM("anthropic/claude-3-5-haiku")])
        >>> dsx.configure(lm=lm)
    """

    def __init__(self, lms: Sequence[BaseLM], *, retries: int = 0, name: str | None = None) -> None:
        lms = list(lms)
        if not lms:
            raise ValueError("FallbackLM needs at least one LM, e.g. FallbackLM([primary, backup])")
        for i, lm in enumerate(lms):
            if not isinstance(lm, BaseLM):
                raise TypeError(f"FallbackLM: lms[{i}] is {type(lm).__name__}, not an LM")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"FallbackLM: retries must be a whole number >= 0, got {retries!r}")
        model = name or "fallback(" + ", ".join(lm.model for lm in lms) + ")"
        super().__init__(model, model_type=lms[0].model_type)
        self.lms = lms
        self.retries = retries

    def _order(self) -> list[BaseLM]:
        return self.lms * (self.retries + 1)

    def forward(self, messages: list[Message], **params: Any) -> LMResponse:
        failures: list[tuple[str, LMError]] = []
        for lm in self._order():
            try:
                return lm.forward(messages, **{**lm.kwargs, **params})
            except LMError as exc:
                if not exc.retryable:
                    raise
                failures.append((lm.model, exc))
        raise self._failed(failures)

    async def aforward(self, messages: list[Message], **params: Any) -> LMResponse:
        failures: list[tuple[str, LMError]] = []
        for lm in self._order():
            try:
                return await lm.aforward(messages, **{**lm.kwargs, **params})
            except LMError as exc:
                if not exc.retryable:
                    raise
                failures.append((lm.model, exc))
        raise self._failed(failures)

    def _failed(self, failures: list[tuple[str, LMError]]) -> AllLMsFailedError:
        lines = "; ".join(f"{model}: {exc}" for model, exc in failures)
        rounds = f" ({self.retries + 1} rounds)" if self.retries else ""
        return AllLMsFailedError(
            f"{self.model}: every LM failed{rounds}: {lines}. Check that the endpoints are up, "
            "or add another LM to the chain.",
            failures=failures,
        )

    def copy(self, **kwargs: Any) -> FallbackLM:
        """A new chain whose LMs are copied with ``kwargs`` (request settings such as
        ``temperature``); ``model`` and ``model_type`` name the chain and are kept."""
        kwargs.pop("model", None)
        kwargs.pop("model_type", None)
        lms = [lm.copy(**kwargs) for lm in self.lms] if kwargs else list(self.lms)
        return FallbackLM(lms, retries=self.retries, name=self.model)

    def dump_state(self) -> dict[str, Any]:
        """The chain's name only: what each LM is and where it sends requests is set by
        the program, never by saved state."""
        return {"model": self.model, "model_type": self.model_type}

    def __repr__(self) -> str:
        return f"FallbackLM({[lm.model for lm in self.lms]!r}, retries={self.retries})"
