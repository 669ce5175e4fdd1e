"""Argument checks shared by the value modules. Imports errors only.

Each check names the argument (``where``, e.g. ``"SeedPlan(replicates)"``), shows the
value it got and says what is allowed, so every constructor fails the same clear way.
"""

from __future__ import annotations

import math
from typing import Any

from metalab.errors import CaseIndexError, InvalidArgumentError, InvalidTypeError


def check_int(
    where: str, name: str, value: Any, *, minimum: int | None = None, below: int | None = None
) -> int:
    """Return ``value`` if it is an int (not bool) in ``[minimum, below)``, else raise.

    The message reads ``{where}({name}={value!r}): must be an int ...``.

    >>> check_int("SeedPlan", "replicates", 3, minimum=1)
    3
    """
    # " in [a, b)" or "" (no bounds): never a stray space before the comma.
    allowed = f" {_int_range(minimum, below)}".rstrip()
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidTypeError(
            f"{where}({name}={value!r}): must be an int{allowed}, got {type(value).__name__}."
        )
    if (minimum is not None and value < minimum) or (below is not None and value >= below):
        raise InvalidArgumentError(f"{where}({name}={value!r}): must be an int{allowed}.")
    return value


def check_real(where: str, name: str, value: Any) -> float | int:
    """Return ``value`` if it is a finite int or float (not bool), else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidTypeError(
            f"{where}({name}={value!r}): must be a finite number, got {type(value).__name__}."
        )
    if not math.isfinite(value):
        raise InvalidArgumentError(f"{where}({name}={value!r}): must be a finite number.")
    return value


def check_index(where: str, index: Any, length: int) -> int:
    """Return the position ``index`` points at in a sequence of ``length``; negative counts back.

    >>> check_index("grid[...]", -1, 4)
    3
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise InvalidTypeError(
            f"{where}[{index!r}]: index must be an int, got {type(index).__name__}."
        )
    position = index + length if index < 0 else index
    if not 0 <= position < length:
        raise CaseIndexError(
            f"{where}[{index}]: index out of range for {length} item(s); "
            f"valid indices are {-length} to {length - 1}."
        )
    return position


def _int_range(minimum: int | None, below: int | None) -> str:
    if minimum is not None and below is not None:
        return f"in [{minimum}, {_show(below)})"
    if minimum is not None:
        return f">= {minimum}"
    if below is not None:
        return f"< {_show(below)}"
    return ""


def _show(bound: int) -> str:
    """Write large powers of two as ``2**64``, which reads better than 20 digits."""
    is_power = bound > 2**32 and bound & (bound - 1) == 0
    return f"2**{bound.bit_length() - 1}" if is_power else str(bound)
