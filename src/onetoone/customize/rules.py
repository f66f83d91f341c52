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

Evaluation is bounded, whatever the values (a request's context is the caller's): a result of
``+`` or ``*`` on strings or lists may hold at most :data:`MAX_SEQUENCE` items, an integer at
most :data:`MAX_INT_BITS` bits, a number must stay finite, and ``%`` never formats a string
(it is ``None``). A rule that would go beyond raises :class:`RuleLimitError` (422), before
allocating anything. ``**``, calls and the rest are refused when the rule is read, and so is
an expression nested more than :data:`MAX_DEPTH` levels deep.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from onetoone.errors import InvalidInputError

Env = Mapping[str, Any]
Compiled = Callable[[Env], Any]

MAX_LENGTH = 2000
#: most items (characters of a string, elements of a list) a ``+`` or ``*`` may produce
MAX_SEQUENCE = 10_000
#: most bits of an integer a rule may hold or compute (2**128 is about 3.4e38)
MAX_INT_BITS = 128
#: most levels of nesting of an expression (``a + b + c`` is two)
MAX_DEPTH = 50

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


class RuleLimitError(InvalidInputError):
    """A rule whose evaluation would go beyond the bounds (a result too long or too large);
    422, since the values come from the request."""


class _Unbounded(Exception):
    """Raised inside evaluation; :class:`Rule` turns it into :class:`RuleLimitError`."""


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
        except (RecursionError, MemoryError):
            raise RuleError(f"a rule may be nested at most {MAX_DEPTH} levels deep") from None
        self.names: set[str] = set()
        self._fn = self._compile(tree.body)

    def __call__(self, env: Env) -> Any:
        """The rule's value for this profile; :class:`RuleLimitError` beyond the bounds."""
        try:
            return self._fn(env)
        except _Unbounded as exc:
            raise RuleLimitError(f"The rule '{self.source}' would compute {exc}.") from None

    def test(self, env: Env) -> bool:
        """The rule's truth for this profile (``None`` and errors count as false;
        :class:`RuleLimitError` beyond the bounds)."""
        try:
            return bool(self(env))
        except (TypeError, ValueError, ArithmeticError):
            return False

    def __repr__(self) -> str:
        return f"Rule({self.source!r})"

    # -- compilation --------------------------------------------------------------------
    def _compile(self, node: ast.expr, depth: int = 0) -> Compiled:
        if depth > MAX_DEPTH:
            raise RuleError(f"a rule may be nested at most {MAX_DEPTH} levels deep")
        if isinstance(node, ast.Constant):
            if not isinstance(node.value, str | int | float | bool | type(None)):
                raise RuleError(f"literal {node.value!r} is not allowed")
            value = node.value
            try:
                _bounded(value)
            except _Unbounded as exc:
                raise RuleError(f"literal {ast.unparse(node)[:40]} is {exc}") from None
            return lambda env: value
        if isinstance(node, ast.Name):
            if node.id in _CONSTANT_NAMES:
                constant = _CONSTANT_NAMES[node.id]
                return lambda env: constant
            name = node.id
            self.names.add(name)
            return lambda env: env.get(name)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = [self._compile(e, depth + 1) for e in node.elts]
            return lambda env: [item(env) for item in items]
        if isinstance(node, ast.BoolOp):
            parts = [self._compile(v, depth + 1) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda env: _all(parts, env)
            return lambda env: _any(parts, env)
        if isinstance(node, ast.UnaryOp):
            operand = self._compile(node.operand, depth + 1)
            if isinstance(node.op, ast.Not):
                return lambda env: not operand(env)
            if isinstance(node.op, ast.USub):
                return lambda env: _arith(operator.neg, operand(env))
            if isinstance(node.op, ast.UAdd):
                return operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            op = _BINARY[type(node.op)]
            left = self._compile(node.left, depth + 1)
            right = self._compile(node.right, depth + 1)
            return lambda env: _arith(op, left(env), right(env))
        if isinstance(node, ast.Compare):
            first = self._compile(node.left, depth + 1)
            ops = []
            for cmp, comparator in zip(node.ops, node.comparators, strict=True):
                if type(cmp) not in _COMPARE:
                    raise RuleError(f"operator '{type(cmp).__name__}' is not allowed")
                ops.append((type(cmp), _COMPARE[type(cmp)],
                            self._compile(comparator, depth + 1)))
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
    if len(args) == 2:
        left, right = args
        if op is operator.mod and isinstance(left, str):
            return None  # "%" formats a string: never in a rule
        if op is operator.mul or op is operator.add:
            _check_size(op, left, right)
    try:
        result = op(*args)
    except (TypeError, ArithmeticError, ValueError):
        return None
    return _bounded(result)


def _check_size(op: Callable[..., Any], left: Any, right: Any) -> None:
    """Refuse, before computing it, a string or list longer than :data:`MAX_SEQUENCE`."""
    size = None
    if op is operator.add:
        if isinstance(left, str | list) and type(left) is type(right):
            size = len(left) + len(right)
    elif isinstance(left, str | list) and isinstance(right, int):
        size = len(left) * max(right, 0)
    elif isinstance(right, str | list) and isinstance(left, int):
        size = len(right) * max(left, 0)
    if size is not None and size > MAX_SEQUENCE:
        kind = "a string" if isinstance(left, str) or isinstance(right, str) else "a list"
        raise _Unbounded(f"{kind} longer than {MAX_SEQUENCE:,} items")


def _bounded(value: Any) -> Any:
    """``value``, unless it is an integer over :data:`MAX_INT_BITS` bits or a float that is
    not finite."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Unbounded(f"a number over {MAX_INT_BITS} bits")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Unbounded("a number too large to be finite")
    return value


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
