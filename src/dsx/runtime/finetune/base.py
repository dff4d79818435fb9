"""One interface for fine-tuning providers: a job with a status, events, a result, cancel.

``dsx.LM(...).finetune(train_data, train_kwargs)`` picks a provider from the LM (see
:func:`provider_for`) and returns a :class:`FinetuneJob`. ``job.result()`` waits for the
job (polling with backoff) and returns the fine-tuned LM: a copy of the LM whose ``model``
is the new model and whose ``finetuned`` attribute is a :class:`FinetunedModel` reference
(provider, model, base model, data hash, job id) that the predictor's learned state keeps.
A failed job raises :class:`FinetuneFailed`, a cancelled one :class:`FinetuneCancelled`, a
wait past ``timeout`` :class:`FinetuneTimeout`; each says why.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dsx.errors import DsxError

if TYPE_CHECKING:
    from dsx.runtime.lm_base import BaseLM

__all__ = [
    "FinetuneCancelled",
    "FinetuneError",
    "FinetuneFailed",
    "FinetuneJob",
    "FinetuneProvider",
    "FinetuneTimeout",
    "FinetunedModel",
    "JobEvent",
    "JobStatus",
    "data_hash",
    "provider_for",
]

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
#: Statuses after which a job never changes.
FINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class FinetuneError(DsxError, RuntimeError):
    """A fine-tuning job could not be started or did not produce a model."""


class FinetuneFailed(FinetuneError):
    """The provider reports that the job failed; the message carries its reason."""


class FinetuneCancelled(FinetuneError):
    """The job was cancelled before it produced a model."""


class FinetuneTimeout(FinetuneError, TimeoutError):
    """The job did not finish within the time it was given (it may still be running)."""


@dataclass(frozen=True)
class JobEvent:
    """One line of a job's log, as the provider reports it."""

    created_at: float
    level: str
    message: str


@dataclass(frozen=True)
class FinetunedModel:
    """Where a fine-tuned model came from, as kept in learned state (no endpoint, no key).

    Attributes:
        provider: ``"openai"`` (an OpenAI-compatible API) or ``"local"`` (LoRA adapter).
        model: the model string to use (``"openai/ft:gpt-4o-mini:org::abc"``,
            ``"hf/<adapter directory>"``).
        base_model: the model that was fine-tuned.
        data_hash: sha256 of the training set (see ``dsx.teleprompt.finetune_data``).
        job_id: the provider's job id.
    """

    provider: str
    model: str
    base_model: str
    data_hash: str
    job_id: str = ""

    def to_state(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> FinetunedModel:
        return cls(**{k: str(data.get(k, "")) for k in cls.__dataclass_fields__})


class FinetuneJob:
    """A fine-tuning job. Providers implement :meth:`refresh`, :meth:`events`, :meth:`cancel`.

    Attributes:
        id: the provider's job id.
        provider: the provider's name.
        base_model: the model being fine-tuned.
        data_hash: the training set's hash.
        poll_interval: the first wait between two status checks (seconds); it grows by
            ``backoff`` up to ``max_poll_interval``.
        timeout: how long :meth:`result` waits by default (``None``: no limit).
    """

    provider = "?"

    def __init__(
        self,
        *,
        lm: BaseLM,
        job_id: str,
        base_model: str,
        data_hash: str,
        poll_interval: float = 1.0,
        max_poll_interval: float = 30.0,
        backoff: float = 1.5,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.lm = lm
        self.id = job_id
        self.base_model = base_model
        self.data_hash = data_hash
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.backoff = backoff
        self.timeout = timeout
        self._sleep = sleep
        self._status: str = "queued"
        self._error: str | None = None
        self._model: str | None = None
        #: How many status checks were made (for tests and progress lines).
        self.polls = 0

    # -- what providers implement -------------------------------------------------------
    def refresh(self) -> None:
        """Ask the provider for the job's status; sets ``_status``, ``_error``, ``_model``."""
        raise NotImplementedError

    def events(self) -> list[JobEvent]:
        """The job's events so far, oldest first."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Ask the provider to stop the job (a finished job stays as it is)."""
        raise NotImplementedError

    def model_string(self, name: str) -> str:
        """The LM model string for the provider's model name ``name``."""
        return name

    # -- shared -------------------------------------------------------------------------
    def status(self) -> str:
        """The job's current status (asks the provider unless the job has finished)."""
        if self._status not in FINAL:
            self.polls += 1
            self.refresh()
        return self._status

    @property
    def done(self) -> bool:
        return self._status in FINAL

    def wait(self, timeout: float | None = None) -> FinetunedModel:
        """Wait for the job; its model reference, or the error saying why there is none."""
        limit = self.timeout if timeout is None else timeout
        start = time.monotonic()
        delay = self.poll_interval
        while self.status() not in FINAL:
            waited = time.monotonic() - start
            if limit is not None and waited >= limit:
                raise FinetuneTimeout(
                    f"{self.provider} fine-tuning job {self.id} of {self.base_model} is still "
                    f"{self._status} after {waited:.1f} s (timeout={limit}); it may still be "
                    "running: wait on it again with job.result(timeout=...) or job.cancel()"
                )
            pause = delay if limit is None else min(delay, max(0.0, limit - waited))
            self._sleep(pause)
            delay = min(delay * self.backoff, self.max_poll_interval)
        if self._status == "failed":
            raise FinetuneFailed(
                f"{self.provider} fine-tuning job {self.id} of {self.base_model} failed: "
                f"{self._error or 'the provider gave no reason'}"
            )
        if self._status == "cancelled":
            raise FinetuneCancelled(
                f"{self.provider} fine-tuning job {self.id} of {self.base_model} was cancelled"
                + (f": {self._error}" if self._error else "")
            )
        if not self._model:
            raise FinetuneFailed(
                f"{self.provider} fine-tuning job {self.id} succeeded but names no model"
            )
        return FinetunedModel(
            provider=self.provider,
            model=self.model_string(self._model),
            base_model=self.base_model,
            data_hash=self.data_hash,
            job_id=self.id,
        )

    def result(self, timeout: float | None = None) -> BaseLM:
        """Wait for the job and return the fine-tuned LM (a copy of the LM trained)."""
        ref = self.wait(timeout)
        return fine_tuned_lm(self.lm, ref)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.base_model} {self._status}>"


def fine_tuned_lm(lm: BaseLM, ref: FinetunedModel) -> BaseLM:
    """A copy of ``lm`` that uses the fine-tuned model and remembers where it came from."""
    new = lm.copy(model=ref.model)
    new.finetuned = ref  # type: ignore[attr-defined]
    return new


class FinetuneProvider(Protocol):
    """Starts fine-tuning jobs for one kind of LM."""

    name: str

    def start(
        self,
        lm: BaseLM,
        train_data: Sequence[dict[str, Any]],
        train_kwargs: dict[str, Any],
        **options: Any,
    ) -> FinetuneJob: ...


def provider_for(lm: BaseLM, name: str | None = None) -> FinetuneProvider:
    """The provider that fine-tunes ``lm``: ``name`` if given (``"openai"``, ``"local"``),
    else the local LoRA provider for a :class:`~dsx.runtime.finetune.local.LocalLM` and the
    OpenAI-compatible API for every other LM."""
    if name is None:  # an LM class may name its own (LocalLM says "local")
        name = getattr(lm, "finetune_provider", "openai")
    if name == "openai":
        from dsx.runtime.finetune.openai import OpenAIFinetune

        return OpenAIFinetune()
    if name == "local":
        from dsx.runtime.finetune.local import LocalLoRA

        return LocalLoRA()
    raise FinetuneError(
        f"Unknown fine-tuning provider {name!r}; dsx has 'openai' (OpenAI-compatible "
        "fine-tuning API) and 'local' (LoRA with transformers + peft)"
    )


def data_hash(examples: Sequence[dict[str, Any]]) -> str:
    """A stable hash of a training set (its canonical JSON lines), for caching and state."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(example_line(example).encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def example_line(example: dict[str, Any]) -> str:
    """One training example as the JSON line written to a JSONL file."""
    return json.dumps(example, ensure_ascii=False, sort_keys=True, default=str)
