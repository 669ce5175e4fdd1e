"""Executors: run a function over chunks of work: serially, in threads, processes or Dask.

:class:`SlurmExecutor` is apart: it submits job arrays and returns without waiting.

Imports errors and its own modules only; knows nothing of experiments or stores.
:func:`resolve_executor` turns the ``executor=`` argument of :func:`metalab.run` into
an :class:`Executor`; a name is the class name less ``Executor``, lowercased.
"""

from __future__ import annotations

import difflib

from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.executors._base import Executor, WorkerLost
from metalab.executors._dask import DaskExecutor
from metalab.executors._process import ProcessExecutor
from metalab.executors._serial import SerialExecutor
from metalab.executors._slurm import SlurmExecutor
from metalab.executors._thread import ThreadExecutor

__all__ = [
    "DaskExecutor",
    "Executor",
    "ProcessExecutor",
    "SerialExecutor",
    "SlurmExecutor",
    "ThreadExecutor",
    "WorkerLost",
    "resolve_executor",
]

# Keys come from the class names so that a name and its class cannot disagree.
_EXECUTORS: dict[str, type[Executor]] = {
    cls.__name__.removesuffix("Executor").lower(): cls
    for cls in (DaskExecutor, ProcessExecutor, SerialExecutor, ThreadExecutor)
}


def resolve_executor(spec: Executor | str | None) -> Executor:
    """Return the executor ``spec`` names: None is serial, a name makes a default one.

    An :class:`Executor` is returned as given.

    >>> resolve_executor("thread").max_workers >= 1
    True
    >>> type(resolve_executor(None)).__name__
    'SerialExecutor'
    """
    if spec is None:
        return SerialExecutor()
    if isinstance(spec, Executor):
        return spec
    known = ", ".join(sorted(_EXECUTORS))
    if not isinstance(spec, str):
        raise InvalidTypeError(
            f"run(executor={spec!r}): must be an Executor, one of the names {known}, or "
            f"None, got {type(spec).__name__}."
        )
    if spec not in _EXECUTORS:
        close = difflib.get_close_matches(spec, _EXECUTORS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise InvalidArgumentError(
            f"run(executor={spec!r}): unknown executor {spec!r}{hint} Known: {known}."
        )
    return _EXECUTORS[spec]()
