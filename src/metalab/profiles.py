"""Project profiles: a project's default store and named executors. Imports errors, executors.

A project keeps them in ``metalab.toml`` beside its script (or in the working folder),
at the top level, or in the ``[tool.metalab]`` table of the nearest ``pyproject.toml``
above (``docs/profiles.md``)::

    store_root = "runs"                 # the default store: <store_root>/<experiment name>
    default_profile = "local"           # optional
    [profiles.local]
    executor = "process"
    workers = 4
    [profiles.slurm]
    executor = "slurm"
    store = "/shared/runs"              # a store root folder, or a postgresql:// URL
    slurm = { partition = "cpu", time = 60, mem = "4G", setup = ["module load python"] }

:func:`select_profile` finds the file, validates all of it, and returns the
:class:`Profile` that ``metalab.run(profile=...)``, ``metalab run --profile`` or the
``METALAB_PROFILE`` variable names (else ``default_profile``, else none). Values the
caller passes explicitly win over the profile's. The file is read with the standard
library's ``tomllib``; an executor's optional dependencies are imported only when a
chosen profile's executor is made.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metalab.errors import InvalidArgumentError, InvalidTypeError, MetalabError
from metalab.executors import (
    DaskExecutor,
    Executor,
    ProcessExecutor,
    SerialExecutor,
    SlurmExecutor,
    ThreadExecutor,
)

__all__ = ["Profile", "ProjectConfig", "find_config", "load_config", "select_profile"]

# The environment variable that chooses a profile when no argument does.
_ENV = "METALAB_PROFILE"

_EXECUTORS: dict[str, type[Executor] | type[SlurmExecutor]] = {
    cls.__name__.removesuffix("Executor").lower(): cls
    for cls in (SerialExecutor, ThreadExecutor, ProcessExecutor, DaskExecutor, SlurmExecutor)
}
# The module an executor kind needs, and the pip extra that installs it.
_NEEDS = {
    "process": ("cloudpickle", "process"),
    "dask": ("distributed", "dask"),
    "slurm": ("submitit", "slurm"),
}


# ------------------------------------------------------------------------------ schema


@dataclass(frozen=True)
class _Kind:
    """A TOML value type the schema accepts: its test and its name in messages."""

    name: str
    accepts: Callable[[Any], bool]


_STR = _Kind("a string", lambda v: isinstance(v, str))
_INT = _Kind("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool))
_TABLE = _Kind("a table", lambda v: isinstance(v, dict))
_LINES = _Kind(
    "a list of strings", lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v)
)
_GPUS = _Kind(
    '"all" or a list of GPU numbers',
    lambda v: (
        v == "all"
        or (isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v))
    ),
)
_SBATCH_VALUE = _Kind(
    "a string, whole number or boolean", lambda v: isinstance(v, str | int | bool)
)

_TOP = {"store_root": _STR, "default_profile": _STR, "profiles": _TABLE}
_PROFILE = {
    "executor": _STR,
    "store": _STR,
    "workers": _INT,
    "gpus": _GPUS,
    "address": _STR,
    "slurm": _TABLE,
}
# The profile keys each executor kind takes, besides ``executor`` and ``store``.
_KIND_KEYS = {
    "serial": (),
    "thread": ("workers",),
    "process": ("workers", "gpus"),
    "dask": ("workers", "address"),
    "slurm": ("slurm",),
}
# SlurmExecutor's settings; ``sbatch`` holds any other sbatch option (its **slurm_extra).
_SLURM = {
    "folder": _STR,
    "partition": _STR,
    "time": _INT,
    "cpus_per_task": _INT,
    "mem": _STR,
    "gpus_per_task": _INT,
    "array_parallelism": _INT,
    "chunk_size": _INT,
    "setup": _LINES,
    "max_array_size": _INT,
    "python": _STR,
    "sbatch": _TABLE,
}


# ------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class Profile:
    """One execution profile: an executor kind with its settings, and a store.

    ``name`` is None for the profile-less choice (only the file's ``store_root``
    applies). ``settings`` are keyword arguments of the executor's class (e.g.
    ``{"max_workers": 4}`` for ``workers = 4`` of a process profile).
    """

    name: str | None
    executor: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: A store root folder (each experiment's store is ``<store>/<name>``), a
    #: ``postgresql://`` URL (the store itself), or None (``runs``).
    store: str | None = None
    #: ``FILE:LINE`` where the profile is defined, or None.
    source: str | None = None

    def store_for(self, experiment: str) -> str | Path:
        """Return the store of ``experiment``: under the store root, or the URL as given.

        >>> str(Profile("big", store="/shared/runs").store_for("pi_mc"))
        '/shared/runs/pi_mc'
        >>> str(Profile(None).store_for("pi_mc"))
        'runs/pi_mc'
        """
        if self.store is not None and _is_url(self.store):
            return self.store
        return Path(self.store or "runs") / experiment

    def make_executor(
        self, kind: str | None = None, **overrides: Any
    ) -> Executor | SlurmExecutor | None:
        """Return the executor of ``kind`` (default: the profile's), or None for none.

        The profile's settings apply when ``kind`` is its own kind; ``overrides``
        (keyword arguments of the executor's class) win over them.
        """
        kind = kind or self.executor
        if kind is None:
            return None
        if kind not in _EXECUTORS:
            raise InvalidArgumentError(
                f"Profile.make_executor(kind={kind!r}): unknown executor"
                f"{_did_you_mean(kind, _EXECUTORS)} Known: {', '.join(_EXECUTORS)}."
            )
        settings = {**self.settings} if kind == self.executor else {}
        settings.update(overrides)
        try:
            return _EXECUTORS[kind](**settings)
        except MetalabError as exc:
            if self.name is None:
                raise
            # Same class, so `except MissingDependencyError` (an ImportError) still works.
            raise type(exc)(f"profile {self.name!r} ({self.source}): {exc}") from exc

    @property
    def missing(self) -> str | None:
        """The install command of the executor's extra if it is not installed, else None."""
        module, extra = _NEEDS.get(self.executor or "", (None, None))
        if module is None or importlib.util.find_spec(module) is not None:
            return None
        return f"pip install 'metalab[{extra}]'"


@dataclass(frozen=True)
class ProjectConfig:
    """A validated project file: its default store root and its profiles.

    ``path`` is None when no file was found (no profiles; the store root is ``runs``).
    """

    path: Path | None = None
    store_root: str | None = None
    default_profile: str | None = None
    profiles: Mapping[str, Profile] = field(default_factory=dict)

    def select(self, name: str | None = None, *, where: str = "run") -> Profile:
        """Return the profile ``name``; else ``METALAB_PROFILE``'s; else the default one.

        With none of these, return a nameless profile holding only ``store_root``.
        ``where`` names the caller in messages (``"run"``, ``"metalab run x.py"``).
        """
        # "run(profile='x')" from Python, "metalab run exp.py --profile x" from the shell.
        how = f"{where}(profile={name!r})" if where.isidentifier() else f"{where} --profile {name}"
        if name is None and os.environ.get(_ENV):
            name = os.environ[_ENV]
            how = f"{where}: {_ENV}={name!r}"
        if name is None:
            name, how = self.default_profile, f"{where}: default_profile={self.default_profile!r}"
        if name is None:
            return Profile(None, store=self.store_root)
        if not isinstance(name, str):
            raise InvalidTypeError(f"{how}: a profile is named by a string, e.g. 'slurm'.")
        if self.path is None:
            raise InvalidArgumentError(
                f"{how}: there is no project file with profiles: no metalab.toml beside the "
                f"script or in {os.getcwd()}, and no pyproject.toml with a [tool.metalab] "
                f"table above; write one (see docs/profiles.md), or drop the profile."
            )
        if name not in self.profiles:
            raise InvalidArgumentError(
                f"{how}: no profile {name!r} in {self.path}"
                f"{_did_you_mean(name, self.profiles)} Profiles: "
                f"{', '.join(sorted(self.profiles)) or 'none'}."
            )
        return self.profiles[name]


# ----------------------------------------------------------------------------- finding


def find_config(script: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the project file that holds the profiles, or None.

    First ``metalab.toml`` beside ``script`` (a file or a folder; default: the running
    ``__main__`` script), then in the working folder; else the nearest
    ``pyproject.toml`` with a ``[tool.metalab]`` table, upward from the script's folder,
    then from the working folder.
    """
    if script is None:
        script = getattr(sys.modules.get("__main__"), "__file__", None)
    folders = []
    if script is not None:
        place = Path(script).resolve()
        folders.append(place if place.is_dir() else place.parent)
    folders.append(Path.cwd())
    for folder in folders:
        if (folder / "metalab.toml").is_file():
            return folder / "metalab.toml"
    for folder in folders:
        for parent in (folder, *folder.parents):
            candidate = parent / "pyproject.toml"
            # Recognised by its header rather than parsed: a broken pyproject.toml of some
            # unrelated project above must not stop a sweep.
            if candidate.is_file() and _TOOL_TABLE.search(candidate.read_text("utf-8")):
                return candidate
    return None


def select_profile(
    name: str | None = None,
    *,
    script: str | os.PathLike[str] | None = None,
    where: str = "run",
) -> Profile:
    """Find and validate the project file (:func:`find_config`); return the chosen profile.

    See :meth:`ProjectConfig.select` for the choice; ``where`` names the caller in
    messages.
    """
    path = find_config(script)
    return (ProjectConfig() if path is None else load_config(path)).select(name, where=where)


# ----------------------------------------------------------------------------- reading


def load_config(path: str | os.PathLike[str]) -> ProjectConfig:
    """Read and validate the project file ``path`` (``metalab.toml`` or ``pyproject.toml``).

    An unknown key, a value of the wrong type, an unknown executor or a
    ``default_profile`` naming no profile raises an error naming the key, the file and
    its line, and what is allowed.
    """
    path = Path(path)
    text = path.read_text("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgumentError(f"{path}: not valid TOML ({exc}); fix the file.") from exc
    root: tuple[str, ...] = ()
    if path.name == "pyproject.toml":
        root = ("tool", "metalab")
        data = data.get("tool", {}).get("metalab", {})
    reader = _Reader(path, text, root)
    reader.check(data, (), _TOP)
    profiles = {
        name: reader.profile(name, table, data.get("store_root"))
        for name, table in reader.tables(data.get("profiles", {}), ("profiles",))
    }
    default = data.get("default_profile")
    if default is not None and default not in profiles:
        raise InvalidArgumentError(
            f"{reader.where(('default_profile',))}: default_profile = {default!r} names no "
            f"profile{_did_you_mean(default, profiles)} Profiles: "
            f"{', '.join(sorted(profiles)) or 'none'}."
        )
    return ProjectConfig(path, data.get("store_root"), default, profiles)


class _Reader:
    """Validates the tables of one file; knows its text, to say on which line a key is."""

    def __init__(self, path: Path, text: str, root: tuple[str, ...]) -> None:
        self.path = path
        self.root = root
        self.lines = _key_lines(text)

    def location(self, keys: tuple[str, ...]) -> str:
        """``FILE:LINE`` of the key, else of its nearest enclosing table."""
        full = self.root + keys
        line = next(
            (self.lines[full[:n]] for n in range(len(full), 0, -1) if full[:n] in self.lines), 1
        )
        return f"{self.path}:{line}"

    def where(self, keys: tuple[str, ...]) -> str:
        """``FILE:LINE: dotted.key``, to begin a message about the key."""
        return f"{self.location(keys)}: {'.'.join(self.root + keys)}"

    def check(self, table: dict[str, Any], keys: tuple[str, ...], schema: dict[str, _Kind]) -> None:
        """Raise on a key ``schema`` lacks or a value of the wrong type."""
        for key, value in table.items():
            if key not in schema:
                raise InvalidArgumentError(
                    f"{self.where((*keys, key))}: unknown key {key!r}"
                    f"{_did_you_mean(key, schema)} Allowed: {', '.join(schema)}."
                )
            if not schema[key].accepts(value):
                raise InvalidTypeError(
                    f"{self.where((*keys, key))}: must be {schema[key].name}, got "
                    f"{_toml_type(value)} {value!r:.60}."
                )

    def tables(self, table: dict[str, Any], keys: tuple[str, ...]) -> list[tuple[str, Any]]:
        """Return the ``(name, table)`` pairs of ``table``, each value checked to be a table."""
        for name, value in table.items():
            if not isinstance(value, dict):
                raise InvalidTypeError(
                    f"{self.where((*keys, name))}: a profile must be a table such as "
                    f"[profiles.{name}], got {_toml_type(value)} {value!r:.60}."
                )
        return list(table.items())

    def profile(self, name: str, table: dict[str, Any], store_root: str | None) -> Profile:
        """Validate the table of profile ``name``; return it with its executor's keywords."""
        keys = ("profiles", name)
        self.check(table, keys, _PROFILE)
        kind = table.get("executor")
        if kind is not None and kind not in _KIND_KEYS:
            raise InvalidArgumentError(
                f"{self.where((*keys, 'executor'))}: unknown executor {kind!r}"
                f"{_did_you_mean(kind, _KIND_KEYS)} Allowed: {', '.join(_KIND_KEYS)}."
            )
        for key in set(table) - {"executor", "store"} - set(_KIND_KEYS.get(kind, ())):
            takers = [k for k, taken in _KIND_KEYS.items() if key in taken]
            raise InvalidArgumentError(
                f"{self.where((*keys, key))}: {key!r} is a setting of executor = "
                f"{' or '.join(map(repr, takers))}, and this profile's executor is {kind!r}; "
                f"drop it, or set executor to one that takes it."
            )
        settings: dict[str, Any] = {}
        if "workers" in table:
            settings["max_workers" if kind in ("thread", "process") else "n_workers"] = table[
                "workers"
            ]
        if "gpus" in table:  # ProcessExecutor checks them against the machine when made
            settings["gpus"] = table["gpus"]
        if "address" in table:
            settings["address"] = table["address"]
        if "slurm" in table:
            self.check(table["slurm"], (*keys, "slurm"), _SLURM)
            settings.update(table["slurm"])
            extra = settings.pop("sbatch", {})
            self.check(extra, (*keys, "slurm", "sbatch"), dict.fromkeys(extra, _SBATCH_VALUE))
            clash = set(extra) & set(_SLURM)
            if clash:
                raise InvalidArgumentError(
                    f"{self.where((*keys, 'slurm', 'sbatch', min(clash)))}: {min(clash)!r} "
                    f"is a setting of its own; move it from slurm.sbatch to slurm."
                )
            settings.update(extra)
        return Profile(name, kind, settings, table.get("store", store_root), self.location(keys))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path the text defines to the line that first defines it.

    tomllib gives no positions, so the text is scanned: table headers, ``a.b = ``
    assignments under them, and keys of inline tables on the same line. A key this
    scan misses (inside a multi-line string, say) falls back to its table's line.
    """
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            table = _split_key(header[1])
            for n in range(1, len(table) + 1):
                found.setdefault(table[:n], number)
            continue
        assignment = _ASSIGNMENT.match(line)
        if not assignment:
            continue
        key = table + _split_key(assignment[1])
        for n in range(len(table) + 1, len(key) + 1):
            found.setdefault(key[:n], number)
        # Inline tables: `{` opens the table of the key just before it.
        stack, last = [key], key
        for token in _INLINE_TOKEN.finditer(line, assignment.end()):
            if token[1]:
                last = (*stack[-1], token[1].strip("\"'"))
                found.setdefault(last, number)
            elif token[0] == "{":
                stack.append(last)
            elif token[0] == "}" and len(stack) > 1:
                stack.pop()
            elif token[0].startswith("#"):
                break
    return found


_TOOL_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*metalab\s*[.\]]", re.MULTILINE)
_KEY_PART = r'[A-Za-z0-9_-]+|"[^"\n]*"|\'[^\'\n]*\''
_DOTTED = rf"(?:{_KEY_PART})(?:\s*\.\s*(?:{_KEY_PART}))*"
_HEADER = re.compile(rf"^\s*\[\[?\s*({_DOTTED})\s*\]\]?\s*(?:#.*)?$")
_ASSIGNMENT = re.compile(rf"^\s*({_DOTTED})\s*=")
# Strings are matched whole so that a `{` or `key =` inside one is not taken for TOML.
_INLINE_TOKEN = re.compile(rf'"(?:\\.|[^"\\])*"|\'[^\']*\'|({_KEY_PART})\s*=|[{{}}]|#.*')


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in re.findall(_KEY_PART, dotted))


def _did_you_mean(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else "."


def _toml_type(value: Any) -> str:
    kinds = {bool: "a boolean", int: "a whole number", float: "a number", str: "a string"}
    kinds |= {list: "an array", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def _is_url(store: str) -> bool:
    return "://" in store
