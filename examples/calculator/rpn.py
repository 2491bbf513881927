"""Evaluate arithmetic in reverse Polish notation, recording each step.

Kept free of gRPC so the rules (and their error messages, which a model reads
to fix its expression) can be tested and reused on their own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

# Plain decimal or scientific numbers; float() alone would also accept "nan", "inf" and "1_0".
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
BINARY_OPERATORS = ("+", "-", "*", "/", "^")
UNARY_OPERATORS = ("neg", "sqrt")
_ALL_OPERATORS = " ".join((*BINARY_OPERATORS, *UNARY_OPERATORS))


class RpnError(ValueError):
    """The expression cannot be evaluated; the message names the token and its position."""


@dataclass
class Evaluation:
    """The value of an expression and the operations that produced it."""

    value: float
    steps: list[str] = field(default_factory=list)


def format_number(value: float) -> str:
    """Short text for a number in steps: "7", "3.5", "1e+20"."""
    return f"{value:.15g}"


def _binary(op: str, a: float, b: float, where: str) -> float:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            raise RpnError(f"division by zero at {where}: {format_number(a)} / 0")
        return a / b
    try:
        # math.pow raises where ** would return a complex number, e.g. (-8) ^ 0.5.
        return math.pow(a, b)
    except (ValueError, OverflowError):
        raise RpnError(
            f"{format_number(a)} ^ {format_number(b)} at {where} has no real finite value"
        ) from None


def _unary(op: str, a: float, where: str) -> float:
    if op == "neg":
        return -a
    if a < 0:
        raise RpnError(f"sqrt of negative number {format_number(a)} at {where}")
    return math.sqrt(a)


def evaluate(expression: str) -> Evaluation:
    """Evaluate `expression`, e.g. "3 4 + 5 *" is 35; raises `RpnError` if malformed."""
    tokens = expression.split()
    if not tokens:
        raise RpnError("expression is empty; write numbers and operators separated by spaces")
    stack: list[float] = []
    result = Evaluation(value=0.0)
    for position, token in enumerate(tokens, start=1):
        where = f"position {position} ({token!r})"
        if _NUMBER.fullmatch(token):
            number = float(token)
            if not math.isfinite(number):
                raise RpnError(f"number {token!r} at position {position} is too large")
            stack.append(number)
            continue
        op = token.lower()
        arity = 2 if op in BINARY_OPERATORS else 1 if op in UNARY_OPERATORS else 0
        if arity == 0:
            raise RpnError(
                f"unknown token {token!r} at position {position}; "
                f"expected a number or one of {_ALL_OPERATORS}"
            )
        if len(stack) < arity:
            raise RpnError(
                f"operator {token!r} at position {position} needs {arity} operand"
                f"{'s' if arity > 1 else ''}, found {len(stack)}"
            )
        if arity == 2:
            b, a = stack.pop(), stack.pop()
            value = _binary(op, a, b, where)
            text = f"{format_number(a)} {op} {format_number(b)}"
        else:
            a = stack.pop()
            value = _unary(op, a, where)
            text = f"{op} {format_number(a)}"
        if not math.isfinite(value):
            raise RpnError(f"{text} at {where} overflows")
        value = value + 0.0  # turns -0.0 into 0.0
        stack.append(value)
        result.steps.append(f"{text} = {format_number(value)}")
    if len(stack) > 1:
        leftover = ", ".join(format_number(v) for v in stack)
        raise RpnError(
            f"{len(stack)} values left on the stack ({leftover}) after the last token; "
            f"every number except one needs an operator"
        )
    result.value = stack[0] + 0.0
    return result
