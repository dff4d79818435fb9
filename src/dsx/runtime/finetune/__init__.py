"""Fine-tuning providers behind one interface (``dsx.LM(...).finetune(...)`` → a job).

See :mod:`dsx.runtime.finetune.base` for the job interface, :mod:`.openai` for the
OpenAI-compatible API and :mod:`.local` for local LoRA fine-tuning (``pip install
'dsx[finetune]'``). Nothing heavy is imported here.
"""

from __future__ import annotations

from dsx.runtime.finetune.base import FinetuneCancelled as FinetuneCancelled
from dsx.runtime.finetune.base import FinetunedModel as FinetunedModel
from dsx.runtime.finetune.base import FinetuneError as FinetuneError
from dsx.runtime.finetune.base import FinetuneFailed as FinetuneFailed
from dsx.runtime.finetune.base import FinetuneJob as FinetuneJob
from dsx.runtime.finetune.base import FinetuneProvider as FinetuneProvider
from dsx.runtime.finetune.base import FinetuneTimeout as FinetuneTimeout
from dsx.runtime.finetune.base import JobEvent as JobEvent
from dsx.runtime.finetune.base import data_hash as data_hash
from dsx.runtime.finetune.base import provider_for as provider_for
from dsx.runtime.finetune.local import LocalLM as LocalLM

__all__ = [
    "FinetuneCancelled",
    "FinetuneError",
    "FinetuneFailed",
    "FinetuneJob",
    "FinetuneProvider",
    "FinetuneTimeout",
    "FinetunedModel",
    "JobEvent",
    "LocalLM",
    "data_hash",
    "provider_for",
]
