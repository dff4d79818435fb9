"""The .dsx grammar: the Lark LALR parser (grammar as package data) and the AST."""

from __future__ import annotations
