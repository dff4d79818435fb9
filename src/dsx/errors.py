"""The dsx exception tree.

Every error dsx raises derives from :class:`DsxError`; subclasses also inherit the
fitting builtin so that ``except ValueError`` keeps working for callers who expect it.
Messages say what went wrong, where, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AdapterParseError",
    "DsxError",
    "MissingInputError",
    "RealLMCallForbidden",
    "SignatureError",
    "StateError",
    "UnknownInputError",
]


class DsxError(Exception):
    """Root of every error raised by dsx."""


class SignatureError(DsxError, ValueError):
    """A signature (class or string form) is malformed."""


class MissingInputError(DsxError, TypeError):
    """A predictor was called without one of its required input fields."""


class UnknownInputError(DsxError, TypeError):
    """A predictor was called with an input its signature does not declare."""


class StateError(DsxError, ValueError):
    """Saved state does not fit the program it is loaded into."""


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
