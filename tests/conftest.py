"""Shared pytest configuration."""

from __future__ import annotations

# Stand-in modules that hide optional extras from subprocesses; never test modules.
collect_ignore = ["shadow"]
