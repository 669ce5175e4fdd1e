"""Replays of finished runs, compared bit for bit with the store: ``metalab verify``.

Imports the value modules, experiment, provenance, capture, record, store, executors
and worker. The runner (``run(verify=k)``, the code-drift warning), results
(``Results.verify``) and the command line import it.

A replay runs a run's operation again exactly as a sweep does (a
:class:`~metalab.worker.RunChunk`: the same seed bundle, params, context, attempt and
capture), in a fresh worker process that loads the experiment from its script (or
receives the :class:`~metalab.Experiment` given), into a scratch store: nothing a store
holds is ever unpickled. Final metrics and per-step series are compared by their bits
(NaN equals NaN, 0.0 differs from -0.0), artifacts by SHA-256, and every stored
artifact is hashed again against the SHA-256 recorded at capture time. A run that
differs is replayed once more: two replays that disagree mean the operation is not
deterministic; two that agree mean the code or the environment changed, and the
provenance difference says what. Each verification is appended to the store as a
record of its own (:meth:`~metalab.store.Store.put_verification`).

The script loading shared with ``metalab run`` lives here too (:func:`script_target`,
:func:`as_script`, :func:`load_experiment`), so that a replay worker, which cannot
import the command line, loads a script exactly as ``metalab run`` does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import random
import runpy
import socket
import struct
import sys
import tempfile
import warnings
from array import array
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metalab.capture import decode_steps
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.executors import ProcessExecutor, WorkerLost
from metalab.experiment import Experiment
from metalab.provenance import environment, git_state, utc_now
from metalab.record import RunRecord
from metalab.store import FileStore, Store, open_store
from metalab.worker import RunChunk

__all__ = [
    "CHANGED",
    "DEFAULT_SAMPLE",
    "DIFFERING",
    "EDITED",
    "IDENTICAL",
    "NOT_DETERMINISTIC",
    "UNREPLAYABLE",
    "CodeDriftWarning",
    "RunVerdict",
    "Verification",
    "VerificationWarning",
    "as_script",
    "load_experiment",
    "machine_facts",
    "replay_facts",
    "script_target",
    "verify",
    "warn_code_drift",
]

#: A run whose replays gave the very bits the store holds.
IDENTICAL = "identical"
#: A run whose replay differs from the store (see the diagnoses below).
DIFFERING = "differing"
#: A run that could not be replayed (the reason says why).
UNREPLAYABLE = "could not replay"

#: Diagnosis: two replays differ from each other.
NOT_DETERMINISTIC = "the operation is not deterministic"
#: Diagnosis: two replays agree with each other but not with the store.
CHANGED = "the code or environment changed"
#: Diagnosis: an artifact file in the store no longer has the SHA-256 captured.
EDITED = "an artifact in the store was changed after capture"

#: Runs a verification replays when no sample size is given (all, if fewer).
DEFAULT_SAMPLE = 20

_FORMAT = 1


class CodeDriftWarning(UserWarning):
    """A resumed sweep's store holds runs made by different operation code."""


class VerificationWarning(UserWarning):
    """``run(verify=k)`` found replays that differ from the store."""


@dataclass(frozen=True)
class RunVerdict:
    """What verifying one run found.

    Attributes:
        run_id: The run's ID.
        outcome: :data:`IDENTICAL`, :data:`DIFFERING` or :data:`UNREPLAYABLE`.
        reason: For a differing run the diagnosis (:data:`NOT_DETERMINISTIC`,
            :data:`CHANGED` or :data:`EDITED`); for one not replayed, why.
        detail: The first difference: what (``metric 'loss'``, ``artifact 'model'``)
            and the two values.

    """

    run_id: str
    outcome: str
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Verification:
    """The outcome of one verification, as appended to the store.

    Attributes:
        experiment: The store's experiment name.
        version: Its version.
        verified_at: When it ended (ISO 8601 UTC).
        host: Where the replays ran.
        source: What code replayed the runs (``script.py:variable``, or the object given).
        sample: How many runs were asked for (``"all"``, or a number).
        seed: The seed that chose the sample.
        completed: How many completed runs the store holds.
        runs: One :class:`RunVerdict` per run checked, in sweep order.
        provenance_difference: ``[what, in the store, now]`` triples for the facts that
            changed (operation code hash, git commit, packages, host, CPU/BLAS), filled
            when some run's code or environment changed.

    """

    experiment: str
    version: str
    verified_at: str
    host: str
    source: str
    sample: int | str
    seed: int
    completed: int
    runs: list[RunVerdict]
    provenance_difference: list[list[str]] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        """Return how many runs had ``outcome``."""
        return sum(1 for verdict in self.runs if verdict.outcome == outcome)

    @property
    def ok(self) -> bool:
        """True when every run checked replayed to identical bits."""
        return all(verdict.outcome == IDENTICAL for verdict in self.runs)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form stored by :meth:`Store.put_verification`."""
        return {"format": _FORMAT, **asdict(self)}

    def lines(self) -> list[str]:
        """Return the plain-text table ``metalab verify`` prints."""
        out = [
            f"verified {len(self.runs)} of {self.completed} completed run(s) of "
            f"{self.experiment} {self.version} (sample: {self.sample}, seed {self.seed}) "
            f"with {self.source} on {self.host}",
            "",
            f"  {'checked':>9} {'identical':>9} {'differing':>9} {'could not replay':>16}",
            f"  {len(self.runs):>9} {self.count(IDENTICAL):>9} {self.count(DIFFERING):>9} "
            f"{self.count(UNREPLAYABLE):>16}",
        ]
        for outcome in (DIFFERING, UNREPLAYABLE):
            verdicts = [v for v in self.runs if v.outcome == outcome]
            if verdicts:
                out += ["", f"{outcome}:"]
                out += [
                    f"  {v.run_id[:12]}  {v.reason}{': ' + v.detail if v.detail else ''}"
                    for v in verdicts
                ]
        if self.provenance_difference:
            out += ["", "provenance difference (store -> now):"]
            out += [f"  {what}: {then} -> {now}" for what, then, now in self.provenance_difference]
        return out


def verify(
    store: str | os.PathLike[str] | Store,
    *,
    sample: int | str | None = None,
    experiment: Experiment | str | os.PathLike[str] | None = None,
    workers: int | None = None,
    seed: int = 0,
) -> Verification:
    """Replay a sample of a store's completed runs and compare them bit for bit.

    Args:
        store: The store (a folder, a ``postgresql://`` URL or a Store).
        sample: How many completed runs to replay, chosen at random with ``seed``
            (reproducibly); ``"all"`` for every one; None for 20, or all if fewer.
        experiment: The code to replay with: an Experiment, or ``"FILE.py[:VARIABLE]"``;
            None for the entry point the store's manifest records.
        workers: Replay worker processes (default: one per CPU, at most one per run).
        seed: Seed of the sample's choice.

    Returns:
        The :class:`Verification`, also appended to the store.

    """
    target = open_store(store, create=False)
    where = f"verify({target.location})"
    if target.read_only:  # the outcome is appended to the store
        raise InvalidArgumentError(
            f"{where}: this store is read-only (a pack), and a verification is kept in "
            f"the store it checks; unpack it first (metalab unpack FILE FOLDER) and verify "
            f"that folder."
        )
    manifest = target.read_manifest()
    if manifest is None:
        raise InvalidArgumentError(
            f"{where}: the store holds no experiment manifest, so nothing to verify; run "
            f"a sweep into it first."
        )
    completed = sorted(
        (record for record in target.records() if record.ok),
        key=lambda record: (record.case_index, record.replicate_index),
    )
    if not completed:
        raise InvalidArgumentError(
            f"{where}: the store holds no completed run, so nothing to verify; run the "
            f"sweep (its failed runs are never replayed)."
        )
    chosen = _sample(where, completed, sample, seed)
    code = _code(where, manifest, experiment)
    if isinstance(code.source, Experiment):
        code.check(code.source)
    with tempfile.TemporaryDirectory(prefix="metalab-verify-") as scratch:
        replays, facts, unreplayable = _replay_all(
            code, chosen, workers, os.path.join(scratch, "first")
        )
        differing = [
            record
            for record in chosen
            if record.run_id in replays
            and (
                _stored_edits(target, record)
                or _first_difference(target, record, *replays[record.run_id])
            )
        ]
        again, _, _ = _replay_all(code, differing, workers, os.path.join(scratch, "second"))
        diagnosed = {
            record.run_id: _diagnose(
                target, record, replays[record.run_id], again.get(record.run_id)
            )
            for record in differing
        }
    verdicts = [
        RunVerdict(record.run_id, UNREPLAYABLE, unreplayable[record.run_id])
        if record.run_id in unreplayable
        else diagnosed.get(record.run_id) or RunVerdict(record.run_id, IDENTICAL)
        for record in chosen
    ]
    changed = [record for record in differing if diagnosed[record.run_id].reason == CHANGED]
    outcome = Verification(
        experiment=str(manifest.get("name")),
        version=str(manifest.get("version")),
        verified_at=utc_now(),
        host=socket.gethostname(),
        source=code.described,
        sample="all" if sample == "all" else len(chosen),
        seed=seed,
        completed=len(completed),
        runs=verdicts,
        provenance_difference=_provenance_difference(manifest, changed, facts, code.folder)
        if changed
        else [],
    )
    target.put_verification(outcome.to_dict())
    target.flush()
    return outcome


def _sample(
    where: str, completed: list[RunRecord], sample: int | str | None, seed: int
) -> list[RunRecord]:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidTypeError(f"{where}: seed={seed!r} must be an int, e.g. seed=0.")
    if sample == "all":
        return completed
    if sample is None:
        count = min(DEFAULT_SAMPLE, len(completed))
    elif isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
        raise InvalidArgumentError(
            f"{where}: sample={sample!r} must be a whole number >= 1 or 'all', e.g. sample=20."
        )
    elif sample > len(completed):
        raise InvalidArgumentError(
            f"{where}: sample={sample} is larger than the store, which holds "
            f"{len(completed)} completed run(s); pass sample={len(completed)} or fewer "
            f"(--sample {len(completed)}), or all of them (--all)."
        )
    else:
        count = sample
    picked = set(random.Random(seed).sample(sorted(r.run_id for r in completed), count))
    return [record for record in completed if record.run_id in picked]


# -------------------------------------------------------------------- the code replayed

#: A script and the variable holding its experiment (None: the only one), or an Experiment.
_Source = tuple[str, str | None] | Experiment


@dataclass(frozen=True)
class _Code:
    """The code runs are replayed with, and what the store says it must be."""

    source: _Source
    described: str  # for messages: "script.py:variable" or "the Experiment 'x' given"
    recorded: bool  # the store's entry point, rather than one given
    where: str  # the verification, for messages
    expected: tuple[Any, Any]  # the store's (name, version)

    @property
    def folder(self) -> str:
        """The script's folder (whose git state is the code's), or ``.`` for an object."""
        return "." if isinstance(self.source, Experiment) else os.path.dirname(self.source[0])

    def check(self, exp: Experiment) -> None:
        """Refuse an experiment of another name or version than the store's."""
        if (exp.name, exp.version) != self.expected:
            name, version = self.expected
            raise InvalidArgumentError(
                f"{self.where}: {self.described} is experiment {exp.name!r} version "
                f"{exp.version!r}, but the store holds {name!r} version {version!r}; pass "
                f"the code of that experiment and version (--experiment FILE.py[:EXPERIMENT]); "
                f"a changed sweep belongs in a new store."
            )


def _code(
    where: str, manifest: dict[str, Any], experiment: Experiment | str | os.PathLike[str] | None
) -> _Code:
    """Return the code to replay with: ``experiment``, else the manifest's entry point."""
    expected = (manifest.get("name"), manifest.get("version"))
    if isinstance(experiment, Experiment):
        return _Code(
            experiment, f"the Experiment {experiment.name!r} given", False, where, expected
        )
    if experiment is not None:
        if not isinstance(experiment, str | os.PathLike):
            raise InvalidTypeError(
                f"{where}: experiment={experiment!r:.80} must be an Experiment or "
                f"'FILE.py[:EXPERIMENT]'."
            )
        path, name = script_target(f"{where} experiment={experiment!s}", os.fspath(experiment))
        source = (str(path.resolve()), name)
        return _Code(source, _script_name(str(path), name), False, where, expected)
    entry = manifest.get("entry_point")
    if not isinstance(entry, dict) or not isinstance(entry.get("script"), str):
        raise InvalidArgumentError(
            f"{where}: the store's manifest records no entry point (the sweep was not "
            f"started from a script, or by an older metalab); pass the experiment's "
            f"script: metalab verify STORE --experiment FILE.py[:EXPERIMENT]."
        )
    script, variable = entry["script"], entry.get("variable")
    if not os.path.isfile(script):
        raise InvalidArgumentError(
            f"{where}: the store's entry point {_script_name(script, variable)!r} no longer "
            f"exists; pass the experiment's current script: metalab verify STORE "
            f"--experiment FILE.py[:EXPERIMENT] (or experiment='FILE.py:VARIABLE')."
        )
    return _Code((script, variable), _script_name(script, variable), True, where, expected)


def _script_name(script: str, variable: str | None) -> str:
    return script if variable is None else f"{script}:{variable}"


class _Replay:
    """Replays chunks of runs in a worker process, into a scratch store.

    Picklable: it holds the code to replay with (a script path, loaded in the worker
    once, or the Experiment given) and the scratch folder. A chunk is ``(case index,
    replicate index, run ID, attempt)`` tuples; it returns, per run, ``(run ID, why it
    could not be replayed or None, facts)`` where facts are the replaying code's hash
    and the worker's CPU/BLAS facts.
    """

    def __init__(self, code: _Code, scratch: str) -> None:
        self.code = code
        self.scratch = scratch
        self._loaded: tuple[Experiment, RunChunk] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}

    def _experiment(self) -> tuple[Experiment, RunChunk]:
        if self._loaded is None:
            code = self.code
            if isinstance(code.source, Experiment):
                exp = code.source
            else:
                script, variable = code.source
                path = Path(script)
                # For the worker's life: the operation may import the script's siblings late.
                sys.path.insert(0, str(path.parent))
                sys.argv = [script]
                try:
                    exp = load_experiment(code.where, path, variable)
                except InvalidArgumentError as exc:
                    if not code.recorded:
                        raise
                    raise InvalidArgumentError(
                        f"{exc} The store's entry point {code.described!r} no longer loads; "
                        f"pass the experiment's current script: metalab verify STORE "
                        f"--experiment FILE.py[:EXPERIMENT]."
                    ) from None
            code.check(exp)
            self._loaded = exp, RunChunk(exp, FileStore(self.scratch))
        return self._loaded

    def __call__(self, chunk: list[tuple[int, int, str, int]]) -> list[tuple[str, str | None, Any]]:
        exp, replay = self._experiment()
        items, refused = [], []
        for case_index, replicate, rid, attempt in chunk:
            if case_index >= len(exp.params) or replicate >= len(exp.seeds):
                refused.append(
                    (rid, f"the experiment has no case {case_index} replicate {replicate}")
                )
                continue
            case = exp.params[case_index]
            if exp.run_id(case, exp.seeds[replicate]) != rid:
                refused.append(
                    (
                        rid,
                        f"case {case_index} replicate {replicate} of the experiment is another "
                        f"run now (its params, seeds or context changed)",
                    )
                )
                continue
            items.append((case, replicate, rid, attempt))
        replay(items)
        facts = {"code_sha256": exp.operation.code_sha256, "machine": machine_facts()}
        return [(rid, why, facts) for rid, why in refused] + [
            (item[2], None, facts) for item in items
        ]


def _replay_all(
    code: _Code,
    records: list[RunRecord],
    workers: int | None,
    scratch: str,
) -> tuple[dict[str, tuple[RunRecord, Store]], dict[str, Any], dict[str, str]]:
    """Replay ``records`` into a new store in ``scratch``.

    Returns ``{run ID: (replay's record, scratch store)}``, the replaying code's facts
    (code hash, CPU/BLAS) and ``{run ID: why}`` for the runs that could not be replayed.
    """
    if not records:
        return {}, {}, {}
    store = FileStore(scratch)  # made here: a worker may replay nothing
    task = _Replay(code, scratch)
    pool = ProcessExecutor(max(1, min(workers or os.cpu_count() or 1, len(records))))
    items = [(r.case_index, r.replicate_index, r.run_id, r.attempt) for r in records]
    size = pool.chunk_size(len(items))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    refused: dict[str, str] = {}
    facts: dict[str, Any] = {}
    for chunk, outcome in pool.map_chunks(task, chunks):
        if isinstance(outcome, WorkerLost):
            refused.update(
                (item[2], f"its replay's worker died: {outcome.reason}") for item in chunk
            )
            continue
        for rid, why, worker_facts in outcome:
            facts = worker_facts
            if why is not None:
                refused[rid] = why
    replays = {record.run_id: (record, store) for record in store.records()}
    for record in records:
        if record.run_id not in replays and record.run_id not in refused:
            refused[record.run_id] = "its replay left no record"
    return {rid: replay for rid, replay in replays.items() if rid not in refused}, facts, refused


# ------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class _Digest:
    """An artifact's SHA-256, shown short."""

    sha256: str

    def __str__(self) -> str:
        return f"sha256 {self.sha256[:12]}"


def _observed(record: RunRecord, store: Store) -> dict[str, Any]:
    """Everything of a run that a replay must give again, by what it is."""
    facts: dict[str, Any] = {
        "status": record.status
        if record.ok
        else f"failed ({(record.error or {}).get('type')}: {(record.error or {}).get('message')})"
    }
    for name, value in record.metrics.items():
        facts[f"metric {name!r}"] = value
    if record.steps is not None:
        for name, series in decode_steps(store.read_file(record.steps)).items():
            facts[f"series {name!r}"] = series
    for ref in record.artifacts:
        facts[f"artifact {ref.name!r}"] = _Digest(ref.sha256)
    return facts


def _bits(value: Any) -> Any:
    """Return what two values must share to be identical: a float's bits, not its value."""
    if type(value) is float:
        return struct.pack("<d", value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], array):
        return value[0].tobytes(), value[1].tobytes()
    return type(value).__name__, value


def _shown(value: Any, other: Any) -> str:
    """Show ``value`` where it differs from ``other`` (a series at its first difference)."""
    if value is _MISSING:
        return "(none)"
    if isinstance(value, tuple) and isinstance(value[0], array):
        steps, values = value
        if isinstance(other, tuple) and isinstance(other[0], array):
            for index, pair in enumerate(zip(steps, values, strict=False)):
                if (
                    index >= len(other[0])
                    or _bits(pair[1]) != _bits(other[1][index])
                    or (pair[0] != other[0][index])
                ):
                    return f"{pair[1]!r} at step {pair[0]} (position {index})"
        return f"{len(values)} value(s)"
    return repr(value) if not isinstance(value, _Digest) else str(value)


_MISSING = object()


def _difference(first: dict[str, Any], second: dict[str, Any]) -> str | None:
    """Name the first fact on which ``first`` and ``second`` differ, with both values."""
    for key in sorted(first.keys() | second.keys(), key=lambda k: (k != "status", k)):
        a, b = first.get(key, _MISSING), second.get(key, _MISSING)
        if a is _MISSING or b is _MISSING or _bits(a) != _bits(b):
            return f"{key}: {_shown(a, b)} vs {_shown(b, a)}"
    return None


def _first_difference(
    store: Store, record: RunRecord, replay: RunRecord, scratch: Store
) -> str | None:
    return _difference(_observed(record, store), _observed(replay, scratch))


def _stored_edits(store: Store, record: RunRecord) -> list[str]:
    """Say which of the run's stored artifact files no longer have their captured SHA-256."""
    edits = []
    for ref in record.artifacts:
        try:
            digest = hashlib.sha256()
            with open(store.artifact_path(ref), "rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
            now = f"has sha256 {digest.hexdigest()[:12]}"
            if digest.hexdigest() == ref.sha256:
                continue
        except OSError as exc:
            now = f"cannot be read ({exc.strerror})"
        edits.append(
            f"artifact {ref.name!r}: the file {ref.path} {now}, captured as sha256 "
            f"{ref.sha256[:12]}"
        )
    return edits


def _diagnose(
    store: Store,
    record: RunRecord,
    first: tuple[RunRecord, Store],
    second: tuple[RunRecord, Store] | None,
) -> RunVerdict:
    rid = record.run_id
    edits = _stored_edits(store, record)
    if second is None:
        return RunVerdict(rid, UNREPLAYABLE, "its second replay did not run")
    between = _difference(_observed(*first), _observed(*second))
    if between is not None:
        return RunVerdict(rid, DIFFERING, NOT_DETERMINISTIC, f"{between} (first vs second replay)")
    if edits:
        return RunVerdict(rid, DIFFERING, EDITED, "; ".join(edits))
    change = _first_difference(store, record, *first)
    return RunVerdict(rid, DIFFERING, CHANGED, f"{change} (store vs replays)")


def _provenance_difference(
    manifest: dict[str, Any], records: list[RunRecord], facts: dict[str, Any], folder: str
) -> list[list[str]]:
    """Return ``[what, in the store, now]`` for each provenance fact that changed.

    The git commit now is that of the work tree holding ``folder`` (the script's).
    """
    history = manifest.get("code_history") or []
    then_code = sorted({_code_at(manifest, history, r.started_at) or "unknown" for r in records})
    now_code = facts.get("code_sha256") or "unknown"
    stored = manifest.get("provenance") or {}
    then_env = stored.get("environment") or {}
    now_env = environment()
    then_git = (stored.get("git") or {}).get("commit")
    now_git = (git_state(folder) or {}).get("commit")
    rows = [
        ["operation code hash", ", ".join(h[:12] for h in then_code), now_code[:12]],
        ["git commit", str(then_git), str(now_git)],
        ["host", ", ".join(sorted({r.host for r in records})), socket.gethostname()],
        [
            "python",
            str((then_env.get("python") or {}).get("version")),
            now_env["python"]["version"],
        ],
        ["platform", str(then_env.get("platform")), str(now_env["platform"])],
    ]
    then_packages, now_packages = then_env.get("packages") or {}, now_env["packages"]
    for name in sorted(then_packages.keys() | now_packages.keys()):
        if then_packages.get(name) != now_packages.get(name):
            rows.append(
                [f"package {name}", str(then_packages.get(name)), str(now_packages.get(name))]
            )
    then_machine, now_machine = manifest.get("machine") or {}, facts.get("machine") or {}
    for key in sorted(then_machine.keys() | now_machine.keys()):
        rows.append([f"machine {key}", str(then_machine.get(key)), str(now_machine.get(key))])
    return [row for row in rows if row[1] != row[2]]


# ------------------------------------------------------- facts kept for later replays


def replay_facts(
    exp: Experiment, previous: dict[str, Any] | None, timestamp: str, done: int
) -> dict[str, Any]:
    """Return the manifest entries a later verification needs (the runner adds them).

    ``entry_point``: ``{"script", "variable"}`` the experiment is loaded from, set by
    ``metalab run FILE.py`` or found as a module-level variable of ``__main__`` when
    ``metalab.run`` is called from a script; None when neither (a notebook, a function's
    local variable). ``code_history``: ``[{"code_sha256", "since", "done_before"}]``,
    one entry per change of the operation's code hash, carried over from ``previous``
    (the store's manifest before this sweep) so that each run's code is known by its
    start time; ``done_before`` is ``done``, the runs completed in the store when that
    code first ran, so that :func:`warn_code_drift` counts the runs each code made
    without reading them. ``machine``: :func:`machine_facts`.
    """
    history = list((previous or {}).get("code_history") or [])
    if not history and previous is not None:
        older = (previous.get("operation") or {}).get("code_sha256")
        if older:
            since = ((previous.get("provenance") or {}).get("timestamp")) or ""
            history = [{"code_sha256": older, "since": since}]
    current = exp.operation.code_sha256
    if not history or history[-1]["code_sha256"] != current:
        history.append({"code_sha256": current, "since": timestamp, "done_before": done})
    return {
        "entry_point": exp.entry_point or _main_entry_point(exp),
        "code_history": history,
        "machine": machine_facts(),
    }


def _main_entry_point(exp: Experiment) -> dict[str, Any] | None:
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    if not isinstance(script, str) or not script.endswith(".py"):
        return None
    names = sorted(k for k, v in vars(main).items() if v is exp and not k.startswith("_"))
    if not names:
        return None
    return {"script": os.path.abspath(script), "variable": names[0]}


def _code_at(
    manifest: dict[str, Any], history: list[dict[str, Any]], started_at: str
) -> str | None:
    """Return the code hash the run started at ``started_at`` ran (by the code history)."""
    code = None
    for entry in history:
        if entry.get("since", "") <= started_at:
            code = entry.get("code_sha256")
    return code or (manifest.get("operation") or {}).get("code_sha256")


def warn_code_drift(exp: Experiment, store: Store, manifest: dict[str, Any], done: int) -> None:
    """Warn once if ``store`` holds completed runs made by other operation code than ``exp``'s.

    ``manifest`` is the one just written, with its ``code_history``; ``done`` is the
    number of completed runs in the store. Completed runs stay completed on a resume,
    so the runs a code made are those completed while it was the latest: the counts
    the history keeps give them. Only a history written before it kept counts makes
    this read the records (a million take 26 s and 2.7 GB).
    """
    history = manifest.get("code_history") or []
    current = exp.operation.code_sha256
    if all(entry.get("code_sha256") == current for entry in history):
        return
    others: dict[str, int] = {}
    if all("done_before" in entry for entry in history):
        bounds = [entry["done_before"] for entry in history] + [done]
        for entry, first, end in zip(history, bounds, bounds[1:], strict=False):
            code = entry.get("code_sha256") or "unknown"
            if code != current and end > first:
                others[code] = others.get(code, 0) + end - first
    else:
        for record in store.records():
            code = _code_at(manifest, history, record.started_at)
            if record.ok and code != current:
                others[code or "unknown"] = others.get(code or "unknown", 0) + 1
    if not others:
        return
    older = ", ".join(code[:12] for code in sorted(others))
    warnings.warn(
        f"run({exp.name!r} version {exp.version!r}): {sum(others.values())} completed "
        f"run(s) in the store {store.location} were made by different operation code "
        f"(code hash {older}; now {current[:12]}), and are kept as done. Either bump the "
        f"experiment's version to run them again in a new store, or check that they still "
        f"hold with: metalab verify {store.location}",
        CodeDriftWarning,
        stacklevel=5,  # the caller of run(): warn_code_drift < _prepare < _run < run
    )


def machine_facts() -> dict[str, Any]:
    """Return CPU and BLAS facts that can change a float result.

    ``cpu`` (the model name), ``machine``, ``cpu_count``, the BLAS thread-count
    variables that are set and, only when the program has imported numpy (it is never
    imported here), ``blas``: numpy's BLAS library and version.
    """
    facts: dict[str, Any] = {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        if variable in os.environ:
            facts[variable] = os.environ[variable]
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        facts["blas"] = _blas(numpy)
    return facts


def _cpu_model() -> str:
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info,
    ):
        for line in info:
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor()


def _blas(numpy: Any) -> str | None:
    try:
        config = numpy.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # an older numpy without mode=, or a layout it does not have
        return None


# ------------------------------------------------------ loading a script's experiment


def script_target(where: str, target: str) -> tuple[Path, str | None]:
    """Split ``FILE.py[:EXPERIMENT]``; a ':' is part of the path unless a name follows it."""
    path, name = Path(target), None
    head, colon, tail = target.rpartition(":")
    if colon and tail.isidentifier() and not path.exists():
        path, name = Path(head), tail
    if not path.exists():
        raise InvalidArgumentError(
            f"{where}: there is no file {str(path)!r}; pass the path of a Python script "
            f"that defines a metalab.Experiment, e.g. 'metalab run pi.py'."
        )
    if not path.is_file():
        raise InvalidArgumentError(
            f"{where}: {str(path)!r} is a folder, not a script; pass the .py file that "
            f"defines the experiment."
        )
    return path, name


@contextlib.contextmanager
def as_script(path: Path) -> Iterator[None]:
    """Give the script the ``sys.path[0]`` and ``sys.argv`` that ``python FILE.py`` would.

    Kept for the whole sweep: worker processes receive ``sys.path`` when they start,
    and import from it the script's sibling modules that its functions refer to.
    """
    saved_path, saved_argv = sys.path[:], sys.argv[:]
    sys.path.insert(0, str(path.resolve().parent))
    sys.argv = [str(path)]
    try:
        yield
    finally:
        sys.path[:] = saved_path
        sys.argv = saved_argv


def load_experiment(where: str, path: Path, name: str | None) -> Experiment:
    """Execute the script and return its Experiment (``name``, or the only one).

    The experiment's ``entry_point`` is set to the script and variable, which the
    manifest keeps so that ``metalab verify`` can load it again.
    """
    try:
        # Not "__main__", so the script's `if __name__ == "__main__":` block does not
        # run. The module is not left in sys.modules, so cloudpickle ships the script's
        # functions and classes to worker processes by value.
        namespace = runpy.run_path(str(path), run_name="__metalab__")
    except (Exception, SystemExit) as exc:
        raise InvalidArgumentError(
            f"{where}: the script raised {type(exc).__name__} while loading: {exc}; "
            f"fix the script (--traceback shows where)."
        ) from exc
    found: dict[int, tuple[Experiment, list[str]]] = {}
    for key, value in namespace.items():
        if isinstance(value, Experiment) and not key.startswith("__"):
            found.setdefault(id(value), (value, []))[1].append(key)
    names = sorted(key for _, keys in found.values() for key in keys)
    if name is not None:
        if name not in namespace:
            known = ", ".join(names) or "none"
            raise InvalidArgumentError(
                f"{where}: {str(path)!r} defines no name {name!r}; its experiments: {known}."
            )
        value = namespace[name]
        if not isinstance(value, Experiment):
            raise InvalidArgumentError(
                f"{where}: {name!r} is of type {type(value).__name__}, not a metalab.Experiment; "
                f"name a variable holding one ({', '.join(names) or 'the script has none'})."
            )
        exp, variable = value, name
    elif not found:
        raise InvalidArgumentError(
            f"{where}: {str(path)!r} defines no metalab.Experiment at module level; "
            f"create one there, e.g. exp = metalab.Experiment(name=..., operation=..., ...)."
        )
    elif len(found) > 1:
        raise InvalidArgumentError(
            f"{where}: {str(path)!r} defines {len(found)} experiments ({', '.join(names)}); "
            f"name one, e.g. 'metalab run {path}:{names[0]}'."
        )
    else:
        exp, keys = next(iter(found.values()))
        variable = sorted(keys)[0]
    exp.entry_point = {"script": str(path.resolve()), "variable": variable}
    return exp
