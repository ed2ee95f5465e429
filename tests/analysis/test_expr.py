"""The evaluator of Argo's condition language, and Argo's phase rules and argument substitution."""
import math
import re

import pytest

from tests.analysis import argo
from tests.analysis.expr import ExprError, evaluate

NAN, INF = math.nan, math.inf

TRUE_OR_FALSE = [
    ("result[0] < 0.1", [0.05], True),
    ("result[0] < 0.1", [0.1], False),
    ("result[0] <= 0.1", [0.1], True),
    ("result[0] <= 0.1", [NAN], False),           # every comparison with NaN is false, as in Go
    ("result[0] > 0.1", [NAN], False),
    ("result[0] != result[0]", [NAN], True),
    ("isNaN(result[0])", [NAN], True),
    ("isInf(result[0])", [-INF], True),
    ("len(result) == 0 || result[0] < 0.01", [], True),   # || short-circuits: result[0] never runs
    ("len(result) > 0 && result[0] < 0.01", [], False),
    ("result[-1] == 3", [1.0, 2.0, 3.0], True),   # a negative index counts from the end
    ("result[0] - result[1] <= 0.02", [0.05, 0.04], True),
    ("1 + 2 * 3 == 7", [], True),                 # * before +
    ("(1 + 2) * 3 == 9", [], True),
    ("10 - 4 - 3 == 3", [], True),                # left-associative
    ("1 / 2 == 0.5", [], True),                   # / is float division, also on ints
    ("1 / 0 > 1e308", [], True),                  # Go float division: +Inf
    ("isNaN(0 / 0)", [], True),
    ("-result[0] == -2", [2.0], True),
    ("!false && true", [], True),
    ("not (1 > 2) and 2 > 1", [], True),
    ("true || false && false", [], True),         # && before ||
    ("false or true", [], True),
    ("1 == 1.0", [], True),
    ("result[0] < 2.5e-2", [0.02], True),
]


@pytest.mark.parametrize("condition,result,expected", TRUE_OR_FALSE)
def test_conditions_evaluate_as_expr_does(condition, result, expected):
    assert evaluate(condition, result) is expected


def test_a_scalar_result_is_a_float():
    assert evaluate("result < 0.1", 0.05) is True
    with pytest.raises(ExprError):
        evaluate("result[0] < 0.1", 0.05)


ERRORS = {
    "index of an empty vector": ("result[0] < 0.1", [], "index out of range: 0"),
    "index past the end": ("result[1] < 0.1", [0.1], "index out of range: 1"),
    "not a bool": ("result[0]", [0.1], "expected bool"),
    "unknown name": ("value < 0.1", [0.1], "unknown name value"),
    "type checked before it runs": ("true || result[0]", [0.1], "mismatched types bool and float"),
    "list compared with a number": ("result < 1", [0.1], "mismatched types list and int"),
    "number as a condition": ("len(result) && true", [0.1], "mismatched types int and bool"),
    "! of a number": ("!result[0]", [0.1], "mismatched type float"),
    "string literal": ("result[0] < '1'", [0.1], "unexpected character"),
    "unbalanced": ("(result[0] < 1", [0.1], "expected )"),
    "trailing tokens": ("result[0] < 1 1", [0.1], "unexpected '1'"),
    "unresolved argument": ("result[0] < {{args.x}}", [0.1], "unexpected character"),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_what_argo_reports_as_an_error(case):
    condition, result, message = case
    with pytest.raises(ExprError, match=re.escape(message)):
        evaluate(condition, result)


def test_what_lies_outside_the_subset_is_refused_not_guessed():
    """Argo also offers asInt, asFloat, isNil, default, strings, `%`, `**`...: not used, so not emulated."""
    for condition in ("asFloat(result[0]) < 1", "result[0] % 2 == 0", "result[0] ** 2 < 1"):
        with pytest.raises(ExprError):
            evaluate(condition, [0.1])


# both conditions guarded by the vector's length: no data makes neither hold
WITHIN = {"successCondition": "len(result) == 1 && result[0] >= 1 / 2 && result[0] <= 2",
          "failureCondition": "len(result) == 1 && (result[0] < 1 / 2 || result[0] > 2)"}
PHASES = [
    ({"successCondition": "result[0] < 1"}, [0.5], argo.SUCCESSFUL),
    ({"successCondition": "result[0] < 1"}, [2.0], argo.FAILED),
    ({"successCondition": "result[0] < 1"}, [], argo.ERROR),        # no data: an error, not a failure
    ({"successCondition": "result[0] < 1"}, [NAN], argo.FAILED),
    ({"failureCondition": "result[0] > 1"}, [0.5], argo.SUCCESSFUL),
    ({"failureCondition": "result[0] > 1"}, [2.0], argo.FAILED),
    ({"successCondition": "result[0] < 1", "failureCondition": "result[0] > 2"}, [1.5], argo.INCONCLUSIVE),
    ({"successCondition": "result[0] < 1", "failureCondition": "result[0] > 0"}, [0.5], argo.FAILED),
    ({}, [], argo.SUCCESSFUL),
    ({"successCondition": "result[0] < 1", "failureCondition": "result[5] > 2"}, [0.5], argo.ERROR),
    (WITHIN, [], argo.INCONCLUSIVE),
    (WITHIN, [0.5], argo.SUCCESSFUL),
    (WITHIN, [2.0], argo.SUCCESSFUL),
    (WITHIN, [0.25], argo.FAILED),
    (WITHIN, [4.0], argo.FAILED),
]


@pytest.mark.parametrize("metric,result,expected", PHASES)
def test_measurement_phase_follows_argo(metric, result, expected):
    assert argo.phase(metric, result) == expected


TEMPLATE = {"spec": {
    "args": [{"name": "address", "value": "http://p:9090"}, {"name": "name"}, {"name": "limit"}],
    "metrics": [{"name": "m", "successCondition": "result[0] < {{ args.limit }}",
                 "provider": {"prometheus": {"address": "{{args.address}}", "query": 'up{job="{{args.name}}"}'}}}]}}


def test_arguments_are_substituted_across_the_whole_metric():
    (metric,) = argo.resolve(TEMPLATE, {"name": 'a"b', "limit": "0.5"}).values()
    assert metric["successCondition"] == "result[0] < 0.5"
    assert metric["provider"]["prometheus"] == {"address": "http://p:9090", "query": 'up{job="a"b"}'}
    (metric,) = argo.resolve(TEMPLATE, {"name": "x", "limit": "1", "address": "http://q"}).values()
    assert metric["provider"]["prometheus"]["address"] == "http://q"


@pytest.mark.parametrize("supplied,message", [
    ({"name": "x"}, 'argument "limit" was not supplied'),
    ({"name": "x", "limit": "1", "other": "y"}, r"arguments \['other'\] are not declared"),
])
def test_missing_or_unknown_arguments_are_refused(supplied, message):
    with pytest.raises(ValueError, match=message):
        argo.resolve(TEMPLATE, supplied)


def test_a_tag_naming_no_argument_is_refused():
    template = {"spec": {"args": [], "metrics": [{"name": "m", "successCondition": "result[0] < {{args.nope}}"}]}}
    with pytest.raises(ValueError, match=r"failed to resolve \{\{args.nope\}\}"):
        argo.resolve(template, {})
