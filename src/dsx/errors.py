"""The dsx exception tree.

Every error dsx raises derives from :class:`DsxError`; subclasses also inherit the
fitting builtin so that ``except ValueError`` keeps working for callers who expect it.
Messages say what went wrong, where, and how to fix it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dsx._errors_base import DsxError

__all__ = [
    "AssertionFailed",
    "AdapterParseError",
    "AuthenticationError",
    "BadRequestError",
    "CacheLockedError",
    "ContextWindowExceededError",
    "DsxError",
    "InputTypeError",
    "LMConnectionError",
    "LMError",
    "LMResponseError",
    "LMTimeoutError",
    "MissingInputError",
    "ModelNotFoundError",
    "RateLimitError",
    "RealLMCallForbidden",
    "ReplyCutOffError",
    "ServerError",
    "SignatureError",
    "StateError",
    "UnknownInputError",
    "UnknownSettingError",
]


class SignatureError(DsxError, ValueError):
    """A signature (class or string form) is malformed."""


class MissingInputError(DsxError, TypeError):
    """A predictor was called without one of its required input fields."""


class InputTypeError(DsxError, TypeError):
    """A predictor input's value does not fit the input's declared type."""


class UnknownInputError(DsxError, TypeError):
    """A predictor was called with an input its signature does not declare."""


class UnknownSettingError(DsxError, TypeError):
    """``dsx.configure``/``dsx.context`` got a name that is not a setting."""


class StateError(DsxError, ValueError):
    """Saved state does not fit the program it is loaded into."""


class CacheLockedError(DsxError, TimeoutError):
    """Another process held the LM disk cache's lock for longer than ``lock_timeout``
    while the cache was being cleared."""


class RealLMCallForbidden(DsxError, RuntimeError):
    """A real LM request was made while ``dsx.testing`` forbids them."""


class AdapterParseError(DsxError, ValueError):
    """The LM's reply could not be parsed into the signature's output fields.

    Attributes:
        adapter: name of the adapter that tried to parse.
        field: the output field that failed, or ``None`` when the reply as a whole failed.
        lm_text: the raw text the LM returned.
        reason: why parsing failed.
    """

    def __init__(
        self, *, adapter: str, lm_text: str, reason: str, field: str | None = None
    ) -> None:
        self.adapter = adapter
        self.field = field
        self.lm_text = lm_text
        self.reason = reason
        where = f"field `{field}`" if field else "the reply"
        shown = lm_text if len(lm_text) <= 2000 else lm_text[:2000] + " …[truncated]"
        super().__init__(
            f"{adapter} could not parse {where}: {reason}\n--- LM reply ---\n{shown}\n---"
        )


# -- LM request failures -----------------------------------------------------------------


class LMError(DsxError):
    """An LM request failed. Raised by :class:`dsx.LM` after mapping the provider's error.

    Attributes:
        model: the model the request was for (``"openai/gpt-4o-mini"``).
        status_code: the HTTP status, when the provider answered with one.
        provider_message: the provider's own error text, quoted verbatim.
        retryable: whether sending the same request again may succeed.
        retry_after: seconds the provider asked to wait (``Retry-After``), when it said.
        attempts: how many requests were made before giving up.
    """

    #: Default of :attr:`retryable` for this kind of failure.
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status_code: int | None = None,
        provider_message: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status_code = status_code
        self.provider_message = provider_message
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.attempts = attempts

    def __str__(self) -> str:
        # OSError-derived subclasses would otherwise render as "[Errno ...]" tuples.
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ arguments are not in self.args; keep errors picklable
        # (they cross process boundaries in batch runs).
        state = {
            "model": self.model,
            "status_code": self.status_code,
            "provider_message": self.provider_message,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "attempts": self.attempts,
        }
        return (_rebuild_lm_error, (type(self), str(self), state))


def _rebuild_lm_error(cls: type[LMError], message: str, state: dict[str, Any]) -> LMError:
    return cls(message, **state)


class BadRequestError(LMError, ValueError):
    """The provider rejected the request as invalid (HTTP 400/422). Not retried."""


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus ``max_tokens``) does not fit the model's context window. Not retried."""


class AuthenticationError(LMError, PermissionError):
    """The API key is missing, wrong (HTTP 401) or lacks access (HTTP 403). Not retried."""


class ModelNotFoundError(LMError, LookupError):
    """The model or endpoint does not exist (HTTP 404). Not retried."""


class RateLimitError(LMError):
    """The provider is rate limiting this key (HTTP 429). Retried with backoff."""

    default_retryable = True


class ServerError(LMError):
    """The provider failed (HTTP 5xx). Retried with backoff."""

    default_retryable = True


class LMTimeoutError(LMError, TimeoutError):
    """No (complete) answer arrived within the timeout. Retried with backoff."""

    default_retryable = True


class LMConnectionError(LMError, ConnectionError):
    """The connection could not be made or was reset. Retried with backoff."""

    default_retryable = True


class LMResponseError(LMError):
    """The provider's answer was malformed (not JSON) or broke off mid-response.

    Retried with backoff: such failures are transient in practice.
    """

    default_retryable = True


class ReplyCutOffError(LMResponseError):
    """The model stopped before its reply was complete: the token limit
    (``finish_reason="length"``) or the provider's content filter
    (``finish_reason="content_filter"``). Not retried: the same request stops the same way.
    """

    default_retryable = False

    def __init__(
        self, message: str, *, finish_reason: str, lm_text: str = "", **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.finish_reason = finish_reason
        self.lm_text = lm_text


class AssertionFailed(DsxError, AssertionError):
    """A ``dsx.Assert`` (or an ``assert`` in a .dsx forward body) failed after its retries."""
