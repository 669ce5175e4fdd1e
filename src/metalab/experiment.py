"""Experiment: what to run, declared once.

Imports errors, fingerprint, seeds, params, context and operation.

An experiment ties an operation to a parameter source, a seed plan and a context.
Its sweep is every (case, replicate) pair; each pair is one run, identified by
:meth:`Experiment.run_id`. Everything is checked here, before any run starts.

>>> import metalab
>>> @metalab.operation
... def noop(params):
...     pass
>>> exp = Experiment("demo", "1", {}, noop, metalab.grid(x=[1, 2]), metalab.seeds(0, 3))
>>> exp.total_runs
6
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from metalab._version import __version__
from metalab.context import context_fingerprint
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.fingerprint import check_encodable, fingerprint, run_id_function
from metalab.operation import Operation
from metalab.params import ParamCase, ParamSource
from metalab.seeds import SeedBundle, SeedPlan

__all__ = ["MANIFEST_FORMAT", "Experiment"]

#: Version of the manifest layout written by :meth:`Experiment.manifest`.
MANIFEST_FORMAT = 1

# Names become folder names (./runs/<name>): keep them portable.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class Experiment:
    """An operation swept over a parameter source and a seed plan, with a context.

    Args:
        name: Experiment name; also the default store folder ``./runs/<name>``.
        version: Experiment version; a store refuses records of another version.
        context: Shared read-only data: a ``@metalab.context_spec`` instance, a dict, or None.
        operation: A function decorated with ``@metalab.operation`` (a plain function
            is wrapped).
        params: A parameter source (``metalab.grid``, ``random``, ``manual``).
        seeds: A seed plan (``metalab.seeds(base, replicates)``).
        tags: Labels for the experiment.
        metadata: Any JSON-like facts to keep in the manifest.

    """

    def __init__(
        self,
        name: str,
        version: str = "0",
        context: Any = None,
        operation: Operation | Callable[..., Any] | None = None,
        params: ParamSource | None = None,
        seeds: SeedPlan | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise InvalidArgumentError(
                f"Experiment(name={name!r}): must be 1-128 letters, digits, '.', '_', '+' "
                f"or '-', starting with a letter or digit, because it names the store "
                f"folder; e.g. name='pi_mc'."
            )
        if not isinstance(version, str) or not version:
            raise InvalidTypeError(
                f"Experiment(version={version!r}): must be a non-empty str, "
                f"e.g. version={str(version)!r}."
            )
        if operation is None:
            raise InvalidArgumentError(
                f"Experiment({name!r}): operation is missing; pass operation=<a function "
                f"decorated with @metalab.operation>."
            )
        if not isinstance(params, ParamSource):
            raise InvalidTypeError(
                f"Experiment(params={params!r:.80}): must be a parameter source; use "
                f"metalab.grid(...), metalab.random(...) or metalab.manual([...])."
            )
        if not isinstance(seeds, SeedPlan):
            raise InvalidTypeError(
                f"Experiment(seeds={seeds!r:.80}): must be a seed plan; use "
                f"metalab.seeds(base=42, replicates=3)."
            )
        tags = [] if tags is None else tags
        if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
            raise InvalidTypeError(
                f"Experiment(tags={tags!r:.80}): must be a list of str, e.g. ['baseline']."
            )
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, Mapping):
            raise InvalidTypeError(
                f"Experiment(metadata={metadata!r:.80}): must be a dict of JSON-like values."
            )
        check_encodable(dict(metadata), where="Experiment(metadata)")
        self.name = name
        self.version = version
        self.context = {} if context is None else context
        self.operation = operation if isinstance(operation, Operation) else Operation(operation)
        self.params = params
        self.seeds = seeds
        self.tags = list(tags)
        self.metadata = dict(metadata)
        self.context_fingerprint = context_fingerprint(self.context)
        #: ``{"script", "variable"}`` the experiment was loaded from (set by ``metalab
        #: run FILE.py``), kept in the manifest so that ``metalab verify`` can load it
        #: again; None when unknown.
        self.entry_point: dict[str, str | None] | None = None
        #: ``run_id_from(params_fingerprint, seeds_fingerprint)``: the run ID with this
        #: experiment's name, version and context bound (what :meth:`run_id` uses; a sweep
        #: calls it once per run with fingerprints it computed once).
        self.run_id_from = run_id_function(
            experiment=name, version=version, context=self.context_fingerprint
        )

    def __repr__(self) -> str:
        return (
            f"Experiment(name={self.name!r}, version={self.version!r}, "
            f"operation={self.operation.name!r}, runs={self.total_runs})"
        )

    @property
    def total_runs(self) -> int:
        """Number of runs in the sweep: parameter cases times replicates."""
        return len(self.params) * len(self.seeds)

    def run_id(self, case: ParamCase, bundle: SeedBundle) -> str:
        """Return the stable ID of the run of ``case`` with ``bundle``."""
        return self.run_id_from(case.fingerprint, bundle.fingerprint)

    @property
    def sweep_fingerprint(self) -> str:
        """Fingerprint of all that decides the sweep's run IDs, in order.

        Two experiments with equal ``sweep_fingerprint`` have the same run ID at every
        position (case index times replicates plus replicate index): a store keeps the
        run IDs of a sweep under it, so a resume need not compute them again. It relies
        on a parameter source's manifest describing its cases completely, which
        :meth:`ParamSource.from_manifest_dict` needs anyway.
        """
        return fingerprint(
            {
                "scheme": "metalab.sweep/1",
                "experiment": self.name,
                "version": self.version,
                "context": self.context_fingerprint,
                "params": self.params.to_manifest_dict(),
                "seeds": self.seeds.to_manifest_dict(),
            },
            where="Experiment.sweep_fingerprint",
        )

    def manifest(self, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
        """Return the JSON-ready description of the whole experiment.

        ``provenance`` (environment and git facts) is added by the runner.
        """
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "version": self.version,
            "tags": self.tags,
            "metadata": self.metadata,
            "operation": self.operation.to_manifest_dict(),
            "params": self.params.to_manifest_dict(),
            "seeds": self.seeds.to_manifest_dict(),
            "context_fingerprint": self.context_fingerprint,
            "total_runs": self.total_runs,
            "metalab_version": __version__,
            "provenance": provenance or {},
        }
