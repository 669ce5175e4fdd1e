"""Operations: the user's function, and what it asks to receive. Imports errors only.

An operation is a function whose parameter *names* choose what the runner passes:

===========  ==============================================================
``params``   the run's :class:`~metalab.params.ParamCase` (a read-only mapping)
``seeds``    its :class:`~metalab.seeds.SeedBundle`
``capture``  its :class:`~metalab.capture.Capture` (metrics, artifacts, logs)
``context``  the experiment's context (shared, read-only)
``runtime``  its :class:`Runtime` (run ID, attempt, worker, device, output folder, logger)
===========  ==============================================================

Any other name is refused when the operation is declared, not mid-sweep. A
``**kwargs`` parameter receives all five.

>>> @operation(name="pi", version="0.1")
... def estimate(params, seeds):
...     return None
>>> estimate.name, estimate.version, estimate.wants
('pi', '0.1', ('params', 'seeds'))
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import logging
import operator
import os
import shutil
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, overload

from metalab.errors import InvalidArgumentError, InvalidTypeError

__all__ = ["ARGUMENTS", "Operation", "Runtime", "operation"]

#: The names an operation's parameters may have.
ARGUMENTS = ("params", "seeds", "capture", "context", "runtime")

# Set by ProcessExecutor(gpus=...) in each worker it pins (metalab.executors._process,
# which this module cannot import): the worker's GPU as CUDA_VISIBLE_DEVICES names it.
_PINNED_GPU = "METALAB_GPU"


class Runtime:
    """Facts about the run in progress, for an operation that asks for ``runtime``.

    Attributes:
        run_id: The run's stable ID.
        attempt: 1 for the first try, 2 for the first retry, ...
        worker: ``host:pid:thread`` of the worker running it.
        device: ``"cuda:0"`` in a worker that ``ProcessExecutor(gpus=...)`` pinned to a
            GPU (the worker sees that GPU alone), else ``"cpu"``; pass it to torch's
            ``.to()``.
        gpu: The pinned GPU as ``nvidia-smi`` numbers it (its ``CUDA_VISIBLE_DEVICES``
            entry, e.g. ``"1"``), or None where the worker is not pinned.
        output_dir: A folder of its own, made on first use; every file left at its top
            level when the operation returns is kept as an artifact (kind ``file``)
            named by its file name, and the folder is then removed.
        logger: A ``logging.Logger`` (made on first use) whose records go to the run's log.

    """

    __slots__ = ("_log", "_logger", "_output_dir", "attempt", "run_id", "worker")

    def __init__(
        self, run_id: str, attempt: int, worker: str, log: Callable[[str, str], None]
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.worker = worker
        self._log = log
        self._output_dir: Path | None = None
        self._logger: logging.Logger | None = None

    def __repr__(self) -> str:
        return f"Runtime(run_id={self.run_id!r}, attempt={self.attempt}, worker={self.worker!r})"

    @property
    def device(self) -> str:
        """The device to compute on (see the class docstring)."""
        return "cpu" if self.gpu is None else "cuda:0"

    @property
    def gpu(self) -> str | None:
        """The GPU the worker is pinned to (see the class docstring)."""
        # Read from the environment, where the executor left it before the worker
        # imported anything: the operation's own subprocesses see the same GPU.
        return os.environ.get(_PINNED_GPU) or None

    @property
    def output_dir(self) -> Path:
        """The run's own folder (see the class docstring)."""
        # Made lazily: most runs never ask, and a folder per run costs more than the
        # rest of metalab's per-run work.
        if self._output_dir is None:
            self._output_dir = Path(tempfile.mkdtemp(prefix=f"metalab-{self.run_id[:12]}-"))
        return self._output_dir

    @property
    def logger(self) -> logging.Logger:
        """The run's logger (see the class docstring)."""
        if self._logger is None:
            # Made directly, not by logging.getLogger, so that it is not kept forever
            # in logging's registry: a million runs must not leave a million loggers.
            self._logger = logging.Logger(f"metalab.run.{self.run_id}", logging.DEBUG)
            self._logger.addHandler(_Forward(self._log))
        return self._logger

    def take_output_files(self) -> list[Path]:
        """Return the files left at the top of ``output_dir`` (if it was made), sorted."""
        if self._output_dir is None:
            return []
        return sorted(path for path in self._output_dir.iterdir() if path.is_file())

    def close(self) -> None:
        """Remove ``output_dir`` and detach the logger; the runner calls this."""
        if self._output_dir is not None:
            shutil.rmtree(self._output_dir, ignore_errors=True)
        if self._logger is not None:
            self._logger.handlers.clear()


class _Forward(logging.Handler):
    """Sends a run logger's records to the run's log as ``log(message, level)``."""

    def __init__(self, log: Callable[[str, str], None]) -> None:
        super().__init__()
        self._send = log

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname.lower()
        self._send(record.getMessage(), "error" if level == "critical" else level)


class Operation:
    """A user function plus its name, version, wanted arguments and source hash.

    Build one with :func:`operation`; call it through :meth:`invoke`.
    """

    __slots__ = ("_by_position", "code_sha256", "func", "name", "version", "wants")

    def __init__(self, func: Callable[..., Any], name: str | None = None, version: str = "0"):
        if not callable(func):
            raise InvalidTypeError(
                f"operation({func!r:.80}): an operation must be a function, "
                f"got {type(func).__name__}."
            )
        self.func = func
        self.name = _check_label("name", func.__name__ if name is None else name)
        self.version = _check_label("version", version)
        self.wants = _wanted_arguments(func, self.name)
        self._by_position = _first_parameters(func, self.wants)
        self.code_sha256 = _source_sha256(func)

    def invoke(self, **available: Any) -> Any:
        """Call the function with the subset of ``available`` it asked for."""
        if self.wants == ARGUMENTS:
            return self.func(**available)
        return self.func(**{name: available[name] for name in self.wants})

    def caller(self) -> Callable[[Any, Any, Any, Any, Any], Any]:
        """Return ``call(params, seeds, capture, context, runtime)`` doing what :meth:`invoke` does.

        For many calls (the runner makes one a chunk): where the arguments the function
        asks for are its first parameters, ``call`` passes them by position, which
        costs a trivial run 0.5 us less than :meth:`invoke`'s keywords.

        >>> op = operation(lambda capture, params: (params, capture))
        >>> op.caller()("p", "s", "c", "ctx", None)
        ('p', 'c')
        """
        func = self.func
        if not self._by_position:
            invoke = self.invoke
            return lambda params, seeds, capture, context, runtime: invoke(
                params=params, seeds=seeds, capture=capture, context=context, runtime=runtime
            )
        picks = [ARGUMENTS.index(name) for name in self.wants]
        if picks == list(range(len(picks))):  # e.g. (params, seeds, capture), in that order
            count = len(picks)
            return lambda *available: func(*available[:count])
        if len(picks) == 1:
            (only,) = picks
            return lambda *available: func(available[only])
        pick = operator.itemgetter(*picks)
        return lambda *available: func(*pick(available))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly, as if it were not decorated (handy in tests)."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Operation(name={self.name!r}, version={self.version!r}, wants={self.wants})"

    def to_manifest_dict(self) -> dict[str, Any]:
        """Return name, version, source hash and where the function is defined."""
        return {
            "name": self.name,
            "version": self.version,
            "code_sha256": self.code_sha256,
            "module": getattr(self.func, "__module__", None),
            "qualname": getattr(self.func, "__qualname__", None),
        }


@overload
def operation(func: Callable[..., Any], /) -> Operation: ...


@overload
def operation(
    *, name: str | None = None, version: str = "0"
) -> Callable[[Callable[..., Any]], Operation]: ...


def operation(
    func: Callable[..., Any] | None = None, /, *, name: str | None = None, version: str = "0"
) -> Operation | Callable[[Callable[..., Any]], Operation]:
    """Declare an operation: ``@operation`` or ``@operation(name=..., version=...)``.

    ``name`` defaults to the function's name. Raises at once if the function asks for
    an argument other than ``params``, ``seeds``, ``capture``, ``context``, ``runtime``.
    """
    if func is not None:
        return Operation(func, name=name, version=version)
    return lambda f: Operation(f, name=name, version=version)


def _check_label(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidTypeError(
            f"operation({field}={value!r}): {field} must be a non-empty str, "
            f"e.g. {field}={str(value)!r}."
        )
    return value


def _wanted_arguments(func: Callable[..., Any], name: str) -> tuple[str, ...]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(
            f"operation {name!r}: cannot read the function's signature ({exc}); "
            f"wrap it in a def that takes some of {', '.join(ARGUMENTS)}."
        ) from None
    wants = []
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return ARGUMENTS
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL):
            raise InvalidArgumentError(
                f"operation {name!r}: parameter {parameter.name!r} cannot be passed by name; "
                f"metalab passes arguments by name, so drop '/' or '*args'."
            )
        if parameter.name not in ARGUMENTS:
            if parameter.default is not inspect.Parameter.empty:
                continue  # the function's own default applies
            raise InvalidArgumentError(
                f"operation {name!r} asks for {parameter.name!r}, which metalab does not "
                f"provide; an operation may ask for: {', '.join(ARGUMENTS)}. Read "
                f"parameter values from params[{parameter.name!r}]."
            )
        wants.append(parameter.name)
    return tuple(wants)


def _first_parameters(func: Callable[..., Any], wants: tuple[str, ...]) -> bool:
    """Whether ``wants`` are the first parameters of ``func``, each passable by position."""
    parameters = list(inspect.signature(func).parameters.values())[: len(wants)]
    return [p.name for p in parameters] == list(wants) and all(
        p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters
    )


def _source_sha256(func: Callable[..., Any]) -> str:
    """SHA-256 of the function's code, normalised so that only what runs counts.

    The source's syntax tree is hashed, without docstrings and line numbers, so that
    comments, docstrings and formatting change nothing (``metalab verify`` and the
    resume warning compare these hashes); source that does not parse alone (a lambda
    in the middle of a call) is hashed as text, and a function without source (a REPL,
    a builtin) by its bytecode.
    """
    try:
        text = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):  # defined in a REPL, or a builtin
        code = getattr(func, "__code__", None)
        return hashlib.sha256(code.co_code if code is not None else repr(func).encode()).hexdigest()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode("utf-8")).hexdigest()
