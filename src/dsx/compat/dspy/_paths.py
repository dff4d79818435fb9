"""Where each DSPy name lives in dsx: the one table ``dsx.compat.dspy`` reads.

Keys of :data:`MODULES` are DSPy module paths below ``dspy`` (``""`` is ``dspy`` itself);
values map a public name to ``"dsx.module:attribute"``. :data:`MISSING` names DSPy features
dsx does not have, with what to use instead, so that using one says so plainly.
"""

from __future__ import annotations

_ERRORS = {
    "DSPyError": "dsx.errors:DsxError",
    "AdapterParseError": "dsx.errors:AdapterParseError",
    "ContextWindowExceededError": "dsx.errors:ContextWindowExceededError",
    "LMError": "dsx.errors:LMError",
    "LMProviderError": "dsx.errors:LMError",
    "LMAuthError": "dsx.errors:AuthenticationError",
    "LMInvalidRequestError": "dsx.errors:BadRequestError",
    "LMRateLimitError": "dsx.errors:RateLimitError",
    "LMServerError": "dsx.errors:ServerError",
    "LMTimeoutError": "dsx.errors:LMTimeoutError",
    "LMTransportError": "dsx.errors:LMConnectionError",
    "LMUnexpectedError": "dsx.errors:LMUnexpectedError",
    "LMUnsupportedModelError": "dsx.errors:ModelNotFoundError",
    "is_retryable_lm_error": "dsx.errors:is_retryable_lm_error",
    "format_error_for_lm": "dsx.errors:format_error_for_lm",
}

_SIGNATURES = {
    "Signature": "dsx.runtime.signature:Signature",
    "InputField": "dsx.runtime.signature:InputField",
    "OutputField": "dsx.runtime.signature:OutputField",
    "ensure_signature": "dsx.runtime.signature:ensure_signature",
    "make_signature": "dsx.runtime.signature:make_signature",
}

_PRIMITIVES = {
    "Example": "dsx.runtime.example:Example",
    "Prediction": "dsx.runtime.prediction:Prediction",
    "Completions": "dsx.runtime.prediction:Completions",
    "Module": "dsx.runtime.module:Module",
    "PythonInterpreter": "dsx.sandbox:PythonInterpreter",
}

_PREDICT = {
    "Predict": "dsx.runtime.predict:Predict",
    "ChainOfThought": "dsx.runtime.predict:ChainOfThought",
    "ReAct": "dsx.runtime.react:ReAct",
    "Tool": "dsx.runtime.tool:Tool",
    "ProgramOfThought": "dsx.runtime.code_agents:ProgramOfThought",
    "CodeAct": "dsx.runtime.code_agents:CodeAct",
    "BestOfN": "dsx.runtime.best_of_n:BestOfN",
    "Refine": "dsx.runtime.best_of_n:Refine",
    "Parallel": "dsx.runtime.parallel:Parallel",
    "KNN": "dsx.teleprompt:KNN",
    "majority": "dsx.teleprompt:majority",
}

_TYPES = {
    "Image": "dsx.runtime.types:Image",
    "History": "dsx.runtime.types:History",
    "Tool": "dsx.runtime.tool:Tool",
    "ToolCalls": "dsx.runtime.tool_calls:ToolCalls",
    "ToolCallResults": "dsx.runtime.tool_calls:ToolCallResults",
}

_ADAPTERS = {
    "Adapter": "dsx.runtime.adapters:Adapter",
    # DSPy's prompt layout, so prompts optimized with DSPy stay as they were.
    "ChatAdapter": "dsx.runtime.adapters:DSPyChatAdapter",
    "JSONAdapter": "dsx.runtime.adapters:JSONAdapter",
    **_TYPES,
}

_TELEPROMPT = {
    name: f"dsx.teleprompt:{name}"
    for name in (
        "BootstrapFewShot",
        "BootstrapFewShotWithRandomSearch",
        "BootstrapFinetune",
        "COPRO",
        "Ensemble",
        "GEPA",
        "KNNFewShot",
        "LabeledFewShot",
        "MIPROv2",
        "SIMBA",
        "Teleprompter",
    )
}

_EVALUATE = {
    "Evaluate": "dsx.runtime.evaluate:Evaluate",
    "EvaluationResult": "dsx.runtime.evaluate:EvaluationResult",
    "answer_exact_match": "dsx.runtime.metrics:answer_exact_match",
    "answer_passage_match": "dsx.runtime.metrics:answer_passage_match",
    "normalize_text": "dsx.runtime.metrics:normalize_text",
}

_CLIENTS = {
    "LM": "dsx.runtime.lm:LM",
    "BaseLM": "dsx.runtime.lm_base:BaseLM",
    "configure_cache": "dsx.runtime.cache:configure_cache",
    "load_settings": "dsx.runtime.settings:load_settings",
    "cache": "dsx:cache",
    "inspect_history": "dsx.runtime.lm_base:inspect_history",
}

_STREAMING = {
    name: f"dsx.streaming:{name}"
    for name in (
        "streamify",
        "StreamListener",
        "StreamResponse",
        "StatusMessage",
        "StatusMessageProvider",
    )
}

_SETTINGS = {
    "settings": "dsx.runtime.settings:settings",
    "configure": "dsx.runtime.settings:configure",
    "context": "dsx.runtime.settings:context",
}

MODULES: dict[str, dict[str, str]] = {
    "": {
        **_SIGNATURES,
        **_PRIMITIVES,
        **_PREDICT,
        **_ADAPTERS,
        **_TELEPROMPT,
        **_CLIENTS,
        **_ERRORS,
        **_SETTINGS,
        "Evaluate": "dsx.runtime.evaluate:Evaluate",
        "BootstrapRS": "dsx.teleprompt:BootstrapFewShotWithRandomSearch",
        "ColBERTv2": "dsx.retrievers:ColBERTv2",
        "Embeddings": "dsx.retrievers:Embeddings",
        "Retrieve": "dsx.runtime.retrieve:Retrieve",
        "BaseCallback": "dsx.runtime.callbacks:BaseCallback",
        "streamify": "dsx.streaming:streamify",
        "track_usage": "dsx.runtime.usage:track_usage",
        "asyncify": "dsx.runtime.asyncify:asyncify",
        "syncify": "dsx.runtime.asyncify:syncify",
        "load": "dsx.runtime.module:load",
    },
    "signatures": _SIGNATURES,
    "signatures.signature": _SIGNATURES,
    "signatures.field": {k: v for k, v in _SIGNATURES.items() if k.endswith("Field")},
    "primitives": _PRIMITIVES,
    "primitives.example": {"Example": _PRIMITIVES["Example"]},
    "primitives.prediction": {k: _PRIMITIVES[k] for k in ("Prediction", "Completions")},
    "primitives.module": {"Module": _PRIMITIVES["Module"]},
    "primitives.python_interpreter": {"PythonInterpreter": _PRIMITIVES["PythonInterpreter"]},
    "predict": _PREDICT,
    "predict.predict": {"Predict": _PREDICT["Predict"]},
    "predict.chain_of_thought": {"ChainOfThought": _PREDICT["ChainOfThought"]},
    "predict.react": {k: _PREDICT[k] for k in ("ReAct", "Tool")},
    "predict.program_of_thought": {"ProgramOfThought": _PREDICT["ProgramOfThought"]},
    "predict.code_act": {"CodeAct": _PREDICT["CodeAct"]},
    "predict.best_of_n": {"BestOfN": _PREDICT["BestOfN"]},
    "predict.refine": {"Refine": _PREDICT["Refine"]},
    "predict.parallel": {"Parallel": _PREDICT["Parallel"]},
    "predict.aggregation": {"majority": _PREDICT["majority"]},
    "adapters": _ADAPTERS,
    "adapters.base": {"Adapter": _ADAPTERS["Adapter"]},
    "adapters.chat_adapter": {"ChatAdapter": _ADAPTERS["ChatAdapter"]},
    "adapters.json_adapter": {"JSONAdapter": _ADAPTERS["JSONAdapter"]},
    "adapters.types": _TYPES,
    "adapters.types.image": {"Image": _TYPES["Image"]},
    "adapters.types.history": {"History": _TYPES["History"]},
    "adapters.types.tool": {
        **{k: _TYPES[k] for k in ("Tool", "ToolCalls", "ToolCallResults")},
        "convert_input_schema_to_tool_args": "dsx.runtime.tool:convert_input_schema_to_tool_args",
    },
    "teleprompt": _TELEPROMPT,
    "evaluate": _EVALUATE,
    "evaluate.evaluate": {k: _EVALUATE[k] for k in ("Evaluate", "EvaluationResult")},
    "evaluate.metrics": {
        k: _EVALUATE[k] for k in ("answer_exact_match", "answer_passage_match", "normalize_text")
    },
    "clients": _CLIENTS,
    "clients.lm": {"LM": _CLIENTS["LM"]},
    "clients.base_lm": {k: _CLIENTS[k] for k in ("BaseLM", "inspect_history")},
    "retrievers": {
        "Embeddings": "dsx.retrievers:Embeddings",
        "ColBERTv2": "dsx.retrievers:ColBERTv2",
    },
    "streaming": _STREAMING,
    "utils": {
        "DummyLM": "dsx.compat.dspy._dummies:DummyLM",
        "BaseCallback": "dsx.runtime.callbacks:BaseCallback",
        "StatusMessage": _STREAMING["StatusMessage"],
        "StatusMessageProvider": _STREAMING["StatusMessageProvider"],
        "syncify": "dsx.runtime.asyncify:syncify",
    },
    "utils.dummies": {"DummyLM": "dsx.compat.dspy._dummies:DummyLM"},
    "utils.callback": {"BaseCallback": "dsx.runtime.callbacks:BaseCallback"},
    "utils.exceptions": _ERRORS,
    "utils.asyncify": {"asyncify": "dsx.runtime.asyncify:asyncify"},
    "utils.syncify": {"syncify": "dsx.runtime.asyncify:syncify"},
    "utils.usage_tracker": {"track_usage": "dsx.runtime.usage:track_usage"},
    "dsp": {},
    "dsp.utils": {"settings": _SETTINGS["settings"]},
    "dsp.utils.settings": {"settings": _SETTINGS["settings"]},
}

#: DSPy features without a dsx equivalent (yet), and what to do instead.
MISSING: dict[str, str] = {
    "XMLAdapter": "use dspy.ChatAdapter() or dspy.JSONAdapter()",
    "TwoStepAdapter": "use dspy.JSONAdapter()",
    "Audio": "audio inputs are not supported; pass a transcript",
    "File": "file inputs are not supported; pass the text or a dsx.Image",
    "Code": "use a str output field and ProgramOfThought/CodeAct for running code",
    "Reasoning": "ChainOfThought's reasoning field is a str in dsx",
    "Citations": "native citations are not supported",
    "Document": "pass documents as str or list[str] inputs",
    "ReActV2": "use dspy.ReAct",
    "RLM": "use dspy.CodeAct",
    "MultiChainComparison": "use dspy.BestOfN or dspy.majority",
    "BootstrapFewShotWithOptuna": "use dspy.MIPROv2 (Optuna-based)",
    "BetterTogether": "chain dspy.BootstrapFinetune and a prompt optimizer",
    "InferRules": "use dspy.SIMBA or dspy.COPRO",
    "AvatarOptimizer": "use dspy.SIMBA",
    "Flex": "not available",
}
