"""Observable expressions: whitelisted arithmetic, parsed with `ast`, never executed."""

import builtins
import math
import threading

import pytest

from softioc.model import ExpressionError, compile_expression


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("(q1 - 1.5)**2 + (q2 + 0.5)**2", {"q1": 1.5, "q2": -0.5}, 0.0),
        ("(q1 - 1.5)**2 + (q2 + 0.5)**2", {"q1": 0.0, "q2": 0.0}, 2.5),
        ("a + b * c", {"a": 1, "b": 2, "c": 3}, 7.0),
        ("-a ** 2", {"a": 3}, -9.0),
        ("+a - -b", {"a": 1, "b": 2}, 3.0),
        ("a / b", {"a": 1, "b": 4}, 0.25),
        ("a // b + a % b", {"a": 7, "b": 2}, 4.0),
        ("sqrt(x) + exp(0) + log(e)", {"x": 16}, 6.0),
        ("hypot(x, y)", {"x": 3, "y": 4}, 5.0),
        ("atan2(1, 1) * 4", {}, math.pi),
        ("min(a, b, 3) + max(a, b) + abs(-2)", {"a": 1, "b": 2}, 5.0),
        ("sin(pi / 2) + cos(0) + tau / tau", {}, 3.0),
        ("2.5e-1 * 4", {}, 1.0),
    ],
)
def test_evaluates_arithmetic_with_math_functions(text, env, expected):
    evaluate = compile_expression(text, list(env))
    assert evaluate(env) == pytest.approx(expected, abs=1e-12)


def test_evaluator_is_reusable_with_new_values():
    evaluate = compile_expression("x * 2", ["x"])
    assert [evaluate({"x": v}) for v in (1.0, 2.0, -3.0)] == [2.0, 4.0, -6.0]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("__import__('os')", "__import__"),
        ("__import__('os').system('true')", "function \"__import__('os').system\""),
        ("x.real", "Attribute"),
        ("(1).__class__", "Attribute"),
        ("().__class__.__bases__[0].__subclasses__()", "__subclasses__' is not allowed"),
        ("eval('1')", "eval"),
        ("exec('x = 1')", "exec"),
        ("open('f', 'w')", "open"),
        ("getattr(x, 'real')", "getattr"),
        ("x[0]", "Subscript"),
        ("[x, 1]", "List"),
        ("x if x else 1", "IfExp"),
        ("x < 1", "Compare"),
        ("x and 1", "BoolOp"),
        ("lambda: 1", "Lambda"),
        ("(y := 1)", "NamedExpr"),
        ("[i for i in (1, 2)]", "ListComp"),
        ("'abc'", "numeric constants"),
        ("True + x", "numeric constants"),
        ("f'{x}'", "JoinedStr"),
        ("x ^ 1", "BinOp"),
        ("~x", "UnaryOp"),
        ("not x", "UnaryOp"),
        ("sqrt(x=1)", "keyword"),
        ("math.sqrt(x)", "math.sqrt"),
    ],
)
def test_refuses_anything_outside_the_whitelist(text, named):
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, ["x"])
    assert named in str(info.value)
    assert text in str(info.value) or "not allowed" in str(info.value)


def test_refused_expression_is_never_executed(tmp_path, monkeypatch):
    """Parsing is ast-only: no call of eval/exec/__import__ happens, and no side effect."""
    calls = []
    real_import = builtins.__import__

    def spy(name, *args, **kwargs):
        calls.append(name)
        return real_import(name, *args, **kwargs)

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must never be called")

    target = tmp_path / "pwned"
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "__import__", spy)
    for text in (
        f"__import__('os').system('touch {target}')",
        f"open('{target}', 'w')",
        "__import__('os')",
    ):
        with pytest.raises(ExpressionError):
            compile_expression(text, ["x"])
    # a legal expression compiles and evaluates without eval/exec either
    assert compile_expression("sqrt(x) * 2", ["x"])({"x": 4.0}) == 4.0
    assert "os" not in calls
    assert not target.exists()


def test_unknown_name_is_refused_naming_it_and_the_inputs():
    with pytest.raises(ExpressionError) as info:
        compile_expression("q1 + q3", ["q1", "q2"])
    message = str(info.value)
    assert "'q3'" in message and "['q1', 'q2']" in message


def test_input_names_may_not_shadow_functions_or_constants():
    with pytest.raises(ExpressionError, match=r"shadow.*\['pi', 'sqrt'\]"):
        compile_expression("sqrt + pi", ["sqrt", "pi"])


@pytest.mark.parametrize("text", ["", "   ", "1 +", "(x", "x = 1", None, 3])
def test_empty_or_invalid_syntax_is_refused(text):
    with pytest.raises(ExpressionError):
        compile_expression(text, ["x"])


def test_runtime_math_errors_surface_from_the_evaluator():
    """The evaluator raises; the Observable turns these into NaN (see test_model)."""
    with pytest.raises(ZeroDivisionError):
        compile_expression("1 / x", ["x"])({"x": 0.0})
    with pytest.raises(ValueError):
        compile_expression("sqrt(x)", ["x"])({"x": -1.0})
    with pytest.raises(OverflowError):  # constants are floats: no giant-integer arithmetic
        compile_expression("10 ** 400", [])({})


# --- bounded evaluation (a whitelisted expression must never hang the IOC) ---------------------

TOWER = "floor(q) ** floor(q) ** floor(q)"


def _evaluate_within(evaluate, env, timeout: float = 5.0):
    """Run `evaluate(env)` in a thread; fail if it has not returned within `timeout` s."""
    outcome: list = []

    def run():
        try:
            outcome.append(("value", evaluate(env)))
        except Exception as exc:  # noqa: BLE001 - reported to the test below
            outcome.append(("error", exc))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"evaluation with {env} did not return within {timeout} s"
    return outcome[0]


@pytest.mark.parametrize(
    ("text", "env"),
    [
        (TOWER, {"q": 9.0}),
        (TOWER, {"q": 9}),  # an int input too
        ("ceil(q) ** ceil(q) ** ceil(q) ** ceil(q)", {"q": 8.5}),
        ("floor(q) ** 100000000", {"q": 10.0}),
        ("(q * 10) ** (q * 10) ** q", {"q": 3}),
        ("exp(q) ** q", {"q": 1e3}),
    ],
)
def test_huge_powers_overflow_at_once_instead_of_running_for_ever(text, env):
    kind, result = _evaluate_within(compile_expression(text, list(env)), env)
    assert kind == "error" and isinstance(result, OverflowError), (kind, result)


def test_floor_and_ceil_give_floats():
    assert type(compile_expression("floor(q) + ceil(q)", ["q"])({"q": 1.5})) is float


def test_observable_reads_nan_on_overflow():
    from softioc.config import ObservableConfig
    from softioc.model import Observable

    ob = Observable(ObservableConfig("T:OBJ", TOWER, {"q": "T:RBV"}), seed=1)
    kind, result = _evaluate_within(ob.compute, {"q": 9.0})
    assert kind == "value" and math.isnan(result)


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        ("q + " * 600 + "q", "characters long; the limit is 2000"),
        ("hypot(" + ", ".join(["q"] * 600) + ")", "AST nodes; the limit is 500"),
        ("-" * 60 + "q", "deeper than 50 levels"),
        ("sqrt(" * 60 + "q" + ")" * 60, "deeper than 50 levels"),
        ("(" * 300 + "q" + ")" * 300, "too many nested parentheses"),
        ("1" * 400 + ".0e999999", ""),  # a float literal: inf, allowed
    ],
)
def test_oversized_expressions_are_refused_naming_the_limit(text, limit):
    if not limit:
        assert compile_expression(text, ["q"])({"q": 0.0}) == math.inf
        return
    with pytest.raises(ExpressionError, match=limit):
        compile_expression(text, ["q"])


@pytest.mark.parametrize("text", ["q\x00", "q + \ud800", "9" * 400 + " + q"])
def test_text_python_cannot_carry_is_refused_with_expression_error(text):
    with pytest.raises(ExpressionError):
        compile_expression(text, ["q"])
