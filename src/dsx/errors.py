"""The dsx exception tree.

Every error dsx raises derives from :class:`DsxError`; subclasses also inherit the
fitting builtin so that ``except ValueError`` keeps working for callers who expect it.
Messages say what went wrong, where, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    "LMUnexpectedError",
    "LMResponseError",
    "LMTimeoutError",
    "MissingInputError",
    "ModelNotFoundError",
    "NO_LM_MESSAGE",
    "NoLMError",
    "RateLimitError",
    "RealLMCallForbidden",
    "ReplyCutOffError",
    "ServerError",
    "SignatureError",
    "StateError",
    "UnknownInputError",
    "UnknownSettingError",
    "format_error_for_lm",
    "is_retryable_lm_error",
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


#: What a command (``dsx run``, ``dsx build``, ...) says when it needs an LM and none was named.
NO_LM_MESSAGE = (
    "no LM: pass --lm MODEL (a litellm model string, e.g. openai/gpt-4o-mini, or `local` "
    "for the local model on this machine) or set DSX_LM"
)


class NoLMError(DsxError):
    """A command needs an LM and none was named."""

    def __init__(self, message: str = NO_LM_MESSAGE) -> None:
        super().__init__(message)


class StateError(DsxError, ValueError):
    """Saved state does not fit the program it is loaded into."""


class CacheLockedError(DsxError, TimeoutError):
    """Another process held the LM disk cache's lock for longer than ``lock_timeout``
    while the cache was being cleared."""


class RealLMCallForbidden(DsxError, RuntimeError):
    """A real LM request was made while ``dsx.testing`` forbids them."""


class AdapterParseError(DsxError, ValueError):
    """The LM's reply could not be parsed into the signature's output fields.

    Takes DSPy's arguments (``adapter_name``, ``signature``, ``lm_response``, ``message``,
    ``parsed_result``) as well as dsx's keyword form (``adapter=``, ``lm_text=``,
    ``reason=``, ``field=``).

    Attributes:
        adapter: name of the adapter that tried to parse (also ``adapter_name``).
        signature: the signature whose outputs were expected, when known.
        field: the output field that failed, or ``None`` when the reply as a whole failed.
        lm_text: the raw text the LM returned (also ``lm_response``).
        reason: why parsing failed (also ``message``).
        parsed_result: the fields parsed before the failure, when known.
        code: ``"adapter_parse_error"``.
    """

    code = "adapter_parse_error"

    def __init__(
        self,
        adapter_name: str | None = None,
        signature: Any = None,
        lm_response: str | None = None,
        message: str | None = None,
        parsed_result: Any = None,
        *,
        adapter: str | None = None,
        lm_text: str | None = None,
        reason: str | None = None,
        field: str | None = None,
    ) -> None:
        self.adapter = self.adapter_name = adapter_name or adapter or "the adapter"
        self.signature = signature
        self.field = field
        text = lm_response if lm_response is not None else lm_text
        self.lm_text = self.lm_response = "" if text is None else str(text)
        self.reason = reason if reason is not None else (message or "the reply does not fit")
        self.message = self.reason
        self.parsed_result = parsed_result
        where = f"field `{field}`" if field else "the reply"
        shown = self.lm_text
        shown = shown if len(shown) <= 2000 else shown[:2000] + " …[truncated]"
        expected = ""
        outputs = getattr(signature, "output_fields", None)
        if outputs is not None and not field:
            expected = f" (expected the outputs {', '.join(f'`{n}`' for n in outputs)})"
        if isinstance(parsed_result, Mapping) and parsed_result:
            expected += f" (parsed so far: {', '.join(f'`{n}`' for n in parsed_result)})"
        super().__init__(
            f"{self.adapter} could not parse {where}: {self.reason}{expected}\n"
            f"--- LM reply ---\n{shown}\n---"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments are not in self.args; keep the error picklable (batch runs
        # send errors across processes). The signature class travels only by reference.
        return (
            _rebuild_parse_error,
            (self.adapter, self.lm_text, self.reason, self.field, self.parsed_result),
        )


def _rebuild_parse_error(
    adapter: str, lm_text: str, reason: str, field: str | None, parsed: Any
) -> AdapterParseError:
    return AdapterParseError(
        adapter=adapter, lm_text=lm_text, reason=reason, field=field, parsed_result=parsed
    )


# -- LM request failures -----------------------------------------------------------------


class LMError(DsxError):
    """An LM request failed. Raised by :class:`dsx.LM` after mapping the provider's error.

    Every argument is optional, as in DSPy (``RateLimitError(model="openai/gpt-4o")``);
    without a message the class's own description is used.

    Attributes:
        message: what went wrong (the text of the error).
        code: a stable name for the kind of failure (``"rate_limit"``, ``"timeout"``,
            ``"server"``, ...), DSPy's codes where DSPy has one.
        model: the model the request was for (``"openai/gpt-4o-mini"``).
        provider: the provider or backend that failed (``"openai"``), when known.
        provider_code: the provider's own error code (``"rate_limit_exceeded"``), when given.
        status_code: the HTTP status, when the provider answered with one (also ``status``).
        request_id: the provider's request id, when it sent one.
        provider_message: the provider's own error text, quoted verbatim.
        retryable: whether sending the same request again may succeed.
        retry_after: seconds the provider asked to wait (``Retry-After``), when it said.
        attempts: how many requests were made before giving up.
    """

    #: Default of :attr:`retryable` for this kind of failure.
    default_retryable: ClassVar[bool] = False
    #: Default of :attr:`code` for this kind of failure.
    default_code: ClassVar[str] = "lm_error"

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        provider_code: str | None = None,
        status_code: int | None = None,
        status: int | None = None,
        request_id: str | None = None,
        provider_message: str | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        attempts: int = 1,
    ) -> None:
        if not message:
            message = _default_message(type(self), model)
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.model = model
        self.provider = provider
        self.provider_code = provider_code
        self.status_code = status_code if status_code is not None else status
        self.request_id = request_id
        self.provider_message = provider_message
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.attempts = attempts

    @property
    def status(self) -> int | None:
        """The HTTP status (DSPy's name for :attr:`status_code`)."""
        return self.status_code

    def __str__(self) -> str:
        # OSError-derived subclasses would otherwise render as "[Errno ...]" tuples.
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ arguments are not in self.args; keep errors picklable
        # (they cross process boundaries in batch runs).
        state = {
            "code": self.code,
            "model": self.model,
            "provider": self.provider,
            "provider_code": self.provider_code,
            "status_code": self.status_code,
            "request_id": self.request_id,
            "provider_message": self.provider_message,
            "retryable": self.retryable,
            "retry_after": self.retry_after,
            "attempts": self.attempts,
        }
        return (_rebuild_lm_error, (type(self), str(self), state))


def _default_message(cls: type[LMError], model: str | None) -> str:
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ").replace("``", "")
    text = doc.split(". ")[0].rstrip(".") if doc else "The LM request failed"
    return f"{model}: {text}" if model else text


def _rebuild_lm_error(cls: type[LMError], message: str, state: dict[str, Any]) -> LMError:
    error = cls.__new__(cls)
    own = {k: v for k, v in state.items() if k in _LM_ERROR_FIELDS}
    LMError.__init__(error, message, **own)
    for key, value in state.items():  # subclasses' own fields (finish_reason, ...)
        if key not in own:
            setattr(error, key, value)
    return error


_LM_ERROR_FIELDS = frozenset(
    {
        "code",
        "model",
        "provider",
        "provider_code",
        "status_code",
        "request_id",
        "provider_message",
        "retryable",
        "retry_after",
        "attempts",
    }
)


class BadRequestError(LMError, ValueError):
    """The provider rejected the request as invalid (HTTP 400/422). Not retried."""

    default_code = "invalid_request"


class ContextWindowExceededError(BadRequestError):
    """The prompt (plus ``max_tokens``) does not fit the model's context window. Not retried."""

    default_code = "context_window_exceeded"


class AuthenticationError(LMError, PermissionError):
    """The API key is missing, wrong (HTTP 401) or lacks access (HTTP 403). Not retried."""

    default_code = "auth"


class ModelNotFoundError(LMError, LookupError):
    """The model or endpoint does not exist (HTTP 404). Not retried."""

    default_code = "unsupported_model"


class RateLimitError(LMError):
    """The provider is rate limiting this key (HTTP 429). Retried with backoff."""

    default_retryable = True
    default_code = "rate_limit"


class ServerError(LMError):
    """The provider failed (HTTP 5xx). Retried with backoff."""

    default_retryable = True
    default_code = "server"


class LMTimeoutError(LMError, TimeoutError):
    """No (complete) answer arrived within the timeout. Retried with backoff."""

    default_retryable = True
    default_code = "timeout"


class LMConnectionError(LMError, ConnectionError):
    """The connection could not be made or was reset. Retried with backoff."""

    default_retryable = True
    default_code = "transport"


class LMResponseError(LMError):
    """The provider's answer was malformed (not JSON) or broke off mid-response.

    Retried with backoff: such failures are transient in practice.
    """

    default_retryable = True
    default_code = "malformed_response"


class ReplyCutOffError(LMResponseError):
    """The model stopped before its reply was complete: the token limit
    (``finish_reason="length"``) or the provider's content filter
    (``finish_reason="content_filter"``). Not retried: the same request stops the same way.
    """

    default_retryable = False
    default_code = "reply_cut_off"

    def __init__(
        self, message: str = "", *, finish_reason: str = "length", lm_text: str = "", **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.finish_reason = finish_reason
        self.lm_text = lm_text

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild, (cls, message, state) = super().__reduce__()
        return (
            rebuild,
            (cls, message, {**state, "finish_reason": self.finish_reason, "lm_text": self.lm_text}),
        )


class LMUnexpectedError(LMError):
    """The LM failed in a way dsx does not classify (an LM subclass or a provider SDK
    raised something unknown). The original exception is the cause (``__cause__``).
    Not retried: nothing says the same request would succeed.
    """

    default_code = "unexpected"


def is_retryable_lm_error(error: BaseException) -> bool:
    """Whether sending the same LM request again may succeed.

    True for rate limits, timeouts, server errors, dropped connections and malformed
    answers (each error's :attr:`LMError.retryable`); False for everything else, including
    exceptions that are not LM errors.
    """
    return isinstance(error, LMError) and bool(error.retryable)


def format_error_for_lm(error: BaseException, *, traceback_frames: int = 0) -> str:
    """An exception as text to show an LM (agents feed tool and code failures back).

    Args:
        error: the exception.
        traceback_frames: with 0 (the default) only the exception's message; with more,
            the exception's type and message after a traceback of at most that many frames,
            starting on a new line.
    """
    if traceback_frames <= 0:
        return str(error) or type(error).__name__
    import traceback

    lines = traceback.format_exception(
        type(error), error, error.__traceback__, limit=traceback_frames
    )
    return "\n" + "".join(lines).strip()


class AssertionFailed(DsxError, AssertionError):
    """A ``dsx.Assert`` (or an ``assert`` in a .dsx forward body) failed after its retries."""
