"""Properties of the expression compiler and evaluator: a clear error or a float, never a hang.

Expressions are generated from the grammar (numbers, inputs, constants, operators, whitelisted
calls of any arity) and as arbitrary text; inputs are any floats, ints and bools.
"""

from __future__ import annotations

import math

from _hypothesis import within
from hypothesis import given
from hypothesis import strategies as st

from softioc.config import ObservableConfig
from softioc.model import FUNCTIONS, ExpressionError, Observable, compile_expression

INPUTS = ["a", "b", "c"]
# what evaluating a compiled expression may raise; Observable.compute turns each into NaN
MATH_ERRORS = (ArithmeticError, ValueError, TypeError)

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=0, max_value=10**30).map(str),
    st.sampled_from(["0", "1", "2", "9", "10", "1e308", "1e-320", "0.5", "1e999"]),
)
leaves = st.one_of(numbers, st.sampled_from(INPUTS + ["pi", "e", "tau", "inf"]))


def _combine(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})")
    unary = st.tuples(st.sampled_from(["-", "+"]), children).map(lambda t: f"{t[0]}{t[1]}")
    call = st.tuples(st.sampled_from(sorted(FUNCTIONS)), st.lists(children, max_size=3)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})")
    return st.one_of(binary, unary, call)


expressions = st.recursive(leaves, _combine, max_leaves=40)
values = st.one_of(
    st.floats(), st.integers(min_value=-(10**20), max_value=10**20), st.booleans(),
    st.sampled_from([9, 9.0, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan]),
)
envs = st.fixed_dictionaries({name: values for name in INPUTS})


def _compile(text: str):
    kind, result = within(compile_expression, text, INPUTS)
    if kind == "error":
        assert isinstance(result, ExpressionError), f"{text!r} raised {result!r}"
        return None
    return result


@given(expressions, envs)
def test_grammar_expressions_give_a_float_or_a_math_error_at_once(text, env):
    evaluate = _compile(text)
    if evaluate is None:  # refused at compile time (size, a constant beyond float range, ...)
        return
    kind, result = within(evaluate, env)
    if kind == "error":
        assert isinstance(result, MATH_ERRORS), f"{text!r} with {env} raised {result!r}"
    else:
        assert type(result) is float, f"{text!r} with {env} gave {result!r}"
        if math.isfinite(result):
            # the same expression inside a bigger one evaluates to the same value
            assert compile_expression(f"({text}) * 1 + 0", INPUTS)(env) == result


@given(expressions, envs)
def test_an_observable_reads_a_float_for_any_inputs(text, env):
    if _compile(text) is None:
        return
    observable = Observable(ObservableConfig("P:OBJ", text, {n: f"P:{n}" for n in INPUTS}), seed=3)
    kind, result = within(observable.compute, env)
    assert kind == "value" and type(result) is float, (text, env, result)


@given(st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from("ab()+-*/%,. 019e*\x00\ud800"), max_size=400),
    st.integers(min_value=1, max_value=3000).map(lambda n: "(" * n + "a" + ")" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: "-" * n + "a"),
    st.integers(min_value=1, max_value=3000).map(lambda n: "sqrt(" * n + "a" + ")" * n),
    st.integers(min_value=1, max_value=10**4).map(lambda n: "+".join(["a"] * n)),
    st.integers(min_value=300, max_value=5000).map(lambda n: "9" * n),
))
def test_arbitrary_text_compiles_or_is_refused_with_expression_error(text):
    evaluate = _compile(text)
    if evaluate is not None:
        kind, result = within(evaluate, {n: 1.0 for n in INPUTS})
        assert kind == "value" or isinstance(result, MATH_ERRORS), (text, result)
