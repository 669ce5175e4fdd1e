"""The exceptions metalab raises. Imports nothing from metalab.

Every error derives from :class:`MetalabError` *and* from the builtin that fits it,
so ``except ValueError`` written against older code keeps working::

    MetalabError
    ├── InvalidArgumentError (ValueError)   a value outside what is allowed
    ├── InvalidTypeError (TypeError)        a value of the wrong type
    │   └── FingerprintError                a value the canonical encoding rejects
    ├── CaseIndexError (IndexError)         a case or replicate index out of range
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    └── StoreFullError (OSError)            the store's disk is full

Two are not errors of the caller but ways a sweep is stopped, and derive from
``BaseException`` so that an operation's ``except Exception`` cannot swallow them:
:class:`RunTimeout`, raised inside a run past its ``timeout=``, and
:class:`Terminated` (a ``KeyboardInterrupt``), raised in the runner by SIGTERM.

Messages follow one shape: where, what is wrong (with the value's repr), what is
allowed, and the fix.
"""

from __future__ import annotations

__all__ = [
    "CaseIndexError",
    "FingerprintError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "MetalabError",
    "MissingDependencyError",
    "RunTimeout",
    "StoreFullError",
    "Terminated",
]


class MetalabError(Exception):
    """Root of every exception metalab raises on purpose."""


class InvalidArgumentError(MetalabError, ValueError):
    """An argument has an allowed type but a value outside what is allowed."""


class InvalidTypeError(MetalabError, TypeError):
    """An argument has a type metalab cannot accept."""


class FingerprintError(InvalidTypeError):
    """A value cannot be put into the canonical encoding (see :mod:`metalab.fingerprint`)."""


class CaseIndexError(MetalabError, IndexError):
    """A parameter-case or replicate index is out of range."""


class MissingDependencyError(MetalabError, ImportError):
    """An optional dependency needed by the feature in use is not installed."""


class StoreFullError(MetalabError, OSError):
    """The store could not be written for lack of space (or quota); runs finished are kept."""


class RunTimeout(BaseException):
    """Raised inside a run that went past ``metalab.run(..., timeout=...)``; the run fails.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that ``except Exception`` in
    an operation does not catch it and go on past its time.
    """


class Terminated(KeyboardInterrupt):
    """Raised in the runner when it receives SIGTERM: the sweep stops as on Ctrl-C."""
