"""Seeds: explicit, derivable random streams. Imports errors, _optional, fingerprint.

All randomness of a run comes from its :class:`SeedBundle`; a :class:`SeedPlan`
gives one bundle per replicate. The algorithms are those of the original metalab,
so the same code gives the same numbers there and here:

- ``derive(name)``: the first 8 bytes, big-endian, of SHA-256 over the UTF-8 text
  ``f"{root_seed}:{name}:{replicate_index or 0}"``. The root seed and the replicate
  index are decimal digits without ``:``, so the text splits back unambiguously at
  its first and last ``:``, whatever ``name`` holds. A bundle with replicate index
  ``None`` derives the same seeds as replicate ``0`` (as in the original); the two
  bundles still differ in :attr:`SeedBundle.fingerprint` and so in run IDs.
- ``numpy(name)``: ``numpy.random.default_rng(derive(name))``, the full 64 bits
  through ``SeedSequence`` (never truncated to 32 bits: with 2^32 streams, two runs of
  a 100,000-run sweep share one with probability about 2/3).
- ``numpy_seed(name)``: ``derive(name) % 2**32``, for libraries that take nothing wider.
- ``rng(name)``: ``random.Random(derive(name))``.
- ``SeedBundle.for_preprocessing(base)``: root seed = first 8 bytes, big-endian, of
  SHA-256 over ``f"{base}:preprocessing:0"``, replicate index ``None``.
- ``SeedPlan(base, n)[i]`` is ``SeedBundle(root_seed=base, replicate_index=i)``.

:func:`seed_everything` and :func:`seeded` seed the *global* generators of
``random``, NumPy and torch, for code that does not take a generator argument.

>>> bundle = seeds(base=42, replicates=3)[1]
>>> bundle.derive("init") == SeedBundle(42, 1).derive("init")
True
"""

from __future__ import annotations

import functools
import hashlib
import os
import random as _stdlib_random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from metalab._optional import optional, require
from metalab._validate import check_index, check_int
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.fingerprint import fingerprint

__all__ = ["SEED_LIMIT", "SeedBundle", "SeedPlan", "seed_everything", "seeded", "seeds"]

#: Seeds are 64-bit: every seed metalab accepts or derives is in [0, SEED_LIMIT).
SEED_LIMIT = 2**64
_CUBLAS_WORKSPACE = ":4096:8"


def _check_seed(where: str, name: str, value: Any) -> int:
    if type(value) is int and value.bit_length() > 256:
        # repr() of an int beyond 4300 digits raises, so the value is shown by its size.
        raise InvalidArgumentError(
            f"{where}({name}=<an int of {value.bit_length()} bits>): must be an int in "
            f"[0, 2**64). {_SEED_FIX.format(name=name)}"
        )
    try:
        return check_int(where, name, value, minimum=0, below=SEED_LIMIT)
    except (InvalidArgumentError, InvalidTypeError) as exc:
        # check_int says what is allowed; a seed also needs to say how to get one.
        raise type(exc)(f"{exc} {_SEED_FIX.format(name=name)}") from None


_SEED_FIX = (
    "Pass a whole number such as {name}=42: int(text) for a str, x % 2**64 for a larger "
    "or negative int (e.g. a hash)."
)


@functools.lru_cache(maxsize=4096)
def _hash64(text: str) -> int:
    """First 8 bytes, big-endian, of SHA-256 over the UTF-8 ``text``.

    Cached: every run of a replicate derives the same few seeds (``seeds.numpy()``
    once a run), and a cache hit costs a fifth of the hash.
    """
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True, slots=True)
class SeedBundle:
    """Bundle of seeds for reproducible random number generation.

    All randomness in an operation should be derived from this bundle, so that the
    same bundle gives the same numbers on any machine, in any worker.

    Attributes:
        root_seed: The base seed for all derivations, in [0, 2^64).
        replicate_index: The replicate number (if part of a :class:`SeedPlan`), or None.

    >>> b = SeedBundle(root_seed=42, replicate_index=0)
    >>> b.derive("sampling") != b.derive("init")
    True

    """

    root_seed: int
    replicate_index: int | None = None

    def __post_init__(self) -> None:
        _check_seed("SeedBundle", "root_seed", self.root_seed)
        if self.replicate_index is not None:
            check_int("SeedBundle", "replicate_index", self.replicate_index, minimum=0)

    def derive(self, name: str) -> int:
        """Derive a 64-bit sub-seed from root seed, ``name`` and replicate index.

        Uses SHA-256 for cross-platform stability (algorithm in the module doc).

        >>> SeedBundle(42, 0).derive("sampling")
        16451810078227672686
        """
        if not isinstance(name, str):
            raise InvalidTypeError(
                f"SeedBundle.derive(name={name!r}): name must be a str such as "
                f"'sampling', got {type(name).__name__}."
            )
        return _hash64(f"{self.root_seed}:{name}:{self.replicate_index or 0}")

    def numpy(self, name: str = "default") -> Any:
        """Return a ``numpy.random.Generator`` seeded with all 64 bits of ``derive(name)``.

        Raises :class:`~metalab.errors.MissingDependencyError` (an ``ImportError``)
        when numpy is not installed.

        >>> rng = SeedBundle(42, 0).numpy("noise")
        >>> float(rng.random()) == float(SeedBundle(42, 0).numpy("noise").random())
        True
        """
        np = require("numpy", feature="SeedBundle.numpy()", extra="numpy")
        return np.random.default_rng(self.derive(name))

    def numpy_seed(self, name: str = "default") -> int:
        """Return ``derive(name) % 2**32``: a 32-bit non-negative seed.

        Only for libraries that accept nothing wider; prefer :meth:`numpy`, whose
        64-bit seeding keeps a large sweep's streams apart.
        """
        return self.derive(name) % 2**32

    def rng(self, name: str = "default") -> _stdlib_random.Random:
        """Return a ``random.Random`` seeded with ``derive(name)``.

        >>> SeedBundle(7).rng("shuffle").random() == SeedBundle(7).rng("shuffle").random()
        True
        """
        return _stdlib_random.Random(self.derive(name))

    def torch(self, name: str = "default", device: Any = None) -> Any:
        """Return a ``torch.Generator`` on ``device`` (default CPU) seeded with ``derive(name)``.

        Raises :class:`~metalab.errors.MissingDependencyError` when torch is not installed.
        """
        torch = require("torch", feature="SeedBundle.torch()", extra="torch")
        generator = torch.Generator(device="cpu" if device is None else device)
        generator.manual_seed(self.derive(name))
        return generator

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of :meth:`to_dict` (see :mod:`metalab.fingerprint`)."""
        return fingerprint(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Serialize the bundle: ``{"root_seed": ..., "replicate_index": ...}``."""
        return {"root_seed": self.root_seed, "replicate_index": self.replicate_index}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedBundle:
        """Create a bundle from :meth:`to_dict` output (``replicate_index`` optional)."""
        if not isinstance(data, dict) or "root_seed" not in data:
            raise InvalidArgumentError(
                f"SeedBundle.from_dict({data!r}): expected a dict with 'root_seed' "
                f"and optionally 'replicate_index', as written by SeedBundle.to_dict()."
            )
        return cls(root_seed=data["root_seed"], replicate_index=data.get("replicate_index"))

    @classmethod
    def for_preprocessing(cls, base_seed: int) -> SeedBundle:
        """Return the bundle for preprocessing done before the experiment runs.

        Its root seed lives in a "preprocessing" namespace derived from ``base_seed``
        (the value given to ``metalab.seeds(base=...)``), so its streams never equal a
        replicate's. Put the base seed in the preprocessed file's name so that changing
        it changes the file and so every run ID that depends on it.

        >>> prep = SeedBundle.for_preprocessing(42)
        >>> prep.replicate_index is None and prep.root_seed != 42
        True
        """
        _check_seed("SeedBundle.for_preprocessing", "base_seed", base_seed)
        return cls(root_seed=_hash64(f"{base_seed}:preprocessing:0"), replicate_index=None)


class SeedPlan:
    """One :class:`SeedBundle` per replicate: ``SeedPlan(base, n)[i] == SeedBundle(base, i)``.

    >>> plan = SeedPlan(base=42, replicates=3)
    >>> [b.replicate_index for b in plan], len(plan), plan[-1].replicate_index
    ([0, 1, 2], 3, 2)
    """

    __slots__ = ("base", "replicates")

    def __init__(self, base: int, replicates: int = 1) -> None:
        self.base = _check_seed("SeedPlan", "base", base)
        self.replicates = check_int("SeedPlan", "replicates", replicates, minimum=1)

    def __len__(self) -> int:
        return self.replicates

    def __iter__(self) -> Iterator[SeedBundle]:
        return (SeedBundle(self.base, i) for i in range(self.replicates))

    def __getitem__(self, index: int) -> SeedBundle:
        """Return the bundle of replicate ``index`` (negative counts from the end)."""
        position = check_index("SeedPlan", index, self.replicates)
        return SeedBundle(self.base, position)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeedPlan):
            return NotImplemented
        return (self.base, self.replicates) == (other.base, other.replicates)

    def __hash__(self) -> int:
        return hash((self.base, self.replicates))

    def __repr__(self) -> str:
        return f"SeedPlan(base={self.base}, replicates={self.replicates})"

    def to_manifest_dict(self) -> dict[str, Any]:
        """Return ``{"type": "SeedPlan", "base": ..., "replicates": ...}`` (JSON-ready)."""
        return {"type": "SeedPlan", "base": self.base, "replicates": self.replicates}

    @classmethod
    def from_manifest_dict(cls, manifest: dict[str, Any]) -> SeedPlan:
        """Rebuild a plan from :meth:`to_manifest_dict` output."""
        if not isinstance(manifest, dict) or "base" not in manifest:
            raise InvalidArgumentError(
                f"SeedPlan.from_manifest_dict({manifest!r}): expected a dict with 'base' "
                f"and 'replicates', as written by SeedPlan.to_manifest_dict()."
            )
        return cls(base=manifest["base"], replicates=manifest.get("replicates", 1))


def seeds(base: int, replicates: int = 1) -> SeedPlan:
    """Create a :class:`SeedPlan`: ``replicates`` independent runs per parameter case.

    >>> seeds(base=42, replicates=5)
    SeedPlan(base=42, replicates=5)
    """
    return SeedPlan(base=base, replicates=replicates)


def _global_seeds(seed: int | SeedBundle) -> tuple[int, int, int]:
    """Return the seeds for (random, numpy legacy, torch) that ``seed_everything`` uses."""
    if isinstance(seed, SeedBundle):
        return seed.derive("random"), seed.derive("numpy"), seed.derive("torch")
    value = _check_seed("seed_everything", "seed", seed)
    return value, value, value


def _numpy_legacy_seed(value: int) -> int | list[int]:
    """NumPy's legacy ``seed()`` takes 32 bits; wider seeds go in as two words, not truncated."""
    return value if value < 2**32 else [value & 0xFFFFFFFF, value >> 32]


def seed_everything(seed: int | SeedBundle, deterministic: bool = False) -> None:
    """Seed the global generators of ``random``, NumPy (legacy) and torch (CPU and CUDA).

    With an int ``seed``, each library is seeded with it, as ``random.seed(42)``,
    ``np.random.seed(42)`` and ``torch.manual_seed(42)`` would. With a
    :class:`SeedBundle`, each gets its own derived seed (``derive("random")``,
    ``derive("numpy")``, ``derive("torch")``). NumPy and torch are seeded where
    installed and skipped otherwise.

    ``deterministic=True`` also makes torch choose deterministic algorithms (raising on
    operations that have none), turns off cuDNN benchmarking, and sets
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless already set; that variable only works
    if set before the first cuBLAS call. ``PYTHONHASHSEED`` is not touched: it has no
    effect on a running interpreter, and metalab never relies on ``hash()``.

    >>> import random
    >>> seed_everything(42); first = random.random()
    >>> seed_everything(42); random.random() == first
    True
    """
    if not isinstance(deterministic, bool):
        raise InvalidTypeError(
            f"seed_everything(deterministic={deterministic!r}): must be True or False."
        )
    random_seed, numpy_seed, torch_seed = _global_seeds(seed)
    _stdlib_random.seed(random_seed)
    np = optional("numpy")
    if np is not None:
        np.random.seed(_numpy_legacy_seed(numpy_seed))
    torch = optional("torch")
    if torch is not None:
        torch.manual_seed(torch_seed)  # seeds every CUDA device too
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", _CUBLAS_WORKSPACE)
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False


def _torch_snapshot(torch: Any) -> dict[str, Any]:
    """Every piece of torch state that ``seed_everything`` may change."""
    cuda = torch.cuda.is_available()
    return {
        "cpu": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda else None,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def _torch_restore(torch: Any, state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    torch.use_deterministic_algorithms(state["deterministic"], warn_only=state["warn_only"])
    torch.backends.cudnn.deterministic = state["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = state["cudnn_benchmark"]


@contextmanager
def seeded(seed: int | SeedBundle, deterministic: bool = False) -> Iterator[None]:
    """Run a block under :func:`seed_everything`, then restore every previous state.

    On exit, the states of ``random``, NumPy's legacy generator, torch's CPU and CUDA
    generators, torch's determinism switches and ``CUBLAS_WORKSPACE_CONFIG`` are put
    back as they were, even if the block raised.

    >>> import random
    >>> before = random.getstate()
    >>> with seeded(7):
    ...     _ = random.random()
    >>> random.getstate() == before
    True
    """
    _global_seeds(seed)  # validate before saving or changing anything
    python_state = _stdlib_random.getstate()
    np = optional("numpy")
    numpy_state = np.random.get_state() if np is not None else None
    torch = optional("torch")
    torch_state = _torch_snapshot(torch) if torch is not None else None
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        seed_everything(seed, deterministic=deterministic)
        yield
    finally:
        _stdlib_random.setstate(python_state)
        if np is not None:
            np.random.set_state(numpy_state)
        if torch is not None:
            _torch_restore(torch, torch_state)
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas
