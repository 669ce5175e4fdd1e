"""Griffe extension for the documentation site: doctest examples rendered as code.

The docstrings hold doctest examples (``>>>`` lines and their output) in running text,
where Markdown would read ``>>>`` as a quote and ``x[0]["a"]`` as a link. This wraps
each such block (from its first ``>>>`` line to the next blank line) in a ``pycon``
code fence before mkdocstrings renders it. Loaded by ``mkdocs.yml``.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """Return ``text`` with every doctest block wrapped in a ``pycon`` code fence.

    A block already inside a code fence is left alone; ``tests/test_docs.py`` has examples.
    """
    out: list[str] = []
    fence: str | None = None  # the indentation of the open fence, if one is open
    in_code = False  # inside a fence the docstring wrote itself
    for line in text.splitlines():
        stripped = line.lstrip()
        if fence is None and stripped.startswith("```"):
            in_code = not in_code
        if fence is not None and not stripped:
            out.append(f"{fence}```")
            fence = None
        elif fence is None and not in_code and stripped.startswith(">>>"):
            fence = line[: len(line) - len(stripped)]
            out.append(f"{fence}```pycon")
        out.append(line)
    if fence is not None:
        out.append(f"{fence}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Wrap the doctest blocks of every docstring griffe loads in code fences."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring, if it has one with a doctest block."""
        docstring = obj.docstring
        if docstring is not None and ">>>" in docstring.value:
            docstring.value = fence_doctests(docstring.value)
