"""@operation: naming, versioning and argument injection by parameter name."""

from __future__ import annotations

import pytest

import metalab
from metalab.errors import InvalidArgumentError, InvalidTypeError
from metalab.operation import ARGUMENTS, Operation


def test_bare_decorator_names_the_operation_after_the_function():
    @metalab.operation
    def train(params):
        return params["x"]

    assert isinstance(train, Operation)
    assert (train.name, train.version, train.wants) == ("train", "0", ("params",))


def test_decorator_with_name_and_version():
    @metalab.operation(name="pi_mc", version="0.1")
    def estimate(params, seeds, capture):
        pass

    assert (estimate.name, estimate.version) == ("pi_mc", "0.1")
    assert estimate.wants == ("params", "seeds", "capture")


def test_invoke_passes_only_what_the_function_asks_for():
    seen = {}

    @metalab.operation
    def op(runtime, context):
        seen.update(runtime=runtime, context=context)

    op.invoke(params=1, seeds=2, capture=3, context=4, runtime=5)
    assert seen == {"runtime": 5, "context": 4}


def test_var_keyword_receives_every_argument():
    @metalab.operation
    def op(**everything):
        return sorted(everything)

    assert op.wants == ARGUMENTS
    assert op.invoke(**dict.fromkeys(ARGUMENTS)) == sorted(ARGUMENTS)


def test_unknown_argument_is_refused_when_declared_with_the_allowed_names():
    with pytest.raises(InvalidArgumentError) as info:

        @metalab.operation
        def op(params, learning_rate):
            pass

    message = str(info.value)
    assert "'learning_rate'" in message
    assert "params, seeds, capture, context, runtime" in message
    assert "params['learning_rate']" in message


def test_argument_with_a_default_is_left_to_the_function():
    @metalab.operation
    def op(params, verbose=False):
        return verbose

    assert op.wants == ("params",)
    assert op.invoke(params={}) is False


def test_positional_only_parameters_are_refused():
    with pytest.raises(InvalidArgumentError, match="by name"):

        @metalab.operation
        def op(params, /):
            pass


@pytest.mark.parametrize("bad", ["", 3, None])
def test_bad_version_is_refused(bad):
    with pytest.raises(InvalidTypeError, match="version"):
        metalab.operation(version=bad)(lambda params: None)


def test_source_hash_changes_with_the_code():
    def one(params):
        return 1

    def two(params):
        return 2

    assert Operation(one).code_sha256 != Operation(two).code_sha256
    assert Operation(one).code_sha256 == Operation(one).code_sha256


def test_decorated_function_is_still_callable_directly():
    @metalab.operation
    def double(params):
        return params["x"] * 2

    assert double({"x": 4}) == 8


def _seen(**given):
    return given


class _Model:
    def step(self, capture, params):
        return _seen(capture=capture, params=params)


@pytest.mark.parametrize(
    "func",
    [
        lambda params, seeds, capture: _seen(params=params, seeds=seeds, capture=capture),
        lambda capture, params: _seen(capture=capture, params=params),
        lambda runtime: _seen(runtime=runtime),
        lambda: _seen(),
        lambda params, *, capture: _seen(params=params, capture=capture),
        lambda params, verbose=False, capture=None: _seen(params=params, capture=capture),
        lambda context, **rest: _seen(context=context, **rest),
        _Model().step,
    ],
    ids=[
        "first",
        "reordered",
        "one",
        "none",
        "keyword-only",
        "default-between",
        "var-kw",
        "method",
    ],
)
def test_caller_passes_what_invoke_passes(func):
    # The runner calls through caller(): by position where it can, by keyword otherwise.
    op = Operation(func, name="op")
    available = dict(zip(ARGUMENTS, ["p", "s", "c", "ctx", "rt"], strict=True))
    assert op.caller()(*available.values()) == op.invoke(**available)
