"""dsx: programming — not prompting — language models.

The public API is re-exported here explicitly. Heavy pieces (pydantic-based types,
adapters, the LM client, optimizers) load on first use so that ``import dsx`` stays fast
and never imports litellm, optuna, wasmtime, docker or pygls.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dsx._version import __version__ as __version__
from dsx.errors import AdapterParseError as AdapterParseError
from dsx.errors import AssertionFailed as AssertionFailed
from dsx.errors import AuthenticationError as AuthenticationError
from dsx.errors import BadRequestError as BadRequestError
from dsx.errors import ContextWindowExceededError as ContextWindowExceededError
from dsx.errors import DsxError as DsxError
from dsx.errors import InputTypeError as InputTypeError
from dsx.errors import LMConnectionError as LMConnectionError
from dsx.errors import LMError as LMError
from dsx.errors import LMResponseError as LMResponseError
from dsx.errors import LMTimeoutError as LMTimeoutError
from dsx.errors import LMUnexpectedError as LMUnexpectedError
from dsx.errors import MissingInputError as MissingInputError
from dsx.errors import ModelNotFoundError as ModelNotFoundError
from dsx.errors import RateLimitError as RateLimitError
from dsx.errors import ReplyCutOffError as ReplyCutOffError
from dsx.errors import ServerError as ServerError
from dsx.errors import SignatureError as SignatureError
from dsx.errors import StateError as StateError
from dsx.errors import UnknownInputError as UnknownInputError
from dsx.errors import UnknownSettingError as UnknownSettingError
from dsx.errors import format_error_for_lm as format_error_for_lm
from dsx.errors import is_retryable_lm_error as is_retryable_lm_error
from dsx.runtime.assertions import Assert as Assert
from dsx.runtime.assertions import Suggest as Suggest
from dsx.runtime.cache import configure_cache as configure_cache
from dsx.runtime.example import Example as Example
from dsx.runtime.lm_base import BaseLM as BaseLM
from dsx.runtime.lm_base import LMResponse as LMResponse
from dsx.runtime.lm_base import inspect_history as inspect_history
from dsx.runtime.module import Module as Module
from dsx.runtime.module import load as load
from dsx.runtime.predict import ChainOfThought as ChainOfThought
from dsx.runtime.predict import Predict as Predict
from dsx.runtime.prediction import Completions as Completions
from dsx.runtime.prediction import Prediction as Prediction
from dsx.runtime.settings import configure as configure
from dsx.runtime.settings import context as context
from dsx.runtime.settings import settings as settings
from dsx.runtime.signature import InputField as InputField
from dsx.runtime.signature import OutputField as OutputField
from dsx.runtime.signature import Signature as Signature
from dsx.runtime.signature import ensure_signature as ensure_signature
from dsx.runtime.signature import make_signature as make_signature
from dsx.runtime.usage import track_usage as track_usage

if TYPE_CHECKING:
    from dsx._extras import MissingExtraError as MissingExtraError
    from dsx._load import load_program as load_program
    from dsx.local import LocalModelServer as LocalModelServer
    from dsx.retrievers import ColBERTv2 as ColBERTv2
    from dsx.runtime.adapters import Adapter as Adapter
    from dsx.runtime.adapters import ChatAdapter as ChatAdapter
    from dsx.runtime.adapters import DSPyChatAdapter as DSPyChatAdapter
    from dsx.runtime.adapters import JSONAdapter as JSONAdapter
    from dsx.runtime.asyncify import asyncify as asyncify
    from dsx.runtime.asyncify import syncify as syncify
    from dsx.runtime.best_of_n import BestOfN as BestOfN
    from dsx.runtime.best_of_n import Refine as Refine
    from dsx.runtime.callbacks import BaseCallback as BaseCallback
    from dsx.runtime.code_agents import CodeAct as CodeAct
    from dsx.runtime.code_agents import ProgramOfThought as ProgramOfThought
    from dsx.runtime.embedder import Embedder as Embedder
    from dsx.runtime.evaluate import Evaluate as Evaluate
    from dsx.runtime.evaluate import EvaluationResult as EvaluationResult
    from dsx.runtime.fallback import FallbackLM as FallbackLM
    from dsx.runtime.instantiate import instantiate as instantiate
    from dsx.runtime.lm import LM as LM
    from dsx.runtime.metrics import answer_exact_match as answer_exact_match
    from dsx.runtime.metrics import answer_in_context as answer_in_context
    from dsx.runtime.metrics import answer_passage_match as answer_passage_match
    from dsx.runtime.metrics import exact_match as exact_match
    from dsx.runtime.metrics import f1 as f1
    from dsx.runtime.metrics import passage_match as passage_match
    from dsx.runtime.parallel import BatchError as BatchError
    from dsx.runtime.parallel import Parallel as Parallel
    from dsx.runtime.react import ReAct as ReAct
    from dsx.runtime.retrieve import Retrieve as Retrieve
    from dsx.runtime.streaming import streamify as streamify
    from dsx.runtime.tool import Tool as Tool
    from dsx.runtime.tool_calls import ToolCallResults as ToolCallResults
    from dsx.runtime.tool_calls import ToolCalls as ToolCalls
    from dsx.runtime.types import History as History
    from dsx.runtime.types import Image as Image
    from dsx.sandbox import PythonInterpreter as PythonInterpreter
    from dsx.teleprompt import COPRO as COPRO
    from dsx.teleprompt import GEPA as GEPA
    from dsx.teleprompt import KNN as KNN
    from dsx.teleprompt import SIMBA as SIMBA
    from dsx.teleprompt import BootstrapFewShot as BootstrapFewShot
    from dsx.teleprompt import BootstrapFewShotWithRandomSearch as BootstrapFewShotWithRandomSearch
    from dsx.teleprompt import BootstrapFinetune as BootstrapFinetune
    from dsx.teleprompt import Ensemble as Ensemble
    from dsx.teleprompt import KNNFewShot as KNNFewShot
    from dsx.teleprompt import LabeledFewShot as LabeledFewShot
    from dsx.teleprompt import MIPROv2 as MIPROv2
    from dsx.teleprompt import Teleprompter as Teleprompter
    from dsx.teleprompt import majority as majority

# name -> module that defines it, imported on first access
_LAZY = {
    "Adapter": "dsx.runtime.adapters",
    "asyncify": "dsx.runtime.asyncify",
    "load_settings": "dsx.runtime.settings",
    "syncify": "dsx.runtime.asyncify",
    "ChatAdapter": "dsx.runtime.adapters",
    "DSPyChatAdapter": "dsx.runtime.adapters",
    "JSONAdapter": "dsx.runtime.adapters",
    "Image": "dsx.runtime.types",
    "History": "dsx.runtime.types",
    "BatchError": "dsx.runtime.parallel",
    "LM": "dsx.runtime.lm",
    "FallbackLM": "dsx.runtime.fallback",
    "MissingExtraError": "dsx._extras",
    "Retrieve": "dsx.runtime.retrieve",
    "ColBERTv2": "dsx.retrievers",
    "Tool": "dsx.runtime.tool",
    "ToolCalls": "dsx.runtime.tool_calls",
    "ToolCallResults": "dsx.runtime.tool_calls",
    "ProgramOfThought": "dsx.runtime.code_agents",
    "CodeAct": "dsx.runtime.code_agents",
    "ReAct": "dsx.runtime.react",
    "BestOfN": "dsx.runtime.best_of_n",
    "Refine": "dsx.runtime.best_of_n",
    "load_program": "dsx._load",
    "instantiate": "dsx.runtime.instantiate",
    "LabeledFewShot": "dsx.teleprompt",
    "BootstrapFewShot": "dsx.teleprompt",
    "BootstrapFinetune": "dsx.teleprompt",
    "BootstrapFewShotWithRandomSearch": "dsx.teleprompt",
    "KNNFewShot": "dsx.teleprompt",
    "KNN": "dsx.teleprompt",
    "Ensemble": "dsx.teleprompt",
    "MIPROv2": "dsx.teleprompt",
    "COPRO": "dsx.teleprompt",
    "GEPA": "dsx.teleprompt",
    "SIMBA": "dsx.teleprompt",
    "Teleprompter": "dsx.teleprompt",
    "BaseCallback": "dsx.runtime.callbacks",
    "streamify": "dsx.runtime.streaming",
    "Evaluate": "dsx.runtime.evaluate",
    "EvaluationResult": "dsx.runtime.evaluate",
    "Parallel": "dsx.runtime.parallel",
    "Embedder": "dsx.runtime.embedder",
    "PythonInterpreter": "dsx.sandbox",
    "LocalModelServer": "dsx.local",
    # metrics (factories, plus DSPy's plain-function forms) and Ensemble's reducer
    "exact_match": "dsx.runtime.metrics",
    "f1": "dsx.runtime.metrics",
    "passage_match": "dsx.runtime.metrics",
    "answer_in_context": "dsx.runtime.metrics",
    "answer_exact_match": "dsx.runtime.metrics",
    "answer_passage_match": "dsx.runtime.metrics",
    "majority": "dsx.teleprompt",
}

__all__ = [
    "LM",
    "FallbackLM",
    "Assert",
    "Suggest",
    "Retrieve",
    "ColBERTv2",
    "Tool",
    "ToolCalls",
    "ToolCallResults",
    "ReAct",
    "ProgramOfThought",
    "CodeAct",
    "BestOfN",
    "Refine",
    "BootstrapFewShot",
    "BootstrapFinetune",
    "BootstrapFewShotWithRandomSearch",
    "COPRO",
    "Embedder",
    "Ensemble",
    "BaseCallback",
    "Evaluate",
    "EvaluationResult",
    "GEPA",
    "KNN",
    "KNNFewShot",
    "LabeledFewShot",
    "MIPROv2",
    "Parallel",
    "PythonInterpreter",
    "SIMBA",
    "LocalModelServer",
    "Teleprompter",
    "instantiate",
    "load_program",
    "answer_exact_match",
    "answer_in_context",
    "answer_passage_match",
    "exact_match",
    "f1",
    "majority",
    "passage_match",
    "streamify",
    "asyncify",
    "load_settings",
    "syncify",
    "Adapter",
    "AdapterParseError",
    "AssertionFailed",
    "AuthenticationError",
    "BadRequestError",
    "ContextWindowExceededError",
    "LMConnectionError",
    "LMError",
    "InputTypeError",
    "LMResponseError",
    "ReplyCutOffError",
    "LMTimeoutError",
    "LMUnexpectedError",
    "format_error_for_lm",
    "is_retryable_lm_error",
    "ModelNotFoundError",
    "RateLimitError",
    "ServerError",
    "configure_cache",
    "track_usage",
    "BaseLM",
    "BatchError",
    "ChainOfThought",
    "ChatAdapter",
    "DSPyChatAdapter",
    "Completions",
    "DsxError",
    "Example",
    "History",
    "Image",
    "InputField",
    "JSONAdapter",
    "LMResponse",
    "MissingInputError",
    "Module",
    "OutputField",
    "Predict",
    "Prediction",
    "Signature",
    "SignatureError",
    "MissingExtraError",
    "StateError",
    "UnknownInputError",
    "UnknownSettingError",
    "__version__",
    "configure",
    "context",
    "ensure_signature",
    "inspect_history",
    "load",
    "make_signature",
    "settings",
]


def __getattr__(name: str) -> Any:
    if name == "retrievers":  # the subpackage, for dsx.retrievers.Embeddings and the like
        return importlib.import_module("dsx.retrievers")
    if name == "streaming":  # the module, for dsx.streaming.StreamListener and the like
        return importlib.import_module("dsx.streaming")
    if name == "cache":  # the LM cache in use now (dsx.configure_cache replaces it), as dspy.cache
        return importlib.import_module("dsx.runtime.cache").get_cache()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dsx' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
