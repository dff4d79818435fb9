"""Local LoRA fine-tuning of a Hugging Face causal LM, and the in-process LM that serves it.

``LocalLM("hf/<dir>")`` answers chat requests with the model in ``<dir>``: a model saved
with ``save_pretrained`` or a LoRA adapter directory written by this module (its base model
is read from ``adapter_config.json``). Nothing is downloaded: models load with
``local_files_only=True`` and never run remote code. ``LocalLM.finetune(data, train_kwargs)``
(or ``BootstrapFinetune`` with a ``LocalLM``) trains a LoRA adapter with ``peft`` on CPU in
a background thread and returns a job like every provider's; the result is
``LocalLM("hf/<adapter dir>")``.

``train_kwargs``: ``output_dir`` (default ``$DSX_FINETUNE_DIR`` or ``~/.cache/dsx/finetune``,
one sub-directory per data hash and settings), ``epochs`` (3), ``learning_rate`` (1e-3),
``batch_size`` (4), ``lora_r`` (8), ``lora_alpha`` (16), ``lora_dropout`` (0.0),
``target_modules`` (peft's default for the architecture), ``max_length`` (512), ``seed`` (0).
An adapter directory already trained on the same data with the same settings is reused:
unchanged data is never trained again.

The loss is computed on the assistant's reply only (the prompt's tokens are masked). Needs
the ``finetune`` extra: ``pip install 'dsx[finetune]'`` (torch CPU, transformers, peft).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsx.runtime.finetune.base import (
    FinetuneError,
    FinetuneJob,
    JobEvent,
    data_hash,
)
from dsx.runtime.lm_base import BaseLM, LMResponse

if TYPE_CHECKING:
    from dsx.runtime.lm_base import Message

__all__ = ["LocalLM", "LocalLoRA", "LocalLoRAJob", "render_chat"]

_MARKER = "dsx-finetune.json"
_DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "lora_r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "target_modules": None,
    "max_length": 512,
    "seed": 0,
}


def _need_deps() -> Any:
    try:
        import peft
        import torch
        import transformers
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise FinetuneError(
            f"Local fine-tuning needs torch, transformers and peft ({exc}); install them "
            "with pip install 'dsx[finetune]'"
        ) from None
    return torch, transformers, peft


def _directory(model: str) -> Path:
    name = model.removeprefix("hf/")
    if not model.startswith("hf/") or not name:
        raise FinetuneError(
            f"LocalLM needs 'hf/<model directory>' (a Hugging Face model or LoRA adapter "
            f"saved on disk), got {model!r}"
        )
    return Path(name).expanduser()


def render_chat(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The prompt text for ``messages``, ending where the assistant's reply starts: the
    tokenizer's chat template when it has one, else a plain ``<|role|>`` layout."""
    if getattr(tokenizer, "chat_template", None):
        return str(
            tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        )
    parts = [f"<|{m['role']}|>\n{_text(m.get('content'))}\n" for m in messages]
    return "".join(parts) + "<|assistant|>\n"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class LocalLM(BaseLM):
    """A Hugging Face causal LM (or a LoRA adapter on one) answering in this process.

    Args:
        model: ``"hf/<directory>"``.
        max_tokens: the most tokens to generate (default 256).
        **kwargs: default request parameters (``temperature``: 0 or unset is greedy).
    """

    finetune_provider = "local"

    def __init__(self, model: str, *, finetuned: Any = None, **kwargs: Any) -> None:
        _directory(model)
        super().__init__(model, **kwargs)
        from dsx.runtime.lm import _finetuned_ref

        self.finetuned = _finetuned_ref(finetuned)
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def copy(self, **kwargs: Any) -> LocalLM:
        from dsx.runtime.lm import _finetuned_ref

        finetuned = kwargs.pop("finetuned", self.finetuned)
        new = super().copy(**kwargs)
        assert isinstance(new, LocalLM)
        new.finetuned = _finetuned_ref(finetuned)
        if new.model != self.model:
            new._loaded = None
        new._lock = threading.Lock()
        return new

    def dump_state(self) -> dict[str, Any]:
        state = super().dump_state()
        if self.finetuned is not None:
            state["finetuned"] = self.finetuned.to_state()
        return state

    @property
    def directory(self) -> Path:
        return _directory(self.model)

    def load(self) -> tuple[Any, Any]:
        """``(model, tokenizer)``, loaded once (a LoRA adapter on its base model)."""
        with self._lock:
            if self._loaded is None:
                self._loaded = load_model(self.directory)
            return self._loaded

    def forward(self, messages: list[Message], **kwargs: Any) -> LMResponse:
        torch, _, _ = _need_deps()
        model, tokenizer = self.load()
        prompt = render_chat(tokenizer, messages)
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        temperature = kwargs.get("temperature") or 0.0
        options: dict[str, Any] = {
            "max_new_tokens": int(kwargs.get("max_tokens") or 256),
            "do_sample": temperature > 0,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if temperature > 0:
            options["temperature"] = float(temperature)
        with self._lock, torch.no_grad():
            out = model.generate(**ids, **options)
        new = out[0][ids["input_ids"].shape[1] :]
        text = tokenizer.decode(new, skip_special_tokens=True)
        usage = {
            "prompt_tokens": int(ids["input_ids"].shape[1]),
            "completion_tokens": len(new),
            "total_tokens": int(ids["input_ids"].shape[1]) + len(new),
        }
        return LMResponse(outputs=[text], usage=usage, model=self.model, finish_reasons=["stop"])

    def finetune(
        self,
        train_data: list[dict[str, Any]],
        train_kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> LocalLoRAJob:
        """Train a LoRA adapter on chat examples; see the module docs."""
        return LocalLoRA().start(self, list(train_data), dict(train_kwargs or {}), **options)


def load_model(directory: Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` from a model or LoRA adapter directory, offline."""
    _, transformers, peft = _need_deps()
    if not directory.is_dir():
        raise FinetuneError(f"LocalLM: no model directory at {directory}")
    config_file = directory / "adapter_config.json"
    base = directory
    if config_file.is_file():
        base = Path(json.loads(config_file.read_text())["base_model_name_or_path"])
    tokenizer_dir = directory if (directory / "tokenizer_config.json").is_file() else base
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(tokenizer_dir), local_files_only=True
    )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(base), local_files_only=True, trust_remote_code=False
    )
    if config_file.is_file():
        model = peft.PeftModel.from_pretrained(model, str(directory), is_trainable=False)
    model.eval()
    return model, tokenizer


class LocalLoRAJob(FinetuneJob):
    """LoRA training in a background thread of this process.

    Attributes:
        losses: the mean training loss of each epoch.
        initial_loss: the training set's loss before training; ``final_loss`` after it.
    """

    provider = "local"

    def __init__(self, *, settings: dict[str, Any], data: list[dict[str, Any]], **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self._data = data
        self._events: list[JobEvent] = []
        self._cancel = threading.Event()
        self.losses: list[float] = []
        self.initial_loss: float | None = None
        self.final_loss: float | None = None
        self.output_dir = Path(settings["output_dir"])
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        marker = self.output_dir / _MARKER
        if marker.is_file():
            try:
                done = json.loads(marker.read_text())
            except ValueError:
                done = {}
            if done.get("data_hash") == self.data_hash and done.get("settings") == _key(
                self.settings
            ):
                self._log("info", f"Reusing {self.output_dir}: trained on the same data")
                self.losses = list(done.get("losses", []))
                self._finish("succeeded", model=str(self.output_dir))
                return
        self._status = "running"
        self._thread = threading.Thread(target=self._run, name="dsx-lora", daemon=True)
        self._thread.start()

    def _log(self, level: str, message: str) -> None:
        self._events.append(JobEvent(time.time(), level, message))

    def _finish(self, status: str, *, model: str | None = None, error: str | None = None) -> None:
        self._model, self._error = model, error
        self._status = status

    def _run(self) -> None:
        try:
            self._train()
        except _Cancelled:
            self._log("info", "Job was cancelled")
            self._finish("cancelled", error="cancelled during training")
        except Exception as exc:
            self._log("error", f"{type(exc).__name__}: {exc}")
            self._finish("failed", error=f"{type(exc).__name__}: {exc}")

    def _train(self) -> None:
        torch, _, peft = _need_deps()
        s = self.settings
        torch.manual_seed(int(s["seed"]))
        base_dir = _directory(self.base_model)
        model, tokenizer = load_model(base_dir)
        lora = peft.LoraConfig(
            r=int(s["lora_r"]),
            lora_alpha=int(s["lora_alpha"]),
            lora_dropout=float(s["lora_dropout"]),
            target_modules=s["target_modules"],
            task_type="CAUSAL_LM",
            # GPT-2-style models store these layers transposed (Conv1D); peft would
            # switch this on itself, with a warning
            fan_in_fan_out=_targets_conv1d(model, s["target_modules"]),
        )
        model = peft.get_peft_model(model, lora)
        batches = _batches(tokenizer, self._data, int(s["batch_size"]), int(s["max_length"]), torch)
        self._log("info", f"Training a LoRA adapter on {len(self._data)} examples")
        self.initial_loss = _mean_loss(model, batches, torch)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=float(s["learning_rate"]))
        order = list(range(len(batches)))
        rng = torch.Generator().manual_seed(int(s["seed"]))
        for epoch in range(int(s["epochs"])):
            model.train()
            total = 0.0
            for i in torch.randperm(len(order), generator=rng).tolist():
                if self._cancel.is_set():
                    raise _Cancelled
                loss = model(**batches[i]).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                total += float(loss.detach())
            self.losses.append(total / max(1, len(batches)))
            self._log("info", f"Epoch {epoch + 1}: training loss={self.losses[-1]:.4f}")
        self.final_loss = _mean_loss(model, batches, torch)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(self.output_dir))
        tokenizer.save_pretrained(str(self.output_dir))
        marker = {
            "data_hash": self.data_hash,
            "settings": _key(s),
            "base_model": self.base_model,
            "losses": self.losses,
            "initial_loss": self.initial_loss,
            "final_loss": self.final_loss,
        }
        (self.output_dir / _MARKER).write_text(json.dumps(marker, indent=2))
        self._log("info", f"Saved the adapter in {self.output_dir}")
        self._finish("succeeded", model=str(self.output_dir.resolve()))

    # -- the job interface -------------------------------------------------------------
    def refresh(self) -> None:
        pass  # the thread sets the status

    def events(self) -> list[JobEvent]:
        return list(self._events)

    def cancel(self) -> None:
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()

    def model_string(self, name: str) -> str:
        return f"hf/{name}"

    def result(self, timeout: float | None = None) -> BaseLM:
        lm = super().result(timeout)
        if self._thread is not None:
            self._thread.join()
        return lm


class _Cancelled(Exception):
    pass


def _key(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: settings[k] for k in _DEFAULTS}


class LocalLoRA:
    """The local LoRA provider."""

    name = "local"

    def start(
        self,
        lm: BaseLM,
        train_data: Sequence[dict[str, Any]],
        train_kwargs: dict[str, Any],
        **options: Any,
    ) -> LocalLoRAJob:
        if not train_data:
            raise FinetuneError(f"No training data to fine-tune {lm.model} with")
        unknown = set(train_kwargs) - set(_DEFAULTS) - {"output_dir"}
        if unknown:
            raise FinetuneError(
                f"Unknown local fine-tuning setting(s) {sorted(unknown)}; known: "
                f"{', '.join(sorted([*_DEFAULTS, 'output_dir']))}"
            )
        _need_deps()
        data = list(train_data)
        digest = data_hash(data)
        settings = {**_DEFAULTS, **train_kwargs}
        base = lm.model
        if isinstance(lm, LocalLM) and (lm.directory / "adapter_config.json").is_file():
            raise FinetuneError(f"{lm.model} is a LoRA adapter; fine-tune its base model instead")
        if not settings.get("output_dir"):
            root = os.environ.get("DSX_FINETUNE_DIR") or Path.home() / ".cache/dsx/finetune"
            tag = data_hash([{"settings": _key(settings), "base": base, "data": digest}])
            settings["output_dir"] = str(Path(root) / f"{_directory(base).name}-{tag[:16]}")
        job = LocalLoRAJob(
            settings=settings,
            data=data,
            lm=lm,
            job_id=f"lora-{digest[:12]}",
            base_model=base,
            data_hash=digest,
            poll_interval=options.pop("poll_interval", 0.05),
            **options,
        )
        job.begin()
        return job


def _batches(
    tokenizer: Any, data: list[dict[str, Any]], size: int, max_length: int, torch: Any
) -> list[dict[str, Any]]:
    rows = []
    for example in data:
        messages = example["messages"]
        prompt = render_chat(tokenizer, messages[:-1])
        answer = _text(messages[-1].get("content")) + (tokenizer.eos_token or "")
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        a = tokenizer(answer, add_special_tokens=False)["input_ids"]
        keep = max(0, max_length - len(a))
        p = p[-keep:] if keep else []
        ids = (p + a)[-max_length:]
        labels = ([-100] * len(p) + a)[-max_length:]
        rows.append((ids, labels))
    batches = []
    pad = tokenizer.pad_token_id or 0
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        width = max(len(ids) for ids, _ in chunk)
        batches.append(
            {
                "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk]),
                "attention_mask": torch.tensor(
                    [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk]
                ),
                "labels": torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk]),
            }
        )
    return batches


def _mean_loss(model: Any, batches: list[dict[str, Any]], torch: Any) -> float:
    model.eval()
    with torch.no_grad():
        losses = [float(model(**b).loss) for b in batches]
    return sum(losses) / max(1, len(losses))


def _targets_conv1d(model: Any, targets: Any) -> bool:
    """Whether the LoRA target layers are transformers' ``Conv1D`` (GPT-2 and kin); with
    no targets named (peft's default for the architecture), whether the model has any."""
    names = {targets} if isinstance(targets, str) else set(targets or ())
    return any(
        type(module).__name__ == "Conv1D"
        for name, module in model.named_modules()
        if not names or name.rsplit(".", 1)[-1] in names
    )
