"""Safe rule expressions over a customer's profile.

Example: ``value_tier == "top" and defection_risk > 0.4``.

Marketers write eligibility, applicability and suitability rules in the configuration; they must
never run arbitrary code. An expression is parsed with :mod:`ast` and compiled into a tree of
small closures that only know comparisons (chained, ``in``, ``not in``), ``and``/``or``/``not``,
arithmetic, names and literals (numbers, strings, booleans, ``None``, lists). No call, attribute,
subscript or lambda passes the check, and nothing is given to ``eval``.

Missing data does not raise: an unknown name is ``None``, a comparison with ``None`` other
than ``==``/``!=``/``in`` is false, arithmetic with ``None`` (or a division by zero) is
``None``. A rule that cannot decide therefore excludes the action rather than failing the
decision.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

Env = Mapping[str, Any]
Compiled = Callable[[Env], Any]

MAX_LENGTH = 2000

_CONSTANT_NAMES = {
    "true": True,
    "false": False,
    "none": None,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class RuleError(ValueError):
    """An expression that is not a valid rule; the message says which part is refused."""


class Rule:
    """A compiled safe expression. ``Rule("clv > 100")(profile)`` → ``True``."""

    def __init__(self, source: str) -> None:
        if not isinstance(source, str) or not source.strip():
            raise RuleError("a rule must be a non-empty expression")
        if len(source) > MAX_LENGTH:
            raise RuleError(f"a rule may hold at most {MAX_LENGTH} characters")
        self.source = source.strip()
        try:
            tree = ast.parse(self.source, mode="eval")
        except SyntaxError as exc:
            raise RuleError(f"'{self.source}' is not a valid expression ({exc.msg})") from None
        self.names: set[str] = set()
        self._fn = self._compile(tree.body)

    def __call__(self, env: Env) -> Any:
        return self._fn(env)

    def test(self, env: Env) -> bool:
        """The rule's truth for this profile (``None`` and errors count as false)."""
        try:
            return bool(self._fn(env))
        except (TypeError, ValueError, ArithmeticError):
            return False

    def __repr__(self) -> str:
        return f"Rule({self.source!r})"

    # -- compilation --------------------------------------------------------------------
    def _compile(self, node: ast.expr) -> Compiled:
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, str | int | float | bool | type(None)):
                raise RuleError(f"literal {node.value!r} is not allowed")
            value = node.value
            return lambda env: value
        if isinstance(node, ast.Name):
            if node.id in _CONSTANT_NAMES:
                constant = _CONSTANT_NAMES[node.id]
                return lambda env: constant
            name = node.id
            self.names.add(name)
            return lambda env: env.get(name)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = [self._compile(e) for e in node.elts]
            return lambda env: [item(env) for item in items]
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda env: _all(parts, env)
            return lambda env: _any(parts, env)
        if isinstance(node, ast.UnaryOp):
            operand = self._compile(node.operand)
            if isinstance(node.op, ast.Not):
                return lambda env: not operand(env)
            if isinstance(node.op, ast.USub):
                return lambda env: _arith(operator.neg, operand(env))
            if isinstance(node.op, ast.UAdd):
                return operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            op = _BINARY[type(node.op)]
            left, right = self._compile(node.left), self._compile(node.right)
            return lambda env: _arith(op, left(env), right(env))
        if isinstance(node, ast.Compare):
            first = self._compile(node.left)
            ops = []
            for cmp, comparator in zip(node.ops, node.comparators, strict=True):
                if type(cmp) not in _COMPARE:
                    raise RuleError(f"operator '{type(cmp).__name__}' is not allowed")
                ops.append((type(cmp), _COMPARE[type(cmp)], self._compile(comparator)))
            return lambda env: _compare(first, ops, env)
        raise RuleError(
            f"'{ast.unparse(node)}' is not allowed in a rule (only comparisons, "
            "and/or/not, arithmetic, names, literals and 'in')"
        )


def _all(parts: list[Compiled], env: Env) -> Any:
    value: Any = True
    for part in parts:
        value = part(env)
        if not value:
            return value
    return value


def _any(parts: list[Compiled], env: Env) -> Any:
    value: Any = False
    for part in parts:
        value = part(env)
        if value:
            return value
    return value


def _arith(op: Callable[..., Any], *args: Any) -> Any:
    if any(a is None for a in args):
        return None
    try:
        return op(*args)
    except (TypeError, ArithmeticError, ValueError):
        return None


def _compare(
    first: Compiled, ops: list[tuple[type, Callable[[Any, Any], bool], Compiled]], env: Env
) -> bool:
    left = first(env)
    for kind, op, comparator in ops:
        right = comparator(env)
        if kind in (ast.Eq, ast.NotEq):
            ok = op(left, right)
        elif kind in (ast.In, ast.NotIn) and isinstance(right, list | str):
            try:
                ok = op(left, right)
            except TypeError:  # None in "text"
                return False
        elif left is None or right is None:
            return False
        else:
            try:
                ok = op(left, right)
            except TypeError:
                return False
        if not ok:
            return False
        left = right
    return True


def compile_rules(rules: str | list[str]) -> list[Rule]:
    """A rule or a list of rules (all must hold)."""
    return [Rule(r) for r in ([rules] if isinstance(rules, str) else rules)]
