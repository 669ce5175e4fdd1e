"""Capture: what an operation records while it runs. Imports errors, _optional, _validate, record.

An operation receives a :class:`Capture` as its ``capture`` argument and records
metrics (final values and per-step series), artifacts (files encoded by kind), figures
and log lines; the runner injects an :class:`ArtifactSink` bound to the store, calls
:meth:`Capture.finish` and writes the :class:`CaptureResult` into the run's record.
:func:`capture_output` collects what the run prints, thread by thread.

>>> capture = Capture("run-1", lambda name, filename, data, kind: None)
>>> capture.metric("accuracy", 0.95)
>>> capture.finish().metrics
{'accuracy': 0.95}
"""

from __future__ import annotations

from metalab.capture._capture import (
    LOG_LEVELS,
    MAX_NAME_LENGTH,
    ArtifactSink,
    Capture,
    CaptureResult,
)
from metalab.capture._output import CapturedOutput, capture_output
from metalab.capture._serializers import decode_artifact, register_codec
from metalab.capture._steps import decode_steps, encode_steps

__all__ = [
    "LOG_LEVELS",
    "MAX_NAME_LENGTH",
    "ArtifactSink",
    "Capture",
    "CaptureResult",
    "CapturedOutput",
    "capture_output",
    "decode_artifact",
    "decode_steps",
    "encode_steps",
    "register_codec",
]
