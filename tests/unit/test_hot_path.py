"""The runner's hot path: its encoders equal the general ones, its batches lose nothing.

A sweep of trivial runs writes records through :class:`RecordEncoder` and
:class:`_RecordBatch` rather than :meth:`RunRecord.to_json` and ``put_record``, and
fingerprints flat params without normalising them; these tests pin each shortcut to the
general path it replaces, byte for byte.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metalab._json import compact_encoder, quoted
from metalab.capture import capture_output
from metalab.errors import InvalidArgumentError
from metalab.fingerprint import _DUMPS, _normalise, canonical
from metalab.params import ParamCase
from metalab.provenance import utc_now, utc_text
from metalab.record import FAILED, NOTHING_RARE, SUCCESS, ArtifactRef, RecordEncoder, RunRecord
from metalab.worker import _BATCH_RUNS, _BATCH_SECONDS, _Finished, _RecordBatch
from strategies import json_values, param_dicts

finite_or_not = st.one_of(st.floats(), st.integers(-(2**70), 2**70), st.booleans())
texts = st.text(max_size=12)


@settings(max_examples=200)
@given(value=json_values, ascii_only=st.booleans(), sort=st.booleans())
def test_compact_encoder_writes_what_json_dumps_writes(value, ascii_only, sort):
    encode = compact_encoder(ensure_ascii=ascii_only, sort_keys=sort)
    expected = json.dumps(value, ensure_ascii=ascii_only, sort_keys=sort, separators=(",", ":"))
    assert encode(value) == expected


def test_compact_encoder_refuses_what_json_refuses():
    strict = compact_encoder(ensure_ascii=True, allow_nan=False)
    with pytest.raises(ValueError):
        strict([math.nan])
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_encoder(ensure_ascii=False)({"x": object()})


@given(text=st.text())
def test_quoted_is_a_json_string(text):
    assert quoted(text) == json.dumps(text, ensure_ascii=False)


@settings(max_examples=300)
@given(
    params=st.dictionaries(
        st.text(max_size=6),
        st.one_of(st.none(), st.booleans(), finite_or_not, st.text(max_size=6)),
        max_size=5,
    )
)
def test_flat_params_encode_as_the_normalised_form(params):
    # The fast path skips _normalise: it must agree with it ($-keys, NaN, 1 vs 1.0 ...).
    assert canonical(params) == _DUMPS(_normalise(params, "params")).encode("ascii")


@settings(max_examples=100)
@given(
    run_id=st.text(max_size=40),
    status=st.sampled_from([SUCCESS, FAILED]),
    attempt=st.integers(1, 10**6),
    indices=st.tuples(st.integers(0, 2**40), st.integers(0, 1000)),
    params=param_dicts,
    metrics=st.dictionaries(texts, finite_or_not, max_size=3),
    files=st.fixed_dictionaries(
        {}, optional={name: texts for name in ("steps", "logs", "stdout", "stderr")}
    ),
    error=st.none() | st.fixed_dictionaries({"type": texts, "message": texts}),
    times=st.tuples(texts, texts, st.floats(0, 1e6)),
    peak=st.integers(0, 2**40),
    tags=st.lists(texts, max_size=3),
    artifacts=st.lists(st.builds(ArtifactRef, texts, texts, texts, st.integers(0, 99), texts)),
)
def test_record_encoder_writes_what_run_record_writes(
    run_id, status, attempt, indices, params, metrics, files, error, times, peak, tags, artifacts
):
    started, finished, duration = times
    nonfinite = [
        name for name, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)
    ]
    record = RunRecord(
        run_id, "exp é", "v1", *indices, params, {"root_seed": 7}, status, attempt,
        metrics=metrics, nonfinite_metrics=nonfinite, artifacts=artifacts, error=error,
        started_at=started, finished_at=finished, duration=duration, host="h\"ost",
        pid=12, worker="w", peak_memory=peak, tags=tags, **files,
    )  # fmt: skip
    encoder = RecordEncoder("exp é", "v1", host='h"ost', pid=12, worker="w")
    body = encoder.encode(
        run_id, status, attempt, *indices, encoder.json(params), encoder.json({"root_seed": 7}),
        metrics=metrics, nonfinite_metrics=nonfinite, artifacts=artifacts, error=error,
        started_at=started, finished_at=finished, duration=duration, peak_memory=peak,
        tags_json=encoder.json(tags), **files,
    )  # fmt: skip
    assert body == record.to_json()


def test_record_encoder_refuses_an_unknown_status():
    encoder = RecordEncoder("e", "1", host="h", pid=1, worker="w")
    with pytest.raises(InvalidArgumentError, match="'done'"):
        encoder.encode("r", "done", 1, 0, 0, "{}", "{}")


@given(ns=st.integers(0, 2**62))
def test_utc_text_is_the_iso_time_of_its_nanoseconds(ns):
    # Through microseconds as an int: a float of 1e18 ns has no room for them.
    seconds, micros = divmod(ns // 1000, 10**6)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    assert utc_text(ns) == moment.isoformat(timespec="microseconds")[:-6] + "Z"


def test_utc_now_moves_forward_across_seconds():
    first = utc_now()
    time.sleep(1.01)  # crosses a second: the cached date and time are formatted again
    assert utc_now() > first and len(utc_now()) == 27


def test_nested_output_capture_gives_each_block_its_own_text():
    import sys

    original = sys.stdout
    with capture_output() as outer:
        print("a")
        with capture_output() as inner:
            print("b")
        print("c")
        assert sys.stdout is not original  # still routed: the outer block is open
    assert (outer.stdout, inner.stdout) == ("a\nc\n", "b\n")
    assert sys.stdout is original


class _Store:
    """Stands in for a store: keeps each put_records_json call, or fails as told."""

    def __init__(self, failure: BaseException | None = None) -> None:
        self.calls: list[list[bytes]] = []
        self.failure = failure

    def put_records_json(self, bodies: list[bytes]) -> None:
        if self.failure is not None:
            raise self.failure
        self.calls.append(list(bodies))


def _finished(index: int, duration: float = 1e-5) -> _Finished:
    case = ParamCase({"i": index}, index=index)
    now = time.time_ns()
    return (f"{index:032x}", SUCCESS, 1, case, 0, "{}", now, now, duration, {}, NOTHING_RARE)


def _batch(store: Any) -> _RecordBatch:
    return _RecordBatch(store, RecordEncoder("e", "1", host="h", pid=1, worker="w"))


def test_a_full_batch_is_written_with_one_call():
    store = _Store()
    batch = _batch(store)
    for index in range(_BATCH_RUNS + 1):
        batch.add(_finished(index))
    assert [len(call) for call in store.calls] == [_BATCH_RUNS]
    batch.close()
    assert [len(call) for call in store.calls] == [_BATCH_RUNS, 1]
    ids = [json.loads(body)["run_id"] for call in store.calls for body in call]
    assert ids == [f"{index:032x}" for index in range(_BATCH_RUNS + 1)]


def test_a_long_run_is_written_at_once():
    store = _Store()
    batch = _batch(store)
    batch.add(_finished(0, duration=_BATCH_SECONDS))
    assert [len(call) for call in store.calls] == [1]
    batch.close()


def test_waiting_records_are_written_while_the_next_run_goes_on():
    # A trivial run, then a long one: the trivial run's record must not wait for it.
    store = _Store()
    batch = _batch(store)
    batch.add(_finished(0))
    deadline = time.monotonic() + 5
    while not store.calls and time.monotonic() < deadline:
        time.sleep(_BATCH_SECONDS / 4)
    assert [len(call) for call in store.calls] == [1]
    batch.close()
    assert not [t for t in threading.enumerate() if t.name == "metalab-records"]


def test_a_failed_late_write_is_raised_in_the_runs_thread():
    batch = _batch(_Store(failure=OSError(28, "No space left on device")))
    batch.add(_finished(0))
    time.sleep(_BATCH_SECONDS * 5)  # the flusher's write fails meanwhile
    with pytest.raises(OSError, match="No space"):
        batch.add(_finished(1))
    batch.close()  # reported once; the flusher has stopped
