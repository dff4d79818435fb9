"""Typed retrieval failures, under :class:`dsx.DsxError` like every dsx error.

Each also inherits the fitting builtin (``TimeoutError``, ``ConnectionError``,
``ValueError``) and says whether sending the same request again may succeed.
"""

from __future__ import annotations

from typing import ClassVar

from dsx.errors import DsxError

__all__ = [
    "RetrieverConnectionError",
    "RetrieverError",
    "RetrieverRequestError",
    "RetrieverResponseError",
    "RetrieverServerError",
    "RetrieverTimeoutError",
]


class RetrieverError(DsxError):
    """A retriever could not answer.

    Attributes:
        retriever: what was asked (``"ColBERTv2(http://host:8893/api/search)"``).
        status_code: the HTTP status, when a server answered with one.
        retryable: whether the same request may succeed when sent again.
        attempts: how many requests were made before giving up.
    """

    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        retriever: str | None = None,
        status_code: int | None = None,
        retryable: bool | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.retriever = retriever
        self.status_code = status_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.attempts = attempts

    def __str__(self) -> str:
        # OSError-derived subclasses would otherwise render as "[Errno ...]" tuples.
        return str(self.args[0]) if self.args else ""


class RetrieverTimeoutError(RetrieverError, TimeoutError):
    """No (complete) answer within the timeout. Retried with backoff."""

    default_retryable = True


class RetrieverConnectionError(RetrieverError, ConnectionError):
    """The server could not be reached, or dropped the connection. Retried with backoff."""

    default_retryable = True


class RetrieverServerError(RetrieverError):
    """The server failed (HTTP 5xx) or asked to slow down (429). Retried with backoff."""

    default_retryable = True


class RetrieverRequestError(RetrieverError, ValueError):
    """The server refused the request (HTTP 4xx other than 429). Not retried."""


class RetrieverResponseError(RetrieverError, ValueError):
    """The answer was not what the protocol promises (not JSON, no ``topk``, an error
    object). Malformed JSON is retried (it is transient in practice); an answer that says
    ``error`` is not."""
