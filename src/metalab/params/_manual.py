"""ManualSource: an explicit list of parameter dicts. Imports errors, params._base.

Case ``i`` has the tags given to the source plus ``f"manual_{i}"``, as in the
original metalab.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.params._base import ParamCase, ParamSource, plain_value

__all__ = ["ManualSource", "manual"]


class ManualSource(ParamSource):
    """Parameter source from an explicit list of parameter dicts.

    >>> source = ManualSource([{"lr": 0.01, "batch": 32}, {"lr": 0.1, "batch": 64}])
    >>> source[-1]["lr"], source[-1].tags
    (0.1, ('manual_1',))
    """

    def __init__(self, cases: list[dict[str, Any]], tags: list[str] | None = None) -> None:
        if not isinstance(cases, list | tuple):
            raise InvalidTypeError(
                f"manual(cases={cases!r:.80}): cases must be a list of dicts, "
                f"got {type(cases).__name__}."
            )
        self._cases = tuple(_check_case(i, case) for i, case in enumerate(cases))
        tags = [] if tags is None else tags
        if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
            raise InvalidTypeError(
                f"manual(tags={tags!r:.80}): tags must be a list of str, e.g. ['baseline']."
            )
        self._tags = tuple(tags)

    def __len__(self) -> int:
        return len(self._cases)

    def _case(self, position: int) -> ParamCase:
        return ParamCase(self._cases[position], position, (*self._tags, f"manual_{position}"))

    def __repr__(self) -> str:
        return f"ManualSource({len(self._cases)} cases)"

    def to_manifest_dict(self) -> dict[str, Any]:
        """Return ``{"type": "ManualSource", "cases": [...], "tags": [...], "total_cases": n}``."""
        return {
            "type": "ManualSource",
            "cases": [dict(case) for case in self._cases],
            "tags": list(self._tags),
            "total_cases": len(self._cases),
        }

    @classmethod
    def from_manifest_dict(cls, manifest: dict[str, Any]) -> ManualSource:
        """Rebuild from :meth:`to_manifest_dict` output (``"tags"`` optional)."""
        if not isinstance(manifest, dict) or "cases" not in manifest:
            raise InvalidArgumentError(
                f"ManualSource.from_manifest_dict: expected a dict with 'cases' and "
                f"optionally 'tags', got {manifest!r:.120}."
            )
        return cls(cases=manifest["cases"], tags=manifest.get("tags"))


def _check_case(index: int, case: Any) -> dict[str, Any]:
    if not isinstance(case, Mapping):
        raise InvalidTypeError(
            f"manual(cases)[{index}] = {case!r:.80}: each case must be a dict of "
            f"parameter names to values, got {type(case).__name__}."
        )
    return plain_value(dict(case), f"manual(cases)[{index}]")


def manual(cases: list[dict[str, Any]], tags: list[str] | None = None) -> ManualSource:
    """Create a :class:`ManualSource` from an explicit list of parameter dicts.

    >>> len(manual([{"lr": 0.01, "epochs": 10}, {"lr": 0.001, "epochs": 50}]))
    2
    """
    return ManualSource(cases=cases, tags=tags)
