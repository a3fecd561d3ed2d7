"""Arithmetic expressions for observables, parsed with a whitelist and never `eval`-ed.

Config files are data: an expression may use numbers, its named inputs, arithmetic
operators and a fixed set of `math` functions, nothing else.

Evaluation is bounded: every value is a float (inputs, constants, and the results of
`floor`/`ceil`), so no operation can grow an unbounded Python int; an overflow raises
OverflowError instead of running for ever. The size of an expression is bounded too.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping, Sequence

from ..errors import ExpressionError

__all__ = ["CONSTANTS", "FUNCTIONS", "MAX_DEPTH", "MAX_LENGTH", "MAX_NODES", "Evaluator", "ExpressionError",
           "compile_expression"]

# the longest expression text (characters), the most AST nodes, the deepest nesting accepted
MAX_LENGTH = 2000
MAX_NODES = 500
MAX_DEPTH = 50

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    # math.pow: float-only, raises OverflowError/ValueError where `**` would give a huge int or a complex
    ast.Pow: math.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}

FUNCTIONS: dict[str, Callable[..., float]] = {
    name: getattr(math, name)
    for name in (
        "sqrt", "exp", "log", "log10", "log2", "sin", "cos", "tan", "asin", "acos", "atan",
        "atan2", "sinh", "cosh", "tanh", "hypot", "floor", "ceil", "fabs", "erf", "copysign",
    )
}
FUNCTIONS.update({
    # math.floor/ceil return ints, and an int would make `**` unbounded: keep them floats
    "floor": lambda x: float(math.floor(x)),
    "ceil": lambda x: float(math.ceil(x)),
    "abs": abs, "min": min, "max": max,
})
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}

Evaluator = Callable[[Mapping[str, float]], float]


def compile_expression(text: str, inputs: Sequence[str]) -> Evaluator:
    """Parse `text` into a function of a mapping {input name: value} -> float.

    Raises ExpressionError naming the offending construct; nothing in `text` is executed.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError(f"expression must be a non-empty string, got {_shown(text)}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression {_shown(text)} is {len(text)} characters long; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid syntax in {_shown(text)}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL, lone surrogates, parser stack
        raise ExpressionError(f"cannot parse {_shown(text)}: {exc}") from None
    _check_size(tree.body, text)
    known = set(inputs)
    clash = known & (set(FUNCTIONS) | set(CONSTANTS))
    if clash:
        raise ExpressionError(f"input names shadow built-in names: {sorted(clash)}")
    return _build(tree.body, known, text)


def _shown(text: object, limit: int = 80) -> str:
    """repr of `text`, cut to about `limit` characters so a huge input cannot flood a message."""
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[:limit]}...({len(shown)} chars)"


def _check_size(root: ast.AST, text: str) -> None:
    """Refuse an AST with more than MAX_NODES nodes or nested deeper than MAX_DEPTH (iteratively)."""
    count, stack = 0, [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression {_shown(text)} has more than {MAX_NODES} AST nodes; the limit is {MAX_NODES}")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression {_shown(text)} nests deeper than {MAX_DEPTH} levels; the limit is {MAX_DEPTH}")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _build(node: ast.AST, known: set[str], text: str) -> Evaluator:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ExpressionError(f"only numeric constants are allowed, got {_shown(node.value)} in {_shown(text)}")
        try:
            value = float(node.value)
        except OverflowError:
            raise ExpressionError(f"constant {_shown(node.value)} in {_shown(text)} is beyond float range") from None
        return lambda env: value
    if isinstance(node, ast.Name):
        name = node.id
        if name in known:
            # float(): an int or bool input must not turn `**` into unbounded int arithmetic
            return lambda env: float(env[name])
        if name in CONSTANTS:
            const = CONSTANTS[name]
            return lambda env: const
        raise ExpressionError(f"unknown name {name!r} in {text!r} (inputs: {sorted(known)})")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left, right = _build(node.left, known, text), _build(node.right, known, text)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        uop = _UNARY[type(node.op)]
        operand = _build(node.operand, known, text)
        return lambda env: uop(operand(env))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.unparse(node.func)
            raise ExpressionError(f"function {shown!r} is not allowed in {text!r} (allowed: {sorted(FUNCTIONS)})")
        if node.keywords:
            raise ExpressionError(f"keyword arguments are not allowed in {text!r}")
        func = FUNCTIONS[node.func.id]
        args = [_build(arg, known, text) for arg in node.args]
        return lambda env: func(*(arg(env) for arg in args))
    raise ExpressionError(f"{type(node).__name__} ({ast.unparse(node)!r}) is not allowed in {text!r}")
