"""Adapters: how signatures become messages and replies become typed outputs."""

from __future__ import annotations

from dsx.runtime.adapters.base import Adapter as Adapter
from dsx.runtime.adapters.chat import ChatAdapter as ChatAdapter
from dsx.runtime.adapters.dspy_chat import DSPyChatAdapter as DSPyChatAdapter
from dsx.runtime.adapters.json_adapter import JSONAdapter as JSONAdapter

__all__ = ["Adapter", "ChatAdapter", "DSPyChatAdapter", "JSONAdapter"]
