"""Rules stay bounded whatever the values: a caller's context cannot make a rule allocate or
compute without limit (RuleLimitError, a 422), and what could never be bounded is refused when
the rule is read."""

from __future__ import annotations

import pytest

from onetoone.customize.rules import (
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_SEQUENCE,
    Rule,
    RuleError,
    RuleLimitError,
)
from onetoone.errors import InvalidInputError

HUGE = 10**12  # a repeat count that asked for a terabyte (MemoryError) before


@pytest.mark.parametrize(("source", "env"), [
    ("context_a * context_b", {"context_a": "x" * 1000, "context_b": HUGE}),
    ("context_b * context_a", {"context_a": "x" * 1000, "context_b": HUGE}),
    ("context_a * context_b", {"context_a": list(range(1000)), "context_b": HUGE}),
    ("context_a * context_b", {"context_a": "x", "context_b": MAX_SEQUENCE + 1}),
    ("context_a + context_a", {"context_a": "x" * (MAX_SEQUENCE // 2 + 1)}),
    ("context_a + context_a + context_a", {"context_a": [0] * (MAX_SEQUENCE // 3 + 1)}),
])
def test_sequence_results_over_the_bound_are_refused_before_allocating(
        source: str, env: dict[str, object]) -> None:
    rule = Rule(source)
    with pytest.raises(RuleLimitError, match="longer than") as caught:
        rule(env)
    assert isinstance(caught.value, InvalidInputError) and caught.value.http_status == 422
    with pytest.raises(RuleLimitError):  # test() does not turn it into "false"
        rule.test(env)


def test_small_sequences_still_work() -> None:
    assert Rule("context_a * 3")({"context_a": "ab"}) == "ababab"
    assert Rule("context_a + context_b")({"context_a": [1], "context_b": [2]}) == [1, 2]
    assert Rule("context_a * context_b")({"context_a": "x", "context_b": -5}) == ""


@pytest.mark.parametrize(("source", "env"), [
    ("context_a * context_a * context_a", {"context_a": 2**63 - 1}),
    ("context_a * 1e308", {"context_a": 10.0}),
    ("-context_a * 1e308 * 1e308", {"context_a": 1}),
])
def test_numbers_that_grow_out_of_bounds_are_refused(source: str,
                                                     env: dict[str, object]) -> None:
    with pytest.raises(RuleLimitError, match="number"):
        Rule(source)(env)


def test_a_value_rule_over_the_bound_cannot_reach_float_conversion() -> None:
    """A value of thousands of bits made float() raise OverflowError (a 500) before."""
    product = " * ".join(["context_a"] * 20)
    with pytest.raises(RuleLimitError):
        Rule(product)({"context_a": 2**63 - 1})
    assert Rule("context_a * 2")({"context_a": 2**63 - 1}).bit_length() <= MAX_INT_BITS


def test_string_formatting_never_runs() -> None:
    """``"%0999999999d" % 1`` would build a gigabyte string: ``%`` on a string is None."""
    rule = Rule("context_a % context_b")
    assert rule({"context_a": "%0999999999d", "context_b": 1}) is None
    assert rule.test({"context_a": "%s", "context_b": "x"}) is False
    assert rule({"context_a": 7, "context_b": 4}) == 3


@pytest.mark.parametrize("source", [
    "context_a ** context_b",  # power: refused, whatever the values
    "2 ** 4",
    "9" * 60,  # an integer literal over MAX_INT_BITS
    "1e999",  # an infinite literal
    "-" * 1990 + "x",  # RecursionError while compiling, before
    " + ".join(["x"] * (MAX_DEPTH + 2)),
    "not " * (MAX_DEPTH + 2) + "x",
])
def test_what_could_not_be_bounded_is_refused_when_read(source: str) -> None:
    with pytest.raises(RuleError):
        Rule(source)


def test_nesting_within_the_bound_still_compiles() -> None:
    assert Rule(" + ".join(["x"] * MAX_DEPTH))({"x": 1}) == MAX_DEPTH
    assert Rule("x in [" + ", ".join(str(i) for i in range(300)) + "]")({"x": 299}) is True


def test_the_message_is_one_sentence_naming_the_rule_never_the_values() -> None:
    with pytest.raises(RuleLimitError) as caught:
        Rule("context_a * context_b")({"context_a": "secret-value", "context_b": HUGE})
    message = caught.value.user_message()
    assert message.startswith("The rule 'context_a * context_b' would compute")
    assert message.endswith("items.") and message.count(". ") == 0
    assert "secret" not in message
