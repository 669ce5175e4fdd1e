"""Capture: what an operation records during one run. Imports errors, _validate, record.

Also imports its siblings ``capture._serializers`` and ``capture._steps``. Files go
through an :class:`ArtifactSink` that the runner injects (bound to the run's store),
so this module never imports a store.

Metrics keep their final value (the last one given, whatever the step) in memory;
values logged with a ``step`` are also buffered per name in ``array('q')`` (steps)
and ``array('d')`` (values), and written once, by :meth:`Capture.finish`, as the
per-step file of :mod:`metalab.capture._steps`. Artifacts are encoded and handed to
the sink at once, so a run that crashes later still leaves them.

Thread safety: a Capture belongs to one run, and a run calls it from one thread;
runs in other threads have their own Captures. The methods take no locks (the
per-step path is meant for a million calls per second), so sharing one Capture
between threads needs the caller's own lock.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from array import array
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, NoReturn, Protocol

from metalab._validate import check_int
from metalab.capture._serializers import encode_artifact, render_figure, select_codec
from metalab.capture._steps import encode_steps
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.record import ArtifactRef

__all__ = ["LOG_LEVELS", "MAX_NAME_LENGTH", "ArtifactSink", "Capture", "CaptureResult"]

#: Levels accepted by :meth:`Capture.log`, least to most severe.
LOG_LEVELS = ("debug", "info", "warning", "error")

#: Longest artifact name accepted, in characters (it becomes part of a file name).
MAX_NAME_LENGTH = 200

_STEP_LIMIT = 2**63  # steps are stored as int64
# Final values are written as JSON, and Python writes no int of more than 4300 digits
# (by default): a larger one would fail the run's record, after the run, so it is
# refused when logged. 13,000 bits is about 3,900 digits.
_INT_BITS = 13_000
_INT_BOUND = 1 << _INT_BITS

Number = int | float | bool


class ArtifactSink(Protocol):
    """Where :class:`Capture` puts artifact files; the runner binds it to the run's store.

    ``sink(name, filename, data, kind)`` stores ``data`` (bytes, or a file to copy as
    is) as ``filename`` among the run's files and returns its :class:`ArtifactRef`,
    e.g. ``lambda name, filename, data, kind: store.put_artifact(run_id, name,
    filename, data, kind=kind)``. Capture never repeats a filename within a run, but
    one name may come with several files: a figure's PNG and its SVG twin.
    """

    def __call__(self, name: str, filename: str, data: bytes | Path, kind: str) -> ArtifactRef:
        """Store ``data`` as ``filename`` of the run; return its reference."""
        ...


class CaptureResult(NamedTuple):
    """What a run captured, returned by :meth:`Capture.finish`.

    A named tuple rather than a frozen dataclass: every run makes one, and a frozen
    dataclass took 0.8 us of the runner's per-run overhead to build (docs/performance.md).

    Attributes:
        metrics: Final value of each metric (the last one given), in first-logged order.
        nonfinite_metrics: Names whose final value is NaN or infinite.
        steps: The per-step file (see :mod:`metalab.capture._steps`), or None if no
            metric was logged with a step.
        artifacts: References to the files stored, in the order they were captured.
        log_lines: ``"<UTC time> <LEVEL> <message>"`` for each :meth:`Capture.log` call.

    """

    metrics: dict[str, Number]
    nonfinite_metrics: list[str]
    steps: bytes | None
    artifacts: list[ArtifactRef]
    log_lines: list[str]


class Capture:
    """The ``capture`` argument of an operation: records metrics, artifacts and logs.

    ``run_id`` names the run in messages; ``sink`` stores artifact files (see
    :class:`ArtifactSink`).

    >>> capture = Capture("run-1", sink=lambda name, filename, data, kind: None)
    >>> for epoch, loss in enumerate([0.5, 0.25]):
    ...     capture.metric("loss", loss, step=epoch)
    >>> capture.metrics({"accuracy": 0.9})
    >>> capture.finish().metrics
    {'loss': 0.25, 'accuracy': 0.9}
    """

    def __init__(self, run_id: str, sink: ArtifactSink) -> None:
        if not isinstance(run_id, str):
            raise InvalidTypeError(
                f"Capture(run_id={run_id!r}): run_id must be a str, got {type(run_id).__name__}."
            )
        if not callable(sink):
            raise InvalidTypeError(
                f"Capture(sink={sink!r:.80}): sink must be callable as "
                f"sink(name, filename, data, kind) -> ArtifactRef."
            )
        self.run_id = run_id
        self._sink = sink
        self._final: dict[str, Number] = {}
        self._series: dict[str, tuple[array, array]] = {}
        self._artifacts: list[ArtifactRef] = []
        self._names: set[str] = set()
        self._filenames: dict[str, str] = {}
        self._log: list[str] = []
        self._closed = False

    def metric(self, name: str, value: Number, step: int | None = None) -> None:
        """Record ``value`` for the metric ``name``, at ``step`` (an int >= 0) if given.

        ``value`` is an int, float or bool, or a NumPy scalar or 0-d array (converted
        with ``.item()``). NaN and infinities are kept, and listed by
        :attr:`CaptureResult.nonfinite_metrics` when final.
        """
        # The hot path of a training loop: exact type checks only, everything else
        # (first use of a name, conversions, refusals) is on the slow paths.
        if self._closed:
            self._refuse("metric")
        if type(value) is not float and type(value) is not int:
            value = _as_number(name, value)
        if step is None:
            _check_metric_name(name)
            if type(value) is int and not -_INT_BOUND < value < _INT_BOUND:
                _refuse_int(name, value)
            self._final[name] = value
            return
        if type(step) is not int or not 0 <= step < _STEP_LIMIT:
            step = _as_step(f"Capture.metric({name!r}, step={step!r})", step)
        try:
            steps, values = self._series[name]
        except (KeyError, TypeError):  # a new name, or an unhashable non-name
            _check_metric_name(name)
            steps, values = self._series[name] = (array("q"), array("d"))
        try:
            values.append(value)
        except OverflowError:
            raise InvalidArgumentError(
                f"Capture.metric({name!r}, {value!r:.40}): too large for a float64 series; "
                f"scale it, or log it without a step."
            ) from None
        steps.append(step)
        self._final[name] = value

    def metrics(self, values: Mapping[str, Number], step: int | None = None) -> None:
        """Record several metrics at once, all at ``step`` if given.

        Every name and value is checked before any is recorded, so a bad entry
        records nothing.

        >>> capture = Capture("run-1", lambda *args: None)
        >>> capture.metrics({"precision": 0.92, "recall": 0.89}, step=0)
        """
        if self._closed:
            self._refuse("metrics")
        if not isinstance(values, Mapping):
            raise InvalidTypeError(
                f"Capture.metrics({values!r:.80}): values must be a dict of name -> number, "
                f"got {type(values).__name__}; for one metric use capture.metric(name, value)."
            )
        for name in values:
            _check_metric_name(name)
        checked = {name: _as_number(name, value) for name, value in values.items()}
        if step is not None:
            step = _as_step(f"Capture.metrics(step={step!r})", step)
        for name, value in checked.items():
            self.metric(name, value, step)

    def artifact(self, name: str, obj: Any, *, kind: str | None = None) -> ArtifactRef:
        r"""Store ``obj`` as a file of this run, encoded by ``kind`` (chosen by type if None).

        Kinds and how each is chosen are listed in :mod:`metalab.capture._serializers`:
        NumPy arrays, bytes, paths to files, DataFrames, str and JSON values are
        recognised; anything else needs ``kind="pickle"`` (or a registered kind). The
        file is named ``<name><extension>``, or ``<name>`` if it already ends with the
        kind's extension (``"model.pt"`` for a ``.pt`` file). A
        matplotlib figure is stored as by :meth:`figure`. Each name may be used once
        per run; names become file names, so they may not contain ``/``, ``\`` or NUL,
        start with ``.``, or exceed :data:`MAX_NAME_LENGTH` characters.

        >>> calls = []
        >>> capture = Capture("run-1", lambda name, filename, data, kind: calls.append(kind))
        >>> _ = capture.artifact("config", {"layers": 50})
        >>> calls
        ['json']
        """
        where = f"Capture.artifact({_short(name)}{'' if kind is None else f', kind={kind!r}'})"
        if self._closed:
            self._refuse("artifact")
        self._check_new_name(where, name)
        codec = select_codec(obj, kind, where)
        if codec.encode is None:
            return self.figure(name, obj)
        data, extension = encode_artifact(codec, obj, where)
        (ref,) = self._put(where, name, codec.kind, {_filename(name, extension): data})
        self._artifacts.append(ref)
        return ref

    def figure(self, name: str, fig: Any, *, dpi: int = 100) -> ArtifactRef:
        """Store a matplotlib figure as a PNG at ``dpi``, with an SVG twin.

        One :class:`ArtifactRef` of kind ``figure`` is recorded, for ``<name>.png``;
        its ``extra`` holds ``{"svg": <path of <name>.svg>, "dpi": dpi}`` (a name that
        already ends with ``.png`` or ``.svg`` does not get it twice). Both files
        are given to the sink under the same ``name``. The SVG has no date and stable
        element IDs, so an unchanged figure gives unchanged bytes.
        """
        where = f"Capture.figure({_short(name)})"
        if self._closed:
            self._refuse("figure")
        self._check_new_name(where, name)
        check_int("Capture.figure", "dpi", dpi, minimum=1)
        png, svg = render_figure(fig, dpi=dpi, salt=name, where=where)
        png_ref, svg_ref = self._put(
            where, name, "figure", {_filename(name, ".png"): png, _filename(name, ".svg"): svg}
        )
        ref = dataclasses.replace(png_ref, extra={**png_ref.extra, "svg": svg_ref.path, "dpi": dpi})
        self._artifacts.append(ref)
        return ref

    def log(self, message: str, level: str = "info") -> None:
        """Keep ``message`` as a log line with its UTC time and ``level`` (see LOG_LEVELS).

        >>> capture = Capture("run-1", lambda *args: None)
        >>> capture.log("Training completed successfully")
        >>> capture.finish().log_lines[0].endswith(" INFO Training completed successfully")
        True
        """
        if self._closed:
            self._refuse("log")
        if level not in LOG_LEVELS:
            raise InvalidArgumentError(
                f"Capture.log(level={level!r}): unknown level; use one of "
                f"{', '.join(map(repr, LOG_LEVELS))}."
            )
        if not isinstance(message, str):
            raise InvalidTypeError(
                f"Capture.log({message!r:.80}): message must be a str, got "
                f"{type(message).__name__}; pass an f-string, e.g. f'{{value}}'."
            )
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._log.append(f"{now} {level.upper()} {message}")

    def finish(self) -> CaptureResult:
        """Close the capture and return what it holds; later calls raise.

        The per-step series are encoded here, once, rather than written call by call.
        """
        if self._closed:
            self._refuse("finish")
        self._closed = True
        # The capture is closed, so its containers are handed over without copying.
        return CaptureResult(
            metrics=self._final,
            nonfinite_metrics=[
                name
                for name, value in self._final.items()
                if type(value) is float and not math.isfinite(value)
            ],
            steps=encode_steps(self._series) if self._series else None,
            artifacts=self._artifacts,
            log_lines=self._log,
        )

    def _refuse(self, method: str) -> NoReturn:
        raise InvalidArgumentError(
            f"Capture.{method}(): capture is closed: run {self.run_id!r} has finished and "
            f"its results were collected; record everything before the operation returns."
        )

    def _check_new_name(self, where: str, name: Any) -> None:
        if not isinstance(name, str):
            raise InvalidTypeError(
                f"{where}: the name must be a str, got {type(name).__name__}; "
                f"pass a short name such as 'predictions'."
            )
        problem = _artifact_name_problem(name)
        if problem:
            raise InvalidArgumentError(
                f"{where}: {problem}; artifact names become file names. Choose a plain name "
                f"such as 'predictions' or 'model_v2'."
            )
        if name in self._names:
            raise InvalidArgumentError(
                f"{where}: run {self.run_id!r} already has an artifact named {name!r}; each "
                f"name may be used once per run. Choose another name."
            )

    def _put(
        self, where: str, name: str, kind: str, files: dict[str, bytes | Path]
    ) -> list[ArtifactRef]:
        """Give each file to the sink, once none of their file names is taken."""
        for filename in files:
            owner = self._filenames.get(filename)
            if owner is not None:
                raise InvalidArgumentError(
                    f"{where}: would be stored as {filename!r}, which artifact {owner!r} "
                    f"already uses; choose another name."
                )
        refs = [self._sink(name, filename, data, kind) for filename, data in files.items()]
        self._names.add(name)
        self._filenames.update(dict.fromkeys(files, name))
        return refs


def _filename(name: str, extension: str) -> str:
    # A name that already ends with its extension ("model.pt") is not given it twice.
    return name if name.endswith(extension) else name + extension


def _artifact_name_problem(name: str) -> str:
    """Say what is wrong with an artifact name, or return '' if it is fine."""
    if not name:
        return "the name is empty"
    if any(c in name for c in "/\\\0"):
        return "the name contains '/', '\\' or NUL"
    if name.startswith("."):
        return "the name starts with '.'"
    if len(name) > MAX_NAME_LENGTH:
        return f"the name has {len(name)} characters, more than {MAX_NAME_LENGTH}"
    return ""


def _check_metric_name(name: Any) -> None:
    if not isinstance(name, str):
        raise InvalidTypeError(
            f"Capture.metric(name={name!r:.80}): a metric name must be a str, got "
            f"{type(name).__name__}; name the metric, e.g. 'loss'."
        )
    if not name:
        raise InvalidArgumentError(
            "Capture.metric(name=''): a metric name must not be empty; name the metric, "
            "e.g. 'loss'."
        )


def _refuse_int(name: str, value: int) -> NoReturn:
    # repr() of such an int raises (Python's int-to-text limit), so its size is shown.
    raise InvalidArgumentError(
        f"Capture.metric({_short(name)}, <an int of {value.bit_length()} bits>): too large "
        f"to store; metric ints must stay below 2**{_INT_BITS} in size, because records "
        f"are JSON text (float(value) overflows too). Log its size instead, "
        f"math.log10(value) or value.bit_length(), or the digits with capture.log()."
    )


# A value's repr in a message: the first items of a list, the ends of a string. Plain
# repr() of a 10**7-item list or a 50 MB string takes a second and 50 MB to build.
_BRIEF = reprlib.Repr()  # Python 3.11's takes no arguments
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxtuple, _BRIEF.maxdict = 2, 4, 4, 4
_BRIEF.maxstring = _BRIEF.maxother = 60


def _short(name: Any) -> str:
    """``repr(name)``, cut past 300 characters: a 10,000-character name would drown the message."""
    text = repr(name)
    return text if len(text) <= 300 else f"{text[:100]}...<{len(text)} characters in all>"


def _as_number(name: str, value: Any) -> Number:
    """Return ``value`` as an int, float or bool, converting NumPy scalars; else raise."""
    if isinstance(value, int | float):  # bool is an int
        value = value if type(value) in (int, float, bool) else _plain(value)
        if type(value) is int and not -_INT_BOUND < value < _INT_BOUND:
            _refuse_int(name, value)
        return value
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        item = value.item()
        if isinstance(item, int | float):
            return item
    shape = getattr(value, "shape", None)
    hint = (
        f"it is an array of shape {shape}; log a scalar (e.g. .mean()) or store the array "
        f"with capture.artifact()"
        if shape
        else "pass a number, e.g. float(value); keep text in capture.log()"
    )
    raise InvalidTypeError(
        f"Capture.metric({_short(name)}, {_BRIEF.repr(value)}): a metric value must be an "
        f"int, float, bool or NumPy scalar, got {type(value).__name__}; {hint}."
    )


def _plain(value: int | float) -> Number:
    # Subclasses (np.float64 is a float) become the builtin, so records hold plain JSON.
    if isinstance(value, bool):
        return bool(value)
    return int(value) if isinstance(value, int) else float(value)


def _as_step(where: str, step: Any) -> int:
    """Return ``step`` as an int in [0, 2**63), accepting NumPy integers; else raise."""
    if type(step).__module__ == "numpy" and hasattr(step, "__index__"):
        step = step.__index__()
    if isinstance(step, bool) or not isinstance(step, int):
        raise InvalidTypeError(
            f"{where}: step must be an int >= 0 (e.g. the epoch), got {type(step).__name__}; "
            f"pass int(step)."
        )
    if not 0 <= step < _STEP_LIMIT:
        raise InvalidArgumentError(
            f"{where}: step must be in [0, 2**63); count steps from 0 (e.g. the epoch)."
        )
    return step
