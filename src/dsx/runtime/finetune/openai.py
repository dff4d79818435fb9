"""Fine-tuning through the OpenAI-compatible REST API.

The flow is the documented one: upload the JSONL training file (``POST /files``, purpose
``fine-tune``), create a job (``POST /fine_tuning/jobs``), poll it (``GET
/fine_tuning/jobs/{id}``) with backoff until it succeeds, fails or is cancelled, read its
events (``GET .../events``) and cancel it (``POST .../cancel``). The LM's endpoint and key
are used (``api_base``, ``api_key``, or the provider's environment variables); the
resulting model is ``openai/<fine_tuned_model>``.

``train_kwargs`` keys: ``suffix``, ``seed``, ``validation_file`` and ``method`` go to the job
as they are; every other key (``n_epochs``, ``batch_size``, ``learning_rate_multiplier``) is
a hyperparameter.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from dsx.runtime.finetune.base import FinetuneError, FinetuneJob, JobEvent, data_hash, example_line

if TYPE_CHECKING:
    from dsx.runtime.lm_base import BaseLM

__all__ = ["OpenAIFinetune", "OpenAIFinetuneJob"]

_JOB_KEYS = frozenset({"suffix", "seed", "validation_file", "method", "metadata"})
_DEFAULT_BASE = "https://api.openai.com/v1"
#: Retries of an idempotent call after a 429, a 5xx or a network failure.
_RETRIES = 3


class _Client:
    """The few REST calls the flow needs, with the LM's endpoint and key."""

    def __init__(self, lm: BaseLM, *, request_timeout: float = 60.0) -> None:
        import httpx

        base = getattr(lm, "api_base", None) or os.environ.get("OPENAI_BASE_URL")
        base = base or os.environ.get("OPENAI_API_BASE") or _DEFAULT_BASE
        lm.check_allowed(base)  # dsx.testing's switch against real requests applies
        key = getattr(lm, "api_key", None) or os.environ.get("OPENAI_API_KEY") or "none"
        self.base = base.rstrip("/")
        self.http = httpx.Client(
            headers={"Authorization": f"Bearer {key}"}, timeout=request_timeout
        )

    def call(self, method: str, path: str, *, retries: int = 0, **kwargs: Any) -> dict[str, Any]:
        """One REST call. Idempotent ones (status, events, cancel) pass ``retries``: a 429,
        a 5xx or a network failure is tried again after 0.5, 1, 2 ... s, so that one
        hiccup during hours of polling does not give up on a running job."""
        import httpx

        url = f"{self.base}{path}"
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                response = self.http.request(method, url, **kwargs)
            except httpx.HTTPError as exc:
                if not last:
                    time.sleep(min(0.5 * 2**attempt, 8.0))
                    continue
                raise FinetuneError(
                    f"{method} {url} failed: {type(exc).__name__}: {exc}; is the endpoint right?"
                ) from exc
            if not last and (response.status_code == 429 or response.status_code >= 500):
                time.sleep(min(0.5 * 2**attempt, 8.0))
                continue
            try:
                doc = response.json()
            except ValueError:
                doc = None
            if response.status_code >= 400 or not isinstance(doc, dict):
                message = _error_message(doc) or response.text[:300]
                raise FinetuneError(
                    f"{method} {url} answered HTTP {response.status_code}: {message}"
                )
            return doc
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.http.close()


class OpenAIFinetuneJob(FinetuneJob):
    """A job of an OpenAI-compatible fine-tuning API."""

    provider = "openai"

    def __init__(self, *, client: _Client, doc: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(job_id=str(doc["id"]), **kwargs)
        self._client = client
        self._apply(doc)

    def _apply(self, doc: dict[str, Any]) -> None:
        self._status = str(doc.get("status") or "queued")
        self._model = doc.get("fine_tuned_model") or None
        error = doc.get("error")
        if isinstance(error, dict) and error.get("message"):
            code = error.get("code")
            self._error = f"{error['message']}" + (f" ({code})" if code else "")

    def refresh(self) -> None:
        self._apply(self._client.call("GET", f"/fine_tuning/jobs/{self.id}", retries=_RETRIES))

    def events(self) -> list[JobEvent]:
        doc = self._client.call("GET", f"/fine_tuning/jobs/{self.id}/events", retries=_RETRIES)
        items = [e for e in doc.get("data", []) if isinstance(e, dict)]
        events = [
            JobEvent(
                float(e.get("created_at") or 0),
                str(e.get("level", "info")),
                str(e.get("message", "")),
            )
            for e in items
        ]
        return sorted(events, key=lambda e: e.created_at)  # the API lists newest first

    def cancel(self) -> None:
        if self.done:
            return
        path = f"/fine_tuning/jobs/{self.id}/cancel"
        self._apply(self._client.call("POST", path, retries=_RETRIES))

    def model_string(self, name: str) -> str:
        return name if name.startswith("openai/") else f"openai/{name}"


class OpenAIFinetune:
    """The OpenAI-compatible fine-tuning provider."""

    name = "openai"

    def start(
        self,
        lm: BaseLM,
        train_data: Sequence[dict[str, Any]],
        train_kwargs: dict[str, Any],
        **options: Any,
    ) -> OpenAIFinetuneJob:
        if not train_data:
            raise FinetuneError(f"No training data to fine-tune {lm.model} with")
        client = _Client(lm)
        base_model = lm.model.removeprefix("openai/")
        jsonl = "".join(example_line(e) + "\n" for e in train_data)
        uploaded = client.call(
            "POST",
            "/files",
            data={"purpose": "fine-tune"},
            files={"file": ("train.jsonl", jsonl.encode("utf-8"), "application/jsonl")},
        )
        body: dict[str, Any] = {"model": base_model, "training_file": uploaded["id"]}
        hyper = {k: v for k, v in train_kwargs.items() if k not in _JOB_KEYS}
        body.update({k: v for k, v in train_kwargs.items() if k in _JOB_KEYS})
        if hyper:
            body["hyperparameters"] = hyper
        doc = client.call("POST", "/fine_tuning/jobs", json=body)
        return OpenAIFinetuneJob(
            client=client,
            doc=doc,
            lm=lm,
            base_model=lm.model,
            data_hash=data_hash(list(train_data)),
            **options,
        )


def _error_message(doc: Any) -> str | None:
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if isinstance(error, str):
            return error
    return None
