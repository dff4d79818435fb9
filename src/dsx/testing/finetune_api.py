"""The fine-tuning endpoints of :class:`dsx.testing.OpenAIServer`.

``POST /v1/files`` (multipart, ``purpose=fine-tune``), ``POST /v1/fine_tuning/jobs``,
``GET /v1/fine_tuning/jobs/{id}``, ``GET /v1/fine_tuning/jobs/{id}/events`` and
``POST /v1/fine_tuning/jobs/{id}/cancel``, answered as OpenAI's API does. A job moves one
step per status request — ``validating_files`` → ``queued`` → ``running`` (``steps``
requests) → the planned outcome — so a test sees polling happen without waiting.

Plans (``server.fine_tuning.plan = ...``, or per job through the job's ``suffix``):

* ``"succeed"`` (default): ``fine_tuned_model`` is ``ft:<model>:dsx::<job number>``;
* ``"fail"``: ``status`` ``failed`` with an ``error`` object (``failure_message``);
* ``"hang"``: stays ``running`` forever (for timeouts and cancellation).

A training file that is not JSONL of ``{"messages": [...]}`` lines is refused at job creation
with HTTP 400, as OpenAI's validation does.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FineTuningAPI"]

Plan = Literal["succeed", "fail", "hang"]
_PLANS: dict[str, Plan] = {"succeed": "succeed", "fail": "fail", "hang": "hang"}


@dataclass
class _Job:
    id: str
    model: str
    training_file: str
    hyperparameters: dict[str, Any]
    plan: Plan
    number: int
    status: str = "validating_files"
    polls: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None

    def document(self) -> dict[str, Any]:
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": 0,
            "finished_at": None,
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": "org-dsx",
            "result_files": [],
            "status": self.status,
            "validation_file": None,
            "training_file": self.training_file,
            "hyperparameters": self.hyperparameters,
            "trained_tokens": None,
            "error": self.error,
            "seed": 0,
        }


class FineTuningAPI:
    """Files and fine-tuning jobs held in memory (thread-safe; tests read them directly).

    Attributes:
        plan: what new jobs do (see the module docs).
        steps: status requests a job spends ``running`` before its outcome.
        failure_message: the ``error.message`` of a failed job.
        files: uploaded files by id (their bytes).
        jobs: jobs by id.
        cancelled: ids of jobs cancelled through the API.
    """

    def __init__(self) -> None:
        self.plan: Plan = "succeed"
        self.steps = 2
        self.failure_message = "Training loss diverged (simulated failure)"
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, _Job] = {}
        self.cancelled: list[str] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @staticmethod
    def handles(path: str) -> bool:
        path = path.removeprefix("/v1")
        return path == "/files" or path.startswith(("/files/", "/fine_tuning/"))

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        """``(status, JSON document)`` for one request."""
        path = path.removeprefix("/v1").rstrip("/")
        parts = path.strip("/").split("/")
        with self._lock:
            if path == "/files" and method == "POST":
                return self._upload(headers.get("content-type", ""), body)
            if parts[:2] == ["fine_tuning", "jobs"]:
                if len(parts) == 2 and method == "POST":
                    return self._create(body)
                job = self.jobs.get(parts[2]) if len(parts) > 2 else None
                if job is None:
                    return 404, _error(f"No such fine-tuning job: {path}", "not_found")
                if len(parts) == 3 and method == "GET":
                    self._advance(job)
                    return 200, job.document()
                if parts[3:] == ["events"] and method == "GET":
                    data = list(reversed(job.events))  # newest first, as OpenAI lists them
                    return 200, {"object": "list", "data": data, "has_more": False}
                if parts[3:] == ["cancel"] and method == "POST":
                    if job.status in ("succeeded", "failed", "cancelled"):
                        return 400, _error(f"Job {job.id} has already {job.status}", None)
                    job.status = "cancelled"
                    self.cancelled.append(job.id)
                    self._event(job, "info", "Job was cancelled")
                    return 200, job.document()
            return 404, _error(f"Unknown fine-tuning path {method} {path}", "unknown_url")

    # -- steps ------------------------------------------------------------------------
    def _upload(self, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if "multipart/form-data" not in content_type:
            return 400, _error("Uploads must be multipart/form-data", "invalid_request")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        fields: dict[str, bytes] = {}
        filename = "file"
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            raw = part.get_payload(decode=True)
            payload = raw if isinstance(raw, bytes) else b""
            if name == "file":
                filename = part.get_filename() or filename
            fields[str(name)] = payload
        if fields.get("purpose") != b"fine-tune" or "file" not in fields:
            return 400, _error("Expected a `file` and purpose=fine-tune", "invalid_request")
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = fields["file"]
        return 200, {
            "object": "file",
            "id": file_id,
            "bytes": len(fields["file"]),
            "created_at": 0,
            "filename": filename,
            "purpose": "fine-tune",
        }

    def _create(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, _error("The body is not JSON", "invalid_json")
        if not isinstance(body, dict) or not body.get("model"):
            return 400, _error("'model' is required", "missing_required_parameter")
        file_id = body.get("training_file")
        if file_id not in self.files:
            return 400, _error(f"Invalid file id {file_id!r}", "invalid_file")
        problem = _validate(self.files[file_id])
        if problem:
            return 400, _error(f"Invalid training file: {problem}", "invalid_file_format")
        suffix = str(body.get("suffix") or "")
        plan: Plan = _PLANS.get(suffix, self.plan)
        number = next(self._ids)
        job = _Job(
            f"ftjob-{number}",
            str(body["model"]),
            file_id,
            dict(body.get("hyperparameters") or {}),
            plan,
            number,
        )
        self.jobs[job.id] = job
        self._event(job, "info", f"Created fine-tuning job: {job.id}")
        return 200, job.document()

    def _advance(self, job: _Job) -> None:
        if job.status in ("succeeded", "failed", "cancelled"):
            return
        job.polls += 1
        if job.status == "validating_files":
            job.status = "queued"
            self._event(job, "info", "Validating training file: done")
        elif job.status == "queued":
            job.status = "running"
            self._event(job, "info", "Fine-tuning job started")
        elif job.plan == "hang" or job.polls < 2 + self.steps:
            self._event(job, "info", f"Step {job.polls - 1}: training loss={1.0 / job.polls:.3f}")
        elif job.plan == "fail":
            job.status = "failed"
            job.error = {"code": "training_failed", "message": self.failure_message, "param": None}
            self._event(job, "error", self.failure_message)
        else:
            job.status = "succeeded"
            job.fine_tuned_model = f"ft:{job.model}:dsx::{job.number}"
            self._event(job, "info", f"New fine-tuned model created: {job.fine_tuned_model}")

    @staticmethod
    def _event(job: _Job, level: str, message: str) -> None:
        job.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{job.number}-{len(job.events)}",
                "created_at": time.time() + len(job.events) * 1e-6,
                "level": level,
                "message": message,
                "type": "message",
            }
        )


def _validate(data: bytes) -> str | None:
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return "the file is empty"
    for number, line in enumerate(lines, 1):
        try:
            doc = json.loads(line)
        except ValueError:
            return f"line {number} is not JSON"
        messages = doc.get("messages") if isinstance(doc, dict) else None
        if not isinstance(messages, list) or not messages:
            return f"line {number} has no `messages` list"
        if messages[-1].get("role") != "assistant":
            return f"line {number} does not end with an assistant message"
    return None


def _error(message: str, code: str | None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
