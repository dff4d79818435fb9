"""Compatibility name of :mod:`dsx.cli.lsp` (``dsx lsp``), where the command now lives."""

from __future__ import annotations

from dsx.cli.lsp import DEFAULT_HOST, DEFAULT_PORT, add_arguments, main
from dsx.cli.lsp import add_parser as add_lsp_command
from dsx.cli.lsp import run as run_lsp

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "add_arguments", "add_lsp_command", "main", "run_lsp"]
